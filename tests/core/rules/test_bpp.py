"""ANLS-BPP: the exact NNLS solve by block principal pivoting, against scipy's Lawson–Hanson NNLS."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls

from dnmf.core.rules import RULES, bpp
from dnmf.datasets import make_low_rank


def reference_nnls(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.column_stack([nnls(A, B[:, j], maxiter=50 * A.shape[1])[0] for j in range(B.shape[1])])


def least_squares(A: np.ndarray, X: np.ndarray, B: np.ndarray) -> float:
    return 0.5 * float(np.sum((A @ X - B) ** 2))


def kkt_violation(gram: np.ndarray, cross: np.ndarray, X: np.ndarray) -> float:
    """The largest violation of x ≥ 0, ∇ ≥ 0 and x·∇ = 0, relative to the size of the problem's terms."""
    gradient = gram @ X - cross
    scale = np.abs(cross).max() + np.abs(gram).max() * np.abs(X).max() + 1e-300
    return max(-X.min(initial=0.0) / (np.abs(X).max() + 1e-300), -gradient.min(initial=0.0) / scale,
               np.abs(X * gradient).max(initial=0.0) / (scale * (np.abs(X).max() + 1e-300)))


def ill_conditioned(rng: np.random.Generator, m: int, k: int, condition: float) -> np.ndarray:
    U, _ = np.linalg.qr(rng.standard_normal((m, k)))
    V, _ = np.linalg.qr(rng.standard_normal((k, k)))
    return U @ np.diag(np.logspace(0, -np.log10(condition), k)) @ V.T


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 13, 21, 32, 40])
def test_matches_scipy_nnls_on_random_problems(k):
    for seed in range(4):
        rng = np.random.default_rng(1000 * k + seed)
        m = k + rng.integers(0, 3 * k + 5)
        A = rng.standard_normal((m, k))
        B = rng.standard_normal((m, 50))
        start = rng.random((k, 50)) * (rng.random((k, 50)) < 0.5) if seed % 2 else None
        X, stats = bpp.solve_nnls(A.T @ A, A.T @ B, start=start)
        expected = reference_nnls(A, B)
        assert stats.unfinished_columns == 0
        assert np.all(X >= 0)
        assert least_squares(A, X, B) == pytest.approx(least_squares(A, expected, B), rel=1e-8, abs=1e-10)
        np.testing.assert_allclose(X, expected, atol=1e-8 * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize("condition", [1e3, 1e5, 1e7])
def test_ill_conditioned_problems_reach_the_nnls_optimum(condition):
    rng = np.random.default_rng(int(np.log10(condition)))
    k = 12
    A = ill_conditioned(rng, 60, k, condition)
    B = rng.standard_normal((60, 40))
    X, stats = bpp.solve_nnls(A.T @ A, A.T @ B)
    expected = reference_nnls(A, B)
    assert stats.unfinished_columns == 0
    assert np.all(X >= 0)
    for j in range(B.shape[1]):
        ours, theirs = least_squares(A, X[:, j], B[:, j]), least_squares(A, expected[:, j], B[:, j])
        assert ours <= theirs + 1e-8 * 0.5 * np.sum(B[:, j] ** 2)


def test_non_negative_unconstrained_solution_needs_no_pivoting(rng):
    A = rng.random((50, 10))
    X_true = rng.random((10, 30)) + 0.1
    X, stats = bpp.solve_nnls(A.T @ A, A.T @ (A @ X_true), start=np.ones_like(X_true))
    assert stats.rounds == 0
    assert stats.factorizations == 1
    np.testing.assert_allclose(X, X_true, rtol=1e-10)


def test_planted_solution_with_zeros_is_found_from_an_empty_start(rng):
    A = rng.random((50, 10))
    X_true = (rng.random((10, 30)) + 0.1) * (rng.random((10, 30)) < 0.5)
    X, stats = bpp.solve_nnls(A.T @ A, A.T @ (A @ X_true))
    assert stats.rounds >= 1
    np.testing.assert_allclose(X, X_true, atol=1e-12)


def test_zero_right_hand_side_gives_zero(rng):
    A = rng.standard_normal((20, 6))
    start = rng.random((6, 5))
    X, _ = bpp.solve_nnls(A.T @ A, np.zeros((6, 5)), start=start)
    np.testing.assert_array_equal(X, 0.0)
    np.testing.assert_array_equal(RULES["bpp"](start, np.zeros((6, 5)), A.T @ A), 0.0)


def test_l2_penalty_matches_nnls_on_the_augmented_system(rng):
    k, l2 = 8, 3.0
    A = rng.standard_normal((30, k))
    B = rng.standard_normal((30, 40))
    expected = reference_nnls(np.vstack([A, np.sqrt(l2) * np.eye(k)]), np.vstack([B, np.zeros((k, 40))]))
    X = RULES["bpp"](rng.random((k, 40)), A.T @ B, A.T @ A, l2=l2)
    np.testing.assert_allclose(X, expected, atol=1e-10)


@pytest.mark.parametrize("l1,l2", [(0.5, 0.0), (2.0, 0.0), (0.7, 1.5)])
def test_l1_penalty_matches_nnls_with_the_shifted_right_hand_side(rng, l1, l2):
    """With A of full column rank, ½‖AX − B‖² + l1·ΣX equals, up to a constant, ½‖AX − B'‖² where
    AᵀB' = AᵀB − l1; the l2 part is the augmented system."""
    k = 7
    A = rng.standard_normal((40, k))
    B = rng.standard_normal((40, 25))
    cross = A.T @ B
    augmented = np.vstack([A, np.sqrt(l2) * np.eye(k)])
    gram = augmented.T @ augmented
    shifted = augmented @ np.linalg.solve(gram, cross - l1)
    expected = reference_nnls(augmented, shifted)
    X = RULES["bpp"](rng.random((k, 25)), cross, A.T @ A, l1=l1, l2=l2)
    np.testing.assert_allclose(X, expected, atol=1e-10)
    assert kkt_violation(gram, cross - l1, X) < 1e-12
    assert np.count_nonzero(X == 0) > np.count_nonzero(RULES["bpp"](X, cross, A.T @ A, l2=l2) == 0)


@pytest.mark.parametrize("seed", range(5))
def test_kkt_conditions_hold_at_the_solution(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 30))
    W = rng.random((200, k)) * (rng.random((200, k)) < 0.4)
    A = np.maximum(W @ (rng.random((k, 300)) * (rng.random((k, 300)) < 0.3)) + 0.1 * rng.standard_normal((200, 300)),
                   0.0)
    gram, cross = W.T @ W, W.T @ A
    X = RULES["bpp"](rng.random((k, 300)), cross, gram)
    assert kkt_violation(gram, cross, X) < 1e-12
    assert np.count_nonzero(X == 0) > 0


