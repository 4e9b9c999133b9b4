"""The conformance suite every update rule must pass: pure NumPy, no Dask."""

from __future__ import annotations

import numpy as np
import pytest

from dnmf.core.rules import ALIASES, MASKED_RULES, RULES, canonical_solver, get_rule, solver_names


def objective(block, cross, gram, l1, l2, constant=0.0):
    """½‖A − WH‖² in terms of (H, WᵀA, WᵀW), up to the constant ½‖A‖², plus the penalties."""
    return (0.5 * np.sum(gram * (block @ block.T)) - np.sum(cross * block) + l1 * np.abs(block).sum()
            + 0.5 * l2 * np.sum(block**2) + constant)


def problem(rng, m=40, k=5, n=30, density=1.0):
    W = rng.random((m, k))
    A = rng.random((m, n)) * (rng.random((m, n)) < density)
    return A, W, W.T @ A, W.T @ W


@pytest.mark.parametrize("name", sorted(RULES))
class TestRuleConformance:
    @pytest.mark.parametrize("l1,l2", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.5), (0.2, 0.2)])
    def test_never_increases_objective_and_stays_non_negative(self, name, l1, l2):
        rule = RULES[name]
        for seed in range(10):
            rng = np.random.default_rng(seed)
            _, _, cross, gram = problem(rng, density=0.5)
            block = rng.random((gram.shape[0], cross.shape[1]))
            previous = objective(block, cross, gram, l1, l2)
            for _ in range(20):
                block = rule(block, cross, gram, l1=l1, l2=l2)
                assert np.all(block >= 0)
                current = objective(block, cross, gram, l1, l2)
                assert current <= previous + 1e-10 * abs(previous)
                previous = current

    def test_recovers_planted_nnls_solution(self, name, rng):
        rule = RULES[name]
        W = rng.random((60, 4))
        H_true = rng.random((4, 25)) + 0.1
        A = W @ H_true
        block = np.full_like(H_true, 0.5)
        for _ in range(2000):
            block = rule(block, W.T @ A, W.T @ W)
        np.testing.assert_allclose(block, H_true, rtol=1e-6)

    def test_recovers_active_constraints(self, name, rng):
        """A planted solution with zeros: the rule drives those entries towards zero and the rest to the truth."""
        rule = RULES[name]
        W = rng.random((60, 4))
        H_true = (rng.random((4, 25)) + 0.1) * (rng.random((4, 25)) > 0.3)
        A = W @ H_true
        block = np.full_like(H_true, 0.5)
        for _ in range(3000):
            block = rule(block, W.T @ A, W.T @ W)
        np.testing.assert_allclose(block, H_true, atol=1e-2 if name == "mu" else 1e-8)

    def test_does_not_modify_its_arguments(self, name, rng):
        _, _, cross, gram = problem(rng)
        block = rng.random((gram.shape[0], cross.shape[1]))
        copies = [x.copy() for x in (block, cross, gram)]
        RULES[name](block, cross, gram, l1=0.1, l2=0.1)
        for original, copy in zip((block, cross, gram), copies):
            np.testing.assert_array_equal(original, copy)

    def test_keeps_float32(self, name, rng):
        _, _, cross, gram = problem(rng)
        block = rng.random((gram.shape[0], cross.shape[1])).astype(np.float32)
        out = RULES[name](block, cross.astype(np.float32), gram.astype(np.float32))
        assert out.dtype == np.float32

    def test_zero_component_gives_no_nan(self, name, rng):
        _, _, cross, gram = problem(rng)
        gram[1, :] = gram[:, 1] = 0.0
        cross[1] = 0.0
        block = rng.random((gram.shape[0], cross.shape[1]))
        block[1] = 0.0
        out = RULES[name](block, cross, gram)
        assert np.all(np.isfinite(out))

    def test_works_on_transposed_views(self, name, rng):
        """The W-step calls rules on transposed (Fortran-ordered) views."""
        _, _, cross, gram = problem(rng)
        block = rng.random((cross.shape[1], gram.shape[0]))
        expected = RULES[name](np.ascontiguousarray(block.T), np.ascontiguousarray(cross), gram)
        np.testing.assert_allclose(RULES[name](block.T, np.asfortranarray(cross), gram), expected, rtol=1e-12)


