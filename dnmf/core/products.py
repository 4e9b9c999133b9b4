"""All distributed linear algebra of dnmf.

Everything that moves data between blocks lives here. Arrays share one chunk grid:

* ``A`` (m × n) has ``p × q`` blocks ``A_ij``, each a NumPy array or a ``scipy.sparse.csr_matrix``;
* ``W`` (m × k) is row-aligned with A: chunks ``(A.chunks[0], (k,))``;
* ``H`` (k × n) is column-aligned with A: chunks ``((k,), A.chunks[1])``.

Each product is an explicit blockwise graph with a named layer (``dnmf-wta``, ``dnmf-aht``, ``dnmf-gram-w``, ...).
A partial product is formed where each ``A_ij`` lives, and only the small partial results travel to a tree sum, so
A is never copied, concatenated or brought to the client. The block kernels use nothing but ``@`` and ``.T``, which
NumPy, SciPy sparse and CuPy blocks all understand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np
import scipy.sparse as sp
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from dnmf.core import divergence
from dnmf.core.divergence import sampled_product

__all__ = [
    "ALIGNMENT",
    "SPLIT_EVERY",
    "aligned",
    "reread",
    "STAT_FIELDS",
    "aht",
    "beta_aht",
    "beta_divergence",
    "beta_wta",
    "block_stats",
    "frobenius_loss_squared",
    "gram_cols",
    "gram_rows",
    "inner",
    "map_cols",
    "map_rows",
    "reconstruct",
    "residual_norm_squared",
    "sampled_product",
    "sum_cols",
    "sum_rows",
    "wta",
]

#: Fan-in of the tree sums that combine partial products.
SPLIT_EVERY = 8

#: Byte boundary every dense operand of a BLAS call or reduction starts on (see :func:`aligned`).
ALIGNMENT = 64

#: The per-block statistics of :func:`block_stats`, in order.
STAT_FIELDS = ("sum", "sum_squares", "min", "n_nonfinite", "nnz", "n_nan", "n_stored")


def aligned(x: Any) -> Any:
    """``x`` itself if it is a NumPy array starting on an :data:`ALIGNMENT`-byte boundary, else an aligned
    contiguous copy; other blocks (sparse, CuPy) pass through.

    BLAS kernels and NumPy's SIMD reductions round differently depending on where their operands start, and a
    block deserialized on another worker (after a worker was lost, say) can start anywhere. Giving every dense
    operand the same alignment makes a recomputed block bitwise equal to the original, which is what lets a
    resumed or recovered run end exactly where an uninterrupted one would.
    """
    if not isinstance(x, np.ndarray) or x.ctypes.data % ALIGNMENT == 0:
        return x
    buffer = np.empty(x.nbytes + ALIGNMENT, dtype=np.uint8)
    offset = (-buffer.ctypes.data) % ALIGNMENT
    out = buffer[offset:offset + x.nbytes].view(x.dtype).reshape(x.shape)
    np.copyto(out, x)
    return out


def _wta_block(w: Any, a: Any) -> Any:
    return (aligned(a).T @ aligned(w)).T[None]


def _aht_block(a: Any, h: Any) -> Any:
    return (aligned(a) @ aligned(h).T)[:, None, :]


def _gram_rows_block(w: Any) -> Any:
    w = aligned(w)
    return (w.T @ w)[None]


def _gram_cols_block(h: Any) -> Any:
    h = aligned(h)
    return (h @ h.T)[:, :, None]


def _inner_block(f: Any, g: Any) -> Any:
    return np.sum(aligned(aligned(f) * aligned(g)), dtype=np.float64).reshape(1, 1)


def _flatten(blocks: Any) -> list[Any]:
    if isinstance(blocks, list):
        return [b for inner_blocks in blocks for b in _flatten(inner_blocks)]
    return [blocks]


def _sum_blocks(blocks: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Sum a (nested) list of equally shaped partial products along ``axis`` without concatenating them."""
    parts = _flatten(blocks)
    total = parts[0].sum(axis=axis, keepdims=True)
    for part in parts[1:]:
        total += part.sum(axis=axis, keepdims=True)
    return total if keepdims else total.squeeze(axis=axis)


def _tree_sum(stack: da.Array, axis: int, name: str) -> da.Array:
    return da.reduction(
        stack,
        chunk=_sum_blocks,
        combine=_sum_blocks,
        aggregate=_sum_blocks,
        axis=axis,
        dtype=stack.dtype,
        split_every=SPLIT_EVERY,
        concatenate=False,
        name=name,
        meta=np.empty((0,) * (stack.ndim - 1), dtype=stack.dtype),
    )


