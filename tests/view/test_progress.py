"""verbose=1 draws one progress bar per fit with iteration, loss, relative improvement and time left; verbose=0
is silent; the bar and a user's callback share the engine's callback."""

from __future__ import annotations

import io
import re

import pytest

import dnmf
from dnmf.datasets import make_low_rank
from dnmf.view.display import format_loss
from dnmf.view.progress import ProgressBar, chain_callbacks, relative_improvement


@pytest.fixture(scope="module")
def X():
    return make_low_rank(60, 40, 2, random_state=0)[0]


def test_verbose_zero_is_silent(X, capfd):
    dnmf.NMF(2, max_iter=20, random_state=0).fit(X)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_one_draws_a_bar_and_keeps_the_user_callback(X, capfd):
    seen = []
    model = dnmf.NMF(2, max_iter=12, tol=0, random_state=0, verbose=1, callback=seen.append).fit(X)
    err = capfd.readouterr().err
    assert [record.iteration for record in seen] == list(range(1, 13))
    assert "12/12" in err
    assert f"loss={model.loss_history_[-1]:.5g}" in err
    assert "rel.impr.=" in err
    assert "iteration 12: loss" not in err  # per-iteration log lines only from verbose=2


def test_text_bar_shows_loss_improvement_and_eta(X):
    out = io.StringIO()
    model = dnmf.NMF(2, max_iter=30, tol=0, random_state=0)
    with ProgressBar(30, use_tqdm=False, file=out) as bar:
        model.set_params(callback=bar).fit(X)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("dnmf 1/30 [")
    assert lines[-1].startswith("dnmf 30/30 [" + "#" * 24 + "]")
    history = model.loss_history_
    improvement = relative_improvement(history[-2], history[-1])
    shown = format_loss(history[-1], model.loss_resolution_[-1])
    assert f"loss={shown}, rel.impr.={improvement:.2e}" in lines[-1]
    assert re.search(r"ETA \d\d:\d\d", lines[-1])
    assert bar.losses == history


def test_chain_callbacks_calls_each_in_order():
    calls = []
    chained = chain_callbacks(None, lambda r: calls.append(("a", r)), None, lambda r: calls.append(("b", r)))
    chained("record")
    assert calls == [("a", "record"), ("b", "record")]
    assert chain_callbacks(None, None) is None
