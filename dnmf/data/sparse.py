"""Sparse blocks and the sparse layout of a matrix store (AnnData's CSR/CSC convention).

* :func:`canonical`: every sparse block dnmf computes with is in SciPy's canonical format (sorted indices, no
  duplicate entries, duplicates summed), whatever path it came by: NumPy/SciPy input, Dask arrays of sparse
  blocks, stores and ingest. Products and norms over ``data`` are only right for canonical blocks.
* :func:`sparse_layout` checks a store's metadata against the arrays it holds; :func:`read_strip` reads one row
  strip (CSR) or column strip (CSC), refusing missing chunks, undecodable chunks and inconsistent row pointers.
* :func:`row_strip`, :func:`strip_nnz` and :func:`strip_part` are the per-strip pieces of the writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import zarr
from zarr.codecs import BloscCodec

from dnmf.exceptions import StoreError

__all__ = ["MATRIX_COMPRESSORS", "SPARSE_ARRAY_CHUNK", "SPARSE_ENCODINGS", "SparseLayout", "canonical", "canonical_csr",
           "missing_chunks", "read_chunks", "read_strip", "row_strip", "sparse_layout", "strip_nnz", "strip_part"]

SPARSE_ENCODINGS = ("csr_matrix", "csc_matrix")
#: Elements per Zarr chunk of the 1-D ``data``/``indices``/``indptr`` arrays of a sparse store.
SPARSE_ARRAY_CHUNK = 1 << 20
#: The codec of the arrays of a matrix store that dnmf writes (a dense ``X``; a sparse one's ``data``, ``indices``
#: and ``indptr``): LZ4 after a bit shuffle, through Blosc, a codec every Zarr v3 reader has. Against Zarr's default
#: (Zstandard, level 3), on one core, it decodes CSR arrays 1.7–2.9× faster (the cost of every streamed pass) and
#: writes them 2–8× faster, into fewer bytes for counts and sorted indices and about as many for random floats
#: (``python -m benchmarks.read_path``). Stores with other codecs read as before.
MATRIX_COMPRESSORS = (BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"),)


def canonical(block: Any) -> Any:
    """A CSR or CSC ``block`` in canonical format: sorted indices, duplicate entries summed.

    A canonical block is returned as it is (checking costs one pass over its indices); otherwise a canonical
    copy, so that the caller's matrix is never modified. Explicit zeros stay: they are observed entries of a
    masked matrix.
    """
    if block.has_canonical_format:
        return block
    block = block.copy()
    block.sum_duplicates()
    return block


def canonical_csr(block: Any, dtype: Any = None) -> sp.csr_matrix:
    """Any SciPy sparse ``block`` as canonical CSR (see :func:`canonical`), of ``dtype`` if given."""
    return canonical(sp.csr_matrix(block, dtype=dtype))


#: Names of the Dask arrays whose blocks are canonical CSR of their dtype already: the readers of sparse stores
#: (:func:`read_strip` cut into blocks). A name is the token of what the array reads, so it keeps that property.
_CANONICAL_CSR_ARRAYS: set[str] = set()


def mark_canonical_csr(array: Any) -> Any:
    """Record that the blocks of the Dask ``array`` are canonical CSR of its dtype; returns it."""
    _CANONICAL_CSR_ARRAYS.add(array.name)
    return array


def yields_canonical_csr(array: Any) -> bool:
    """Whether :func:`mark_canonical_csr` recorded ``array``: :func:`dnmf.data.matrix.as_input_matrix` then adds no
    task per block to make its blocks canonical CSR (one per block of every pass over a streamed store)."""
    return getattr(array, "name", None) in _CANONICAL_CSR_ARRAYS


@dataclass(frozen=True)
class SparseLayout:
    encoding: str
    shape: tuple[int, int]
    dtype: np.dtype


def missing_chunks(array: zarr.Array, indices: range) -> list[int]:
    """Which of the chunks ``indices`` of a 1-D Zarr array are not stored (a missing one would read as its fill
    value), asked of the store concurrently, in one round trip to Zarr's event loop."""
    import asyncio

    from zarr.core.sync import sync

    def key(index: int) -> str:
        name = array.metadata.encode_chunk_key((index,))
        return f"{array.path}/{name}" if array.path else name

    async def exist() -> list[bool]:
        return await asyncio.gather(*(array.store.exists(key(index)) for index in indices))

    return [index for index, stored in zip(indices, sync(exist()), strict=True) if not stored]


def read_chunks(array: zarr.Array, start: int, stop: int, url: str, *, may_be_missing: bool = False) -> np.ndarray:
    """``array[start:stop]`` of a sparse store's 1-D array, after checking that every chunk it spans is stored.

    Raises
    ------
    StoreError
        If a chunk is missing (unless ``may_be_missing``: a chunk equal to the fill value everywhere may be
        legitimately absent) or cannot be decoded.
    """
    size = int(array.chunks[0])
    name = array.path.rpartition("/")[2]
    checked = stop > start and not may_be_missing
    missing = missing_chunks(array, range(start // size, (stop - 1) // size + 1)) if checked else []
    if missing:
        index = missing[0]
        raise StoreError(f"The sparse store {url!r} lacks chunk {index} of its {name!r} array (entries "
                         f"{index * size}–{min((index + 1) * size, array.shape[0]) - 1}): it is incomplete "
                         "(partly copied, or a chunk was deleted). Write it again with dnmf ingest or "
                         "dnmf.save_matrix.")
    try:
        return array[start:stop]
    except OSError:
        raise
    except Exception as error:  # codecs raise RuntimeError, ValueError, ... for damaged bytes
        raise StoreError(f"Could not decode entries {start}–{stop - 1} of the {name!r} array of {url!r} "
                         f"({type(error).__name__}: {error}): the store is damaged. Write it again.") from error


def _shape(value: Any, url: str) -> tuple[int, int]:
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(x, int) and not isinstance(x, bool) for x in value))
    if not ok or min(value) < 1:
        raise StoreError(f"The sparse store {url!r} has the shape attribute {value!r}; a matrix for NMF needs two "
                         "positive integers [rows, columns].")
    return int(value[0]), int(value[1])


