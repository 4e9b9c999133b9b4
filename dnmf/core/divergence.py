"""Block kernels of the β-divergence and of masked objectives: pure NumPy/SciPy, one block of A at a time.

:mod:`dnmf.core.products` turns these into distributed graphs; nothing here knows Dask. A block ``a`` is one of:

* a dense array: every entry observed; or, when ``masked``, NaN marks an unobserved entry;
* a CSR matrix: unstored entries are zeros of the data; or, when ``masked``, the stored pattern *is* the set of
  observed entries (explicit zeros included) and unstored entries are unobserved;
* a *holed* CSR matrix (``holes``, from ``missing='nan'`` on sparse X, and a rank survey's training input):
  unstored entries are observed zeros and stored NaN are the unobserved entries. The masked Frobenius kernels
  take its :func:`nan_pattern` as ``unobserved`` and treat it as they treat a dense block with NaN, at O(nnz)
  instead of O(block) per product; the β kernels (``holes``) take the whole block's terms less the holes'.

``WH`` is formed at the observed positions only of a CSR block, by :func:`sampled_product` (O(nnz · k)); a dense
``W_i H_j`` is formed only for dense blocks, where it is the size of the block itself. The one exception is an
unmasked sparse block with β ∉ {1, 2}: its loss and denominator need ``(WH)^(β−1)`` at every position, which is
computed in row batches of bounded memory (O(m·n·k) time, as in scikit-learn).

The conventions are scikit-learn's (``_multiplicative_update_w/_h`` and ``_beta_divergence``): ``WH`` is clipped
below at ``EPSILON`` where a negative power of it is taken, and data entries at or below ``EPSILON`` drop out of
the logarithmic and power terms of the loss.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

from dnmf.core.alignment import aligned, empty_aligned
from dnmf.core.rules.mu import EPSILON

__all__ = ["SAMPLED_BATCH", "DENSE_BATCH_ELEMENTS", "DENSE_PREDICTION_SHARE", "gradient_parts", "divergence",
           "FILL_TILE_BYTES", "filled_block", "filled_times", "flat_positions",
           "imputed_aht_block", "imputed_block", "imputed_cross_inner_block", "imputed_wta_block",
           "nan_pattern", "predictions_at", "sampled_product", "rank_one_denominator", "times_filled"]

#: Non-zeros handled at once by the sampled product, to bound its ``(batch, k)`` temporaries.
SAMPLED_BATCH = 1 << 16

#: Entries of ``W_b H_j`` formed at once when an unmasked sparse block needs ``WH`` everywhere.
DENSE_BATCH_ELEMENTS = 1 << 22


def sampled_product(a: sp.csr_matrix, w: np.ndarray, h: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
    """``(W_i H_j)`` at the stored positions of the CSR block ``a`` only, in ``a.data``'s order: O(nnz · k)."""
    rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
    w = np.ascontiguousarray(w, dtype=dtype)
    h_t = np.ascontiguousarray(h.T, dtype=dtype)
    out = np.empty(a.nnz, dtype=dtype)
    for start in range(0, a.nnz, SAMPLED_BATCH):
        stop = min(start + SAMPLED_BATCH, a.nnz)
        np.einsum("ij,ij->i", np.take(w, rows[start:stop], axis=0), np.take(h_t, a.indices[start:stop], axis=0),
                  out=out[start:stop])  # np.take gathers rows several times faster than fancy indexing
    return out


def rank_one_denominator(beta: float, masked: bool) -> bool:
    """Whether the denominator is the sums of the other factor (unmasked KL), needing no pass over A."""
    return beta == 1 and not masked


def _clip(values: np.ndarray) -> np.ndarray:
    return np.maximum(values, EPSILON)


def _ratio(x: np.ndarray, wh: np.ndarray, beta: float) -> np.ndarray:
    """``x ⊙ (WH)^(β−2)``, ``WH`` clipped at ``EPSILON`` for β < 2, with scikit-learn's operation order."""
    if beta < 2:
        wh = _clip(wh)
    if beta == 1:
        return x / wh
    if beta == 0:
        return x * (wh ** -1) ** 2
    if beta == 2:
        return np.array(x, copy=True)
    return x * wh ** (beta - 2)