def _check_rows_aligned(A: da.Array, W: da.Array) -> None:
    if W.chunks[0] != A.chunks[0] or W.numblocks[1] != 1:
        raise ValueError(
            f"W's chunks {W.chunks} are not row-aligned with A's chunks {A.chunks}: "
            f"rechunk W with W.rechunk(({A.chunks[0]}, -1))."
        )


def _check_cols_aligned(A: da.Array, H: da.Array) -> None:
    if H.chunks[1] != A.chunks[1] or H.numblocks[0] != 1:
        raise ValueError(
            f"H's chunks {H.chunks} are not column-aligned with A's chunks {A.chunks}: "
            f"rechunk H with H.rechunk((-1, {A.chunks[1]}))."
        )


def _result_dtype(*arrays: da.Array) -> np.dtype:
    return np.result_type(*(x.dtype for x in arrays))


def reread(A: da.Array, after: da.Array) -> da.Array:
    """A under keys of its own, whose blocks are read (or recomputed) only once ``after`` is computed.

    For an A streamed from its store, a second pass over A in the same graph would otherwise share the first
    pass's blocks, and hold every one of them in memory until the second pass ran; and reads that need not wait
    for anything would run ahead of the products that consume them. ``after`` is what the second pass waits for,
    e.g. ``WᵀW``, which exists only once every block of the new W does. Dask's ``bind`` adds one ``checkpoint``
    task, the only task of an iteration whose key is not dnmf's.
    """
    from dask.delayed import Delayed
    from dask.graph_manipulation import bind

    name = f"dnmf-barrier-{tokenize(A.name, after.name)}"
    first_block = (after.name, *(0,) * after.ndim)
    graph = HighLevelGraph.from_collections(name, {name: (_ready, first_block)}, dependencies=[after])
    return bind(A, Delayed(name, graph))


def _ready(block: Any) -> bool:
    return True


def wta(A: da.Array, W: da.Array) -> da.Array:
    """``WᵀA`` (k × n), column-aligned with A: block j is ``Σ_i W_iᵀ A_ij``."""
    _check_rows_aligned(A, W)
    dtype = _result_dtype(A, W)
    partials = da.blockwise(
        _wta_block, "iaj", W, "ia", A, "ij",
        adjust_chunks={"i": 1}, dtype=dtype, token="dnmf-wta-block",
        meta=np.empty((0, 0, 0), dtype=dtype),
    )
    return _tree_sum(partials, axis=0, name="dnmf-wta")


def aht(A: da.Array, H: da.Array) -> da.Array:
    """``AHᵀ`` (m × k), row-aligned with A: block i is ``Σ_j A_ij H_jᵀ``."""
    _check_cols_aligned(A, H)
    dtype = _result_dtype(A, H)
    partials = da.blockwise(
        _aht_block, "ija", A, "ij", H, "aj",
        adjust_chunks={"j": 1}, dtype=dtype, token="dnmf-aht-block",
        meta=np.empty((0, 0, 0), dtype=dtype),
    )
    return _tree_sum(partials, axis=1, name="dnmf-aht")


def gram_rows(W: da.Array, name: str = "dnmf-gram-w") -> da.Array:
    """``WᵀW`` (k × k) of a row-blocked factor, as one chunk."""
    k = W.shape[1]
    partials = da.blockwise(
        _gram_rows_block, "iab", W, "ia",
        new_axes={"b": k}, adjust_chunks={"i": 1}, dtype=W.dtype, token=f"{name}-block",
        meta=np.empty((0, 0, 0), dtype=W.dtype),
    )
    return _tree_sum(partials, axis=0, name=name)


def gram_cols(H: da.Array, name: str = "dnmf-gram-h") -> da.Array:
    """``HHᵀ`` (k × k) of a column-blocked factor, as one chunk."""
    k = H.shape[0]
    partials = da.blockwise(
        _gram_cols_block, "abj", H, "aj",
        new_axes={"b": k}, adjust_chunks={"j": 1}, dtype=H.dtype, token=f"{name}-block",
        meta=np.empty((0, 0, 0), dtype=H.dtype),
    )
    return _tree_sum(partials, axis=2, name=name)


