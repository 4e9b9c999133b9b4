"""Input matrices: NumPy, SciPy sparse, Dask and Zarr input as one chunked Dask array, validated in one pass.

Blocks of the resulting array are NumPy arrays or ``scipy.sparse.csr_matrix``. Default chunking aims at about
:data:`TARGET_BLOCK_BYTES` per block and at least as many blocks along each axis as there are workers, because
parallelism comes from the number of blocks (workers run single-threaded BLAS).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
import scipy.sparse as sp
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from dnmf.core import products
from dnmf.data.sparse import canonical_csr
from dnmf.runtime.client import active_client, cluster_memory, n_workers, worker_memory

__all__ = [
    "STRIP_MEMORY_FRACTION",
    "TARGET_BLOCK_BYTES",
    "InputMatrix",
    "MatrixStats",
    "as_input_matrix",
    "default_grid",
    "even_chunks",
    "fingerprint",
    "matrix_stats",
    "mask_input",
    "n_observed",
    "persist_input",
    "zero_filled",
]

#: The block size default chunking aims for (bytes of a dense block, or of a CSR block's arrays).
TARGET_BLOCK_BYTES = 64 * 2**20

Chunks = Literal["auto"] | tuple[Any, Any] | int

InputKind = Literal["numpy", "scipy", "dask", "zarr"]


@dataclass(frozen=True)
class InputMatrix:
    """A validated input: the chunked array, and what kind of object the user passed in."""

    array: da.Array
    kind: InputKind
    #: The blocks carry an observation mask: NaN marks an unobserved entry of a dense block, and the stored
    #: pattern of a CSR block is the set of observed entries (see :mod:`dnmf.core.divergence`).
    masked: bool = False
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


def _float_dtype(dtype: np.dtype) -> np.dtype:
    if dtype in (np.float32, np.float64):
        return np.dtype(dtype)
    if dtype.kind in "biuf":
        return np.dtype(np.float64)
    raise TypeError(f"NMF needs a real-valued matrix, got dtype {dtype}. Convert it with X.astype(np.float64).")


def _check_shape(shape: tuple[int, ...]) -> None:
    if len(shape) != 2:
        raise ValueError(
            f"Expected a 2-D matrix, got an array with {len(shape)} dimension(s) (shape {shape}). "
            "Reshape it, e.g. X.reshape(len(X), -1)."
        )
    if 0 in shape:
        raise ValueError(f"The input matrix is empty (shape {shape}); NMF needs at least one row and one column.")


#: A row strip (what one task reads from a sparse store) may take at most this share of a worker's memory.
STRIP_MEMORY_FRACTION = 1 / 8


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
    size = math.ceil(math.ceil(length / n_blocks) / multiple) * multiple
    return da.core.normalize_chunks(size, (length,))[0]


def _nbytes(X: Any) -> int:
    if sp.issparse(X):
        return int(X.nnz) * (X.dtype.itemsize + 4)
    return int(np.prod(X.shape)) * np.dtype(X.dtype).itemsize


def _resolve_chunks(chunks: Chunks, shape: tuple[int, int], nbytes: int,
                    multiple: tuple[int, int] = (1, 1)) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if isinstance(chunks, str) and chunks == "auto":
        p, q = default_grid(shape, nbytes, n_workers(), worker_memory())
        return even_chunks(shape[0], p, multiple[0]), even_chunks(shape[1], q, multiple[1])
    message = (f"Invalid chunks={chunks!r} for a matrix of shape {shape}: pass 'auto', a positive block size "
               "such as (10_000, 5_000), or explicit block lengths per axis.")
    try:
        rows, cols = da.core.normalize_chunks(chunks, shape)
    except (ValueError, TypeError, ZeroDivisionError) as error:
        raise ValueError(message) from error
    if min(rows + cols) < 1:
        raise ValueError(message)
    return rows, cols


def _split(X: Any, rows: tuple[int, ...], cols: tuple[int, ...]) -> dict[tuple[int, int], Any]:
    row_edges, col_edges = np.cumsum((0, *rows)), np.cumsum((0, *cols))
    blocks = {}
    for i in range(len(rows)):
        strip = X[row_edges[i]:row_edges[i + 1]]
        for j in range(len(cols)):
            block = strip[:, col_edges[j]:col_edges[j + 1]]
            blocks[i, j] = sp.csr_matrix(block) if sp.issparse(block) else block
    return blocks


def _owners(n_row_blocks: int, n_col_blocks: int, by_rows: bool, workers: list[str]) -> dict[tuple[int, int], str]:
    """The worker each block is scattered to: whole row strips per worker when ``by_rows`` (a matrix at least as
    tall as wide), else whole column strips. Every partial product of the larger factor's side is then summed
    where it was formed, and only the smaller side's partials cross the network."""
    strips = n_row_blocks if by_rows else n_col_blocks
    return {(i, j): workers[(i if by_rows else j) * len(workers) // strips]
            for i in range(n_row_blocks) for j in range(n_col_blocks)}


def _from_blocks(blocks: dict[tuple[int, int], Any], rows: tuple[int, ...], cols: tuple[int, ...],
                 dtype: np.dtype, sparse: bool, token: str) -> da.Array:
    """A Dask array over in-memory blocks: scattered to the workers when a client is active, else held in the graph.

    Scattered blocks get keys of their own per call (``dnmf-input-block-<token>-<uuid>-i-j``): a second fit on the
    same data must not reuse keys that the first one's futures are releasing, or its blocks vanish under it.
    """
    client = active_client()
    if client is not None:
        token = f"{token}-{uuid.uuid4().hex}"
        owners = _owners(len(rows), len(cols), sum(rows) >= sum(cols), sorted(client.scheduler_info()["workers"]))
        scattered = {}
        for worker in set(owners.values()):
            scattered.update(client.scatter({f"dnmf-input-block-{token}-{i}-{j}": block
                                             for (i, j), block in blocks.items() if owners[i, j] == worker},
                                            workers=[worker]))
        blocks = {(i, j): scattered[f"dnmf-input-block-{token}-{i}-{j}"] for i, j in blocks}
    name = f"dnmf-input-{token}"
    layer = {(name, i, j): value for (i, j), value in blocks.items()}
    graph = HighLevelGraph.from_collections(name, layer, dependencies=())
    meta = sp.csr_matrix((0, 0), dtype=dtype) if sparse else np.empty((0, 0), dtype=dtype)
    return da.Array(graph, name, chunks=(rows, cols), dtype=dtype, meta=meta)


def _as_csr_block(block: Any, out_dtype: np.dtype) -> Any:
    if sp.issparse(block):
        return canonical_csr(block, out_dtype)
    return np.asarray(block, dtype=out_dtype)


def as_input_matrix(X: Any, *, chunks: Chunks = "auto") -> InputMatrix:
    """Turn ``X`` into a chunked Dask array with NumPy or CSR blocks, without copying A more than needed.

    Parameters
    ----------
    X : ndarray, scipy sparse matrix or array, dask.array.Array or zarr.Array of shape (m, n)
        The matrix. Integer input becomes float64; float32 stays float32. Sparse input of any format becomes CSR
        blocks.
    chunks : "auto", int, tuple
        The block grid. ``"auto"`` follows :func:`default_grid`; Dask input keeps its own chunks unless ``chunks``
        is given.

    Returns
    -------
    InputMatrix
    """
    if isinstance(X, da.Array):
        _check_shape(X.shape)
        dtype = _float_dtype(X.dtype)
        A = X if isinstance(chunks, str) and chunks == "auto" else X.rechunk(_resolve_chunks(chunks, X.shape, 0))
        meta_is_sparse = sp.issparse(getattr(A, "_meta", None))
        if A.dtype != dtype or meta_is_sparse:
            meta = sp.csr_matrix((0, 0), dtype=dtype) if meta_is_sparse else np.empty((0, 0), dtype=dtype)
            A = A.map_blocks(_as_csr_block, out_dtype=dtype, dtype=dtype, meta=meta, token="dnmf-input-cast")
        return InputMatrix(A, "dask")
    if _is_zarr_array(X):
        _check_shape(X.shape)
        dtype = _float_dtype(np.dtype(X.dtype))
        rows, cols = _resolve_chunks(chunks, X.shape, _nbytes(X), multiple=tuple(X.chunks))
        A = da.from_zarr(X, chunks=(rows, cols), name=f"dnmf-read-{tokenize(X.store, X.path, rows, cols)}",
                         inline_array=True)
        if A.dtype != dtype:
            A = A.map_blocks(_as_csr_block, out_dtype=dtype, dtype=dtype, token="dnmf-input-cast",
                             meta=np.empty((0, 0), dtype=dtype))
        return InputMatrix(A, "zarr")
    if sp.issparse(X):
        _check_shape(X.shape)
        dtype = _float_dtype(X.dtype)
        csr = canonical_csr(X, dtype)
        rows, cols = _resolve_chunks(chunks, csr.shape, _nbytes(csr))
        token = tokenize(csr.data, csr.indices, csr.indptr, csr.shape, rows, cols)
        return InputMatrix(_from_blocks(_split(csr, rows, cols), rows, cols, dtype, True, token), "scipy")
    if isinstance(X, np.matrix):
        X = np.asarray(X)
    if not hasattr(X, "shape") or not hasattr(X, "dtype"):
        X = np.asarray(X)
    _check_shape(X.shape)
    dtype = _float_dtype(np.dtype(X.dtype))
    dense = np.asarray(X, dtype=dtype)
    rows, cols = _resolve_chunks(chunks, dense.shape, _nbytes(dense))
    token = tokenize(dense, rows, cols)
    return InputMatrix(_from_blocks(_split(dense, rows, cols), rows, cols, dtype, False, token), "numpy")


def _observed_values(a: Any, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    if sp.issparse(a):
        return np.asarray(sp.csr_matrix(a)[rows, cols]).ravel()
    return np.asarray(a)[rows, cols]


def _masked_block(a: Any, mask: Any, *, nan_is_missing: bool) -> Any:
    """One block of A with its mask applied: NaN at unobserved entries of a dense block, or, for a sparse mask, a
    CSR block storing A's values exactly at the observed entries (zeros included)."""
    if mask is None:
        return a
    if sp.issparse(mask):
        pattern = sp.csr_matrix(mask, copy=True)
        pattern.eliminate_zeros()
        rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
        values = _observed_values(a, rows, pattern.indices)
        missing = np.isnan(values)
        if missing.any():
            if not nan_is_missing:
                raise ValueError(_NAN_AT_OBSERVED)
            keep = ~missing
            return sp.coo_matrix((values[keep], (rows[keep], pattern.indices[keep])), shape=a.shape).tocsr()
        return sp.csr_matrix((values, pattern.indices, pattern.indptr), shape=a.shape)
    observed = np.asarray(mask) != 0
    dense = a.toarray() if sp.issparse(a) else np.array(a, copy=True)
    if not nan_is_missing and np.isnan(dense[observed]).any():
        raise ValueError(_NAN_AT_OBSERVED)
    dense[~observed] = np.nan
    return dense


_NAN_AT_OBSERVED = ("X holds NaN at entries the mask declares observed: pass missing='nan' to treat them as missing "
                    "too, or fix X.")


def mask_input(matrix: InputMatrix, mask: Any = None, *, nan_is_missing: bool = False) -> InputMatrix:
    """Attach an observation mask to an input matrix (see :attr:`InputMatrix.masked`).

    Parameters
    ----------
    matrix : InputMatrix
        The data, from :func:`as_input_matrix`.
    mask : array-like, sparse matrix or dask.array.Array of shape (m, n), optional
        Non-zero (True) where an entry is observed. A sparse mask gives CSR blocks with the mask's pattern, so
        every product costs O(nnz(mask) · k); a dense mask gives dense blocks with NaN at unobserved entries.
    nan_is_missing : bool
        Treat NaN in X as unobserved too (``missing='nan'``). Without a mask, only dense blocks can carry NaN.

    Returns
    -------
    InputMatrix
        ``masked=True`` unless there is neither a mask nor, with ``nan_is_missing``, a dense matrix.
    """
    A = matrix.array
    if mask is None:
        dense = not sp.issparse(getattr(A, "_meta", None))
        return InputMatrix(A, matrix.kind, masked=nan_is_missing and dense)
    if np.shape(mask) != A.shape:
        raise ValueError(f"The mask has shape {tuple(np.shape(mask))}, but X has shape {A.shape}: pass a mask of "
                         "the same shape, non-zero (True) where an entry is observed.")
    M = as_input_matrix(mask, chunks=A.chunks).array
    if M.chunks != A.chunks:
        M = M.rechunk(A.chunks)
    sparse_mask = sp.issparse(getattr(M, "_meta", None))
    meta = sp.csr_matrix((0, 0), dtype=A.dtype) if sparse_mask else np.empty((0, 0), dtype=A.dtype)
    masked = da.blockwise(_masked_block, "ij", A, "ij", M, "ij", nan_is_missing=nan_is_missing, dtype=A.dtype,
                          token="dnmf-input-mask", meta=meta)
    return InputMatrix(masked, matrix.kind, masked=True)


def _zero_missing(block: Any) -> Any:
    return block if sp.issparse(block) else np.nan_to_num(block, nan=0.0)


def zero_filled(matrix: InputMatrix) -> da.Array:
    """A masked matrix with its unobserved entries read as zeros (for initialisation); other matrices as they are."""
    if not matrix.masked:
        return matrix.array
    return matrix.array.map_blocks(_zero_missing, dtype=matrix.array.dtype, token="dnmf-input-zero-filled")


def n_observed(matrix: InputMatrix, stats: MatrixStats) -> int:
    """Entries observed: all of them, unless masked (stored entries of CSR blocks, non-NaN of dense ones)."""
    if not matrix.masked:
        return stats.shape[0] * stats.shape[1]
    return stats.n_stored - stats.n_nan


def _is_zarr_array(X: Any) -> bool:
    try:
        import zarr
    except ImportError:  # pragma: no cover - zarr is a dependency
        return False
    return isinstance(X, zarr.Array)


def _block_span(chunks: tuple[tuple[int, ...], ...], i: int, j: int) -> str:
    r0, c0 = sum(chunks[0][:i]), sum(chunks[1][:j])
    return f"block ({i}, {j}): rows {r0}–{r0 + chunks[0][i] - 1}, columns {c0}–{c0 + chunks[1][j] - 1}"


def matrix_stats(A: da.Array, *, what: str = "the input matrix", allow_nan: bool = False) -> MatrixStats:
    """Validate A in one pass (finite, non-negative) and return its statistics.

    ``allow_nan`` lets NaN through (they mark missing entries of a masked A); infinities are still rejected.

    Raises
    ------
    ValueError
        If A holds NaN or infinity, or a negative value; the message names the first block where it was found.
    """
    per_block = products.block_stats(A).compute()
    fields = dict(zip(products.STAT_FIELDS, np.moveaxis(per_block, -1, 0)))
    rejected = fields["n_nonfinite"] - (fields["n_nan"] if allow_nan else 0)
    bad = np.argwhere(rejected > 0)
    if len(bad):
        count = int(rejected.sum())
        fix = ("NMF needs finite values at observed entries." if allow_nan else
               "NMF needs finite values: pass missing='nan' (dense input) or fit(X, mask=...) to treat entries as "
               "missing, or impute or drop them first.")
        raise ValueError(
            f"{what.capitalize()} contains {count} {'infinite' if allow_nan else 'NaN or infinite'} value(s), "
            f"first in {_block_span(A.chunks, *bad[0])}. {fix}"
        )
    negative = np.argwhere(fields["min"] < 0)
    if len(negative):
        raise ValueError(
            f"Negative values in {what} (smallest {fields['min'].min():g}, first in "
            f"{_block_span(A.chunks, *negative[0])}). NMF needs non-negative data: shift or clip it first."
        )
    return MatrixStats(
        sum=float(fields["sum"].sum()),
        norm_squared=float(fields["sum_squares"].sum()),
        nnz=int(fields["nnz"].sum()),
        shape=(int(A.shape[0]), int(A.shape[1])),
        min_stored=float(fields["min"].min()),
        n_stored=int(fields["n_stored"].sum()),
        n_nan=int(fields["n_nan"].sum()),
    )


#: Share of the cluster's memory (or this machine's available memory) that a persisted input may take.
PERSIST_MEMORY_FRACTION = 0.5


def estimated_nbytes(A: da.Array, stats: MatrixStats) -> int:
    """Bytes A takes in memory: dense size, or CSR arrays for sparse blocks."""
    if sp.issparse(getattr(A, "_meta", None)):
        return stats.nnz * (A.dtype.itemsize + 8) + 8 * (A.shape[0] + 1) * A.numblocks[1]
    return int(A.size) * A.dtype.itemsize


def persist_input(matrix: InputMatrix, stats: MatrixStats) -> InputMatrix:
    """Hold the input in the cluster's memory when it fits in :data:`PERSIST_MEMORY_FRACTION` of it.

    Each iteration reads A twice; an input left lazy is recomputed (or re-read from its store) every time, which
    is what out-of-core inputs need and what in-memory ones should avoid. Dense blocks are held as aligned
    copies (see :func:`dnmf.core.products.aligned`), so the products need not copy them every iteration; sparse NumPy
    and SciPy inputs are in memory already.
    """
    array = matrix.array
    dense = not sp.issparse(getattr(array, "_meta", None))
    if not dense and not matrix.returns_dask and not matrix.masked:
        return matrix
    if estimated_nbytes(array, stats) > cluster_memory() * PERSIST_MEMORY_FRACTION:
        return InputMatrix(array, matrix.kind, matrix.masked, streamed=matrix.returns_dask)
    if dense:
        array = array.map_blocks(products.aligned, dtype=array.dtype, token="dnmf-input-aligned")
    (array,) = dask.persist(array)
    return InputMatrix(array, matrix.kind, matrix.masked)


def _block_digest(block: Any) -> np.ndarray:
    import hashlib

    digest = hashlib.sha256()
    if sp.issparse(block):
        csr = sp.csr_matrix(block)
        for part in (csr.data, csr.indices, csr.indptr):
            digest.update(np.ascontiguousarray(part).tobytes())
    else:
        digest.update(np.ascontiguousarray(block).tobytes())
    return np.array([digest.hexdigest()], dtype=object)


def fingerprint(A: da.Array, stats: MatrixStats) -> dict[str, Any]:
    """What identifies an input: shape, dtype, nnz, chunking, sum and squared norm (one pass, already done), and
    a SHA-256 of its first and last blocks."""
    name = f"dnmf-fingerprint-{tokenize(A.name)}"
    corners = {(name, 0): (_block_digest, (A.name, 0, 0)),
               (name, 1): (_block_digest, (A.name, A.numblocks[0] - 1, A.numblocks[1] - 1))}
    graph = HighLevelGraph.from_collections(name, corners, dependencies=[A])
    digests = da.Array(graph, name, chunks=((1, 1),), dtype=object, meta=np.empty((0,), dtype=object)).compute()
    return {
        "shape": list(stats.shape),
        "dtype": str(A.dtype),
        "nnz": stats.nnz,
        "chunks": [list(map(int, A.chunks[0])), list(map(int, A.chunks[1]))],
        "sum": stats.sum,
        "norm_squared": stats.norm_squared,
        "sample_sha256": [str(d) for d in digests],
    }