def _weight(wh: np.ndarray, beta: float) -> np.ndarray:
    """``(WH)^(β−1)``, ``WH`` clipped at ``EPSILON`` for β < 1."""
    if beta == 2:
        return np.array(wh, copy=True)
    if beta < 1:
        wh = _clip(wh)
    return wh ** (beta - 1)


def _dense_weight_products(w: np.ndarray, h: np.ndarray, beta: float, side: str) -> np.ndarray:
    """``(W_i H_j)^(β−1) H_jᵀ`` (``side="rows"``) or ``W_iᵀ (W_i H_j)^(β−1)`` (``"cols"``), in row batches."""
    batch = max(1, DENSE_BATCH_ELEMENTS // max(1, h.shape[1]))
    parts = []
    total = np.zeros((w.shape[1], h.shape[1]), dtype=w.dtype) if side == "cols" else None
    for start in range(0, w.shape[0], batch):
        weight = _weight(w[start:start + batch] @ h, beta)
        if side == "rows":
            parts.append(weight @ h.T)
        else:
            total += w[start:start + batch].T @ weight
    return np.concatenate(parts, axis=0) if side == "rows" else total


def _sum_power_everywhere(w: np.ndarray, h: np.ndarray, beta: float) -> float:
    """``Σ (W_i H_j)^β`` over the whole block: from the factors' sums (β = 1) or Grams (β = 2, ``⟨W_iᵀW_i,
    H_j H_jᵀ⟩``) in O((m_i + n_j) k²), else in row batches of ``W_i H_j``."""
    if beta == 1:
        return float(w.sum(axis=0) @ h.sum(axis=1))
    if beta == 2:
        return float(np.sum((w.T @ w) * (h @ h.T)))
    batch = max(1, DENSE_BATCH_ELEMENTS // max(1, h.shape[1]))
    return float(sum(np.sum((w[start:start + batch] @ h) ** beta) for start in range(0, w.shape[0], batch)))


def _with_pattern(a: sp.csr_matrix, data: np.ndarray) -> sp.csr_matrix:
    return sp.csr_matrix((data, a.indices, a.indptr), shape=a.shape)


def product_at(a: Any, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``WH`` where :func:`gradient_parts` and :func:`divergence` evaluate it: dense for a dense block, at the
    stored entries (in CSR order) for a sparse one. Both take it as ``wh``, so that one pass forms it once."""
    dtype = np.result_type(w.dtype, h.dtype)
    if sp.issparse(a):
        return sampled_product(sp.csr_matrix(a), w, h, dtype=dtype)
    return w @ h


def _everywhere_weight_products(w: np.ndarray, h: np.ndarray, beta: float, side: str) -> np.ndarray:
    """:func:`_dense_weight_products` over the whole block, without forming ``W_i H_j`` where β = 1 (the other
    factor's sums) or β = 2 (``W_i (H_j H_jᵀ)`` or ``(W_iᵀ W_i) H_j``)."""
    if beta == 1:
        shape = (w.shape[0], h.shape[0]) if side == "rows" else (w.shape[1], h.shape[1])
        sums = h.sum(axis=1)[None, :] if side == "rows" else w.sum(axis=0)[:, None]
        return np.ascontiguousarray(np.broadcast_to(sums, shape))
    if beta == 2:
        return w @ (h @ h.T) if side == "rows" else (w.T @ w) @ h
    return _dense_weight_products(w, h, beta, side)


def gradient_parts(a: Any, w: np.ndarray, h: np.ndarray, *, beta: float, masked: bool,
                   side: str, wh: np.ndarray | None = None, holes: bool = False) -> tuple[Any, Any]:
    """The numerator and denominator partial products of one block for the W-step (``side="rows"``) or the
    H-step (``side="cols"``).

    Returns
    -------
    numerator : ndarray
        ``(M ⊙ A ⊙ (WH)^(β−2)) H_jᵀ`` of shape (m_i, k) for rows, ``W_iᵀ (...)`` of shape (k, n_j) for cols.
    denominator : ndarray or None
        ``(M ⊙ (WH)^(β−1)) H_jᵀ`` or ``W_iᵀ (...)``; None when :func:`rank_one_denominator`.

    ``wh`` is :func:`product_at` of the block, if the caller has it already. ``holes``: a masked CSR block is
    holed (see the module's notes); its denominator is the whole block's less its holes'.
    """
    dtype = np.result_type(w.dtype, h.dtype)

    def project(weights: Any) -> Any:
        return weights @ h.T if side == "rows" else (weights.T @ w).T

    if sp.issparse(a):
        a = sp.csr_matrix(a)
        wh = product_at(a, w, h) if wh is None else wh
        x = a.data.astype(dtype, copy=False)
        if masked and holes:
            observed = ~np.isnan(x)
            numerator = project(_with_pattern(a, _ratio(np.where(observed, x, 0), wh, beta)))
            hole_weight = np.where(observed, 0, 1 if beta == 1 else _weight(wh, beta)).astype(dtype, copy=False)
            return numerator, _everywhere_weight_products(w, h, beta, side) - project(_with_pattern(a, hole_weight))
        numerator = project(_with_pattern(a, _ratio(x, wh, beta)))
        if rank_one_denominator(beta, masked):
            return numerator, None
        if masked:
            weight = np.ones_like(wh) if beta == 1 else _weight(wh, beta)
            return numerator, project(_with_pattern(a, weight))
        return numerator, _dense_weight_products(w, h, beta, side)
    wh = product_at(a, w, h) if wh is None else wh
    if masked:
        observed = ~np.isnan(a)
        x = np.where(observed, a, 0.0).astype(dtype, copy=False)
    else:
        observed, x = None, a
    numerator = project(_ratio(x, wh, beta) if observed is None else _ratio(x, wh, beta) * observed)
    if rank_one_denominator(beta, masked):
        return numerator, None
    if beta == 1:
        weight = observed.astype(dtype)
    else:
        weight = _weight(wh, beta)
        if observed is not None:
            weight *= observed
    return numerator, project(weight)


def divergence(a: Any, w: np.ndarray, h: np.ndarray, *, beta: float, masked: bool,
               wh: np.ndarray | None = None, holes: bool = False) -> float:
    """This block's share of ``2·D_β(A | WH)`` (of ``‖M ⊙ (A − WH)‖²`` for β = 2).

    ``D_β`` is scikit-learn's ``_beta_divergence``; over observed entries only when ``masked``. Summed over blocks
    and square-rooted, it is scikit-learn's ``_beta_divergence(..., square_root=True)``. Entries are evaluated in
    the factors' precision and summed in float64. ``wh`` is :func:`product_at` of the block, if the caller has it
    already. ``holes``: a masked CSR block is holed (see the module's notes).
    """
    wh = product_at(a, w, h) if wh is None else wh
    hole_wh = None
    if sp.issparse(a) and masked and holes:
        a = sp.csr_matrix(a)
        observed = ~np.isnan(a.data)
        x, hole_wh, wh = a.data[observed], wh[~observed], wh[observed]
        count, everywhere = a.shape[0] * a.shape[1] - hole_wh.size, (w, h)
    elif sp.issparse(a):
        a = sp.csr_matrix(a)
        x = a.data
        count = a.nnz if masked else a.shape[0] * a.shape[1]
        everywhere = None if masked else (w, h)
    elif masked:
        observed = ~np.isnan(a)
        x, wh = a[observed], wh[observed]
        count, everywhere = x.size, None
    else:
        x, wh = np.asarray(a).ravel(), wh.ravel()
        count, everywhere = x.size, None

    def total(values: np.ndarray) -> float:
        return float(np.sum(aligned(values), dtype=np.float64))

    def sum_power(power: float) -> float:
        if everywhere is None:
            return total(wh**power)
        whole = _sum_power_everywhere(*(f.astype(np.float64) for f in everywhere), power)
        return whole if hole_wh is None else whole - total(hole_wh.astype(np.float64) ** power)

    if beta == 2:
        on_support = total((x - wh) ** 2)
        return on_support if everywhere is None else on_support - total(wh**2) + sum_power(2.0)
    keep = x > EPSILON
    x, wh_kept = x[keep], _clip(wh[keep])
    if beta == 1:
        result = total(x * np.log(x / wh_kept)) - total(x) + sum_power(1.0)
    elif beta == 0:
        ratio = x / wh_kept
        result = total(ratio) - count - total(np.log(ratio))
    else:
        result = (total(x**beta) - beta * total(x * wh_kept ** (beta - 1))
                  + (beta - 1) * sum_power(beta)) / (beta * (beta - 1))
    return 2.0 * result


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
