"""The sparse writer: lazy input computed once, chunks that span strips, staging that leaves nothing behind."""

from __future__ import annotations

import os
import threading

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
import zarr

from dnmf import open_matrix, save_matrix
from dnmf.data import sparse_write


class Counted:
    """A block function that counts how often each block is computed."""

    def __init__(self) -> None:
        self.calls: dict[tuple[int, int], int] = {}
        self._lock = threading.Lock()

    def __call__(self, block: np.ndarray, block_info=None) -> sp.csr_matrix:
        with self._lock:
            location = block_info[0]["chunk-location"]
            self.calls[location] = self.calls.get(location, 0) + 1
        return sp.csr_matrix(block)


@pytest.fixture
def matrix(rng):
    return rng.random((211, 67)) * (rng.random((211, 67)) < 0.2)


def lazy(matrix: np.ndarray, chunks: tuple[int, int], counted: Counted) -> da.Array:
    return da.from_array(matrix, chunks=chunks).map_blocks(counted, dtype=matrix.dtype,
                                                           meta=sp.csr_matrix((0, 0), dtype=matrix.dtype))


@pytest.mark.parametrize("chunks", [(40, 30), (211, 67), (3, 20)])
@pytest.mark.parametrize("array_chunk", [1 << 20, 50], ids=["one-chunk", "chunks-span-strips"])
def test_lazy_input_is_computed_once_and_written_exactly(tmp_path, matrix, chunks, array_chunk, monkeypatch):
    monkeypatch.setattr(sparse_write, "SPARSE_ARRAY_CHUNK", array_chunk)
    monkeypatch.setattr(sparse_write, "INDPTR_CHUNK", array_chunk)
    counted = Counted()
    A = lazy(matrix, chunks, counted)
    save_matrix(A, tmp_path / "m.zarr")
    assert sorted(counted.calls) == [(i, j) for i in range(A.numblocks[0]) for j in range(A.numblocks[1])]
    assert set(counted.calls.values()) == {1}
    group = zarr.open_group(tmp_path / "m.zarr" / "X", mode="r")
    expected = sp.csr_matrix(matrix)
    np.testing.assert_array_equal(group["indptr"][:], expected.indptr)
    np.testing.assert_array_equal(group["indices"][:], expected.indices)
    np.testing.assert_array_equal(group["data"][:], expected.data)
    assert group["data"].chunks == (max(1, min(array_chunk, expected.nnz)),)
    assert group["indptr"].chunks == (min(array_chunk, len(expected.indptr)),)
    assert sparse_write.STAGING_GROUP not in os.listdir(tmp_path / "m.zarr")
    np.testing.assert_array_equal(open_matrix(tmp_path / "m.zarr").compute().toarray(), matrix)


def test_held_input_is_written_without_staging(tmp_path, matrix, monkeypatch):
    staged = []
    monkeypatch.setattr(sparse_write, "_stage_strip", lambda *a, **k: staged.append(1))
    save_matrix(sp.csr_matrix(matrix), tmp_path / "m.zarr", chunks=(50, 30))
    assert staged == []
    np.testing.assert_array_equal(open_matrix(tmp_path / "m.zarr").compute().toarray(), matrix)


@pytest.mark.parametrize("rows", [0, 5])
def test_an_all_zero_lazy_matrix(tmp_path, rows):
    matrix = np.zeros((max(rows, 1) * 9, 4))
    save_matrix(lazy(matrix, (9, 4), Counted()), tmp_path / "m.zarr")
    stored = open_matrix(tmp_path / "m.zarr").compute()
    assert stored.shape == matrix.shape and stored.nnz == 0


def test_lazy_input_to_an_fsspec_url(matrix):
    url = f"memory://dnmf-sparse-write-{os.getpid()}/m.zarr"
    save_matrix(lazy(matrix, (50, 67), Counted()), url)
    np.testing.assert_array_equal(open_matrix(url).compute().toarray(), matrix)
    import fsspec

    fs = fsspec.filesystem("memory")
    assert not fs.exists(f"/dnmf-sparse-write-{os.getpid()}/m.zarr/{sparse_write.STAGING_GROUP}")


def _fail_on_the_last_strip(block: np.ndarray, block_info=None) -> sp.csr_matrix:
    if block_info[0]["chunk-location"][0] == block_info[0]["num-chunks"][0] - 1:
        raise RuntimeError("disk full")
    return sp.csr_matrix(block)


def test_a_failed_lazy_write_leaves_nothing(tmp_path, matrix):
    save_matrix(matrix, tmp_path / "m.zarr")
    broken = da.from_array(matrix, chunks=(50, 67)).map_blocks(_fail_on_the_last_strip, dtype=matrix.dtype,
                                                                 meta=sp.csr_matrix((0, 0)))
    with pytest.raises(RuntimeError, match="disk full"):
        save_matrix(broken, tmp_path / "m.zarr", overwrite=True)
    assert os.listdir(tmp_path) == ["m.zarr"]
    np.testing.assert_array_equal(open_matrix(tmp_path / "m.zarr").compute(), matrix)
