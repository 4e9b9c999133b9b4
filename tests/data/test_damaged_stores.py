"""Damaged and crafted stores and sources: missing or undecodable chunks, impossible shapes, headers asking for
huge allocations. Each is a clear error (a ``StoreError`` or ``ValueError``) before anything large is allocated,
never zeros and never a crash."""

from __future__ import annotations

import os

import dask
import numpy as np
import pytest
import scipy.sparse as sp
import zarr

from dnmf import StoreError, ingest, load_result, open_matrix, save_matrix
from dnmf.datasets import make_sparse_low_rank

#: Elements per chunk of the sparse arrays in the stores below, so that they span several chunks.
SMALL = 64


def _sparse_store(path, shape=(120, 40), seed=0) -> sp.csr_matrix:
    """A CSR store written as a raw group whose data/indices/indptr arrays have small chunks."""
    A, _, _ = make_sparse_low_rank(*shape, 3, column_density=0.3, random_state=seed)
    A = sp.csr_matrix(A)
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": list(A.shape)})
    for name in ("data", "indices", "indptr"):
        group.create_array(name, data=np.asarray(getattr(A, name)), chunks=(SMALL,))
    return A


def _read_all(url, chunks=(30, 40)):
    with dask.config.set(scheduler="sync"):
        return open_matrix(url, chunks=chunks).compute()


def test_a_missing_data_chunk_is_an_error_not_zeros(tmp_path):
    A = _sparse_store(tmp_path / "s.zarr")
    assert A.nnz > 3 * SMALL
    os.remove(tmp_path / "s.zarr" / "data" / "c" / "1")
    with pytest.raises(StoreError, match=r"lacks chunk 1 of its 'data' array \(entries 64–127\).*incomplete"):
        _read_all(tmp_path / "s.zarr")


@pytest.mark.parametrize("name", ["indices", "indptr"])
def test_a_missing_index_chunk_is_an_error(tmp_path, name):
    _sparse_store(tmp_path / "s.zarr")
    os.remove(tmp_path / "s.zarr" / name / "c" / "0")
    with pytest.raises(StoreError, match=f"lacks chunk 0 of its '{name}' array"):
        _read_all(tmp_path / "s.zarr")


def test_save_matrix_writes_every_chunk_even_all_zero_ones(tmp_path):
    """A masked matrix may store explicit zeros; their chunks must be written, or they would read as missing."""
    data = np.zeros(3 * 2**20)
    data[-1] = 1.0
    X = sp.csr_matrix((data, np.zeros(len(data), dtype=np.int32), np.arange(len(data) + 1)), shape=(len(data), 2))
    save_matrix(X, tmp_path / "z.zarr", chunks=(2**20, 2))
    with dask.config.set(scheduler="sync"):
        blocks = dask.compute(*open_matrix(tmp_path / "z.zarr").to_delayed().ravel())
    assert sum(block.nnz for block in blocks) == len(data)
    assert sum(block.sum() for block in blocks) == 1.0


def test_decreasing_row_pointers_are_an_error(tmp_path):
    _sparse_store(tmp_path / "s.zarr")
    indptr = zarr.open_array(str(tmp_path / "s.zarr" / "indptr"), mode="r+")
    indptr[10] = indptr[9] - 1
    with pytest.raises(StoreError, match="row pointers .* decrease"):
        _read_all(tmp_path / "s.zarr")


def _corrupt(chunk) -> None:
    with open(chunk, "r+b") as handle:
        handle.seek(8)
        handle.write(b"\xff" * 16)


def test_an_undecodable_sparse_chunk_is_an_error(tmp_path):
    _sparse_store(tmp_path / "s.zarr")
    _corrupt(tmp_path / "s.zarr" / "data" / "c" / "0")
    with pytest.raises(StoreError, match=r"Could not decode entries 0–.* of the 'data' array .*damaged"):
        _read_all(tmp_path / "s.zarr")


def test_an_undecodable_dense_chunk_is_an_error(tmp_path, rng):
    save_matrix(rng.random((50, 20)), tmp_path / "d.zarr", chunks=(25, 20))
    _corrupt(tmp_path / "d.zarr" / "X" / "c" / "0" / "0")
    with pytest.raises(StoreError, match=r"Could not decode rows 0–24, columns 0–19 of .*d.zarr.*damaged"):
        _read_all(tmp_path / "d.zarr", chunks=(25, 20))


