"""dnmf.plot on the Agg backend: what each plot draws, from a fitted model and from a loaded result."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib", reason="dnmf.plot needs the 'plot' extra")
matplotlib.use("Agg")

import dnmf  # noqa: E402
from dnmf.plot import plot_components, plot_convergence, plot_top_features  # noqa: E402


@pytest.fixture(scope="module")
def labelled_result(tmp_path_factory):
    rng = np.random.default_rng(0)
    W = rng.random((40, 2))
    H = np.zeros((2, 16))
    H[0, :8] = 1.0
    H[1, 8:] = 1.0
    url = str(tmp_path_factory.mktemp("plot") / "x.zarr")
    words = [f"w{j}" for j in range(16)]
    dnmf.save_matrix(W @ H, url, labels=([f"d{i}" for i in range(40)], words))
    model = dnmf.NMF(2, max_iter=30, tol=0, random_state=0).fit(url, out=url.replace("x.zarr", "r.zarr"))
    return model, dnmf.load_result(url.replace("x.zarr", "r.zarr"))


def test_plot_convergence_draws_the_loss_history(labelled_result):
    model, result = labelled_result
    for fit in (model, result):
        ax = plot_convergence(fit)
        (line,) = ax.get_lines()
        np.testing.assert_allclose(line.get_ydata(), model.loss_history_)
        assert ax.get_yscale() == "log"


def test_plot_components_shows_each_component_as_an_image(labelled_result):
    model, _ = labelled_result
    figure = plot_components(model, (4, 4), n_cols=2)
    images = [ax.get_images()[0] for ax in figure.axes if ax.get_images()]
    assert len(images) == 2
    np.testing.assert_allclose(images[1].get_array(), model.components_[1].reshape(4, 4))
    with pytest.raises(ValueError, match="image_shape"):
        plot_components(model, (3, 3))


def test_plot_top_features_labels_the_bars_with_words(labelled_result):
    _, result = labelled_result
    figure = plot_top_features(result, n=3, n_cols=2)
    shown = [{tick.get_text() for tick in ax.get_yticklabels()} for ax in figure.axes[:2]]
    top = [{word for word, _ in component} for component in result.top_features(3)]
    assert shown == top
    groups = [{f"w{j}" for j in range(8)}, {f"w{j}" for j in range(8, 16)}]
    assert all(any(words <= group for group in groups) for words in shown)