def inner(F: da.Array, G: da.Array, name: str = "dnmf-inner") -> da.Array:
    """The Frobenius inner product ``⟨F, G⟩`` of two arrays on the same grid, as a float64 scalar."""
    if F.chunks != G.chunks:
        raise ValueError(f"inner() needs equal chunks, got {F.chunks} and {G.chunks}.")
    partials = da.blockwise(
        _inner_block, "ij", F, "ij", G, "ij",
        adjust_chunks={"i": 1, "j": 1}, dtype=np.float64, token=f"{name}-block",
        meta=np.empty((0, 0), dtype=np.float64),
    )
    return _tree_sum(_tree_sum(partials, axis=0, name=f"{name}-rows"), axis=0, name=name)


def _frobenius_loss_squared(cross_inner: Any, gram_w: Any, gram_h: Any, norm_squared_a: float) -> Any:
    gram_term = np.sum(aligned(gram_w.astype(np.float64) * gram_h.astype(np.float64)))
    return np.asarray(max(norm_squared_a - 2.0 * float(cross_inner) + float(gram_term), 0.0))


def frobenius_loss_squared(
    norm_squared_a: float, cross_inner: da.Array, gram_w: da.Array, gram_h: da.Array
) -> da.Array:
    """``‖A − WH‖²`` by the trace identity ``‖A‖² − 2⟨WᵀA, H⟩ + ⟨WᵀW, HHᵀ⟩``, never forming ``WH``.

    ``cross_inner`` is ``⟨WᵀA, H⟩`` (equivalently ``⟨AHᵀ, W⟩``) from :func:`inner`. The terms are combined in float64
    and the result is clipped at zero against rounding.
    """
    return da.blockwise(
        _frobenius_loss_squared, "", cross_inner, "", gram_w, "ab", gram_h, "ab",
        norm_squared_a=float(norm_squared_a), dtype=np.float64, token="dnmf-loss", concatenate=True,
        meta=np.empty((), dtype=np.float64),
    )


def _apply_kernel(block: Any, *args: Any, kernel: Callable[..., Any], **kwargs: Any) -> Any:
    return kernel(aligned(block), *(aligned(x) for x in args), **kwargs)


def map_rows(func: Callable[..., Any], W: da.Array, *row_aligned: da.Array, small: tuple[Any, ...] = (),
             name: str, dtype: Any = None, width: int | None = None, **kwargs: Any) -> da.Array:
    """Apply ``func(W_i, *row_blocks_i, *small, **kwargs)`` to every row block; the result is row-aligned with W.

    A row-aligned operand whose width is not W's (e.g. the ``(m, 2k)`` parts of :func:`beta_aht`) is passed whole
    along its columns; its column chunks must then be one.

    ``small`` holds k-sized operands (Dask arrays of one chunk, or NumPy arrays) passed whole to every task.
    ``width`` is the number of columns ``func`` returns, if not W's.
    """
    return _map_blocks(func, W, "ia", row_aligned, small, name, dtype, width, kwargs)


def map_cols(func: Callable[..., Any], H: da.Array, *col_aligned: da.Array, small: tuple[Any, ...] = (),
             name: str, dtype: Any = None, height: int | None = None, **kwargs: Any) -> da.Array:
    """Apply ``func(H_j, *col_blocks_j, *small, **kwargs)`` to every column block; the result is column-aligned.
    ``height`` is the number of rows ``func`` returns, if not H's."""
    return _map_blocks(func, H, "aj", col_aligned, small, name, dtype, height, kwargs)


def _map_blocks(func: Callable[..., Any], factor: da.Array, index: str, aligned: tuple[da.Array, ...],
                small: tuple[Any, ...], name: str, dtype: Any, components: int | None,
                kwargs: dict[str, Any]) -> da.Array:
    args: list[Any] = [factor, index]
    for position, x in enumerate(aligned):
        args += [x, index if x.shape[index.index("a")] == factor.shape[index.index("a")]
                 else index.replace("a", chr(ord("b") + position))]
    for position, x in enumerate(small):
        args += [x, _small_index(position, x.ndim) if isinstance(x, da.Array) else None]
    dtype = factor.dtype if dtype is None else np.dtype(dtype)
    return da.blockwise(
        _apply_kernel, index, *args, kernel=func, dtype=dtype, token=name, concatenate=True,
        adjust_chunks=None if components is None else {"a": components},
        meta=np.empty((0, 0), dtype=dtype), **kwargs,
    )


def _small_index(position: int, ndim: int) -> str:
    """Distinct contracted indices for the ``position``-th small operand (its single chunk is passed whole)."""
    return "".join(chr(ord("A") + 3 * position + d) for d in range(ndim))


