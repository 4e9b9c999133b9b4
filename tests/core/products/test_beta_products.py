"""β-divergence and masked products against dense NumPy (and scikit-learn's loss), on dense and sparse blocks."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.decomposition._nmf import _beta_divergence

from dnmf.core import divergence, products
from dnmf.core.rules.mu import EPSILON
from dnmf.data.matrix import as_input_matrix

GRIDS = [(13, 7), ((10, 25, 5), (3, 17, 9, 11))]
BETAS = [1.0, 0.0, 0.5, 1.5, 3.0]


def operands(rng, chunks, *, sparse=False, positive=False):
    dense = rng.random((40, 40)) * (rng.random((40, 40)) < 0.3)
    if positive:
        dense = dense + 0.1
    A = as_input_matrix(sp.csr_matrix(dense) if sparse else dense, chunks=chunks).array
    W, H = rng.random((40, 4)), rng.random((4, 40))
    W_d = da.from_array(W, chunks=(A.chunks[0], 4))
    H_d = da.from_array(H, chunks=(4, A.chunks[1]))
    return dense, A, W, H, W_d, H_d


def beta_rows(A, W_d, H_d, **kwargs):
    return products.beta_aht_and_divergence(A, W_d, H_d, **kwargs)[0].compute()


def reference_parts(X, W, H, beta, observed=None):
    """Dense NumPy: (M ⊙ X ⊙ WH^(β−2), M ⊙ WH^(β−1)) with scikit-learn's clipping."""
    WH = W @ H
    safe = np.maximum(WH, EPSILON) if beta < 2 else WH
    ratio = X * safe ** (beta - 2)
    weight = (np.maximum(WH, EPSILON) if beta < 1 else WH) ** (beta - 1)
    if observed is not None:
        ratio, weight = ratio * observed, weight * observed
    return ratio, weight


@pytest.mark.parametrize("chunks", GRIDS, ids=["even", "uneven"])
@pytest.mark.parametrize("beta", BETAS)
def test_dense_gradient_parts(rng, chunks, beta):
    dense, A, W, H, W_d, H_d = operands(rng, chunks, positive=beta <= 0)
    ratio, weight = reference_parts(dense, W, H, beta)
    rows = beta_rows(A, W_d, H_d, beta=beta)
    cols = products.beta_wta(A, W_d, H_d, beta=beta).compute()
    np.testing.assert_allclose(rows[:, :4], ratio @ H.T, rtol=1e-10)
    np.testing.assert_allclose(cols[:4], W.T @ ratio, rtol=1e-10)
    if beta == 1:
        assert rows.shape == (40, 4) and cols.shape == (4, 40)
    else:
        np.testing.assert_allclose(rows[:, 4:], weight @ H.T, rtol=1e-10)
        np.testing.assert_allclose(cols[4:], W.T @ weight, rtol=1e-10)


@pytest.mark.parametrize("chunks", GRIDS, ids=["even", "uneven"])
@pytest.mark.parametrize("beta", [1.0, 0.5, 3.0])
def test_sparse_gradient_parts(rng, chunks, beta, monkeypatch):
    monkeypatch.setattr(divergence, "DENSE_BATCH_ELEMENTS", 50)  # several row batches per block
    dense, A, W, H, W_d, H_d = operands(rng, chunks, sparse=True)
    ratio, weight = reference_parts(dense, W, H, beta)
    rows = beta_rows(A, W_d, H_d, beta=beta)
    cols = products.beta_wta(A, W_d, H_d, beta=beta).compute()
    np.testing.assert_allclose(rows[:, :4], ratio @ H.T, rtol=1e-10)
    np.testing.assert_allclose(cols[:4], W.T @ ratio, rtol=1e-10)
    if beta != 1:
        np.testing.assert_allclose(rows[:, 4:], weight @ H.T, rtol=1e-10)
        np.testing.assert_allclose(cols[4:], W.T @ weight, rtol=1e-10)


@pytest.mark.parametrize(("sparse", "beta"),  # β ≤ 0 needs strictly positive data: no sparse case
                         [(sparse, beta) for sparse in (False, True) for beta in BETAS if not (sparse and beta <= 0)])
def test_divergence_matches_sklearn(rng, sparse, beta):
    dense, A, W, H, W_d, H_d = operands(rng, (13, 7), sparse=sparse, positive=beta <= 0)
    X = sp.csr_matrix(dense) if sparse else dense
    expected = _beta_divergence(X, W, H, beta, square_root=True)
    ours = np.sqrt(products.beta_divergence(A, W_d, H_d, beta=beta).compute())
    np.testing.assert_allclose(ours, expected, rtol=1e-10)