def test_hals_matches_sklearn_coordinate_descent_sweep(rng):
    from sklearn.decomposition._cdnmf_fast import _update_cdnmf_fast

    A, W, cross, gram = problem(rng)
    H = rng.random((5, 30))
    expected = np.ascontiguousarray(H.T)
    _update_cdnmf_fast(expected, gram, np.ascontiguousarray(cross.T), np.arange(5, dtype=np.intp))
    np.testing.assert_allclose(RULES["hals"](H, cross, gram), expected.T, rtol=1e-12)


def test_mu_matches_sklearn_update(rng):
    from sklearn.decomposition._nmf import _multiplicative_update_h

    A, W, cross, gram = problem(rng)
    H = rng.random((5, 30))
    expected = _multiplicative_update_h(A, W, H.copy(), beta_loss=2, l1_reg_H=0.1, l2_reg_H=0.2, gamma=1.0)
    np.testing.assert_allclose(RULES["mu"](H, cross, gram, l1=0.1, l2=0.2), expected, rtol=1e-10)


def test_registry_and_aliases():
    assert get_rule("cd") is RULES["hals"]
    assert canonical_solver("cd") == "hals"
    assert set(solver_names()) == set(RULES) | set(ALIASES)
    assert get_rule("bpp") is RULES["bpp"]
    with pytest.raises(ValueError, match="Valid solvers are: 'bpp', 'cd', 'hals', 'mu'"):
        get_rule("lbfgs")


def masked_problem(rng, n=30, k=4, columns=25, observed_share=0.7):
    """``n`` row problems with their own observed columns of a random H: ``(factor, cross, grams, H, A, observed)``."""
    H = rng.random((k, columns))
    A = rng.random((n, columns))
    observed = rng.random((n, columns)) < observed_share
    cross = np.stack([H[:, o] @ a[o] for a, o in zip(A, observed)])
    grams = np.stack([H[:, o] @ H[:, o].T for o in observed])
    return rng.random((n, k)), cross, grams, H, A, observed


def masked_objective(factor, cross, grams, l1, l2):
    """Per row: ½xᵀGx − cᵀx + l1·Σx + ½·l2·‖x‖²."""
    return (0.5 * np.einsum("ri,rij,rj->r", factor, grams, factor) - np.sum(cross * factor, axis=1)
            + l1 * factor.sum(axis=1) + 0.5 * l2 * np.sum(factor**2, axis=1))


@pytest.mark.parametrize("name", sorted(MASKED_RULES))
class TestMaskedRuleConformance:
    """The same contract for the masked rules (one Gram per row): never worse, non-negative, arguments untouched,
    the planted solution of each row's observed entries found."""

    @pytest.mark.parametrize("l1,l2", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.5), (0.2, 0.2)])
    def test_never_increases_any_rows_objective_and_stays_non_negative(self, name, l1, l2):
        rule = MASKED_RULES[name]
        for seed in range(5):
            factor, cross, grams, *_ = masked_problem(np.random.default_rng(seed))
            previous = masked_objective(factor, cross, grams, l1, l2)
            for _ in range(10):
                copies = [x.copy() for x in (factor, cross, grams)]
                updated = rule(factor, cross, grams, l1=l1, l2=l2)
                for original, copy in zip((factor, cross, grams), copies):
                    np.testing.assert_array_equal(original, copy)  # arguments untouched
                factor = updated
                assert np.all(factor >= 0)
                current = masked_objective(factor, cross, grams, l1, l2)
                assert np.all(current <= previous + 1e-10 * np.abs(previous))
                previous = current

    def test_recovers_each_rows_planted_solution_on_its_observed_entries(self, name, rng):
        rule = MASKED_RULES[name]
        _, _, _, H, _, observed = masked_problem(rng)
        truth = (rng.random((len(observed), H.shape[0])) + 0.1) * (rng.random((len(observed), H.shape[0])) > 0.3)
        A = truth @ H
        cross = np.stack([H[:, o] @ a[o] for a, o in zip(A, observed)])
        grams = np.stack([H[:, o] @ H[:, o].T for o in observed])
        factor = np.full_like(truth, 0.5)
        for _ in range(3000 if name == "hals" else 1):
            factor = rule(factor, cross, grams)
        np.testing.assert_allclose(factor, truth, atol=1e-8)