def test_only_the_backup_rule_still_reaches_the_optimum(rng, monkeypatch):
    """With no second chances, every round that does not reduce a column's infeasibility count moves a single
    index (Murty's method); the result is still exact."""
    monkeypatch.setattr(bpp, "FULL_EXCHANGE_CHANCES", 0)
    A = rng.standard_normal((40, 15))
    B = rng.standard_normal((40, 30))
    X, stats = bpp.solve_nnls(A.T @ A, A.T @ B)
    np.testing.assert_allclose(X, reference_nnls(A, B), atol=1e-10)
    assert stats.backup_exchanges > 0


def test_unfinished_columns_are_never_worse_than_the_start(rng, monkeypatch):
    monkeypatch.setattr(bpp, "_max_rounds", lambda k: 0)
    A = rng.standard_normal((40, 15))
    B = rng.standard_normal((40, 30))
    start = rng.random((15, 30))
    X, stats = bpp.solve_nnls(A.T @ A, A.T @ B, start=start)
    assert stats.unfinished_columns > 0
    assert np.all(X >= 0)
    for j in range(30):
        assert least_squares(A, X[:, j], B[:, j]) <= least_squares(A, start[:, j], B[:, j]) + 1e-12


def test_columns_sharing_a_passive_set_share_a_factorization(rng):
    """3000 columns with three optimal supports, planted through the KKT conditions: gradient zero on the support
    and strictly positive off it, so the solution is unique and non-degenerate."""
    k, n = 12, 3000
    A = rng.random((80, k))
    gram = A.T @ A
    supports = (rng.random((k, 3)) < 0.5)[:, rng.integers(0, 3, size=n)]
    X_true = (rng.random((k, n)) + 0.1) * supports
    cross = gram @ X_true - (rng.random((k, n)) + 0.1) * ~supports

    X, warm = bpp.solve_nnls(gram, cross, start=supports.astype(float))
    np.testing.assert_allclose(X, X_true, atol=1e-12)
    assert (warm.rounds, warm.factorizations) == (0, 3)
    assert len(bpp.group_columns(X > 0)) == 3

    X, cold = bpp.solve_nnls(gram, cross)
    np.testing.assert_allclose(X, X_true, atol=1e-12)
    assert cold.rounds >= 2
    assert cold.factorizations < n / 2


