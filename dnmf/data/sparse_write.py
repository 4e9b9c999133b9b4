"""Writing a sparse Dask array into a store's CSR arrays (AnnData's layout), row strips in parallel.

Strip ``s`` of the global ``data`` and ``indices`` arrays starts at the number of non-zeros of all strips before
it, which is known only once every strip has been computed. Two ways to get there, chosen by what computing the
input costs:

* **Held input** (its blocks are in memory: NumPy or SciPy input, a persisted Dask array): the strips are
  counted first, which reads nothing, then each Zarr chunk is written from the strips it spans.
* **Lazy input** (a store, a file being ingested, any other Dask graph): computing it is the pass that costs, and
  it is made once. Each strip is written whole, uncompressed, into staging arrays of its own inside the store
  being written, and returns its count; each chunk of the final arrays is then copied from the staged strips it
  spans, and the staging arrays are deleted before the store is moved into place.
"""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np
import scipy.sparse as sp
import zarr

from dnmf.data.sparse import MATRIX_COMPRESSORS, SPARSE_ARRAY_CHUNK, row_strip, strip_nnz, strip_part

__all__ = ["STAGING_GROUP", "write_csr"]

#: The group, inside the store being written, that holds the staged strips of a lazy input until they are copied.
STAGING_GROUP = "dnmf-staging"

_PARTS = ("data", "indices", "indptr")
#: Elements per chunk of ``indptr``: a streamed strip decodes only the chunks its rows span, so one chunk as large as
#: ``data``'s (8 MiB of int64) would be decoded again by every strip of a store of many rows.
INDPTR_CHUNK = 1 << 16


def _index_dtype(n_columns: int) -> np.dtype:
    return np.dtype(np.int32 if n_columns <= np.iinfo(np.int32).max else np.int64)


def _target(group: zarr.Group, part: str, length: int, dtype: Any) -> zarr.Array:
    chunk = INDPTR_CHUNK if part == "indptr" else SPARSE_ARRAY_CHUNK
    return group.create_array(part, shape=(length,), dtype=dtype, chunks=(max(1, min(chunk, length)),),
                              compressors=MATRIX_COMPRESSORS, config={"write_empty_chunks": True})


def _stage_strip(strip: sp.csr_matrix, *, staging: zarr.Group, index_dtype: np.dtype,
                 block_info: Any = None) -> np.ndarray:
    """Write one strip's ``data``, ``indices`` and ``indptr`` into staging arrays of its own; return its nnz.
    A task that runs again (a worker was lost) replaces what its first run wrote."""
    s = block_info[0]["chunk-location"][0]
    for part, values in (("data", strip.data), ("indices", strip.indices.astype(index_dtype, copy=False)),
                         ("indptr", strip.indptr.astype(np.int64, copy=False))):
        array = staging.create_array(f"{s}-{part}", shape=values.shape, dtype=values.dtype,
                                     chunks=(max(1, min(SPARSE_ARRAY_CHUNK, len(values))),), compressors=None,
                                     overwrite=True)
        if len(values):
            array[:] = values
    return np.array([strip.nnz], dtype=np.int64)


def _copy_chunk(chunk: np.ndarray, *, part: str, starts: np.ndarray, offsets: np.ndarray, staging: zarr.Group,
                target: zarr.Array) -> np.ndarray:
    """Fill chunk ``chunk[0]`` of ``target`` from the staged strips it spans. Strip ``s`` holds positions
    ``starts[s]:starts[s + 1]`` of ``target``; ``offsets[s]`` is added to its ``indptr`` values."""
    size = target.chunks[0]
    low, high = int(chunk[0]) * size, min((int(chunk[0]) + 1) * size, target.shape[0])
    pieces = []
    for s in range(int(np.searchsorted(starts, low, side="right")) - 1, len(starts) - 1):
        if starts[s] >= high:
            break
        a, b = max(low, starts[s]) - starts[s], min(high, starts[s + 1]) - starts[s]
        if b > a:
            values = staging[f"{s}-{part}"][a:b]
            pieces.append(values + offsets[s] if part == "indptr" else values)
    target[low:high] = np.concatenate(pieces).astype(target.dtype, copy=False)
    return np.zeros(1, dtype=np.int8)


