"""The block grid: how many blocks a matrix is cut into, and the one rule for its float dtype.

Default chunking aims at about :data:`TARGET_BLOCK_BYTES` per block and at least as many blocks along each axis as
the runtime has workers, because parallelism comes from the number of blocks (workers run single-threaded BLAS).
Every path that chunks a matrix (input preparation, stores, ingest) resolves its chunks with :func:`resolve_chunks`.

When the workers' memory is known, the grid also bounds the factor panels a block meets: a column block of ``H``
(or a row block of ``W``), ``k + 10`` rows of float64 at its widest (NNDSVD's sketch), may take at most
:data:`PANEL_MEMORY_FRACTION` of a worker's memory, since a product task holds its panel, a transposed copy and
the partial sums of several blocks at once. Without it a wide matrix on small workers gets column blocks whose
panels alone exceed the workers (a 60,000 × 600,000 store on two 300 MiB workers: 2 column blocks of 300,000,
every worker killed). The rank is the fit's (:func:`planning_rank`), else :data:`PLANNING_RANK`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from dask.array.core import normalize_chunks

__all__ = ["PANEL_MEMORY_FRACTION", "PLACED_INPUT", "PLANNING_RANK", "STRIP_MEMORY_FRACTION", "TARGET_BLOCK_BYTES",
           "Chunks", "default_grid", "even_chunks", "float_dtype", "nbytes_of", "planning_rank", "resolve_chunks",
           "strip_axis"]

#: The block size default chunking aims for (bytes of a dense block, or of a CSR block's arrays).
TARGET_BLOCK_BYTES = 64 * 2**20

#: A row strip (what one task reads from a sparse store) may take at most this share of a worker's memory. A
#: streamed strip is in memory with its column blocks (cut copies) until one task has used them all
#: (:mod:`dnmf.core.strip_pass`), and a worker reads the next strip meanwhile; at 1/8, S3's workers of 512 MiB
#: spilled 0.1–1.3 GB in 3 iterations, at 1/16 0.07–0.2 GB, for ~10% more time per iteration.
STRIP_MEMORY_FRACTION = 1 / 16

#: A factor panel (``k + 10`` float64 rows along one block of A) may take at most this share of a worker's memory.
PANEL_MEMORY_FRACTION = 1 / 16

#: The rank the grid plans factor panels for when no fit has said its own (a matrix opened before its fit).
PLANNING_RANK = 32

#: Rows NNDSVD's randomized range finder adds to the rank (``initialization.randomized_svd``'s default): its
#: sketch is the widest factor panel of a fit.
PANEL_OVERSAMPLES = 10

_planned_rank: ContextVar[int | None] = ContextVar("dnmf_planned_rank", default=None)

Chunks = Literal["auto"] | tuple[Any, Any] | int


@contextmanager
def planning_rank(rank: Any) -> Iterator[None]:
    """Within the block, default grids plan factor panels for ``rank`` components (an int; anything else, such as
    scikit-learn's ``None`` or ``"auto"``, leaves :data:`PLANNING_RANK`)."""
    known = isinstance(rank, (int, np.integer)) and not isinstance(rank, bool) and rank > 0
    token = _planned_rank.set(int(rank) if known else None)
    try:
        yield
    finally:
        _planned_rank.reset(token)


def _panel_blocks(length: int, memory_per_worker: int) -> int:
    """Blocks along an axis of ``length`` so that a factor panel along one block stays within its share."""
    width = (_planned_rank.get() or PLANNING_RANK) + PANEL_OVERSAMPLES
    return math.ceil(length * width * 8 / (memory_per_worker * PANEL_MEMORY_FRACTION))


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
    :data:`STRIP_MEMORY_FRACTION` of it, so inputs far larger than the cluster's memory stream through it, and a
    factor panel along a block at most :data:`PANEL_MEMORY_FRACTION` (see the module's docstring).
    """
    blocks = max(1, math.ceil(nbytes / TARGET_BLOCK_BYTES))
    rows = max(workers, math.ceil(math.sqrt(blocks)))
    if memory_per_worker:
        rows = max(rows, math.ceil(nbytes / (memory_per_worker * STRIP_MEMORY_FRACTION)),
                   _panel_blocks(shape[0], memory_per_worker))
    cols = max(workers, math.ceil(blocks / rows))
    if memory_per_worker:
        cols = max(cols, _panel_blocks(shape[1], memory_per_worker))
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
