"""Block kernels: the per-block arithmetic of every product, pure array code that never sees Dask.

Both ways of running a fit apply these same functions: :mod:`dnmf.core.products` places them in Dask graphs, and
:mod:`dnmf.core.blocks` calls them directly on blocks held in this process. A block is a NumPy array, a
``scipy.sparse.csr_matrix`` or any array-API array (CuPy, say); the dense kernels use ``@``, ``.T`` and the
functions of the factors' array namespace (:func:`dnmf.core.rules.namespace.array_namespace`), so they run on
whatever library holds the blocks. Sparse-specific code is confined to :func:`residual_block` and
:func:`block_stats` (SciPy; their ``cupyx.scipy.sparse`` variants belong there) and to :mod:`dnmf.core.divergence`
(NumPy/SciPy only for now). Partial products keep a leading (or middle) axis of length one, so that a tree sum
can add them up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from dnmf.core import divergence, fills
from dnmf.core.alignment import ALIGNMENT, address, aligned, empty_aligned
from dnmf.core.divergence import sampled_product
from dnmf.core.rules.namespace import array_namespace

__all__ = ["ALIGNMENT", "STAT_FIELDS", "address", "aht_block", "aligned", "empty_aligned", "apply_kernel",
           "beta_aht_block", "beta_aht_loss_block", "beta_wta_block", "first", "second", "block_stats",
           "divergence_block", "finish_divergence", "flatten", "frobenius_loss_block", "frobenius_rounding_block",
           "gradient_width", "gram_cols_block", "gram_rows_block", "inner_block", "masked_aht_block",
           "masked_terms_block", "masked_wta_block", "unobserved_block", "matmul", "pattern_grams", "residual_block",
           "sampled_product", "split_block", "sum_blocks", "sum_cols_block", "sum_rows_block", "tree_sum_parts",
           "wta_block", "aht_strip", "wta_strip", "wta_row_partial", "aht_col_partial", "part_of", "w_step_strip"]

#: The per-block statistics of :func:`block_stats`, in order.
STAT_FIELDS = ("sum", "sum_squares", "min", "n_nonfinite", "nnz", "n_nan", "n_stored")



def wta_block(w: Any, a: Any) -> Any:
    return (aligned(a).T @ aligned(w)).T[None, ...]


def aht_block(a: Any, h: Any) -> Any:
    return (aligned(a) @ aligned(h).T)[:, None, :]


def gram_rows_block(w: Any) -> Any:
    w = aligned(w)
    return (w.T @ w)[None, ...]


def gram_cols_block(h: Any) -> Any:
    h = aligned(h)
    return (h @ h.T)[:, :, None]


def inner_block(f: Any, g: Any) -> Any:
    xp = array_namespace(f, g)
    return xp.reshape(xp.sum(aligned(aligned(f) * aligned(g)), dtype=xp.float64), (1, 1))


def _gram_term(gram_w: Any, gram_h: Any) -> float:
    xp = array_namespace(gram_w, gram_h)
    return float(xp.sum(aligned(xp.astype(gram_w, xp.float64) * xp.astype(gram_h, xp.float64))))


def frobenius_loss_block(cross_inner: Any, gram_w: Any, gram_h: Any, norm_squared_a: float) -> Any:
    return np.asarray(max(norm_squared_a - 2.0 * float(cross_inner) + _gram_term(gram_w, gram_h), 0.0))


#: The rounding error of the trace identity is taken as this many units of roundoff of the products' dtype, times
#: the size of its terms: the Grams and cross products are sums of products formed in that dtype, and
#: ``‖A‖² − 2⟨WᵀA, H⟩ + ⟨WᵀW, HHᵀ⟩`` cancels them.
ROUNDING_UNITS = 4.0


def frobenius_rounding_block(cross_inner: Any, gram_w: Any, gram_h: Any, norm_squared_a: float) -> Any:
    """An estimate of the rounding error of :func:`frobenius_loss_block`'s ``‖A − WH‖²``, from the dtype of the
    factors and the sizes of the identity's terms (a float64 scalar)."""
    eps = float(array_namespace(gram_w).finfo(gram_w.dtype).eps)
    gram_term = abs(_gram_term(gram_w, gram_h))
    return np.asarray(ROUNDING_UNITS * eps * (norm_squared_a + 2.0 * abs(float(cross_inner)) + gram_term))


