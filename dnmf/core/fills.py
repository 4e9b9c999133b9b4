"""Blocks with their unobserved entries filled: the EM step's kernels, and the fills the exact masked products use.

A masked block's unobserved entries are given by a CSR ``unobserved`` pattern (its NaN; see
:mod:`dnmf.core.divergence` for the kinds of block). A dense block is filled one cached row tile at a time, never
copied whole; a holed CSR block is filled in a copy of its values, keeping its pattern. Pure NumPy/SciPy, one block
at a time; :mod:`dnmf.core.imputation` is the objective built on them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

from dnmf.core.alignment import aligned, empty_aligned
from dnmf.core.divergence import sampled_product

__all__ = ["DENSE_PREDICTION_SHARE", "FILL_TILE_BYTES", "filled_block", "filled_times", "flat_positions",
           "imputed_aht_block", "imputed_block", "imputed_cross_inner_block", "imputed_wta_block", "nan_pattern",
           "predictions_at", "times_filled"]


#: :func:`predictions_at` forms ``W_i H_j`` whole (one BLAS product, then a gather) for a pattern that stores at
#: least this share of its block; a sparser one is sampled entry by entry (:func:`sampled_product`), which costs
#: O(nnz · k) but several times as much per entry.
DENSE_PREDICTION_SHARE = 1 / 32


def flat_positions(pattern: sp.csr_matrix) -> np.ndarray:
    """The row-major linear indices of the stored entries of the CSR ``pattern`` in a dense block of its shape,
    in their stored order."""
    rows = np.repeat(np.arange(pattern.shape[0], dtype=np.int64), np.diff(pattern.indptr))
    return rows * pattern.shape[1] + pattern.indices


#: Bytes of one row tile of a filled block (:func:`filled_times`, :func:`times_filled`) or of ``W_i H_j``
#: (:func:`predictions_at`): small enough to stay in cache from its fill to its use, so that a filled copy costs
#: little more than reading the block.
FILL_TILE_BYTES = 1 << 20


def _row_tiles(shape: tuple[int, int], itemsize: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of the row tiles of about :data:`FILL_TILE_BYTES` of a block of ``shape``."""
    m, n = shape
    rows = max(1, min(m, FILL_TILE_BYTES // max(1, n * itemsize)))
    for start in range(0, m, rows):
        yield start, min(m, start + rows)


def _tile_positions(pattern: sp.csr_matrix, start: int, stop: int) -> tuple[int, int, np.ndarray]:
    """The stored entries of rows ``start:stop`` of the CSR ``pattern``: their span ``first:last`` in its stored
    order, and their row-major linear indices in a dense tile of those rows."""
    indptr = pattern.indptr
    first, last = int(indptr[start]), int(indptr[stop])
    local_rows = np.repeat(np.arange(stop - start, dtype=np.int64), np.diff(indptr[start:stop + 1]))
    return first, last, local_rows * pattern.shape[1] + pattern.indices[first:last]


def predictions_at(pattern: sp.csr_matrix, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``(W_i H_j)`` at the stored positions of the CSR ``pattern``, in their order, in the factors' dtype: from
    ``W_i H_j`` formed one cached row tile at a time where the pattern is dense enough, else entry by entry."""
    dtype = np.result_type(w, h)
    w, h = aligned(w), aligned(h)
    if pattern.nnz == 0 or pattern.nnz < DENSE_PREDICTION_SHARE * pattern.shape[0] * pattern.shape[1]:
        return sampled_product(pattern, w, h, dtype=dtype)
    tiles = list(_row_tiles(pattern.shape, np.dtype(dtype).itemsize))
    buffer = empty_aligned((tiles[0][1], pattern.shape[1]), dtype)
    out = np.empty(pattern.nnz, dtype=dtype)
    for start, stop in tiles:
        first, last, positions = _tile_positions(pattern, start, stop)
        if last > first:
            tile = np.matmul(w[start:stop], h, out=buffer[: stop - start])
            out[first:last] = tile.reshape(-1)[positions]
    return out


def filled_block(a: np.ndarray, unobserved: sp.csr_matrix, values: np.ndarray | None = None) -> np.ndarray:
    """An aligned copy of the dense block ``a`` with ``values`` (in ``unobserved``'s stored order; 0 if None) at the
    entries of the CSR pattern ``unobserved`` (its NaN)."""
    filled = empty_aligned(a.shape, a.dtype)
    np.copyto(filled, a)
    filled.reshape(-1)[flat_positions(unobserved)] = 0 if values is None else values
    return filled


def _filled_row_tiles(a: np.ndarray, unobserved: sp.csr_matrix,
                      values: np.ndarray | None) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(start, stop, tile)`` over the row tiles of :func:`filled_block`'s result, each filled in one reused buffer
    of about :data:`FILL_TILE_BYTES`; a block not in row-major order is filled whole, as one tile."""
    if not a.flags.c_contiguous or a.shape[0] == 0:
        yield 0, a.shape[0], filled_block(a, unobserved, values)
        return
    tiles = list(_row_tiles(a.shape, a.itemsize))
    buffer = empty_aligned((tiles[0][1], a.shape[1]), a.dtype)
    for start, stop in tiles:
        tile = buffer[: stop - start]
        np.copyto(tile, a[start:stop])
        first, last, positions = _tile_positions(unobserved, start, stop)
        tile.reshape(-1)[positions] = 0 if values is None else values[first:last]
        yield start, stop, tile


def nan_pattern(a: sp.csr_matrix) -> sp.csr_matrix:
    """The 0/1 CSR pattern of the stored NaN of the CSR block ``a``, in ``a``'s stored order: the unobserved entries
    of a holed block (for a block with none, an empty pattern)."""
    missing = np.flatnonzero(np.isnan(a.data))
    indptr = np.searchsorted(missing, a.indptr).astype(np.int64)
    return sp.csr_matrix((np.ones(missing.size, dtype=a.dtype), np.take(a.indices, missing), indptr), shape=a.shape)


def _filled_sparse(a: sp.csr_matrix, unobserved: sp.csr_matrix, values: np.ndarray | None) -> sp.csr_matrix:
    """A holed CSR block with ``values`` (in ``unobserved``'s stored order, which is ``a``'s; 0 if None) in place of
    its NaN: :func:`filled_block` for a CSR block, which keeps its pattern."""
    a = sp.csr_matrix(a)
    missing = np.flatnonzero(np.isnan(a.data))  # an index assigns several times faster than a boolean mask
    if missing.size != unobserved.nnz:
        raise ValueError(f"The pattern of unobserved entries has {unobserved.nnz} entries, but this block stores "
                         f"{missing.size} NaN: it is not the block's nan_pattern.")
    data = np.array(a.data, copy=True)
    data[missing] = 0 if values is None else values
    return sp.csr_matrix((data, a.indices, a.indptr), shape=a.shape)


def filled_times(a: Any, unobserved: sp.csr_matrix, values: np.ndarray | None,
                 right: np.ndarray) -> np.ndarray:
    """``Ā @ right`` for :func:`filled_block`'s ``Ā``, formed one cached row tile at a time, never whole; for a
    holed CSR block, one sparse product of the block filled in place of its NaN."""
    if sp.issparse(a):
        return aligned(np.asarray(_filled_sparse(a, unobserved, values) @ right))
    out = empty_aligned((a.shape[0], right.shape[1]), np.result_type(a, right))
    for start, stop, tile in _filled_row_tiles(a, unobserved, values):
        np.matmul(tile, right, out=out[start:stop])
    return out


def times_filled(left: np.ndarray, a: Any, unobserved: sp.csr_matrix,
                 values: np.ndarray | None) -> np.ndarray:
    """``left @ Ā`` for :func:`filled_block`'s ``Ā``: the row tiles' products, added in row order (for a holed CSR
    block, one sparse product)."""
    if sp.issparse(a):
        return np.ascontiguousarray(np.asarray(_filled_sparse(a, unobserved, values).T @ left.T).T)
    out = np.zeros((left.shape[0], a.shape[1]), dtype=np.result_type(left, a))
    for start, stop, tile in _filled_row_tiles(a, unobserved, values):
        out += left[:, start:stop] @ tile
    return out


def imputed_block(a: np.ndarray, unobserved: sp.csr_matrix, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """An aligned copy of the dense block ``a`` with ``W_i H_j`` at the entries of ``unobserved`` (its NaN): the
    block an EM step fits (see :mod:`dnmf.core.imputation`)."""
    return filled_block(a, unobserved, predictions_at(unobserved, w, h))


def imputed_aht_block(a: np.ndarray, w: np.ndarray, h: np.ndarray, unobserved: sp.csr_matrix) -> np.ndarray:
    """The W-step's parts of an EM step on one block, ``(m_i, 1, k + 1)``: per row, the cross product ``Ā_ij H_jᵀ``
    of the block filled by ``(W_i, H_j)``, then the sum of the squares of what it filled in, which the masked loss
    at ``(W, H)`` needs (:func:`imputed_cross_inner_block`)."""
    h = aligned(h)
    predictions = predictions_at(unobserved, w, h)
    k = h.shape[0]
    parts = empty_aligned((a.shape[0], 1, k + 1), np.result_type(a, h))
    parts[:, 0, :k] = filled_times(a, unobserved, predictions, h.T)
    rows = np.repeat(np.arange(a.shape[0]), np.diff(unobserved.indptr))
    parts[:, 0, k] = np.bincount(rows, weights=np.square(predictions, dtype=np.float64), minlength=a.shape[0])
    return parts


def imputed_wta_block(w: np.ndarray, a: np.ndarray, h: np.ndarray, unobserved: sp.csr_matrix) -> np.ndarray:
    """``W_iᵀ Ā_ij``, ``(1, k, n_j)``: the H-step's cross product of the block filled by ``(W_i, H_j)``."""
    w = aligned(w)
    return times_filled(w.T, a, unobserved, predictions_at(unobserved, w, h))[None]


def imputed_cross_inner_block(parts: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``⟨ĀHᵀ, W⟩ − ½ Σ (WH)²`` over the unobserved entries of a row block, in float64, ``(1, 1)``, from the
    W-step's :func:`imputed_aht_block` parts at ``(W, H)`` (``Ā`` filled by them): the cross term that turns the
    trace identity into the masked loss there, ``‖M ⊙ (A − WH)‖² = ‖M ⊙ A‖² − 2·(this) + ⟨WᵀW, HHᵀ⟩``, since
    ``Ā`` equals ``WH`` at the unobserved entries."""
    k = w.shape[1]
    cross = float(np.sum(aligned(aligned(parts[:, :k]) * aligned(w)), dtype=np.float64))
    return np.array([[cross - 0.5 * float(np.sum(aligned(parts[:, k]), dtype=np.float64))]])
