"""The products of the β-divergence and masked objectives: gradient halves and the divergence itself.

Part of the products layer (:mod:`dnmf.core.products` re-exports them): explicit blockwise graphs on Dask arrays,
and the in-process versions of :mod:`dnmf.core.blocks` for blocks held in this process. ``WH`` is formed at the
stored positions of sparse blocks only (see :mod:`dnmf.core.divergence`).
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import scipy.sparse as sp

from dnmf.core import blocks, fills, graph, kernels
from dnmf.core.blocks import is_blocks

__all__ = ["beta_aht_and_divergence", "beta_divergence", "beta_wta", "imputed_aht", "imputed_cross_inner",
           "imputed_wta", "masked_aht", "masked_terms", "masked_wta", "unobserved"]


def beta_aht_and_divergence(A: da.Array, W: da.Array, H: da.Array, *, beta: float, masked: bool = False,
                            holes: bool = False) -> tuple[da.Array, da.Array]:
    """The W-step's gradient parts of ``D_β(A | WH)`` and ``2·D_β(A | WH)`` itself, at one pass over A.

    The parts are row-aligned with A, ``[numerator | denominator]``: block i is ``Σ_j [(M ⊙ A ⊙ (WH)^(β−2)) H_jᵀ |
    (M ⊙ (WH)^(β−1)) H_jᵀ]`` restricted to row block i, of shape ``(m_i, 2k)``; for unmasked KL only the
    numerator, ``(m_i, k)`` (the denominator is :func:`sum_cols` of H). Each block's task forms ``WH`` once for
    both (:func:`dnmf.core.kernels.beta_aht_loss_block`), at the stored positions of sparse blocks only (see
    :mod:`dnmf.core.divergence`), and the divergence is summed in :func:`beta_divergence`'s order, so the two give
    the same bits. ``holes``: A's masked CSR blocks are holed (see :mod:`dnmf.core.divergence`)."""
    graph.count_pass()
    if is_blocks(A):
        return blocks.beta_aht_and_divergence(A, W, H, beta=float(beta), masked=masked, holes=holes)
    graph.check_rows_aligned(A, W)
    graph.check_cols_aligned(A, H)
    dtype = graph.result_dtype(W, H)
    pairs = da.blockwise(
        kernels.beta_aht_loss_block, "ij", A, "ij", W, "ia", H, "aj", concatenate=True, dtype=object,
        token="dnmf-aht-beta-loss-block", meta=np.empty((0, 0), dtype=object), beta=float(beta), masked=masked,
        holes=holes,
    )
    partials = da.blockwise(
        kernels.first, "ija", pairs, "ij", new_axes={"a": kernels.gradient_width(W.shape[1], beta, masked)},
        adjust_chunks={"j": 1}, dtype=dtype, token="dnmf-aht-beta-block", meta=np.empty((0, 0, 0), dtype=dtype),
    )
    losses = da.blockwise(kernels.second, "ij", pairs, "ij", adjust_chunks={"i": 1, "j": 1}, dtype=np.float64,
                          token="dnmf-loss-beta-block", meta=np.empty((0, 0), dtype=np.float64))
    return graph.tree_sum(partials, axis=1, name="dnmf-aht-beta"), _divergence_total(losses, "dnmf-loss-beta")


def beta_wta(A: da.Array, W: da.Array, H: da.Array, *, beta: float, masked: bool = False,
             holes: bool = False) -> da.Array:
    """The H-step's gradient parts of ``D_β(A | WH)``, column-aligned with A: ``[numerator; denominator]``.

    Block j is ``Σ_i [W_iᵀ(M ⊙ A ⊙ (WH)^(β−2)); W_iᵀ(M ⊙ (WH)^(β−1))]`` of shape ``(2k, n_j)``; for unmasked KL
    only the numerator, ``(k, n_j)`` (the denominator is :func:`sum_rows` of W). ``holes`` as in
    :func:`beta_aht_and_divergence`.
    """
    graph.count_pass()
    if is_blocks(A):
        return blocks.beta_wta(A, W, H, beta=float(beta), masked=masked, holes=holes)
    graph.check_rows_aligned(A, W)
    graph.check_cols_aligned(A, H)
    dtype = graph.result_dtype(W, H)
    partials = da.blockwise(
        kernels.beta_wta_block, "iaj", W, "ia", A, "ij", H, "aj",
        adjust_chunks={"i": 1, "a": kernels.gradient_width(W.shape[1], beta, masked)}, dtype=dtype,
        token="dnmf-wta-beta-block", concatenate=True, meta=np.empty((0, 0, 0), dtype=dtype),
        beta=float(beta), masked=masked, holes=holes,
    )
    return graph.tree_sum(partials, axis=0, name="dnmf-wta-beta")


