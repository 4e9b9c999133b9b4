"""A real fitted estimator from a result store: what `dnmf transform` uses."""

from __future__ import annotations

import dask.array as da
import numpy as np

from dnmf import NMF
from dnmf.datasets import make_low_rank


def test_from_result_is_the_fitted_model(tmp_path):
    X, _, _ = make_low_rank(40, 30, 3, random_state=0)
    model = NMF(3, solver="hals", max_iter=30, tol=0, random_state=0).fit(X)
    model.save(tmp_path / "result")
    loaded = NMF.from_result(str(tmp_path / "result"))
    assert loaded.get_params() == {**model.get_params(), "chunks": loaded.chunks}
    np.testing.assert_array_equal(loaded.components_, model.components_)
    assert (loaded.n_iter_, loaded.loss_history_, loaded.fingerprint_) == (model.n_iter_, model.loss_history_,
                                                                           model.fingerprint_)
    assert "NMF" in repr(loaded) and "<" in loaded._repr_html_()
    np.testing.assert_allclose(loaded.transform(X), model.transform(X), rtol=1e-12)
    W = da.from_array(model.transform(X), chunks=(20, 3))
    np.testing.assert_allclose(loaded.inverse_transform(W).compute(), model.inverse_transform(W.compute()),
                               rtol=1e-12)


def test_from_result_takes_overrides(tmp_path):
    X, _, _ = make_low_rank(20, 15, 2, random_state=1)
    NMF(2, max_iter=10, tol=0, random_state=0).fit(X, out=str(tmp_path / "r"))
    assert NMF.from_result(str(tmp_path / "r"), max_iter=3).max_iter == 3
