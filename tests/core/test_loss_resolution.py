"""A loss the user can trust: rounding noise of the trace identity is never reported, and never decides."""

from __future__ import annotations

import numpy as np
import pytest

from dnmf import NMF
from dnmf.core.engine import resolution
from dnmf.datasets import make_low_rank


@pytest.fixture(scope="module")
def planted32():
    X, _, _ = make_low_rank(300, 200, 5, random_state=0, dtype=np.float32)
    return X


def exact_error(X, W, H):
    return float(np.linalg.norm(X.astype(np.float64) - W.astype(np.float64) @ H.astype(np.float64)))


@pytest.mark.parametrize("solver", ["hals", "bpp"])
def test_losses_never_rise_beyond_their_resolution_and_are_never_zero(planted32, solver):
    model = NMF(5, solver=solver, max_iter=150, tol=1e-4, random_state=0)
    W = model.fit_transform(planted32)
    history, res = np.array(model.loss_history_), np.array(model.loss_resolution_)
    assert len(history) == len(res) == model.n_iter_
    assert np.all(history > 0)
    assert np.all(np.diff(history) <= res[1:] + res[:-1] + 1e-9 * history[1:])
    assert res[-1] == 0  # the last check was evaluated exactly
    assert history[-1] == pytest.approx(exact_error(planted32, W, model.components_), rel=1e-5)
    assert model.timings_["exact_losses"] >= 1


def test_stopping_is_decided_on_exact_values(planted32):
    from dnmf.core.engine import CONVERGENCE_CHECK_EVERY

    rng = np.random.default_rng(3)
    W0, H0 = rng.random((300, 5)).astype(np.float32), rng.random((5, 200)).astype(np.float32)
    exact_at_checks = {}

    def record(rec):
        if rec.iteration % CONVERGENCE_CHECK_EVERY == 0:
            exact_at_checks[rec.iteration] = exact_error(planted32, rec.W.compute(), rec.H.compute())

    tol = 1e-4
    model = NMF(5, solver="hals", init="custom", max_iter=400, tol=tol, callback=record)
    model.fit(planted32, W=W0.copy(), H=H0.copy())
    initial = exact_error(planted32, W0, H0)
    previous, stop = initial, None
    for iteration in sorted(exact_at_checks):
        if (previous - exact_at_checks[iteration]) / initial < tol:
            stop = iteration
            break
        previous = exact_at_checks[iteration]
    assert model.converged_ and model.n_iter_ == stop


def test_float64_fit_of_noisy_data_needs_no_exact_pass():
    X, _, _ = make_low_rank(200, 150, 4, random_state=1)
    X = X + 0.1 * np.random.default_rng(0).random(X.shape)
    model = NMF(4, solver="hals", max_iter=50, tol=1e-4, random_state=0).fit(X)
    assert model.timings_["exact_losses"] == 0
    assert 0 < max(model.loss_resolution_) < 1e-6 * model.loss_history_[-1]


def test_resolution_of_the_square_root():
    assert resolution(100.0, 0.0) == 0.0
    assert resolution(1e6, 4.0) == pytest.approx(4.0 / (2 * 1e3), rel=1e-3)
    assert resolution(0.0, 4.0) == pytest.approx(2.0)


def _passes_after_loop(model) -> int:
    passes = model.timings_["passes_over_a"]
    return passes["total"] - passes["before_loop"] - passes["loop"]


@pytest.mark.parametrize("beta_loss", ["frobenius", "kullback-leibler"])
def test_a_resolved_last_loss_is_the_final_error_at_no_extra_pass(beta_loss):
    """float64 Frobenius and every β-divergence: the last iteration's loss is known well enough to stand as
    ``reconstruction_err_``, which then costs no pass over X."""
    X, _, _ = make_low_rank(200, 150, 4, random_state=1)
    X = X + 0.1 * np.random.default_rng(0).random(X.shape)
    model = NMF(4, solver="mu", beta_loss=beta_loss, max_iter=30, tol=0, random_state=0)
    W = model.fit_transform(X)
    assert _passes_after_loop(model) == 0
    assert model.reconstruction_err_ == model.loss_history_[-1]
    if beta_loss == "frobenius":
        assert model.reconstruction_err_ == pytest.approx(exact_error(X, W, model.components_), rel=1e-9)


def test_an_unresolved_last_loss_is_evaluated_exactly(planted32):
    """A close float32 fit whose last loss is not an exact check: one more pass gives the exact error."""
    model = NMF(5, solver="hals", max_iter=25, tol=0, random_state=0)
    W = model.fit_transform(planted32)
    assert model.loss_resolution_[-1] > 1e-6 * model.loss_history_[-1]
    assert _passes_after_loop(model) == 1
    assert model.reconstruction_err_ == pytest.approx(exact_error(planted32, W, model.components_), rel=1e-9)
