"""Sparse input with duplicate entries and unsorted indices: every input path sums duplicates, as SciPy's
canonical format does, so the reported error is the true one."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
import zarr

from dnmf import NMF, ingest, open_matrix, save_matrix
from dnmf.data.sparse import canonical, canonical_csr

SHAPE = (40, 30)


def _non_canonical(seed: int = 0) -> sp.csr_matrix:
    """A CSR matrix whose rows repeat column indices (one entry stored up to three times) in unsorted order."""
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(0, SHAPE[0], 600), rng.integers(0, SHAPE[1], 600)
    values = rng.random(600) + 0.5
    order = np.argsort(rows, kind="stable")
    rows, cols, values = rows[order], cols[order], values[order]
    indptr = np.searchsorted(rows, np.arange(SHAPE[0] + 1))
    matrix = sp.csr_matrix((values, cols, indptr), shape=SHAPE)
    assert not matrix.has_canonical_format
    return matrix


def _dense_error(dense: np.ndarray, W: np.ndarray, H: np.ndarray) -> float:
    return float(np.linalg.norm(dense - np.asarray(W) @ np.asarray(H)))


def _fit_error(X) -> tuple[float, float]:
    """The reported ``reconstruction_err_`` of a short fit and ``‖A − WH‖`` computed densely from its factors."""
    model = NMF(4, max_iter=15, tol=0, random_state=0, init="random")
    W = model.fit_transform(X)
    W = W.compute() if isinstance(W, da.Array) else W
    H = model.components_.compute() if isinstance(model.components_, da.Array) else model.components_
    return float(model.reconstruction_err_), _dense_error(_non_canonical().toarray(), W, H)


def test_canonical_sums_duplicates_without_touching_the_input():
    matrix = _non_canonical()
    before = (matrix.data.copy(), matrix.indices.copy())
    fixed = canonical_csr(matrix)
    assert fixed.has_canonical_format and fixed.nnz < matrix.nnz
    np.testing.assert_allclose(fixed.toarray(), matrix.toarray(), rtol=1e-12)
    np.testing.assert_array_equal(matrix.data, before[0])
    np.testing.assert_array_equal(matrix.indices, before[1])
    assert canonical(fixed) is fixed


def _write_raw_store(matrix: sp.csr_matrix, url) -> None:
    """A CSR store written as it is, duplicates and unsorted indices included, as another tool might."""
    group = zarr.open_group(str(url), mode="w", zarr_format=3)
    group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": list(matrix.shape)})
    for name in ("data", "indices", "indptr"):
        group.create_array(name, data=np.asarray(getattr(matrix, name)), chunks=(100,))


def _inputs(tmp_path):
    matrix = _non_canonical()
    _write_raw_store(matrix, tmp_path / "raw.zarr")
    save_matrix(matrix, tmp_path / "saved.zarr", chunks=(15, 30))
    sp.save_npz(tmp_path / "dup.npz", sp.coo_matrix(matrix), compressed=False)
    ingest(tmp_path / "dup.npz", tmp_path / "ingested.zarr")
    blocks = da.from_array(matrix.toarray(), chunks=(20, 15)).map_blocks(
        lambda b: sp.csr_matrix(b), meta=sp.csr_matrix((0, 0)))
    duplicated = blocks.map_blocks(lambda b: sp.csr_matrix((np.repeat(b.data / 2, 2), np.repeat(b.indices, 2),
                                                            2 * b.indptr), shape=b.shape),
                                   meta=sp.csr_matrix((0, 0)))
    save_matrix(duplicated, tmp_path / "saved-dask.zarr")
    return {"scipy": matrix, "coo": sp.coo_matrix(matrix), "csc": sp.csc_matrix(matrix), "dask": duplicated,
            "raw store": str(tmp_path / "raw.zarr"), "saved store": str(tmp_path / "saved.zarr"),
            "ingested store": str(tmp_path / "ingested.zarr"), "saved dask store": str(tmp_path / "saved-dask.zarr")}


def test_reported_error_is_the_true_error_on_every_input_path(tmp_path):
    with dask.config.set(scheduler="sync"):
        inputs = _inputs(tmp_path)
        for name, X in inputs.items():
            reported, true = _fit_error(X)
            assert reported == pytest.approx(true, rel=1e-6), name


def test_stores_hold_and_read_canonical_csr(tmp_path):
    with dask.config.set(scheduler="sync"):
        inputs = _inputs(tmp_path)
        for name in ("saved store", "saved dask store"):
            saved = zarr.open_group(inputs[name] + "/X", mode="r")
            stored = sp.csr_matrix((saved["data"][:], saved["indices"][:], saved["indptr"][:]), shape=SHAPE)
            assert stored.has_canonical_format, name
        for name in ("raw store", "saved store", "ingested store", "saved dask store"):
            for block in open_matrix(inputs[name], chunks=(15, 10)).to_delayed().ravel():
                assert block.compute().has_canonical_format, name
