"""The masked Frobenius loss for HALS and BPP: per-row Grams over the observed entries, against dense references."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp

from dnmf import NMF
from dnmf.core import kernels, products
from dnmf.core.objectives import MaskedFrobenius
from dnmf.core.blocks import Blocks
from dnmf.core.rules import MASKED_RULES, SOLVERS, bpp, bpp_masked, hals, rule_for

rng = np.random.default_rng(0)


def _problems(n=40, k=5, observed_share=0.7):
    """``n`` row problems over 30 columns with random observed sets: factor, cross and Gram per row, and the data."""
    H = rng.random((k, 30))
    A = rng.random((n, 30))
    observed = rng.random((n, 30)) < observed_share
    cross = np.stack([H[:, o] @ a[o] for a, o in zip(A, observed)])
    grams = np.stack([H[:, o] @ H[:, o].T for o in observed])
    return rng.random((n, k)), cross, grams, A, H, observed


@pytest.mark.parametrize("l1, l2", [(0.0, 0.0), (0.05, 0.1)])
def test_masked_hals_is_the_unmasked_sweep_of_each_row(l1, l2):
    factor, cross, grams, *_ = _problems()
    updated = hals.update_each(factor, cross, grams, l1=l1, l2=l2)
    for r in range(len(factor)):
        expected = hals.update(factor[r][:, None], cross[r][:, None], grams[r], l1=l1, l2=l2)[:, 0]
        np.testing.assert_allclose(updated[r], expected, rtol=1e-12, atol=1e-14)


def test_masked_bpp_solves_each_rows_observed_least_squares():
    factor, cross, grams, A, H, observed = _problems()
    updated = bpp_masked.update_each(factor, cross, grams)
    for r in range(len(factor)):
        expected, _ = scipy.optimize.nnls(H[:, observed[r]].T, A[r, observed[r]])
        np.testing.assert_allclose(updated[r], expected, rtol=1e-7, atol=1e-9)


def test_with_one_gram_for_every_row_masked_bpp_is_unmasked_bpp():
    factor, cross, grams, *_ = _problems()
    grams[:] = grams[0]
    np.testing.assert_allclose(bpp_masked.update_each(factor, cross, grams), bpp.update(factor.T, cross.T, grams[0]).T)


def _reference_parts(A, H):
    """Per row: cross product and Gram of H over the observed (non-NaN, or stored) entries."""
    dense = A.toarray() if sp.issparse(A) else A
    observed = (A != 0).toarray() if sp.issparse(A) else ~np.isnan(A)
    values = np.where(observed, np.nan_to_num(dense), 0.0)
    k = H.shape[0]
    grams = np.stack([(H[:, o] @ H[:, o].T).ravel() for o in observed])
    return np.concatenate([values @ H.T, grams], axis=1), k


def _holed(A: sp.csr_matrix, fraction: float) -> sp.csr_matrix:
    """``A`` with NaN stored at a random ``fraction`` of its entries, stored or not: a holed CSR block."""
    dense = A.toarray()
    dense[rng.random(dense.shape) < fraction] = np.nan
    rows, cols = np.nonzero(dense != 0)
    return sp.csr_matrix((dense[rows, cols], (rows, cols)), shape=dense.shape)


@pytest.mark.parametrize(("kind", "prepared"), [("dense", False), ("dense", True), ("sparse", False), ("holed", True)],
                         ids=["dense-holes-found-per-product", "dense-holes-found-once", "sparse", "holed"])
@pytest.mark.parametrize("on", ["dask", "blocks"])
def test_masked_products_match_numpy(kind, on, prepared, blocks_as_dask):
    """Dense blocks with NaN, CSR blocks whose stored pattern is the observed set (given no pattern of holes, as
    :class:`MaskedFrobenius` gives them none) and holed CSR blocks (given their NaN pattern, which is what tells
    them from the others)."""
    A = rng.random((24, 18))
    if kind == "dense":
        A[rng.random(A.shape) < 0.3] = np.nan
    else:
        A = sp.random(24, 18, density=0.4, random_state=1, format="csr", data_rvs=lambda n: rng.random(n) + 0.1)
    if kind == "holed":
        A = _holed(A, 0.2)
    H, W = rng.random((3, 18)), rng.random((24, 3))
    chunks = ((8, 8, 8), (6, 12))
    Ab, Hb, Wb = Blocks.from_array(A, chunks), Blocks.from_array(H, ((3,), chunks[1])), \
        Blocks.from_array(W, (chunks[0], (3,)))
    if on == "dask":
        Ab, Hb, Wb = (blocks_as_dask(x) for x in (Ab, Hb, Wb))
    unobserved = products.unobserved(Ab) if prepared else None
    reference = A.toarray() if kind == "holed" else A
    rows, k = _reference_parts(reference, H)
    cols, _ = _reference_parts(reference.T.tocsr() if sp.issparse(reference) else reference.T, W.T)
    np.testing.assert_allclose(np.asarray(products.masked_aht(Ab, Hb, unobserved).compute()), rows)
    parts = products.masked_wta(Ab, Wb, unobserved)
    np.testing.assert_allclose(np.asarray(parts.compute()), cols.T)
    terms = products.value(products.masked_terms(parts, Hb, by_rows=False))
    grams = cols[:, k:].reshape(-1, k, k)
    np.testing.assert_allclose(terms, [np.sum(cols[:, :k] * H.T), np.einsum("ri,rij,rj->", H.T, grams, H.T)])


@pytest.mark.parametrize("solver", ["hals", "bpp"])
def test_masked_fits_descend_and_report_the_exact_observed_error(solver, planted_with_holes):
    X, holes, observed = planted_with_holes()
    model = NMF(4, solver=solver, missing="nan", max_iter=150, tol=0, random_state=0, init="random")
    W = model.fit_transform(holes)
    history, resolution = np.array(model.loss_history_), np.array(model.loss_resolution_)
    assert np.all(np.diff(history) <= resolution[1:] + resolution[:-1] + 1e-12 * history[1:])
    exact = np.sqrt(np.sum(((X - W @ model.components_)[observed]) ** 2))
    assert model.reconstruction_err_ == pytest.approx(exact, rel=1e-9)
    assert rule_for(solver, "frobenius", masked=True) is MASKED_RULES[SOLVERS[solver].masked_rule]
    # Each half-step reads X once, and the loss needs no pass of its own; one more pass finds the holes, once.
    assert model.timings_["passes_over_a"]["loop"] == 2 * model.n_iter_ + 1


def test_masked_hals_fills_the_holes_of_planted_data_better_than_mu(planted_with_holes):
    X, holes, observed = planted_with_holes(1)
    errors = {}
    for solver in ("hals", "mu"):
        model = NMF(4, solver=solver, missing="nan", max_iter=200, tol=0, random_state=0, init="random")
        W = model.fit_transform(holes)
        errors[solver] = np.linalg.norm((X - W @ model.components_)[~observed]) / np.linalg.norm(X[~observed])
    assert errors["hals"] < 0.05 and errors["hals"] < errors["mu"]


@pytest.mark.parametrize("solver", ["hals", "bpp"])
def test_masked_fit_is_the_same_in_process_and_on_a_dask_graph(solver, planted_with_holes):
    _, holes, _ = planted_with_holes(2)
    fits = []
    for executor in ("in-process", "dask"):
        with dask.config.set({"dnmf.executor": executor}):
            model = NMF(4, solver=solver, missing="nan", max_iter=20, tol=0, random_state=0, init="random",
                        chunks=(20, 10))
            fits.append((np.asarray(model.fit_transform(da.from_array(holes, chunks=(20, 10)))), model))
    (W1, m1), (W2, m2) = fits
    np.testing.assert_allclose(np.asarray(W1), np.asarray(W2), rtol=1e-10)
    np.testing.assert_allclose(m1.loss_history_, m2.loss_history_, rtol=1e-10)


def test_sparse_masks_keep_observed_zeros():
    r = np.random.default_rng(3)
    X = r.random((40, 4)) @ r.random((4, 25))
    mask = sp.random(40, 25, density=0.5, random_state=3, format="csr")
    mask.data[:] = 1
    model = NMF(4, solver="hals", max_iter=100, tol=0, random_state=0, init="random")
    W = model.fit_transform(X, mask=mask)
    observed = mask.toarray() != 0
    exact = np.sqrt(np.sum(((X - W @ model.components_)[observed]) ** 2))
    assert model.reconstruction_err_ == pytest.approx(exact, rel=1e-9)


def test_transform_with_a_mask_fits_each_row_to_its_observed_entries(planted_with_holes):
    X, holes, observed = planted_with_holes(4)
    model = NMF(4, solver="bpp", max_iter=50, tol=0, random_state=0, init="random").fit(X)
    W = model.transform(X, mask=observed)
    H = model.components_
    for r in range(0, 60, 7):
        expected, _ = scipy.optimize.nnls(H[:, observed[r]].T, X[r, observed[r]])
        np.testing.assert_allclose(W[r], expected, rtol=1e-6, atol=1e-8)


def test_the_unobserved_pattern_of_a_block_marks_its_nan_and_nothing_of_a_sparse_block():
    a = rng.random((7, 5))
    a[[0, 0, 3, 6], [1, 4, 0, 4]] = np.nan
    pattern = kernels.unobserved_block(a)
    assert sp.isspmatrix_csr(pattern) and pattern.has_canonical_format
    np.testing.assert_array_equal(pattern.toarray(), np.isnan(a).astype(float))
    sparse = sp.random(7, 5, density=0.5, random_state=0, format="csr")
    assert kernels.unobserved_block(sparse).nnz == 0 and kernels.unobserved_block(sparse).shape == (7, 5)


def test_a_masked_fit_finds_the_holes_once_and_keeps_them_between_iterations(planted_with_holes):
    X, holes, _ = planted_with_holes()
    dense = MaskedFrobenius(1.0).prepare(da.from_array(holes, chunks=(20, 15)))
    assert set(dense) == {"unobserved"}
    np.testing.assert_array_equal(dense["unobserved"].compute().toarray(), np.isnan(holes).astype(float))
    assert MaskedFrobenius(1.0).prepare(da.from_array(sp.csr_matrix(X), chunks=(20, 15))) == {}