def _copy(part: str, starts: np.ndarray, offsets: np.ndarray, staging: zarr.Group, target: zarr.Array) -> da.Array:
    chunks = da.arange(-(-target.shape[0] // target.chunks[0]), chunks=1, dtype=np.int64)
    return chunks.map_blocks(_copy_chunk, part=part, starts=starts, offsets=offsets, staging=staging,
                             target=target, dtype=np.int8, token=f"dnmf-save-{part}-write",
                             meta=np.empty((0,), dtype=np.int8))


def _write_held(group: zarr.Group, strips: da.Array, index_dtype: np.dtype,
                counts: np.ndarray, offsets: np.ndarray) -> list[Any]:
    from dnmf.data.store import write_blocks

    nnz_chunks = tuple(int(c) for c in counts)
    indptr_chunks = tuple(rows + (i == 0) for i, rows in enumerate(strips.chunks[0]))
    stores = []
    for part, dtype, lengths in (("data", strips.dtype, nnz_chunks), ("indices", index_dtype, nnz_chunks),
                                 ("indptr", np.dtype(np.int64), indptr_chunks)):
        flat = strips.map_blocks(strip_part, part=part, offsets=offsets, out_dtype=dtype, chunks=(lengths,),
                                 dtype=dtype, token=f"dnmf-save-{part}", meta=np.empty((0,), dtype=dtype))
        target = _target(group, part, int(flat.shape[0]), dtype)
        stores.append(write_blocks(flat.rechunk(target.chunks[0]), target, f"dnmf-save-{part}-write"))
    return stores


def write_csr(root: zarr.Group, A: da.Array, *, held: bool) -> None:
    """Write ``A`` (CSR blocks) as the CSR group ``root["X"]``, reading ``A`` once.

    Parameters
    ----------
    root : zarr.Group
        The store being written (a staging copy: see :func:`dnmf.data.store.staged_group`).
    A : dask.array.Array
        The matrix, with CSR blocks.
    held : bool
        Whether A's blocks are in memory already, so that computing its strips twice costs no read.
    """
    m, n = A.shape
    index_dtype = _index_dtype(n)
    strips = da.blockwise(row_strip, "i", A, "ij", concatenate=False, dtype=A.dtype, token="dnmf-save-strip",
                          meta=np.empty((0,), dtype=A.dtype))
    group = root.create_group("X")
    group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": [m, n]})
    if held:
        counts = strips.map_blocks(strip_nnz, chunks=((1,) * strips.numblocks[0],), dtype=np.int64,
                                   token="dnmf-save-nnz", meta=np.empty((0,), dtype=np.int64)).compute()
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        dask.compute(*_write_held(group, strips, index_dtype, counts, offsets))
        return
    staging = root.create_group(STAGING_GROUP)
    counts = strips.map_blocks(_stage_strip, staging=staging, index_dtype=index_dtype,
                               chunks=((1,) * strips.numblocks[0],), dtype=np.int64, token="dnmf-save-stage",
                               meta=np.empty((0,), dtype=np.int64)).compute()
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    row_starts = np.concatenate([[0], np.cumsum(A.chunks[0])]).astype(np.int64)
    row_starts[-1] += 1  # the last strip also holds indptr's final entry, its rows + 1
    starts = {"data": offsets, "indices": offsets, "indptr": row_starts}
    lengths = {"data": int(offsets[-1]), "indices": int(offsets[-1]), "indptr": m + 1}
    dtypes = {"data": A.dtype, "indices": index_dtype, "indptr": np.dtype(np.int64)}
    targets = {part: _target(group, part, lengths[part], dtypes[part]) for part in _PARTS}
    dask.compute(*(_copy(part, starts[part], offsets, staging, targets[part]) for part in _PARTS if lengths[part]))
    del root[STAGING_GROUP]
