"""The alternating loop against a plain in-memory NumPy implementation of the same rules (float64)."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from dnmf import ConvergenceWarning
from dnmf.core import engine
from dnmf.core.rules import RULES
from dnmf.data.matrix import as_input_matrix
from dnmf.runtime import current as current_runtime


def reference_fit(A, W, H, rule, n_iter, penalties=engine.Penalties()):
    """The whole algorithm in memory: W-step on the transposed problem, then H-step."""
    A = A.toarray() if sp.issparse(A) else A
    for _ in range(n_iter):
        W = rule(W.T, (A @ H.T).T, H @ H.T, l1=penalties.l1_w, l2=penalties.l2_w).T
        H = rule(H, W.T @ A, W.T @ W, l1=penalties.l1_h, l2=penalties.l2_h)
    return W, H


def run(A_in, W0, H0, rule, n_iter, chunks=(17, 11), penalties=engine.Penalties(), **kwargs):
    A = as_input_matrix(A_in, chunks=chunks).array
    dense = A_in.toarray() if sp.issparse(A_in) else A_in
    W = da.from_array(W0, chunks=(A.chunks[0], W0.shape[1]))
    H = da.from_array(H0, chunks=(H0.shape[0], A.chunks[1]))
    return engine.run(A, W, H, rule=RULES[rule], runtime=current_runtime(), norm_squared_a=float(np.sum(dense**2)),
                      penalties=penalties, max_iter=n_iter, **kwargs)


@pytest.fixture
def data(rng):
    A = rng.random((50, 40)) * (rng.random((50, 40)) < 0.5)
    return A, rng.random((50, 4)), rng.random((4, 40))


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_iterates_equal_in_memory_reference(data, rule, sparse):
    A, W0, H0 = data
    penalties = engine.Penalties(l1_w=0.05, l2_w=0.1, l1_h=0.02, l2_h=0.03)
    result = run(sp.csr_matrix(A) if sparse else A, W0, H0, rule, 15, penalties=penalties, tol=0)
    W_ref, H_ref = reference_fit(A, W0, H0, RULES[rule], 15, penalties)
    np.testing.assert_allclose(result.W.compute(), W_ref, rtol=1e-8)
    np.testing.assert_allclose(result.H.compute(), H_ref, rtol=1e-8)
    assert result.n_iter == 15
    np.testing.assert_allclose(result.loss_history[-1], np.linalg.norm(A - W_ref @ H_ref), rtol=1e-8)


def test_loss_history_is_monotone_and_error_at_init_is_exact(data):
    A, W0, H0 = data
    result = run(A, W0, H0, "hals", 25, tol=0)
    assert np.all(np.diff(result.loss_history) <= 1e-10)
    assert result.error_at_init == pytest.approx(np.linalg.norm(A - W0 @ H0), rel=1e-10)


def test_callback_sees_every_iteration(data):
    A, W0, H0 = data
    seen = []
    result = run(A, W0, H0, "mu", 7, tol=0, callback=lambda record: seen.append((record.iteration, record.loss)))
    assert [i for i, _ in seen] == list(range(1, 8))
    assert [loss for _, loss in seen] == result.loss_history


def test_stops_on_tol_like_sklearn(data):
    """Checked every 10 iterations: stop once the decrease over them is below tol × the initial error."""
    A, W0, H0 = data
    tol = 1e-3
    result = run(A, W0, H0, "mu", 500, tol=tol)
    assert result.converged and result.n_iter % engine.CONVERGENCE_CHECK_EVERY == 0 and result.n_iter < 500
    history = [result.error_at_init] + result.loss_history
    last, before = history[result.n_iter], history[result.n_iter - engine.CONVERGENCE_CHECK_EVERY]
    assert (before - last) / result.error_at_init < tol
    for check in range(engine.CONVERGENCE_CHECK_EVERY, result.n_iter, engine.CONVERGENCE_CHECK_EVERY):
        assert (history[check - engine.CONVERGENCE_CHECK_EVERY] - history[check]) / result.error_at_init >= tol


def test_warns_at_max_iter(data):
    A, W0, H0 = data
    with pytest.warns(ConvergenceWarning, match="Maximum number of iterations 3 reached"):
        result = run(A, W0, H0, "mu", 3, tol=1e-12)
    assert not result.converged


def test_no_warning_when_tol_is_zero(data):
    A, W0, H0 = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(A, W0, H0, "mu", 3, tol=0)


def test_fixed_h_updates_w_only(data):
    A, W0, H0 = data
    A_d = as_input_matrix(A, chunks=(17, 11)).array
    W = da.from_array(W0, chunks=(A_d.chunks[0], 4))
    H = da.from_array(H0, chunks=(4, A_d.chunks[1]))
    result = engine.run(A_d, W, H, rule=RULES["hals"], runtime=current_runtime(), norm_squared_a=float(np.sum(A**2)),
                        max_iter=5, tol=0, update_h=False)
    np.testing.assert_array_equal(result.H.compute(), H0)
    W_ref = W0
    for _ in range(5):
        W_ref = RULES["hals"](W_ref.T, (A @ H0.T).T, H0 @ H0.T).T
    np.testing.assert_allclose(result.W.compute(), W_ref, rtol=1e-10)


def test_task_count_per_iteration_is_constant(data):
    A, W0, H0 = data
    result = run(A, W0, H0, "hals", 21, tol=0)
    counts = result.progress.tasks_per_iteration
    assert counts[1] == counts[19] == counts[20] > 0
    assert len(set(counts[1:])) == 1


def test_penalties_follow_sklearn_scaling():
    p = engine.Penalties.from_alphas((100, 30), alpha_w=0.5, alpha_h=0.2, l1_ratio=0.25)
    assert (p.l1_w, p.l2_w) == pytest.approx((30 * 0.5 * 0.25, 30 * 0.5 * 0.75))
    assert (p.l1_h, p.l2_h) == pytest.approx((100 * 0.2 * 0.25, 100 * 0.2 * 0.75))


def test_callback_stops_the_fit_with_stop_iteration(data):
    A, W0, H0 = data

    def stop_at_three(record):
        if record.iteration == 3:
            raise StopIteration

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        result = run(A, W0, H0, "mu", 50, tol=1e-12, callback=stop_at_three)
    assert result.n_iter == 3 and not result.converged


def test_phase_seconds_name_every_phase_of_an_iteration(data):
    A, W0, H0 = data
    result = run(A, W0, H0, "hals", 3, tol=0)
    assert len(result.progress.phase_seconds) == 3
    for phases in result.progress.phase_seconds:
        assert {"graph", "aht", "update", "gram", "wta", "loss"} <= set(phases)
        assert all(seconds >= 0 for seconds in phases.values())