def residual_block(a: Any, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``‖A_ij − W_i H_j‖²`` in float64, touching only the stored entries of a sparse block.

    A dense block is subtracted entry by entry. A sparse one is ``‖A‖² − 2⟨A Hᵀ, W⟩ + ⟨WᵀW, HHᵀ⟩`` with every
    product in float64: ``WH`` at the stored entries, needed for ``⟨A, WH⟩``, comes from one compiled sparse ×
    dense product instead of gathering ``k`` values of each factor per stored entry (6× faster at ``k = 32``). It
    rounds like the direct sum of ``(a − wh)²`` over the stored entries minus ``(wh)²`` there plus ``‖WH‖²``: a
    float64 cancellation of ``‖A‖²``-sized terms either way.
    """
    w64, h64 = aligned(w.astype(np.float64)), aligned(h.astype(np.float64))
    if sp.issparse(a):
        a = sp.csr_matrix(a)
        a64 = sp.csr_matrix((a.data.astype(np.float64), a.indices, a.indptr), shape=a.shape)
        cross = np.sum(aligned(np.asarray(a64 @ h64.T)) * w64)
        total = np.sum(a64.data**2) - 2.0 * cross + np.sum(aligned((w64.T @ w64) * (h64 @ h64.T)))
    else:
        total = np.sum(aligned((np.asarray(a, dtype=np.float64) - w64 @ h64) ** 2))
    return np.asarray(total).reshape(1, 1)


def sum_rows_block(w: Any) -> Any:
    return array_namespace(w).sum(w, axis=0)[None, :]


def sum_cols_block(h: Any) -> Any:
    return array_namespace(h).sum(h, axis=1)[:, None]


def beta_aht_block(a: Any, w: Any, h: Any, *, beta: float, masked: bool, wh: Any = None,
                   holes: bool = False) -> Any:
    numerator, denominator = divergence.gradient_parts(a, aligned(w), aligned(h), beta=beta, masked=masked,
                                                       side="rows", wh=wh, holes=holes)
    parts = numerator if denominator is None else np.concatenate([numerator, denominator], axis=1)
    return np.asarray(parts)[:, None, :]


def beta_aht_loss_block(a: Any, w: Any, h: Any, *, beta: float, masked: bool,
                        holes: bool = False) -> tuple[Any, np.ndarray]:
    """:func:`beta_aht_block` and :func:`divergence_block` of one block from one ``WH``: the W-step's gradient
    parts and the divergence of the factors the step starts from, at one read of the block."""
    w, h = aligned(w), aligned(h)
    wh = divergence.product_at(a, w, h)
    return (beta_aht_block(a, w, h, beta=beta, masked=masked, wh=wh, holes=holes),
            np.asarray(divergence.divergence(a, w, h, beta=beta, masked=masked, wh=wh, holes=holes)).reshape(1, 1))


def first(pair: tuple[Any, Any]) -> Any:
    return pair[0]


def second(pair: tuple[Any, Any]) -> Any:
    return pair[1]


def beta_wta_block(w: Any, a: Any, h: Any, *, beta: float, masked: bool, holes: bool = False) -> Any:
    numerator, denominator = divergence.gradient_parts(a, aligned(w), aligned(h), beta=beta, masked=masked,
                                                       side="cols", holes=holes)
    parts = numerator if denominator is None else np.concatenate([numerator, denominator], axis=0)
    return np.asarray(parts)[None]


def divergence_block(a: Any, w: Any, h: Any, *, beta: float, masked: bool, holes: bool = False) -> np.ndarray:
    return np.asarray(divergence.divergence(a, aligned(w), aligned(h), beta=beta, masked=masked,
                                            holes=holes)).reshape(1, 1)


def finish_divergence(total: Any) -> Any:
    return np.asarray(max(float(total), 0.0))


def block_stats(block: Any) -> np.ndarray:
    values = block.data if sp.issparse(block) else np.asarray(block)
    finite = np.isfinite(values)
    n_nonfinite = values.size - int(np.count_nonzero(finite))
    clean = values if n_nonfinite == 0 else values[finite]
    stats = np.array([
        np.sum(clean, dtype=np.float64),
        np.sum(np.square(clean, dtype=np.float64)),
        float(clean.min()) if clean.size else np.inf,
        n_nonfinite,
        np.count_nonzero(values),
        0 if n_nonfinite == 0 else np.count_nonzero(np.isnan(values)),
        values.size,
    ])
    return stats.reshape(1, 1, len(STAT_FIELDS))


def matmul(w: Any, h: Any) -> Any:
    return w @ h


def apply_kernel(block: Any, *args: Any, kernel: Callable[..., Any], **kwargs: Any) -> Any:
    return kernel(aligned(block), *(aligned(x) for x in args), **kwargs)


def gradient_width(k: int, beta: float, masked: bool) -> int:
    return k if divergence.rank_one_denominator(beta, masked) else 2 * k


def flatten(blocks: Any) -> list[Any]:
    if isinstance(blocks, list):
        return [b for inner_blocks in blocks for b in flatten(inner_blocks)]
    return [blocks]


def sum_blocks(blocks: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Sum a (nested) list of equally shaped partial products along ``axis`` without concatenating them."""
    parts = flatten(blocks)
    xp = array_namespace(parts[0])
    total = xp.sum(parts[0], axis=axis, keepdims=True)
    for part in parts[1:]:
        total += xp.sum(part, axis=axis, keepdims=True)
    if keepdims:
        return total
    return xp.reshape(total, ()) if axis is None else xp.squeeze(total, axis=axis)


def tree_sum_parts(part: Callable[[int], Any], count: int, axis: int, split_every: int) -> Any:
    """The ``count`` partial products ``part(0)``, ``part(1)``, … summed along ``axis`` in the order of Dask's tree
    reduction with fan-in ``split_every`` (``dask.array.reduction`` with :func:`sum_blocks` at every level):
    consecutive groups added left to right, level by level, so that a strip task and the per-block graph it
    replaces give bitwise-equal sums. Parts are made as the sums need them, so that at most ``split_every`` of them
    per level are held at once."""
    depth = max(1, math.ceil(math.log(count, split_every)))

    def node(level: int, index: int) -> Any:
        if level == 0:
            return part(index)
        first = index * split_every
        below = math.ceil(count / split_every ** (level - 1))
        return sum_blocks([node(level - 1, child) for child in range(first, min(first + split_every, below))],
                          axis=(axis,), keepdims=True)

    top = math.ceil(count / split_every ** (depth - 1))
    return sum_blocks([node(depth - 1, index) for index in range(top)], axis=(axis,))


def aht_strip(a_blocks: list[Any], h_blocks: list[Any], split_every: int) -> Any:
    """``Σ_j A_ij H_jᵀ`` of one row strip of A, in one task (the strip's blocks live on one worker)."""
    return tree_sum_parts(lambda j: aht_block(a_blocks[j], h_blocks[j]), len(a_blocks), 1, split_every)


def wta_strip(w_blocks: list[Any], a_blocks: list[Any], split_every: int) -> Any:
    """``Σ_i W_iᵀ A_ij`` of one column strip of A, in one task (the strip's blocks live on one worker)."""
    return tree_sum_parts(lambda i: wta_block(w_blocks[i], a_blocks[i]), len(a_blocks), 0, split_every)


def wta_row_partial(w: Any, a_blocks: list[Any]) -> Any:
    """``W_iᵀ A_i·`` of one row strip, every column block's partial side by side: ``(1, k, n)``."""
    xp = array_namespace(w)
    return xp.concat([wta_block(w, a) for a in a_blocks], axis=2)


def aht_col_partial(a_blocks: list[Any], h: Any) -> Any:
    """``A_·j H_jᵀ`` of one column strip, every row block's partial stacked: ``(m, 1, k)``."""
    xp = array_namespace(h)
    return xp.concat([aht_block(a, h) for a in a_blocks], axis=0)


def w_step_strip(a_blocks: list[Any], h_blocks: list[Any], w: Any, small: list[Any], *,
                 update: Callable[..., Any], split_every: int) -> tuple[Any, list[Any], Any]:
    """A Frobenius W-step on one row strip of A and that strip's share of the next ``WᵀA``, in one task.

    Returns ``update(W_i, Σ_j A_ij H_jᵀ, *small)``, the partials ``W_newᵢᵀ A_ij`` of every column block (each as
    :func:`wta_block` makes it), and ``⟨A_i·Hᵀ, W_i⟩`` as :func:`inner_block` makes it: the loss of the incoming
    factors needs it. Operands are aligned as :func:`apply_kernel` aligns them, so the new rows are bitwise those
    of the per-block graph."""
    cross = aht_strip(a_blocks, h_blocks, split_every)
    w = aligned(w)
    updated = update(w, aligned(cross), *(aligned(x) for x in small))
    return updated, [wta_block(updated, a) for a in a_blocks], inner_block(cross, w)


def part_of(parts: tuple[Any, ...], index: int, item: int | None = None) -> Any:
    """``parts[index]``, or ``parts[index][item]``: one output of a task that makes several."""
    return parts[index] if item is None else parts[index][item]


def split_block(block: Any, axis: int, start: int, stop: int) -> Any:
    """``block[start:stop]`` along ``axis``, as a contiguous array of its own."""
    index = (slice(None),) * axis + (slice(start, stop),)
    return aligned(block[index])


#: Entries of the ``(columns, k²)`` outer products formed at once by :func:`pattern_grams`.
OUTER_BATCH_ELEMENTS = 1 << 22


def pattern_grams(pattern: sp.csr_matrix | sp.csc_matrix, f: np.ndarray) -> np.ndarray:
    """For every row ``r`` of the 0/1 ``pattern`` (``m_b × n_b``, CSR or CSC), ``Σ_{c stored in row r} f_c f_cᵀ``
    over the columns ``f_c`` of ``f`` (``k × n_b``), flattened: ``(m_b, k²)``. One sparse × dense product per batch
    of columns, so the cost is O(nnz(pattern) · k²). Only the upper triangle's ``k(k+1)/2`` sums are formed, then
    copied to both halves: ``f_s f_t`` and ``f_t f_s`` are the same products, so the result is bitwise the full
    product's."""
    k, n = f.shape
    if pattern.nnz == 0:
        return np.zeros((pattern.shape[0], k * k), dtype=f.dtype)
    upper, lower = np.triu_indices(k)
    place = np.empty((k, k), dtype=np.intp)
    place[upper, lower] = place[lower, upper] = np.arange(len(upper))
    step = max(1, OUTER_BATCH_ELEMENTS // len(upper))
    triangle = np.zeros((pattern.shape[0], len(upper)), dtype=f.dtype)
    for start in range(0, n, step):
        stop = min(n, start + step)
        columns = f[:, start:stop]
        triangle += np.asarray(pattern[:, start:stop] @ (columns[upper] * columns[lower]).T)
    return np.take(triangle, place.ravel(), axis=1)


def _pattern(marked: np.ndarray, dtype: Any) -> sp.csr_matrix:
    """The 0/1 CSR matrix of the ``True`` entries of ``marked``, built from their positions (a dense-to-sparse
    conversion of the whole block costs ten times as much); the same canonical CSR, so the same products."""
    rows, cols = np.nonzero(marked)
    indptr = np.zeros(marked.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=marked.shape[0]), out=indptr[1:])
    return sp.csr_matrix((np.ones(len(cols), dtype=dtype), cols, indptr), shape=marked.shape)


def unobserved_block(a: Any) -> sp.csr_matrix:
    """The 0/1 CSR pattern of a masked block's unobserved entries: its NaN, for a dense or a holed CSR block (see
    :mod:`dnmf.core.divergence`; none for a CSR block whose stored pattern is the observed set). A masked fit forms
    it once per block (:meth:`dnmf.core.objectives.MaskedFrobenius.prepare`) instead of finding the NaN again in
    every product."""
    if sp.issparse(a):
        return fills.nan_pattern(sp.csr_matrix(a))
    return _pattern(np.isnan(a), a.dtype)


def masked_aht_block(a: Any, h: np.ndarray, unobserved: sp.csr_matrix | None = None) -> np.ndarray:
    """The W-step's products of the masked Frobenius loss on one block, ``(m_b, 1, k + k²)``: per row, the cross
    product over its observed entries and the Gram of ``H_j`` over them (flattened).

    A dense block marks unobserved entries with NaN (``unobserved`` is their pattern, from
    :func:`unobserved_block`, found here if not given): its rows' Grams are ``H_j H_jᵀ`` less the outer products of
    the columns it hides, O(unobserved · k²); so does a holed CSR block, given its ``unobserved`` pattern. A CSR block
    given none is one whose stored pattern is the observed set: its rows' Grams sum the outer products of the
    columns it stores, O(nnz · k²)."""
    k, h = h.shape[0], aligned(h)
    parts = empty_aligned((a.shape[0], 1, k + k * k), h.dtype)
    cross, grams = parts[:, 0, :k], parts[:, 0, k:]
    if sp.issparse(a) and unobserved is None:
        a = sp.csr_matrix(a)
        cross[...] = a @ h.T
        grams[...] = pattern_grams(sp.csr_matrix((np.ones(a.nnz, dtype=h.dtype), a.indices, a.indptr),
                                                 shape=a.shape), h)
    else:
        unobserved = unobserved_block(a) if unobserved is None else unobserved
        cross[...] = fills.filled_times(a, unobserved, None, h.T)
        np.subtract((h @ h.T).reshape(1, k * k), pattern_grams(unobserved, h), out=grams)
    return parts


def masked_wta_block(w: np.ndarray, a: Any, unobserved: sp.csr_matrix | None = None) -> np.ndarray:
    """The H-step's products of the masked Frobenius loss on one block, ``(1, k + k², n_b)``: per column, the
    cross product and the Gram of ``W_i`` over its observed entries (see :func:`masked_aht_block`)."""
    if sp.issparse(a) and unobserved is None:
        return np.ascontiguousarray(masked_aht_block(a.T, np.ascontiguousarray(w.T))[:, 0, :].T)[None]
    k, w = w.shape[1], aligned(w)
    unobserved = unobserved_block(a) if unobserved is None else unobserved
    parts = empty_aligned((1, k + k * k, a.shape[1]), w.dtype)
    parts[0, :k] = fills.times_filled(w.T, a, unobserved, None)
    np.subtract((w.T @ w).reshape(k * k, 1), pattern_grams(unobserved.T, np.ascontiguousarray(w.T)).T,
                out=parts[0, k:])
    return parts


def masked_terms_block(parts: np.ndarray, f: np.ndarray, *, by_rows: bool) -> np.ndarray:
    """``[Σ_r c_rᵀ f_r, Σ_r f_rᵀ G_r f_r]`` in float64 over the problems of one block: the cross and quadratic
    terms of the masked loss ``‖M ⊙ A‖² − 2·cross + quadratic``, from the products the step was solved with and
    the factor it found (rows of W if ``by_rows``, else columns of H), shape ``(1, 2)``."""
    if not by_rows:
        parts, f = parts.T, f.T
    k = f.shape[1]
    f64 = f.astype(np.float64)
    cross = float(np.sum(parts[:, :k].astype(np.float64) * f64))
    grams = parts[:, k:].reshape(len(f), k, k).astype(np.float64)
    quadratic = float(np.einsum("ri,rij,rj->", f64, grams, f64))
    return np.array([[cross, quadratic]])