@pytest.mark.parametrize("k", [3, 64, 70])
def test_group_columns_finds_each_distinct_passive_set_once(rng, k):
    patterns = rng.random((k, 9)) < 0.4
    passive = patterns[:, rng.integers(0, 9, size=500)]
    groups = bpp.group_columns(passive)
    expected: dict[bytes, set[int]] = {}
    for column in range(passive.shape[1]):
        expected.setdefault(passive[:, column].tobytes(), set()).add(column)
    assert len(groups) == len(expected)
    for rows, columns in groups:
        key = np.isin(np.arange(k), rows).tobytes()
        assert set(columns.tolist()) == expected[key]


def test_does_not_modify_inputs_and_keeps_float32(rng):
    W = rng.random((30, 6)).astype(np.float32)
    A = rng.random((30, 20)).astype(np.float32)
    block, cross, gram = rng.random((6, 20)).astype(np.float32), W.T @ A, W.T @ W
    copies = [x.copy() for x in (block, cross, gram)]
    out = RULES["bpp"](block, cross, gram, l1=0.1, l2=0.2)
    for original, copy in zip((block, cross, gram), copies):
        np.testing.assert_array_equal(original, copy)
    assert out.dtype == np.float32
    expected = RULES["bpp"](block.astype(np.float64), cross.astype(np.float64), gram.astype(np.float64),
                            l1=0.1, l2=0.2)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)


def test_zero_column_of_w_gives_a_finite_exact_answer(rng):
    W = rng.random((40, 6))
    W[:, 2] = 0.0
    A = rng.random((40, 25))
    block = rng.random((6, 25))
    out = RULES["bpp"](block, W.T @ A, W.T @ W)
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[2], 0.0)
    keep = [0, 1, 3, 4, 5]
    np.testing.assert_allclose(out[keep], reference_nnls(W[:, keep], A), atol=1e-10)


def test_duplicated_column_of_w_gives_a_finite_optimal_answer(rng):
    W = rng.random((40, 6))
    W[:, 4] = W[:, 1]
    A = rng.random((40, 25))
    X, stats = bpp.solve_nnls(W.T @ W, W.T @ A, start=rng.random((6, 25)))
    assert np.all(np.isfinite(X)) and np.all(X >= 0)
    assert stats.least_squares_fallbacks > 0
    expected = reference_nnls(W, A)
    for j in range(25):
        assert least_squares(W, X[:, j], A[:, j]) == pytest.approx(least_squares(W, expected[:, j], A[:, j]),
                                                                   rel=1e-8)


def alternate(rule, A: np.ndarray, W: np.ndarray, H: np.ndarray, iterations: int) -> list[float]:
    """The engine's loop in memory: W-step as the rule on the transposed problem, then the H-step."""
    losses = []
    for _ in range(iterations):
        W = rule(W.T, H @ A.T, H @ H.T).T
        H = rule(H, W.T @ A, W.T @ W)
        losses.append(float(np.linalg.norm(A - W @ H)))
    return losses


@pytest.mark.parametrize("seed", range(3))
def test_alternating_bpp_is_monotone_and_beats_mu(seed):
    A, _, _ = make_low_rank(60, 50, 5, random_state=seed)
    A = A + 0.01 * np.random.default_rng(seed).random(A.shape)
    rng = np.random.default_rng(seed + 100)
    W0, H0 = rng.random((60, 5)), rng.random((5, 50))
    losses = alternate(RULES["bpp"], A, W0, H0, 30)
    assert np.all(np.diff(losses) <= 1e-10 * losses[0])
    assert losses[-1] < alternate(RULES["mu"], A, W0, H0, 30)[-1]
    assert losses[-1] < 0.05 * np.linalg.norm(A)


def test_estimator_fits_a_planted_problem():
    from dnmf import NMF

    A, _, _ = make_low_rank(80, 60, 4, random_state=3)
    model = NMF(4, solver="bpp", max_iter=150, tol=0.0, random_state=0).fit(A)
    history = np.asarray(model.loss_history_)
    assert np.all(np.diff(history) <= 1e-9 * history[0])
    assert model.reconstruction_err_ / np.linalg.norm(A) < 1e-3
