"""Input matrices: NumPy, SciPy sparse, Dask and Zarr input as one chunked array, validated in one pass.

Blocks of the resulting array are NumPy arrays or ``scipy.sparse.csr_matrix``; the array is a Dask array, or the
in-process runtime's :class:`~dnmf.core.blocks.Blocks`, as the runtime places it. Default chunking follows the
runtime's grid (:mod:`dnmf.core.grid`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import dask.array as da
import numpy as np
import scipy.sparse as sp
from dask.base import tokenize

from dnmf.core import graph, products
from dnmf.core.blocks import is_blocks
from dnmf.core.grid import (PLACED_INPUT, STRIP_MEMORY_FRACTION, TARGET_BLOCK_BYTES, Chunks, default_grid,
                            even_chunks, float_dtype, nbytes_of, resolve_chunks)
from dnmf.core.seam import Runtime
from dnmf.data.sparse import canonical_csr, yields_canonical_csr

__all__ = [
    "STRIP_MEMORY_FRACTION",
    "TARGET_BLOCK_BYTES",
    "InputMatrix",
    "MatrixStats",
    "as_held",
    "as_input_matrix",
    "default_grid",
    "even_chunks",
    "is_zarr_array",
    "matrix_stats",
    "needs_holding",
    "persist_input",
    "stats_of_blocks",
]

InputKind = Literal["numpy", "scipy", "dask", "zarr"]


@dataclass(frozen=True)
class InputMatrix:
    """A validated input: the chunked array, and what kind of object the user passed in."""

    array: Any
    kind: InputKind
    #: The blocks carry an observation mask: NaN marks an unobserved entry of a dense block, and the stored
    #: pattern of a CSR block is the set of observed entries (see :mod:`dnmf.core.divergence`).
    masked: bool = False
    #: Masked CSR blocks are *holed* instead: their stored NaN are the unobserved entries and unstored entries are
    #: observed zeros (``missing='nan'`` on sparse X; see :mod:`dnmf.core.divergence`).
    holes: bool = False
    #: The blocks are read from their source afresh for every pass over A, the input being too large to hold.
    streamed: bool = False

    @property
    def returns_dask(self) -> bool:
        """Dask and Zarr input give Dask output that stays on the cluster."""
        return self.kind in ("dask", "zarr")


@dataclass(frozen=True)
class MatrixStats:
    """What one pass over A learns: its sum, squared Frobenius norm and number of non-zeros; the smallest stored
    value, the number of stored values and of NaN (missing entries of a masked dense A)."""

    sum: float
    norm_squared: float
    nnz: int
    shape: tuple[int, int]
    min_stored: float = 0.0
    n_stored: int = 0
    n_nan: int = 0

    @property
    def mean(self) -> float:
        return self.sum / (self.shape[0] * self.shape[1])


def _check_shape(shape: tuple[int, ...]) -> None:
    if len(shape) != 2:
        raise ValueError(
            f"Expected a 2-D matrix, got an array with {len(shape)} dimension(s) (shape {shape}). "
            "Reshape it, e.g. X.reshape(len(X), -1)."
        )
    if 0 in shape:
        raise ValueError(f"The input matrix is empty (shape {shape}); NMF needs at least one row and one column.")


def _split(X: Any, rows: tuple[int, ...], cols: tuple[int, ...]) -> dict[tuple[int, int], Any]:
    row_edges, col_edges = np.cumsum((0, *rows)), np.cumsum((0, *cols))
    blocks = {}
    for i in range(len(rows)):
        strip = X[row_edges[i]:row_edges[i + 1]]
        for j in range(len(cols)):
            block = strip[:, col_edges[j]:col_edges[j + 1]]
            blocks[i, j] = sp.csr_matrix(block) if sp.issparse(block) else block
    return blocks


def _as_csr_block(block: Any, out_dtype: np.dtype) -> Any:
    if sp.issparse(block):
        return canonical_csr(block, out_dtype)
    return np.asarray(block, dtype=out_dtype)


def _runtime(runtime: Runtime | None, X: Any) -> Runtime:
    if runtime is not None:
        return runtime
    from dnmf.runtime import current

    return current()


def as_input_matrix(X: Any, *, chunks: Chunks = "auto", runtime: Runtime | None = None) -> InputMatrix:
    """Turn ``X`` into a chunked Dask array with NumPy or CSR blocks, without copying A more than needed.

    Parameters
    ----------
    X : ndarray, scipy sparse matrix or array, dask.array.Array or zarr.Array of shape (m, n)
        The matrix. Integer input becomes float64; float32 stays float32. Sparse input of any format becomes CSR
        blocks.
    chunks : "auto", int, tuple
        The block grid. ``"auto"`` follows :func:`default_grid`; Dask input keeps its own chunks unless ``chunks``
        is given.
    runtime : Runtime, optional
        Where the blocks of in-memory input are placed (:meth:`dnmf.core.seam.Runtime.place`); by default a Dask
        runtime (:func:`dnmf.runtime.current`), so that the result is a Dask array.

    Returns
    -------
    InputMatrix
    """
    runtime = _runtime(runtime, X)
    if isinstance(X, da.Array):
        _check_shape(X.shape)
        dtype = float_dtype(X.dtype)
        A = (X if isinstance(chunks, str) and chunks == "auto"
             else X.rechunk(resolve_chunks(chunks, X.shape, runtime.grid(X.shape, 0))))
        meta_is_sparse = sp.issparse(getattr(A, "_meta", None))
        if A.dtype != dtype or (meta_is_sparse and not yields_canonical_csr(A)):
            meta = sp.csr_matrix((0, 0), dtype=dtype) if meta_is_sparse else np.empty((0, 0), dtype=dtype)
            A = A.map_blocks(_as_csr_block, out_dtype=dtype, dtype=dtype, meta=meta, token="dnmf-input-cast")
        return InputMatrix(A, "dask")
    if is_zarr_array(X):
        _check_shape(X.shape)
        dtype = float_dtype(np.dtype(X.dtype))
        rows, cols = resolve_chunks(chunks, X.shape, runtime.grid(X.shape, nbytes_of(X)), multiple=tuple(X.chunks))
        A = da.from_zarr(X, chunks=(rows, cols), name=f"dnmf-read-{tokenize(X.store, X.path, rows, cols)}",
                         inline_array=True)
        if A.dtype != dtype:
            A = A.map_blocks(_as_csr_block, out_dtype=dtype, dtype=dtype, token="dnmf-input-cast",
                             meta=np.empty((0, 0), dtype=dtype))
        return InputMatrix(A, "zarr")
    if sp.issparse(X):
        _check_shape(X.shape)
        dtype = float_dtype(X.dtype)
        csr = canonical_csr(X, dtype)
        rows, cols = resolve_chunks(chunks, csr.shape, runtime.grid(csr.shape, nbytes_of(csr)))
        return InputMatrix(runtime.place(_split(csr, rows, cols), (rows, cols), dtype, True,
                                         lambda: tokenize(csr.data, csr.indices, csr.indptr, csr.shape, rows, cols)),
                           "scipy")
    if isinstance(X, np.matrix):
        X = np.asarray(X)
    if not hasattr(X, "shape") or not hasattr(X, "dtype"):
        X = np.asarray(X)
    _check_shape(X.shape)
    dtype = float_dtype(np.dtype(X.dtype))
    dense = np.asarray(X, dtype=dtype)
    rows, cols = resolve_chunks(chunks, dense.shape, runtime.grid(dense.shape, nbytes_of(dense)))
    return InputMatrix(runtime.place(_split(dense, rows, cols), (rows, cols), dtype, False,
                                     lambda: tokenize(dense, rows, cols)), "numpy")


def is_zarr_array(X: Any) -> bool:
    try:
        import zarr
    except ImportError:  # pragma: no cover - zarr is a dependency
        return False
    return isinstance(X, zarr.Array)


def _block_span(chunks: tuple[tuple[int, ...], ...], i: int, j: int) -> str:
    r0, c0 = sum(chunks[0][:i]), sum(chunks[1][:j])
    return f"block ({i}, {j}): rows {r0}–{r0 + chunks[0][i] - 1}, columns {c0}–{c0 + chunks[1][j] - 1}"


def matrix_stats(A: Any, *, what: str = "the input matrix", allow_nan: bool = False) -> MatrixStats:
    """Validate A in one pass (finite, non-negative) and return its statistics.

    ``allow_nan`` lets NaN through (they mark missing entries of a masked A); infinities are still rejected.

    Raises
    ------
    ValueError
        If A holds NaN or infinity, or a negative value; the message names the first block where it was found.
    """
    return stats_of_blocks(products.value(products.block_stats(A)), A.shape, A.chunks, what=what,
                           allow_nan=allow_nan)


def stats_of_blocks(per_block: np.ndarray, shape: tuple[int, int], chunks: Chunks, *, what: str,
                    allow_nan: bool) -> MatrixStats:
    """:class:`MatrixStats` from the per-block statistics of :func:`dnmf.core.products.block_stats`, after checking
    them as :func:`matrix_stats` does."""
    fields = dict(zip(products.STAT_FIELDS, np.moveaxis(per_block, -1, 0)))
    rejected = fields["n_nonfinite"] - (fields["n_nan"] if allow_nan else 0)
    bad = np.argwhere(rejected > 0)
    if len(bad):
        count = int(rejected.sum())
        fix = ("NMF needs finite values at observed entries." if allow_nan else
               "NMF needs finite values: pass missing='nan' (NaN missing; a sparse X's unstored entries stay "
               "zeros) or fit(X, mask=...) to treat entries as "
               "missing, or impute or drop them first.")
        raise ValueError(
            f"{what.capitalize()} contains {count} {'infinite' if allow_nan else 'NaN or infinite'} value(s), "
            f"first in {_block_span(chunks, *bad[0])}. {fix}"
        )
    negative = np.argwhere(fields["min"] < 0)
    if len(negative):
        raise ValueError(
            f"Negative values in {what} (smallest {fields['min'].min():g}, first in "
            f"{_block_span(chunks, *negative[0])}). NMF needs non-negative data: shift or clip it first."
        )
    return MatrixStats(
        sum=float(fields["sum"].sum()),
        norm_squared=float(fields["sum_squares"].sum()),
        nnz=int(fields["nnz"].sum()),
        shape=(int(shape[0]), int(shape[1])),
        min_stored=float(fields["min"].min()),
        n_stored=int(fields["n_stored"].sum()),
        n_nan=int(fields["n_nan"].sum()),
    )


#: Share of the cluster's memory (or this machine's available memory) that a persisted input may take.
PERSIST_MEMORY_FRACTION = 0.5


def estimated_nbytes(A: Any, nnz: int | None) -> int | None:
    """Bytes A takes in memory: dense size, or CSR arrays for sparse blocks with ``nnz`` non-zeros (None if
    ``nnz`` is not known)."""
    if is_sparse(A):
        return None if nnz is None else nnz * (A.dtype.itemsize + 8) + 8 * (A.shape[0] + 1) * A.numblocks[1]
    return int(A.size) * A.dtype.itemsize


def is_sparse(A: Any) -> bool:
    """A (a Dask array or blocks) has CSR blocks."""
    return bool(A.sparse) if is_blocks(A) else sp.issparse(getattr(A, "_meta", None))


def fits_in_memory(A: Any, nnz: int | None, runtime: Runtime) -> bool:
    """A may be held where ``runtime`` computes (see :data:`PERSIST_MEMORY_FRACTION`); False if its size is not
    known."""
    nbytes = estimated_nbytes(A, nnz)
    return nbytes is not None and nbytes <= runtime.total_memory * PERSIST_MEMORY_FRACTION


def needs_holding(matrix: InputMatrix, runtime: Runtime) -> bool:
    """Whether the input is not in memory where ``runtime`` computes already: a lazy (Dask, Zarr, masked) array,
    or dense blocks, which are held as aligned copies. Sparse NumPy/SciPy input scattered to a cluster, and blocks
    the in-process runtime placed, are held as they are."""
    if is_blocks(matrix.array):
        return False
    return matrix.returns_dask or matrix.masked or runtime.name == "in-process" or not is_sparse(matrix.array)


def as_held(array: Any) -> Any:
    """What is held of ``array``: its blocks, dense ones as aligned copies (see :func:`dnmf.core.alignment.aligned`),
    made where the blocks lie: copies of a placed input keep its name (:data:`dnmf.core.grid.PLACED_INPUT`)."""
    if is_sparse(array):
        return array
    token = f"{PLACED_INPUT}-aligned" if array.name.startswith(f"{PLACED_INPUT}-") else "dnmf-input-aligned"
    return array.map_blocks(products.aligned, dtype=array.dtype, token=token)


def persist_input(matrix: InputMatrix, stats: MatrixStats, runtime: Runtime) -> InputMatrix:
    """Hold the input where ``runtime`` computes, when it fits in :data:`PERSIST_MEMORY_FRACTION` of its memory.

    Each iteration reads A twice; an input left lazy is recomputed (or re-read from its store) every time, which
    is what out-of-core inputs need and what in-memory ones should avoid. Dense blocks are held as aligned
    copies (see :func:`dnmf.core.alignment.aligned`), so the products need not copy them every iteration; sparse
    NumPy and SciPy inputs, and blocks the in-process runtime placed, are in memory already.
    """
    array = matrix.array
    if not needs_holding(matrix, runtime):
        return matrix
    if not fits_in_memory(array, stats.nnz, runtime):
        if runtime.name == "in-process":
            raise MemoryError(f"The input takes about {estimated_nbytes(array, stats.nnz) / 2**30:.1f} GiB, more than "
                              "half of this machine's available memory: fit it with the Dask executor "
                              "(dask.config.set({'dnmf.executor': 'dask'})), which streams it from its store.")
        return replace(matrix, array=array, streamed=matrix.returns_dask)
    if matrix.returns_dask:
        graph.count_pass()  # a lazy input is read from its source once more to be held
    return replace(matrix, array=runtime.hold(as_held(array)))