def beta_divergence(A: da.Array, W: da.Array, H: da.Array, *, beta: float, masked: bool = False,
                    name: str = "dnmf-loss-beta", holes: bool = False) -> da.Array:
    """``2·D_β(A | WH)`` as a float64 scalar, clipped at zero: its square root is scikit-learn's
    ``_beta_divergence(A, W, H, beta, square_root=True)``. With ``masked``, over the observed entries only (for
    β = 2, ``‖M ⊙ (A − WH)‖²``); ``holes``: A's masked CSR blocks are holed (see :mod:`dnmf.core.divergence`). One
    pass over A; sparse blocks cost O(nnz · k)."""
    graph.count_pass()
    if is_blocks(A):
        return blocks.beta_divergence(A, W, H, beta=float(beta), masked=masked, name=name, holes=holes)
    graph.check_rows_aligned(A, W)
    graph.check_cols_aligned(A, H)
    partials = da.blockwise(
        kernels.divergence_block, "ij", A, "ij", W, "ia", H, "aj",
        concatenate=True, dtype=np.float64, token=f"{name}-block", meta=np.empty((0, 0), dtype=np.float64),
        beta=float(beta), masked=masked, holes=holes,
    )
    return _divergence_total(partials, name)


def _divergence_total(partials: da.Array, name: str) -> da.Array:
    """The divergence from its ``(p, q)`` per-block shares: over rows, then over columns, clipped at zero."""
    total = graph.tree_sum(graph.tree_sum(partials, axis=0, name=f"{name}-rows"), axis=0, name=f"{name}-sum")
    return da.blockwise(kernels.finish_divergence, "", total, "", dtype=np.float64, token=name,
                        meta=np.empty((), dtype=np.float64))


def unobserved(A: da.Array) -> da.Array:
    """The 0/1 CSR pattern of the unobserved entries of a masked A, block by block on A's grid (see
    :func:`dnmf.core.kernels.unobserved_block`): what :func:`masked_aht` and :func:`masked_wta` take, so that a fit
    finds them once. One pass over A; about 12 bytes per unobserved entry."""
    graph.count_pass()
    if is_blocks(A):
        return blocks.unobserved(A)
    return A.map_blocks(kernels.unobserved_block, dtype=A.dtype, token="dnmf-unobserved",
                        meta=sp.csr_matrix((0, 0), dtype=A.dtype))


def masked_aht(A: da.Array, H: da.Array, unobserved: da.Array | None = None) -> da.Array:
    """The W-step's products of the masked Frobenius loss, row-aligned with A: ``(m, k + k²)``, per row of W its
    cross product over its observed entries and the Gram of H over them, flattened (see
    :func:`dnmf.core.kernels.masked_aht_block`). Costs ``(k + k²)`` floats per row of W. ``unobserved`` is
    :func:`unobserved` of A, if a caller keeps it."""
    graph.count_pass()
    k = H.shape[0]
    if is_blocks(A):
        return blocks.masked_aht(A, H, unobserved)
    graph.check_cols_aligned(A, H)
    pattern = () if unobserved is None else (unobserved, "ij")
    partials = da.blockwise(
        kernels.masked_aht_block, "ija", A, "ij", H, "aj", *pattern, adjust_chunks={"j": 1, "a": k + k * k},
        dtype=H.dtype, token="dnmf-aht-masked-block", concatenate=True, meta=np.empty((0, 0, 0), dtype=H.dtype),
    )
    return graph.tree_sum(partials, axis=1, name="dnmf-aht-masked")


def masked_wta(A: da.Array, W: da.Array, unobserved: da.Array | None = None) -> da.Array:
    """The H-step's products of the masked Frobenius loss, column-aligned with A: ``(k + k², n)``."""
    graph.count_pass()
    k = W.shape[1]
    if is_blocks(A):
        return blocks.masked_wta(A, W, unobserved)
    graph.check_rows_aligned(A, W)
    pattern = () if unobserved is None else (unobserved, "ij")
    partials = da.blockwise(
        kernels.masked_wta_block, "iaj", W, "ia", A, "ij", *pattern, adjust_chunks={"i": 1, "a": k + k * k},
        dtype=W.dtype, token="dnmf-wta-masked-block", concatenate=True, meta=np.empty((0, 0, 0), dtype=W.dtype),
    )
    return graph.tree_sum(partials, axis=0, name="dnmf-wta-masked")