def _residual_block(a: Any, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``‖A_ij − W_i H_j‖²`` in float64, touching only the stored entries of a sparse block."""
    w64, h64 = w.astype(np.float64), h.astype(np.float64)
    if sp.issparse(a):
        a = sp.csr_matrix(a)
        approx = sampled_product(a, w64, h64)
        on_support = np.sum(aligned((a.data - approx) ** 2)) - np.sum(aligned(approx**2))
        total = on_support + np.sum(aligned((w64.T @ w64) * (h64 @ h64.T)))
    else:
        total = np.sum(aligned((np.asarray(a, dtype=np.float64) - w64 @ h64) ** 2))
    return np.asarray(total).reshape(1, 1)


def residual_norm_squared(A: da.Array, W: da.Array, H: da.Array) -> da.Array:
    """``‖A − WH‖²`` accurate to float64 rounding, at one extra pass over A; never forms a dense ``WH`` for sparse
    blocks. The trace identity of :func:`frobenius_loss_squared` is free but loses accuracy in float32 once
    ``‖A − WH‖ / ‖A‖`` nears ``sqrt(eps)``; this is the exact figure for the end of a fit."""
    _check_rows_aligned(A, W)
    _check_cols_aligned(A, H)
    partials = da.blockwise(
        _residual_block, "ij", A, "ij", W, "ia", H, "aj",
        concatenate=True, dtype=np.float64, token="dnmf-residual-block", meta=np.empty((0, 0), dtype=np.float64),
    )
    return _tree_sum(_tree_sum(partials, axis=0, name="dnmf-residual-rows"), axis=0, name="dnmf-residual")


def _sum_rows_block(w: Any) -> Any:
    return w.sum(axis=0)[None]


def _sum_cols_block(h: Any) -> Any:
    return h.sum(axis=1)[:, None]


def sum_rows(W: da.Array, name: str = "dnmf-sum-w") -> da.Array:
    """``Σ_i W_i`` summed over rows: the column sums of a row-blocked factor, shape (k,), one chunk."""
    partials = da.blockwise(_sum_rows_block, "ia", W, "ia", adjust_chunks={"i": 1}, dtype=W.dtype,
                            token=f"{name}-block", meta=np.empty((0, 0), dtype=W.dtype))
    return _tree_sum(partials, axis=0, name=name)


def sum_cols(H: da.Array, name: str = "dnmf-sum-h") -> da.Array:
    """The row sums of a column-blocked factor, shape (k,), one chunk."""
    partials = da.blockwise(_sum_cols_block, "aj", H, "aj", adjust_chunks={"j": 1}, dtype=H.dtype,
                            token=f"{name}-block", meta=np.empty((0, 0), dtype=H.dtype))
    return _tree_sum(partials, axis=1, name=name)


def _gradient_width(k: int, beta: float, masked: bool) -> int:
    return k if divergence.rank_one_denominator(beta, masked) else 2 * k


def _beta_aht_block(a: Any, w: Any, h: Any, *, beta: float, masked: bool) -> Any:
    numerator, denominator = divergence.gradient_parts(a, aligned(w), aligned(h), beta=beta, masked=masked,
                                                       side="rows")
    parts = numerator if denominator is None else np.concatenate([numerator, denominator], axis=1)
    return np.asarray(parts)[:, None, :]


def _beta_wta_block(w: Any, a: Any, h: Any, *, beta: float, masked: bool) -> Any:
    numerator, denominator = divergence.gradient_parts(a, aligned(w), aligned(h), beta=beta, masked=masked,
                                                       side="cols")
    parts = numerator if denominator is None else np.concatenate([numerator, denominator], axis=0)
    return np.asarray(parts)[None]


def beta_aht(A: da.Array, W: da.Array, H: da.Array, *, beta: float, masked: bool = False) -> da.Array:
    """The W-step's gradient parts of ``D_β(A | WH)``, row-aligned with A: ``[numerator | denominator]``.

    Block i is ``Σ_j [(M ⊙ A ⊙ (WH)^(β−2)) H_jᵀ | (M ⊙ (WH)^(β−1)) H_jᵀ]`` restricted to row block i, of shape
    ``(m_i, 2k)``; for unmasked KL only the numerator, ``(m_i, k)`` (the denominator is :func:`sum_cols` of H).
    ``WH`` is formed at the stored positions of sparse blocks only (see :mod:`dnmf.core.divergence`).
    """
    _check_rows_aligned(A, W)
    _check_cols_aligned(A, H)
    dtype = _result_dtype(W, H)
    partials = da.blockwise(
        _beta_aht_block, "ija", A, "ij", W, "ia", H, "aj",
        adjust_chunks={"j": 1, "a": _gradient_width(W.shape[1], beta, masked)}, dtype=dtype,
        token="dnmf-aht-beta-block", concatenate=True, meta=np.empty((0, 0, 0), dtype=dtype),
        beta=float(beta), masked=masked,
    )
    return _tree_sum(partials, axis=1, name="dnmf-aht-beta")


def beta_wta(A: da.Array, W: da.Array, H: da.Array, *, beta: float, masked: bool = False) -> da.Array:
    """The H-step's gradient parts of ``D_β(A | WH)``, column-aligned with A: ``[numerator; denominator]``.

    Block j is ``Σ_i [W_iᵀ(M ⊙ A ⊙ (WH)^(β−2)); W_iᵀ(M ⊙ (WH)^(β−1))]`` of shape ``(2k, n_j)``; for unmasked KL
    only the numerator, ``(k, n_j)`` (the denominator is :func:`sum_rows` of W).
    """
    _check_rows_aligned(A, W)
    _check_cols_aligned(A, H)
    dtype = _result_dtype(W, H)
    partials = da.blockwise(
        _beta_wta_block, "iaj", W, "ia", A, "ij", H, "aj",
        adjust_chunks={"i": 1, "a": _gradient_width(W.shape[1], beta, masked)}, dtype=dtype,
        token="dnmf-wta-beta-block", concatenate=True, meta=np.empty((0, 0, 0), dtype=dtype),
        beta=float(beta), masked=masked,
    )
    return _tree_sum(partials, axis=0, name="dnmf-wta-beta")


def _divergence_block(a: Any, w: Any, h: Any, *, beta: float, masked: bool) -> np.ndarray:
    return np.asarray(divergence.divergence(a, w, h, beta=beta, masked=masked)).reshape(1, 1)


def _finish_divergence(total: Any) -> Any:
    return np.asarray(max(float(total), 0.0))


def beta_divergence(A: da.Array, W: da.Array, H: da.Array, *, beta: float, masked: bool = False,
                    name: str = "dnmf-loss-beta") -> da.Array:
    """``2·D_β(A | WH)`` as a float64 scalar, clipped at zero: its square root is scikit-learn's
    ``_beta_divergence(A, W, H, beta, square_root=True)``. With ``masked``, over the observed entries only (for
    β = 2, ``‖M ⊙ (A − WH)‖²``). One pass over A; sparse blocks cost O(nnz · k)."""
    _check_rows_aligned(A, W)
    _check_cols_aligned(A, H)
    partials = da.blockwise(
        _divergence_block, "ij", A, "ij", W, "ia", H, "aj",
        concatenate=True, dtype=np.float64, token=f"{name}-block", meta=np.empty((0, 0), dtype=np.float64),
        beta=float(beta), masked=masked,
    )
    total = _tree_sum(_tree_sum(partials, axis=0, name=f"{name}-rows"), axis=0, name=f"{name}-sum")
    return da.blockwise(_finish_divergence, "", total, "", dtype=np.float64, token=name,
                        meta=np.empty((), dtype=np.float64))


def _block_stats(block: Any) -> np.ndarray:
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


def block_stats(A: da.Array) -> da.Array:
    """Per-block statistics of A, one pass: a ``(p, q, 7)`` float64 array of :data:`STAT_FIELDS`.

    ``min`` is over the stored values (the implicit zeros of a sparse block are not included) and ignores
    non-finite values, which are counted separately (``n_nonfinite``, of which ``n_nan`` are NaN). ``n_stored`` is
    the number of stored values: the block's size if dense.
    """
    return da.blockwise(
        _block_stats, "ijs", A, "ij",
        new_axes={"s": len(STAT_FIELDS)}, adjust_chunks={"i": 1, "j": 1}, dtype=np.float64,
        token="dnmf-stats", meta=np.empty((0, 0, 0), dtype=np.float64),
    )


def _matmul(w: Any, h: Any) -> Any:
    return w @ h


def reconstruct(W: da.Array, H: da.Array) -> da.Array:
    """``WH`` (m × n, dense) on W's row blocks and H's column blocks; for ``inverse_transform`` only."""
    dtype = _result_dtype(W, H)
    return da.blockwise(_matmul, "ij", W, "ia", H, "aj", concatenate=True, dtype=dtype, token="dnmf-inverse",
                        meta=np.empty((0, 0), dtype=dtype))
