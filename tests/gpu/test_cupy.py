"""The agnostic rules and block kernels on CuPy arrays, against NumPy; skipped, with the reason, without a GPU.

Run on a machine with a CUDA device and ``pip install 'dnmf[gpu]'``. The float32 tolerance is the issue's target for
GPU against CPU results (1e-5 relative).
"""

from __future__ import annotations

import numpy as np
import pytest

from dnmf.core import kernels
from dnmf.core.objectives import update_rows
from dnmf.core.rules import beta_mu, hals, mu
from dnmf.core.rules.namespace import array_namespace

cupy = pytest.importorskip("cupy", reason="CuPy cannot be imported: GPU tests need pip install 'dnmf[gpu]'")
try:
    _DEVICES = cupy.cuda.runtime.getDeviceCount()
except cupy.cuda.runtime.CUDARuntimeError as error:
    pytest.skip(f"CuPy finds no CUDA device ({error})", allow_module_level=True)
if _DEVICES == 0:
    pytest.skip("CuPy finds no CUDA device", allow_module_level=True)


def problem(seed: int, dtype, k: int = 8, n: int = 5000, m: int = 3000):
    rng = np.random.default_rng(seed)
    W = rng.random((m, k)).astype(dtype)
    A = (rng.random((m, n)) * (rng.random((m, n)) < 0.1)).astype(dtype)
    H = rng.random((k, n)).astype(dtype)
    return W, A, H


def tolerance(dtype) -> float:
    return 1e-5 if dtype == np.float32 else 1e-10


def test_namespace_of_a_cupy_block_is_cupy_compatible():
    xp = array_namespace(cupy.ones(3))
    assert xp.__name__.endswith("cupy")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rule", [mu.update, hals.update], ids=["mu", "hals"])
def test_alternating_steps_on_cupy_match_numpy_after_20_iterations(rule, dtype):
    W, A, H = problem(0, dtype)
    Wg, Ag, Hg = cupy.asarray(W), cupy.asarray(A), cupy.asarray(H)
    for _ in range(20):
        W = update_rows(W, kernels.aht_block(A, H)[:, 0, :], kernels.gram_cols_block(H)[:, :, 0], rule=rule,
                        l1=0.0, l2=0.0)
        H = rule(H, kernels.wta_block(W, A)[0], kernels.gram_rows_block(W)[0])
        Wg = update_rows(Wg, kernels.aht_block(Ag, Hg)[:, 0, :], kernels.gram_cols_block(Hg)[:, :, 0], rule=rule,
                         l1=0.0, l2=0.0)
        Hg = rule(Hg, kernels.wta_block(Wg, Ag)[0], kernels.gram_rows_block(Wg)[0])
    assert isinstance(Wg, cupy.ndarray) and isinstance(Hg, cupy.ndarray)
    approx, expected = cupy.asnumpy(Wg @ Hg), W @ H
    assert np.linalg.norm(approx - expected) <= tolerance(dtype) * np.linalg.norm(expected)


def test_beta_rule_on_cupy_matches_numpy():
    _, A, H = problem(1, np.float64)
    numerator, denominator = A[:8] + 0.1, A[8:16] + 0.2
    expected = beta_mu.step(H, numerator, denominator, beta=1.5, side="H", l1=0.1, l2=0.1)
    got = beta_mu.step(cupy.asarray(H), cupy.asarray(numerator), cupy.asarray(denominator), beta=1.5, side="H",
                       l1=0.1, l2=0.1)
    np.testing.assert_allclose(cupy.asnumpy(got), expected, rtol=1e-10)


def test_sparse_cross_products_on_cupyx_match_scipy():
    import cupyx.scipy.sparse
    import scipy.sparse

    W, A, H = problem(2, np.float32)
    A_sparse = scipy.sparse.csr_matrix(A)
    A_device = cupyx.scipy.sparse.csr_matrix(A_sparse)
    np.testing.assert_allclose(cupy.asnumpy(kernels.wta_block(cupy.asarray(W), A_device)),
                               kernels.wta_block(W, A_sparse), rtol=1e-5)
    np.testing.assert_allclose(cupy.asnumpy(kernels.aht_block(A_device, cupy.asarray(H))),
                               kernels.aht_block(A_sparse, H), rtol=1e-5)


def test_aligned_is_a_no_op_for_cupy_blocks():
    x = cupy.ones((3, 4))
    assert kernels.aligned(x) is x