def sparse_layout(group: zarr.Group, url: str) -> SparseLayout:
    """The encoding, shape and dtype of a sparse store, checked against the arrays it holds.

    Raises
    ------
    StoreError
        If the encoding is unknown, an array or the shape is missing, the shape is not two positive integers,
        ``indptr`` does not fit the shape, ``data``/``indices`` do not fit ``indptr``, or the end of ``indptr`` is
        not stored.
    """
    encoding = group.attrs.get("encoding-type")
    if encoding not in SPARSE_ENCODINGS:
        found = f"encoding-type={encoding!r}" if encoding else "no encoding-type attribute"
        raise StoreError(
            f"{url!r} is neither a dense Zarr array nor a known sparse encoding ({found}; expected one of "
            f"{', '.join(SPARSE_ENCODINGS)} with arrays data, indices and indptr)."
        )
    missing = [name for name in ("data", "indices", "indptr") if name not in group]
    if missing or "shape" not in group.attrs:
        raise StoreError(f"The sparse store {url!r} lacks {', '.join(missing) or 'the shape attribute'}.")
    shape = _shape(group.attrs["shape"], url)
    major = shape[0] if encoding == "csr_matrix" else shape[1]
    indptr, data, indices = group["indptr"], group["data"], group["indices"]
    if indptr.shape != (major + 1,):
        raise StoreError(f"The sparse store {url!r} has an indptr of {indptr.shape[0]} entries, but its shape "
                         f"{shape} needs {major + 1}.")
    if np.dtype(indptr.dtype).kind not in "iu" or np.dtype(indices.dtype).kind not in "iu":
        raise StoreError(f"The sparse store {url!r} has indptr of {indptr.dtype} and indices of {indices.dtype}; "
                         "both must be integers.")
    nnz = int(read_chunks(indptr, major, major + 1, url, may_be_missing=major < int(indptr.chunks[0]))[0])
    if data.shape != (nnz,) or indices.shape != (nnz,):
        raise StoreError(f"The sparse store {url!r} is inconsistent: indptr ends at {nnz}, but data has "
                         f"{data.shape[0]} and indices {indices.shape[0]} entries.")
    return SparseLayout(encoding, shape, np.dtype(data.dtype))


def read_strip(url: str, storage_options: dict[str, Any], encoding: str, start: int, stop: int,
               shape: tuple[int, int]) -> sp.spmatrix:
    """Rows (CSR) or columns (CSC) ``start:stop`` of a sparse store, reading only their slice of data/indices, in
    canonical format (see :func:`canonical`).

    Raises
    ------
    StoreError
        If a chunk they span is missing or damaged, their row pointers decrease or leave ``[0, nnz]``, or an
        index is out of range.
    """
    kwargs = {"storage_options": storage_options} if "://" in url and storage_options else {}
    group = zarr.open_group(store=url, mode="r", **kwargs)
    by_rows = encoding == "csr_matrix"
    what = f"{'rows' if by_rows else 'columns'} {start}–{stop - 1}"
    minor = shape[1] if by_rows else shape[0]
    indptr_array = group["indptr"]
    indptr = np.asarray(read_chunks(indptr_array, start, stop + 1, url), dtype=np.int64)
    nnz = int(group["data"].shape[0])
    if indptr[0] < 0 or indptr[-1] > nnz or (np.diff(indptr) < 0).any():
        raise StoreError(f"The sparse store {url!r} has row pointers (indptr) that decrease or leave [0, {nnz}] "
                         f"in {what}: it is damaged.")
    low, high = int(indptr[0]), int(indptr[-1])
    data = read_chunks(group["data"], low, high, url)
    indices = read_chunks(group["indices"], low, high, url, may_be_missing=minor == 1)
    if len(indices) and (indices.min() < 0 or indices.max() >= minor):
        raise StoreError(f"The sparse store {url!r} has indices out of range [0, {minor}) in {what}.")
    if by_rows:
        return canonical(sp.csr_matrix((data, indices, indptr - low), shape=(stop - start, shape[1])))
    return canonical(sp.csc_matrix((data, indices, indptr - low), shape=(shape[0], stop - start)))


def row_strip(blocks: list[sp.spmatrix]) -> sp.csr_matrix:
    return canonical_csr(sp.hstack(blocks, format="csr"))


def strip_nnz(strip: sp.csr_matrix) -> np.ndarray:
    return np.array([strip.nnz], dtype=np.int64)


def strip_part(strip: sp.csr_matrix, *, part: str, offsets: np.ndarray, out_dtype: Any,
               block_info: Any = None) -> np.ndarray:
    """One row strip's slice of the global ``data``, ``indices`` or ``indptr`` array."""
    i = block_info[None]["chunk-location"][0]
    if part == "indptr":
        values = (strip.indptr if i == 0 else strip.indptr[1:]).astype(np.int64) + offsets[i]
    else:
        values = getattr(strip, part)
    return np.asarray(values, dtype=out_dtype)