@pytest.mark.parametrize("shape", [[60, 0], [0, 5], [60], "60x4", [60.5, 4], [True, 4]])
def test_a_sparse_shape_that_is_not_two_positive_integers_is_an_error(tmp_path, shape):
    _sparse_store(tmp_path / "s.zarr", shape=(60, 4))
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="r+")
    group.attrs["shape"] = shape
    with pytest.raises(StoreError, match="shape attribute .* two positive integers"):
        open_matrix(tmp_path / "s.zarr")


def test_a_crafted_huge_sparse_shape_is_refused_without_allocating(tmp_path):
    """Metadata only: an indptr of 1e11 + 1 entries whose chunks are not there (745 GiB if read)."""
    rows = 10**11
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="w", zarr_format=3)
    group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": [rows, 10]})
    group.create_array("indptr", shape=(rows + 1,), dtype=np.int64, chunks=(2**20,))
    for name, dtype in (("data", np.float64), ("indices", np.int32)):
        group.create_array(name, shape=(0,), dtype=dtype, chunks=(1,))
    with pytest.raises(StoreError, match="lacks chunk 95367 of its 'indptr' array"):
        open_matrix(tmp_path / "s.zarr")


def test_a_dense_chunk_larger_than_a_worker_is_refused(tmp_path):
    """Metadata only: one chunk of 1e6 × 1e6 float64 (7.3 TiB)."""
    zarr.create_array(str(tmp_path / "d.zarr"), shape=(10**6, 10**6), chunks=(10**6, 10**6), dtype=np.float64)
    with pytest.raises(StoreError, match=r"chunks of 1000000 × 1000000 \(7.45e\+03 GiB each\), more than a "
                                         r"worker's memory.*Rechunk"):
        open_matrix(tmp_path / "d.zarr")


def _mtx(path, size_line: str, entries: list[str]) -> None:
    path.write_text("%%MatrixMarket matrix coordinate real general\n% a comment\n" + size_line + "\n"
                    + "".join(line + "\n" for line in entries))


@pytest.mark.parametrize("declared", [5, 3])
def test_an_mtx_whose_entry_count_disagrees_with_its_size_line_is_an_error(tmp_path, declared):
    _mtx(tmp_path / "a.mtx", f"3 3 {declared}", ["1 1 1.0", "2 2 2.0", "3 3 3.0", "1 3 4.0"])
    with pytest.raises(ValueError, match=f"declares {declared} entries on its size line but holds 4"):
        ingest(tmp_path / "a.mtx", tmp_path / "a.zarr")
    assert not (tmp_path / "a.zarr").exists()


def test_an_mtx_declaring_more_entries_than_its_bytes_hold_is_refused_before_reading(tmp_path):
    _mtx(tmp_path / "a.mtx", "3 3 100000000000", ["1 1 1.0"])
    with pytest.raises(ValueError, match="declares 100,000,000,000 entries on its size line, but its .* bytes hold "
                                         "at most"):
        ingest(tmp_path / "a.mtx", tmp_path / "a.zarr")


def test_an_mtx_size_line_of_1e11_rows_is_refused_before_allocating(tmp_path):
    _mtx(tmp_path / "a.mtx", "100000000000 3 1", ["1 1 1.0"])
    with pytest.raises(ValueError, match=r"declares a 100,000,000,000 × 3 matrix: its factors alone would need "
                                         r"373 GiB even at rank 1"):
        ingest(tmp_path / "a.mtx", tmp_path / "a.zarr")


def test_a_result_store_with_an_edited_h_shape_is_refused(tmp_path):
    from dnmf import NMF

    A, _, _ = make_sparse_low_rank(60, 30, 3, column_density=0.3, random_state=0)
    NMF(3, max_iter=5, random_state=0).fit(A, out=tmp_path / "r.zarr")
    group = zarr.open_group(str(tmp_path / "r.zarr"), mode="r+")
    del group["H"]
    group.create_array("H", shape=(3, 300_000_000), dtype=np.float64, chunks=(3, 2**20))
    with pytest.raises(StoreError, match=r"H of shape \(3, 300000000\), but .* 30 columns"):
        load_result(tmp_path / "r.zarr")
