"""The block grid: how many blocks a matrix is cut into, and the one rule for its float dtype.

Default chunking aims at about :data:`TARGET_BLOCK_BYTES` per block and at least as many blocks along each axis as
the runtime has workers, because parallelism comes from the number of blocks (workers run single-threaded BLAS).
Every path that chunks a matrix (input preparation, stores, ingest) resolves its chunks with :func:`resolve_chunks`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from dask.array.core import normalize_chunks

__all__ = ["STRIP_MEMORY_FRACTION", "TARGET_BLOCK_BYTES", "Chunks", "default_grid", "even_chunks", "float_dtype",
           "PLACED_INPUT", "strip_axis",
           "nbytes_of", "resolve_chunks"]

#: The block size default chunking aims for (bytes of a dense block, or of a CSR block's arrays).
TARGET_BLOCK_BYTES = 64 * 2**20

#: A row strip (what one task reads from a sparse store) may take at most this share of a worker's memory.
STRIP_MEMORY_FRACTION = 1 / 8

Chunks = Literal["auto"] | tuple[Any, Any] | int


def float_dtype(dtype: Any) -> np.dtype:
    """The dtype a matrix of ``dtype`` is factorised in: float32 and float64 stay, other real types become float64.

    Raises
    ------
    TypeError
        For anything that is not a real number type.
    """
    dtype = np.dtype(dtype)
    if dtype in (np.float32, np.float64):
        return dtype
    if dtype.kind in "biuf":
        return np.dtype(np.float64)
    raise TypeError(f"NMF needs a real-valued matrix, got dtype {dtype}. Convert it with X.astype(np.float64).")


#: The name prefix of an input a graph runtime placed itself (``Runtime.place``): each of its strips (see
#: :func:`strip_axis`) lies whole on one worker, so that a product may read a whole strip in one task.
PLACED_INPUT = "dnmf-input-placed"


def strip_axis(shape: tuple[int, int]) -> int:
    """The axis along which an input held on a cluster is placed whole strips per worker: 0 (row strips) for a
    tall or square matrix, 1 (column strips) for a wide one, so that the larger factor's products stay local."""
    return 0 if shape[0] >= shape[1] else 1


def nbytes_of(X: Any) -> int:
    """Bytes of a dense array, or of a sparse matrix's values and indices."""
    if sp.issparse(X):
        return int(X.nnz) * (X.dtype.itemsize + 4)
    return int(np.prod(X.shape)) * np.dtype(X.dtype).itemsize


def default_grid(shape: tuple[int, int], nbytes: int, workers: int,
                 memory_per_worker: int | None = None) -> tuple[int, int]:
    """Number of row and column blocks for a matrix of ``nbytes``.

    Blocks hold about :data:`TARGET_BLOCK_BYTES`; each axis has at least ``workers`` blocks, since parallelism
    comes from the number of blocks; and when ``memory_per_worker`` is known, a row strip holds at most
    :data:`STRIP_MEMORY_FRACTION` of it, so inputs far larger than the cluster's memory stream through it.
    """
    blocks = max(1, math.ceil(nbytes / TARGET_BLOCK_BYTES))
    rows = max(workers, math.ceil(math.sqrt(blocks)))
    if memory_per_worker:
        rows = max(rows, math.ceil(nbytes / (memory_per_worker * STRIP_MEMORY_FRACTION)))
    cols = max(workers, math.ceil(blocks / rows))
    return min(shape[0], rows), min(shape[1], cols)


def even_chunks(length: int, n_blocks: int, multiple: int = 1) -> tuple[int, ...]:
    """``length`` cut into ``n_blocks`` near-equal chunks, each a whole ``multiple`` (the last one may be short)."""
    size = math.ceil(math.ceil(length / n_blocks) / multiple) * multiple
    return normalize_chunks(size, (length,))[0]


def resolve_chunks(chunks: Chunks, shape: tuple[int, int], grid: tuple[int, int],
                   multiple: tuple[int, int] = (1, 1)) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Explicit block lengths per axis from ``chunks``.

    Parameters
    ----------
    chunks : "auto", int or (rows, columns)
        ``"auto"`` cuts the matrix into ``grid`` (row and column block counts, e.g. from :func:`default_grid`),
        whole multiples of ``multiple`` (a store's own chunks); anything else is read as Dask reads chunks.

    Raises
    ------
    ValueError
        For chunks that are not positive block lengths.
    """
    if isinstance(chunks, str) and chunks == "auto":
        return even_chunks(shape[0], grid[0], multiple[0]), even_chunks(shape[1], grid[1], multiple[1])
    message = (f"Invalid chunks={chunks!r} for a matrix of shape {shape}: pass 'auto', a positive block size "
               "such as (10_000, 5_000), or explicit block lengths per axis.")
    try:
        rows, cols = normalize_chunks(chunks, shape)
    except (ValueError, TypeError, ZeroDivisionError) as error:
        raise ValueError(message) from error
    if min(rows + cols) < 1:
        raise ValueError(message)
    return rows, cols
