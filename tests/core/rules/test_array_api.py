"""The rules and dense block kernels on a strict array-API namespace: a NumPy-only call in them fails here.

``array_api_strict`` arrays support exactly the array-API standard (no ``out=``, no ``np.diagonal``, no array
methods such as ``.sum``), so running the agnostic code on them and comparing with NumPy checks, without a GPU,
that the code a CuPy block would take uses only the standard.
"""

from __future__ import annotations

import numpy as np
import pytest

from dnmf.core import kernels
from dnmf.core.rules import beta_mu, hals, mu
from dnmf.core.rules.namespace import array_namespace

xs = pytest.importorskip("array_api_strict", reason="array-api-strict is not installed (pip install array-api-strict)")


def strict(x: np.ndarray):
    return xs.asarray(x)


def back(x) -> np.ndarray:
    assert array_namespace(x) is xs, f"the result left the strict namespace: {type(x)}"
    return np.asarray(x)


def problem(seed: int, dtype, k: int = 6, n: int = 300, m: int = 80):
    rng = np.random.default_rng(seed)
    W = rng.random((m, k)).astype(dtype)
    W[:, 1] = 0
    A = (rng.random((m, n)) * (rng.random((m, n)) < 0.5)).astype(dtype)
    block = rng.random((k, n)).astype(dtype)
    return W, A, block, W.T @ A, W.T @ W


def test_namespace_of_numpy_is_numpy_and_of_strict_is_strict():
    assert array_namespace(np.ones(2)) is np
    assert array_namespace(strict(np.ones(2)), None) is xs


def test_namespace_refuses_mixed_libraries():
    with pytest.raises(TypeError):
        array_namespace(np.ones(2), strict(np.ones(2)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("l1,l2", [(0.0, 0.0), (0.3, 0.2)])
@pytest.mark.parametrize("rule", [mu.update, hals.update], ids=["mu", "hals"])
def test_frobenius_rules_match_numpy(rule, l1, l2, dtype):
    _, _, block, cross, gram = problem(0, dtype)
    expected, got = block, strict(block)
    for _ in range(5):
        expected = rule(expected, cross, gram, l1=l1, l2=l2)
        got = rule(got, strict(cross), strict(gram), l1=l1, l2=l2)
    np.testing.assert_allclose(back(got), expected, rtol=1e-12 if dtype == np.float64 else 1e-6, atol=0)
    assert back(got).dtype == expected.dtype


def test_hals_whole_block_sweep_equals_numpy_tiled_sweep_and_leaves_argument_unchanged():
    _, _, block, cross, gram = problem(1, np.float64, k=4, n=3 * hals.TILE_BYTES // 32 + 17, m=10)
    before = block.copy()
    got = hals.update(strict(block), strict(cross), strict(gram))
    np.testing.assert_allclose(back(got), hals.update(block, cross, gram), rtol=1e-12, atol=0)
    np.testing.assert_array_equal(block, before)


@pytest.mark.parametrize("beta,side", [(0.5, "W"), (1.0, "H"), (1.5, "H"), (3.0, "W")])
def test_beta_rule_matches_numpy(beta, side):
    _, _, block, cross, _ = problem(2, np.float64)
    denominator = cross[::-1].copy()
    denominator[0, :7] = 0
    expected = beta_mu.step(block, cross, denominator, beta=beta, side=side, l1=0.1, l2=0.2)
    got = beta_mu.step(strict(block), strict(cross), strict(denominator), beta=beta, side=side, l1=0.1, l2=0.2)
    np.testing.assert_allclose(back(got), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_block_kernels_match_numpy(dtype):
    W, A, H, _, _ = problem(3, dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    pairs = {
        "wta": (kernels.wta_block(W, A), kernels.wta_block(strict(W), strict(A))),
        "aht": (kernels.aht_block(A, H), kernels.aht_block(strict(A), strict(H))),
        "gram_rows": (kernels.gram_rows_block(W), kernels.gram_rows_block(strict(W))),
        "gram_cols": (kernels.gram_cols_block(H), kernels.gram_cols_block(strict(H))),
        "inner": (kernels.inner_block(H, H), kernels.inner_block(strict(H), strict(H))),
        "sum_rows": (kernels.sum_rows_block(W), kernels.sum_rows_block(strict(W))),
        "sum_cols": (kernels.sum_cols_block(H), kernels.sum_cols_block(strict(H))),
        "sum_blocks": (kernels.sum_blocks([[kernels.gram_rows_block(W)] * 2, [kernels.gram_rows_block(W)]], axis=0),
                       kernels.sum_blocks([[kernels.gram_rows_block(strict(W))] * 2,
                                           [kernels.gram_rows_block(strict(W))]], axis=0)),
        "sum_all": (kernels.sum_blocks([kernels.inner_block(H, H)] * 3),
                    kernels.sum_blocks([kernels.inner_block(strict(H), strict(H))] * 3)),
    }
    for name, (expected, got) in pairs.items():
        assert got.shape == expected.shape, name
        np.testing.assert_allclose(back(got), expected, rtol=tol, atol=0, err_msg=name)


def test_loss_kernels_accept_strict_grams():
    W, A, H, _, _ = problem(4, np.float64)
    args = (float(np.sum((W.T @ A) * H)), W.T @ W, H @ H.T, float(np.sum(A * A)))
    strict_args = (args[0], strict(args[1]), strict(args[2]), args[3])
    np.testing.assert_allclose(kernels.frobenius_loss_block(*strict_args), kernels.frobenius_loss_block(*args),
                               rtol=1e-12)
    np.testing.assert_allclose(kernels.frobenius_rounding_block(*strict_args),
                               kernels.frobenius_rounding_block(*args), rtol=1e-12)


def test_aligned_passes_non_numpy_blocks_through():
    x = strict(np.ones((3, 4)))
    assert kernels.aligned(x) is x


@pytest.mark.parametrize("rule", [mu.update, hals.update], ids=["mu", "hals"])
def test_w_step_on_a_strict_row_block_matches_numpy(rule):
    from dnmf.core.objectives import update_rows

    W, A, H, _, _ = problem(5, np.float64)
    cross, gram = A @ H.T, H @ H.T
    expected = update_rows(W, cross, gram, rule=rule, l1=0.1, l2=0.2)
    got = update_rows(strict(W), strict(cross), strict(gram), rule=rule, l1=0.1, l2=0.2)
    assert got.shape == W.shape
    np.testing.assert_allclose(back(got), expected, rtol=1e-12, atol=0)
