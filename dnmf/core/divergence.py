"""Block kernels of the β-divergence and of masked objectives: pure NumPy/SciPy, one block of A at a time.

:mod:`dnmf.core.products` turns these into distributed graphs; nothing here knows Dask. A block ``a`` is one of:

* a dense array: every entry observed; or, when ``masked``, NaN marks an unobserved entry;
* a CSR matrix: unstored entries are zeros of the data; or, when ``masked``, the stored pattern *is* the set of
  observed entries (explicit zeros included) and unstored entries are unobserved;
* a *holed* CSR matrix (``holes``, from ``missing='nan'`` on sparse X, and a rank survey's training input):
  unstored entries are observed zeros and stored NaN are the unobserved entries. The masked Frobenius kernels
  take its :func:`dnmf.core.fills.nan_pattern` as ``unobserved`` and treat it as they treat a dense block with
  NaN, at O(nnz) instead of O(block) per product; the β kernels (``holes``) take the whole block's terms less the
  holes'.

``WH`` is formed at the observed positions only of a CSR block, by :func:`sampled_product` (O(nnz · k)); a dense
``W_i H_j`` is formed only for dense blocks, where it is the size of the block itself. The one exception is an
unmasked sparse block with β ∉ {1, 2}: its loss and denominator need ``(WH)^(β−1)`` at every position, which is
computed in row batches of bounded memory (O(m·n·k) time, as in scikit-learn).

The conventions are scikit-learn's (``_multiplicative_update_w/_h`` and ``_beta_divergence``): ``WH`` is clipped
below at ``EPSILON`` where a negative power of it is taken, and data entries at or below ``EPSILON`` drop out of
the logarithmic and power terms of the loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from dnmf.core.alignment import aligned
from dnmf.core.rules.mu import EPSILON

__all__ = ["SAMPLED_BATCH", "DENSE_BATCH_ELEMENTS", "gradient_parts", "divergence", "product_at",
           "rank_one_denominator", "sampled_product"]

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