def masked_operands(rng, chunks, kind):
    dense = rng.random((40, 40)) * (rng.random((40, 40)) < 0.6)
    observed = rng.random((40, 40)) < 0.5
    observed[5] = False  # a row with nothing observed
    if kind == "holed":  # unstored entries are observed zeros, stored NaN the unobserved entries
        stored = np.where(observed, dense, np.nan)
        block_input = sp.csr_matrix((stored[stored != 0], np.nonzero(stored != 0)), shape=dense.shape)
        assert block_input.nnz == np.count_nonzero(stored)
    elif kind == "pattern":
        mask = sp.csr_matrix(observed)
        values = dense[mask.nonzero()]
        block_input = sp.csr_matrix((values, mask.indices, mask.indptr), shape=dense.shape)
        assert block_input.nnz == observed.sum()  # explicit zeros of observed entries are kept
    else:
        block_input = np.where(observed, dense, np.nan)
    A = as_input_matrix(block_input, chunks=chunks).array
    W, H = rng.random((40, 4)), rng.random((4, 40))
    return (dense, observed, A, W, H, da.from_array(W, chunks=(A.chunks[0], 4)),
            da.from_array(H, chunks=(4, A.chunks[1])))


@pytest.mark.parametrize("kind", ["nan", "pattern", "holed"])
@pytest.mark.parametrize("beta", [2.0, 1.0, 0.5, 3.0])
def test_masked_gradient_parts_and_loss(rng, kind, beta, monkeypatch):
    monkeypatch.setattr(divergence, "DENSE_BATCH_ELEMENTS", 50)  # several row batches per block
    dense, observed, A, W, H, W_d, H_d = masked_operands(rng, GRIDS[1], kind)
    ratio, weight = reference_parts(dense, W, H, beta, observed)
    holes = {"holes": True} if kind == "holed" else {}
    rows = beta_rows(A, W_d, H_d, beta=beta, masked=True, **holes)
    cols = products.beta_wta(A, W_d, H_d, beta=beta, masked=True, **holes).compute()
    np.testing.assert_allclose(rows, np.hstack([ratio @ H.T, weight @ H.T]), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(cols, np.vstack([W.T @ ratio, W.T @ weight]), rtol=1e-10, atol=1e-14)
    WH = W @ H
    if beta == 2:
        expected = np.sum(observed * (dense - WH) ** 2)
    elif beta == 1:
        keep = observed & (dense > EPSILON)
        expected = 2 * (np.sum(dense[keep] * np.log(dense[keep] / WH[keep])) - dense[keep].sum() + WH[observed].sum())
    else:
        keep = observed & (dense > EPSILON)
        expected = 2 * (np.sum(dense[keep] ** beta) - beta * np.sum(dense[keep] * WH[keep] ** (beta - 1))
                        + (beta - 1) * np.sum(WH[observed] ** beta)) / (beta * (beta - 1))
    np.testing.assert_allclose(products.beta_divergence(A, W_d, H_d, beta=beta, masked=True, **holes).compute(),
                               expected, rtol=1e-10)
    fused = products.beta_aht_and_divergence(A, W_d, H_d, beta=beta, masked=True, **holes)[1].compute()
    np.testing.assert_allclose(fused, expected, rtol=1e-10)


def test_factor_sums(rng):
    _, A, W, H, W_d, H_d = operands(rng, GRIDS[1])
    np.testing.assert_allclose(products.sum_rows(W_d).compute(), W.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(products.sum_cols(H_d).compute(), H.sum(axis=1), rtol=1e-12)


def test_layers_are_named_after_the_algorithm(rng):
    _, A, _, _, W_d, H_d = operands(rng, (13, 7), sparse=True)
    layers = " ".join([*products.beta_aht_and_divergence(A, W_d, H_d, beta=1)[0].dask.layers,
                       *products.beta_wta(A, W_d, H_d, beta=1).dask.layers,
                       *products.beta_divergence(A, W_d, H_d, beta=1).dask.layers])
    for prefix in ("dnmf-aht-beta-block", "dnmf-wta-beta-block", "dnmf-loss-beta-block", "dnmf-loss-beta-"):
        assert prefix in layers


@pytest.mark.parametrize(("sparse", "masked"), [(False, False), (True, False), (False, True)],
                         ids=["dense", "sparse", "masked"])
@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0])
@pytest.mark.parametrize("on", ["dask", "blocks"])
def test_the_w_step_pass_sums_the_divergence_the_loss_pass_would(rng, sparse, masked, beta, on):
    """The divergence the W-step's pass forms beside its gradient is bitwise that of its own pass."""
    if masked:
        _, _, A, W, H, W_d, H_d = masked_operands(rng, GRIDS[1], "nan")
    else:
        _, A, W, H, W_d, H_d = operands(rng, GRIDS[1], sparse=sparse)
    if on == "blocks":
        from dnmf.core.blocks import Blocks

        A = Blocks.from_array(A.compute(), A.chunks)
        W_d, H_d = Blocks.from_array(W, (A.chunks[0], (4,))), Blocks.from_array(H, ((4,), A.chunks[1]))
    rows, fused = products.beta_aht_and_divergence(A, W_d, H_d, beta=beta, masked=masked)
    alone = products.beta_divergence(A, W_d, H_d, beta=beta, masked=masked)
    fused, alone = (float(np.asarray(products.value(x))) for x in (fused, alone))
    assert fused == alone and fused > 0
    assert rows.compute().shape == (40, 4 if beta == 1 and not masked else 8)