def masked_terms(parts: da.Array, F: da.Array, *, by_rows: bool) -> da.Array:
    """``[cross, quadratic]``, float64: the terms of the masked loss from a step's products (:func:`masked_aht`
    with the new W if ``by_rows``, :func:`masked_wta` with the new H otherwise; see
    :func:`dnmf.core.kernels.masked_terms_block`). No pass over A."""
    if is_blocks(F):
        return blocks.masked_terms(parts, F, by_rows=by_rows)
    index, factor_index, blocked = ("is", "ia", "i") if by_rows else ("js", "aj", "j")
    partials = da.blockwise(
        kernels.masked_terms_block, index, parts, factor_index, F, factor_index.replace("a", "b"),
        new_axes={"s": 2}, adjust_chunks={blocked: 1}, concatenate=True, dtype=np.float64, by_rows=by_rows,
        token="dnmf-loss-masked-block", meta=np.empty((0, 0), dtype=np.float64),
    )
    return graph.tree_sum(partials, axis=0, name="dnmf-loss-masked")


def imputed_aht(A: da.Array, W: da.Array, H: da.Array, unobserved: da.Array) -> da.Array:
    """The W-step's parts of an EM step, ``(m, k + 1)``, row-aligned with A: ``ĀHᵀ``, ``Ā`` being A with ``WH`` at
    the entries of ``unobserved`` (:func:`unobserved` of A), then per row the sum of the squares of those fills
    (:func:`dnmf.core.fills.imputed_aht_block`; see :mod:`dnmf.core.imputation`)."""
    graph.count_pass()
    if is_blocks(A):
        return blocks.imputed_aht(A, W, H, unobserved)
    graph.check_rows_aligned(A, W)
    graph.check_cols_aligned(A, H)
    partials = da.blockwise(
        fills.imputed_aht_block, "ija", A, "ij", W, "ia", H, "aj", unobserved, "ij",
        adjust_chunks={"j": 1, "a": lambda k: k + 1}, dtype=H.dtype, token="dnmf-aht-imputed-block",
        concatenate=True, meta=np.empty((0, 0, 0), dtype=H.dtype),
    )
    return graph.tree_sum(partials, axis=1, name="dnmf-aht-imputed")


def imputed_wta(A: da.Array, W: da.Array, H: da.Array, unobserved: da.Array) -> da.Array:
    """``WᵀĀ`` (k × n), column-aligned with A, ``Ā`` filled by the new W and the H of the step before."""
    graph.count_pass()
    if is_blocks(A):
        return blocks.imputed_wta(A, W, H, unobserved)
    graph.check_rows_aligned(A, W)
    graph.check_cols_aligned(A, H)
    partials = da.blockwise(
        fills.imputed_wta_block, "iaj", W, "ia", A, "ij", H, "aj", unobserved, "ij", adjust_chunks={"i": 1},
        dtype=W.dtype, token="dnmf-wta-imputed-block", concatenate=True, meta=np.empty((0, 0, 0), dtype=W.dtype),
    )
    return graph.tree_sum(partials, axis=0, name="dnmf-wta-imputed")


def imputed_cross_inner(parts: da.Array, W: da.Array) -> da.Array:
    """The cross term of the masked loss at ``(W, H)`` from the W-step's :func:`imputed_aht` parts at them, a
    float64 scalar (:func:`dnmf.core.fills.imputed_cross_inner_block`): with it,
    :func:`dnmf.core.products.frobenius_loss_squared` is the masked loss, at no pass over A or its pattern."""
    if is_blocks(parts):
        return blocks.imputed_cross_inner(parts, W)
    graph.check_rows_aligned(parts, W)
    partials = da.blockwise(
        fills.imputed_cross_inner_block, "ij", parts, "ia", W, "ib", adjust_chunks={"i": 1}, new_axes={"j": 1},
        concatenate=True, dtype=np.float64, token="dnmf-loss-imputed-block", meta=np.empty((0, 0), dtype=np.float64),
    )
    return graph.tree_sum(graph.tree_sum(partials, axis=0, name="dnmf-loss-imputed-rows"), axis=0,
                          name="dnmf-loss-imputed")
