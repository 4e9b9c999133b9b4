"""Initial factors: ``random``, ``nndsvd``, ``nndsvda``, ``nndsvdar`` and ``custom``, built on the cluster.

Random numbers are drawn per block, on the workers, from ``numpy.random.SeedSequence(entropy, spawn_key=...)``,
so an initialisation depends only on the seed and the chunk grid, never on scheduling. The scale follows
scikit-learn (``sqrt(mean(A) / k)`` for ``random``); the draws themselves differ from scikit-learn's, which come
from one sequential stream on one machine.

NNDSVD needs the leading singular triplets of A. They come from a randomized range finder (Halko, Martinsson and
Tropp, 2011) written with the same distributed products as the solvers, so sparse blocks are never densified.
"""

from __future__ import annotations

import uuid
from typing import Any

import dask
import dask.array as da
import numpy as np

from dnmf.core import products
from dnmf.core.blocks import Blocks, is_blocks
from dnmf.core.grid import PANEL_OVERSAMPLES
from dnmf.core.seam import Runtime

__all__ = [
    "INIT_METHODS",
    "POWER_ITERATIONS",
    "SMALL_INPUT_BYTES",
    "STREAMED_POWER_ITERATIONS",
    "constant_rows",
    "gaussian",
    "in_process_nndsvd",
    "initialize",
    "nndsvd",
    "power_iterations",
    "randomized_svd",
    "resolve_init",
]

INIT_METHODS = ("random", "nndsvd", "nndsvda", "nndsvdar", "custom")

#: Entries below this are set to zero after NNDSVD, as in scikit-learn.
NNDSVD_EPS = 1e-6

#: Independent random streams, one per use, so that no two draws share numbers.
_STREAM_W, _STREAM_H, _STREAM_SKETCH, _STREAM_FILL_W, _STREAM_FILL_H = range(5)


def resolve_init(init: str | None, n_components: int, shape: tuple[int, int]) -> str:
    """scikit-learn's rule: ``None`` means ``nndsvda`` when ``k ≤ min(m, n)``, else ``random``."""
    if init is None:
        return "nndsvda" if n_components <= min(shape) else "random"
    if init not in INIT_METHODS:
        raise ValueError(f"Unknown init {init!r}. Valid options are: None, {', '.join(map(repr, INIT_METHODS))}.")
    if init.startswith("nndsvd") and n_components > min(shape):
        raise ValueError(
            f"init = {init!r} can only be used when n_components <= min(n_samples, n_features) = {min(shape)}, "
            f"got n_components={n_components}. Use init='random' or fewer components."
        )
    return init


def _draws(shape: tuple[int, int], entropy: int, stream: int, block: int, blocked_axis: int) -> np.ndarray:
    """Standard normal draws for one block; column blocks are drawn row-major in their transposed layout."""
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(stream, block)))
    return rng.standard_normal(shape) if blocked_axis == 0 else rng.standard_normal(shape[::-1]).T


def _gaussian_block(*, entropy: int, stream: int, blocked_axis: int, scale: float | None, out_dtype: Any,
                    block_info: Any = None) -> np.ndarray:
    info = block_info[None]
    draws = _draws(tuple(info["chunk-shape"]), entropy, stream, info["chunk-location"][blocked_axis], blocked_axis)
    return draws if scale is None else np.abs(scale * draws).astype(out_dtype)


def gaussian(chunks: tuple[tuple[int, ...], tuple[int, ...]], blocked_axis: int, *, entropy: int, stream: int,
             scale: float | None, dtype: Any, name: str, like: Any = None) -> Any:
    """Per-block normal draws on a factor's grid: ``|scale · N(0, 1)|`` in ``dtype``, or raw float64 draws if
    ``scale`` is None; in-process blocks if ``like`` is :class:`~dnmf.core.blocks.Blocks`, else a Dask array."""
    dtype = np.dtype(np.float64 if scale is None else dtype)
    if is_blocks(like):
        return like.like([[_gaussian_block(entropy=entropy, stream=stream, blocked_axis=blocked_axis, scale=scale,
                                           out_dtype=dtype, block_info={None: {
                                               "chunk-shape": (rows, cols), "chunk-location": (i, j)}})
                           for j, cols in enumerate(chunks[1])] for i, rows in enumerate(chunks[0])], chunks)
    return da.map_blocks(
        _gaussian_block, chunks=chunks, dtype=dtype, meta=np.empty((0, 0), dtype=dtype), token=name,
        entropy=entropy, stream=stream, blocked_axis=blocked_axis, scale=scale, out_dtype=dtype,
    )


def _orthonormalizer(gram: np.ndarray) -> np.ndarray:
    """``T`` such that ``Y @ T`` has orthonormal columns when ``gram = YᵀY`` (directions of rank deficiency are
    dropped)."""
    eigenvalues, eigenvectors = np.linalg.eigh(gram.astype(np.float64))
    keep = eigenvalues > eigenvalues.max(initial=0.0) * len(eigenvalues) * np.finfo(np.float64).eps
    if not keep.any():
        return np.zeros((len(gram), 1))
    return eigenvectors[:, keep] / np.sqrt(eigenvalues[keep])


def _right_multiply(block: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return block @ matrix


def _left_multiply(block: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return matrix @ block


def _orthonormal_rows_factor(Y: da.Array) -> da.Array:
    """Orthonormalise the columns of a row-blocked ``(m, l)`` array by Gram eigen-decomposition, twice."""
    for _ in range(2):
        gram = products.value(products.gram_rows(Y, name="dnmf-init-gram"))
        transform = _orthonormalizer(gram)
        (Y,) = products.persist(products.map_rows(_right_multiply, Y, small=(transform,), name="dnmf-init-orth",
                                              width=transform.shape[1]))
    return Y


def _orthonormal_cols_factor(Z: da.Array) -> da.Array:
    """Orthonormalise the rows of a column-blocked ``(l, n)`` array, twice."""
    for _ in range(2):
        gram = products.value(products.gram_cols(Z, name="dnmf-init-gram"))
        transform = _orthonormalizer(gram)
        (Z,) = products.persist(products.map_cols(_left_multiply, Z, small=(transform.T,), name="dnmf-init-orth",
                                              height=transform.shape[1]))
    return Z


#: Below this size a pass over A takes milliseconds: NNDSVD then keeps scikit-learn's power iterations, and with
#: them scikit-learn's start (see :func:`power_iterations`).
SMALL_INPUT_BYTES = 16 * 2**20

#: Power iterations for larger inputs, and for inputs streamed from their store (every pass a full read).
POWER_ITERATIONS = 2
STREAMED_POWER_ITERATIONS = 1


def power_iterations(shape: tuple[int, int], k: int, *, nbytes: int | None = None, streamed: bool = False) -> int:
    """Power iterations of NNDSVD's randomized SVD; each costs two passes over A, and the range finder two more.

    The Dask configuration value ``dnmf.nndsvd-power-iterations`` sets the count if it is an integer. Otherwise
    (``"auto"``): scikit-learn's rule (7 when ``k < min(m, n) / 10``, else 4) for an input under
    :data:`SMALL_INPUT_BYTES`; :data:`POWER_ITERATIONS` (2) for a larger one held in memory, and
    :data:`STREAMED_POWER_ITERATIONS` (1) for one read from its store at every pass. Measured by
    ``benchmarks/power_iterations.py``: on no case did more power iterations reach a lower loss within the same
    time (initialisation included), and on dense planted data fewer reached a lower one.
    """
    setting = dask.config.get("dnmf.nndsvd-power-iterations", "auto")
    if setting != "auto":
        if isinstance(setting, bool) or not isinstance(setting, int) or setting < 0:
            raise ValueError(f"dnmf.nndsvd-power-iterations must be 'auto' or a non-negative integer, got "
                             f"{setting!r}.")
        return setting
    if streamed:
        return STREAMED_POWER_ITERATIONS
    if nbytes is not None and nbytes >= SMALL_INPUT_BYTES:
        return POWER_ITERATIONS
    return 7 if k < 0.1 * min(shape) else 4


def randomized_svd(A: da.Array, k: int, *, entropy: int, n_oversamples: int = PANEL_OVERSAMPLES,
                   n_iter: int | None = None) -> tuple[da.Array, np.ndarray, da.Array]:
    """The leading ``k`` singular triplets of a chunked A, in float64, by a randomized range finder.

    Every pass over A is one of :mod:`dnmf.core.products`' ``wta``/``aht`` products, so sparse blocks stay sparse.

    Returns
    -------
    U : dask.array.Array of shape (m, k), row-aligned with A
    S : ndarray of shape (k,), descending
    Vt : dask.array.Array of shape (k, n), column-aligned with A
    """
    m, n = A.shape
    width = min(k + n_oversamples, m, n)
    if n_iter is None:
        n_iter = power_iterations(A.shape, k)
    sketch = gaussian(((width,), A.chunks[1]), 1, entropy=entropy, stream=_STREAM_SKETCH, scale=None,
                      dtype=np.float64, name="dnmf-init-sketch", like=A)
    (Q,) = products.persist(products.aht(A, sketch))
    for _ in range(int(n_iter)):
        Q = _orthonormal_rows_factor(Q)
        (Z,) = products.persist(products.wta(A, Q))
        Z = _orthonormal_cols_factor(Z)
        (Q,) = products.persist(products.aht(A, Z))
    Q = _orthonormal_rows_factor(Q)
    (B,) = products.persist(products.wta(A, Q))
    gram = products.value(products.gram_cols(B, name="dnmf-init-gram"))
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    order = np.argsort(eigenvalues)[::-1][:k]
    singular_values = np.sqrt(np.clip(eigenvalues[order], 0.0, None))
    left = eigenvectors[:, order]
    inverse = np.divide(1.0, singular_values, out=np.zeros_like(singular_values), where=singular_values > 0)
    U = products.map_rows(_right_multiply, Q, small=(left,), name="dnmf-init-u", width=len(order))
    Vt = products.map_cols(_left_multiply, B, small=((left * inverse).T,), name="dnmf-init-vt", height=len(order))
    if len(order) < k:  # fewer directions than components: pad with zeros
        pad = k - len(order)
        singular_values = np.concatenate([singular_values, np.zeros(pad)])
        U = products.map_rows(_pad_columns, U, name="dnmf-init-pad", width=k, padded_width=k)
        Vt = products.map_cols(_pad_rows, Vt, name="dnmf-init-pad", height=k, padded_height=k)
    U, Vt = products.persist(U, Vt)
    return U, singular_values, Vt


def _pad_columns(block: np.ndarray, padded_width: int) -> np.ndarray:
    return np.pad(block, ((0, 0), (0, padded_width - block.shape[1])))


def _pad_rows(block: np.ndarray, padded_height: int) -> np.ndarray:
    return np.pad(block, ((0, padded_height - block.shape[0]), (0, 0)))


def _part_squares(block: np.ndarray, axis: int) -> np.ndarray:
    positive, negative = np.maximum(block, 0), np.minimum(block, 0)
    return np.stack([np.sum(positive**2, axis=axis), np.sum(negative**2, axis=axis)])[None]


def _part_norms(U: Any, Vt: Any) -> tuple[np.ndarray, np.ndarray]:
    """Norms of the positive and negative parts of each column of U and each row of Vt: two ``(2, k)`` arrays."""
    if is_blocks(U):
        u_squares = sum(_part_squares(block, axis=0)[0] for (block,) in U.grid)
        v_squares = sum(_part_squares(block, axis=1)[0] for block in Vt.grid[0])
        return np.sqrt(u_squares), np.sqrt(v_squares)
    u_parts = da.blockwise(_part_squares, "isa", U, "ia", axis=0, new_axes={"s": 2}, adjust_chunks={"i": 1},
                           dtype=np.float64, token="dnmf-init-norms", meta=np.empty((0, 0, 0)))
    v_parts = da.blockwise(_part_squares, "jsa", Vt, "aj", axis=1, new_axes={"s": 2}, adjust_chunks={"j": 1},
                           dtype=np.float64, token="dnmf-init-norms", meta=np.empty((0, 0, 0)))
    u_squares, v_squares = dask.compute(u_parts, v_parts)
    return np.sqrt(u_squares.sum(axis=0)), np.sqrt(v_squares.sum(axis=0))


def _nndsvd_block(block: np.ndarray, sign: np.ndarray, scale: np.ndarray, use_abs: np.ndarray, *,
                  fill: float | None, out_dtype: Any) -> np.ndarray:
    """``max(sign·x, 0)·scale`` per component (``|x|·scale`` where ``use_abs``), small entries zeroed, zeros
    optionally filled."""
    factor = np.where(use_abs, np.abs(block), np.maximum(block * sign, 0)) * scale
    factor[factor < NNDSVD_EPS] = 0
    if fill is not None:
        factor[factor == 0] = fill
    return factor.astype(out_dtype, copy=False)


def _nndsvdar_fill_block(block: np.ndarray, *, entropy: int, stream: int, blocked_axis: int, scale: float,
                         block_info: Any = None) -> np.ndarray:
    """Zeros replaced by ``|scale · N(0, 1) / 100|``, scikit-learn's ``nndsvdar``."""
    draws = _draws(block.shape, entropy, stream, block_info[0]["chunk-location"][blocked_axis], blocked_axis)
    filled = block.copy()
    zeros = filled == 0
    filled[zeros] = np.abs(scale * draws[zeros] / 100)
    return filled


def nndsvd(A: da.Array, k: int, variant: str, *, entropy: int, mean: float,
           power_iterations: int | None = None) -> tuple[da.Array, da.Array]:
    """NNDSVD (Boutsidis and Gallopoulos, 2008) and its ``a``/``ar`` variants, as in scikit-learn, on the cluster."""
    U, S, Vt = randomized_svd(A, k, entropy=entropy, n_iter=power_iterations)
    u_norms, v_norms = _part_norms(U, Vt)
    positive_mass, negative_mass = u_norms[0] * v_norms[0], u_norms[1] * v_norms[1]
    use_positive = positive_mass > negative_mass
    sigma = np.where(use_positive, positive_mass, negative_mass)
    sign = np.where(use_positive, 1.0, -1.0)
    lam = np.sqrt(S * sigma)
    u_norm = np.where(use_positive, u_norms[0], u_norms[1])
    v_norm = np.where(use_positive, v_norms[0], v_norms[1])
    u_scale = np.divide(lam, u_norm, out=np.zeros(k), where=u_norm > 0)
    v_scale = np.divide(lam, v_norm, out=np.zeros(k), where=v_norm > 0)
    use_abs = np.zeros(k, dtype=bool)
    use_abs[0] = True
    u_scale[0] = v_scale[0] = np.sqrt(S[0])
    fill = mean if variant == "nndsvda" else None
    dtype = A.dtype
    W = products.map_rows(_nndsvd_block, U, small=(sign, u_scale, use_abs), name="dnmf-init-w", dtype=dtype,
                          fill=fill, out_dtype=dtype)
    H = products.map_cols(_nndsvd_block, Vt, small=(sign[:, None], v_scale[:, None], use_abs[:, None]),
                          name="dnmf-init-h", dtype=dtype, fill=fill, out_dtype=dtype)
    if variant == "nndsvdar" and is_blocks(W):
        W, H = (F.like([[_nndsvdar_fill_block(block, entropy=entropy, stream=stream, blocked_axis=axis, scale=mean,
                                              block_info={0: {"chunk-location": (i, j)}})
                         for j, block in enumerate(row)] for i, row in enumerate(F.grid)], F.chunks)
                for F, stream, axis in ((W, _STREAM_FILL_W, 0), (H, _STREAM_FILL_H, 1)))
    elif variant == "nndsvdar":
        W = W.map_blocks(_nndsvdar_fill_block, entropy=entropy, stream=_STREAM_FILL_W, blocked_axis=0,
                         scale=mean, dtype=dtype, token="dnmf-init-w-fill")
        H = H.map_blocks(_nndsvdar_fill_block, entropy=entropy, stream=_STREAM_FILL_H, blocked_axis=1,
                         scale=mean, dtype=dtype, token="dnmf-init-h-fill")
    return W, H


def initialize(A: da.Array, k: int, method: str, *, entropy: int, mean: float, nbytes: int | None = None,
               streamed: bool = False, runtime: Runtime | None = None) -> tuple[da.Array, da.Array]:
    """Initial ``W`` (row-aligned with A) and ``H`` (column-aligned), persisted, in A's dtype.

    ``method`` is one of ``random``, ``nndsvd``, ``nndsvda`` or ``nndsvdar`` (see :func:`resolve_init`); ``mean``
    is the mean of A, which sets the scale of the random and filled entries. ``nbytes`` (A's size in memory) and
    ``streamed`` (A is read from its store at every pass) choose NNDSVD's :func:`power_iterations`.

    With ``runtime`` given, the NNDSVD of a Dask array under :data:`SMALL_INPUT_BYTES` runs in this process on a
    copy of A's blocks (:func:`in_process_nndsvd`): one gather instead of a round trip to the cluster for every
    power iteration, which on a cluster costs more than the arithmetic at that size.
    """
    if method == "random":
        scale = float(np.sqrt(mean / k))
        W = gaussian((A.chunks[0], (k,)), 0, entropy=entropy, stream=_STREAM_W, scale=scale, dtype=A.dtype,
                     name="dnmf-init-w", like=A)
        H = gaussian(((k,), A.chunks[1]), 1, entropy=entropy, stream=_STREAM_H, scale=scale, dtype=A.dtype,
                     name="dnmf-init-h", like=A)
    elif method.startswith("nndsvd"):
        iterations = power_iterations(A.shape, k, nbytes=nbytes, streamed=streamed)
        if runtime is not None and not is_blocks(A) and nbytes is not None and nbytes < SMALL_INPUT_BYTES:
            return in_process_nndsvd(A, k, method, entropy=entropy, mean=mean, power_iterations=iterations,
                                     runtime=runtime)
        W, H = nndsvd(A, k, method, entropy=entropy, mean=mean, power_iterations=iterations)
    else:
        raise ValueError(f"initialize() does not build init={method!r}; custom factors are passed in directly.")
    return products.persist(W, H)


def in_process_nndsvd(A: da.Array, k: int, variant: str, *, entropy: int, mean: float, power_iterations: int,
                      runtime: Runtime) -> tuple[Any, Any]:
    """:func:`nndsvd` of A's blocks gathered into this process, on the same grid (so that the same products add
    up the same partial sums), its factors placed back where ``runtime`` keeps blocks."""
    p, q = A.numblocks
    values = runtime.compute(*A.to_delayed(optimize_graph=False).ravel())  # under A's own keys: no new tasks
    local = Blocks([values[i * q:(i + 1) * q] for i in range(p)], A.chunks)
    W, H = nndsvd(local, k, variant, entropy=entropy, mean=mean, power_iterations=power_iterations)
    token = uuid.uuid4().hex
    return (runtime.place({(i, 0): block for i, (block,) in enumerate(W.grid)}, W.chunks, W.dtype, False,
                          lambda: f"init-w-{token}"),
            runtime.place({(0, j): block for j, block in enumerate(H.grid[0])}, H.chunks, H.dtype, False,
                          lambda: f"init-h-{token}"))


def _constant_block(*, value: float, out_dtype: Any, block_info: Any = None) -> np.ndarray:
    return np.full(block_info[None]["chunk-shape"], value, dtype=out_dtype)


def constant_rows(chunks: tuple[int, ...], k: int, value: float, dtype: Any, like: Any = None) -> Any:
    """A row-blocked ``(m, k)`` array filled with ``value``: the starting W of ``transform`` (blocks if ``like``
    is :class:`~dnmf.core.blocks.Blocks`)."""
    if is_blocks(like):
        return like.like([[np.full((rows, k), value, dtype=dtype)] for rows in chunks], (chunks, (k,)))
    return da.map_blocks(_constant_block, chunks=(chunks, (k,)), dtype=dtype, meta=np.empty((0, 0), dtype=dtype),
                         token="dnmf-init-w", value=value, out_dtype=np.dtype(dtype))
