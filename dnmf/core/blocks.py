"""A matrix held in this process as a grid of blocks, and the products on it, with no Dask graph.

:class:`Blocks` is the in-process counterpart of a chunked Dask array: the same chunk grid, the same blocks
(NumPy arrays or CSR matrices), and every product of :mod:`dnmf.core.products` computed by the same block kernels
(:mod:`dnmf.core.kernels`) called directly. Partial products are summed in the order the graph path's tree sums
add them (sequentially within each group of :data:`dnmf.core.products.SPLIT_EVERY`), so on grids of up to eight
blocks per axis both paths give bitwise-equal results, and within rounding (1e-12 relative) on larger ones.

Blocks carry the executor their products run on: a thread pool that maps a product over its output blocks (BLAS
then runs one thread per call, as on distributed workers), or ``None`` for one call at a time (BLAS may then use
every core). Each call's wall time is added to the phase of its name (the ``dnmf-…`` names of the graph path)
while a :func:`timing` block is open.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import scipy.sparse as sp

from dnmf.core import fills, kernels

__all__ = ["Blocks", "is_blocks", "timing"]

_phase_seconds: ContextVar[dict[str, float] | None] = ContextVar("dnmf_phase_seconds", default=None)
_calls: ContextVar[list[int] | None] = ContextVar("dnmf_block_calls", default=None)


@contextmanager
def timing() -> Iterator[tuple[dict[str, float], list[int]]]:
    """Collect, while open, the wall seconds of each product by name and the number of block-kernel calls."""
    seconds: dict[str, float] = defaultdict(float)
    calls = [0]
    tokens = _phase_seconds.set(seconds), _calls.set(calls)
    try:
        yield seconds, calls
    finally:
        _phase_seconds.reset(tokens[0])
        _calls.reset(tokens[1])


class Blocks:
    """A 2-D matrix as a ``p × q`` grid of in-memory blocks.

    Parameters
    ----------
    grid : sequence of sequences of blocks
        ``grid[i][j]`` is block ``(i, j)``: a NumPy array or a ``scipy.sparse.csr_matrix``.
    chunks : (tuple of int, tuple of int)
        Row and column lengths of the blocks, as Dask writes chunks.
    executor : concurrent.futures.Executor, optional
        Where products over these blocks run; results carry it on.
    """

    __slots__ = ("grid", "chunks", "dtype", "executor", "name")

    def __init__(self, grid: Sequence[Sequence[Any]], chunks: tuple[tuple[int, ...], tuple[int, ...]], *,
                 executor: Executor | None = None, name: str = "dnmf-blocks") -> None:
        self.grid = tuple(tuple(row) for row in grid)
        self.chunks = (tuple(int(c) for c in chunks[0]), tuple(int(c) for c in chunks[1]))
        self.dtype = np.dtype(self.grid[0][0].dtype)
        self.executor = executor
        self.name = name

    # The parts of the Dask array interface that the objectives and the input checks read.
    ndim = 2

    @property
    def shape(self) -> tuple[int, int]:
        return sum(self.chunks[0]), sum(self.chunks[1])

    @property
    def numblocks(self) -> tuple[int, int]:
        return len(self.chunks[0]), len(self.chunks[1])

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def sparse(self) -> bool:
        return sp.issparse(self.grid[0][0])

    @property
    def _meta(self) -> Any:
        return sp.csr_matrix((0, 0), dtype=self.dtype) if self.sparse else np.empty((0, 0), dtype=self.dtype)

    def __repr__(self) -> str:
        return f"Blocks(shape={self.shape}, numblocks={self.numblocks}, dtype={self.dtype})"

    def block(self, i: int, j: int) -> Any:
        return self.grid[i][j]

    def like(self, grid: Sequence[Sequence[Any]], chunks: tuple[tuple[int, ...], tuple[int, ...]]) -> Blocks:
        """New blocks on this executor."""
        return Blocks(grid, chunks, executor=self.executor, name=self.name)

    def map(self, func: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[func(item) for item in items]``, on the executor when there is more than one item."""
        calls = _calls.get()
        if calls is not None:
            calls[0] += len(items)
        if self.executor is None or len(items) < 2:
            return [func(item) for item in items]
        return list(self.executor.map(func, items))

    def compute(self) -> Any:
        """The whole matrix: a NumPy array, or a CSR matrix for sparse blocks."""
        if self.sparse:
            return sp.bmat([list(row) for row in self.grid], format="csr", dtype=self.dtype)
        if self.numblocks == (1, 1):
            return self.grid[0][0]
        return np.block([list(row) for row in self.grid])

    def astype(self, dtype: Any) -> Blocks:
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        return self.like([[block.astype(dtype) for block in row] for row in self.grid], self.chunks)

    def __mul__(self, scale: Any) -> Blocks:
        return self.like([[block * scale for block in row] for row in self.grid], self.chunks)

    @classmethod
    def from_array(cls, X: Any, chunks: tuple[tuple[int, ...], tuple[int, ...]], *,
                   executor: Executor | None = None, name: str = "dnmf-input") -> Blocks:
        """Split a NumPy array or CSR matrix on ``chunks``: dense blocks become aligned contiguous copies unless
        ``X`` is one aligned block already, so A is copied at most once."""
        row_edges, col_edges = np.cumsum((0, *chunks[0])), np.cumsum((0, *chunks[1]))
        grid = []
        for i in range(len(chunks[0])):
            strip = X[row_edges[i]:row_edges[i + 1]]
            row = []
            for j in range(len(chunks[1])):
                block = strip[:, col_edges[j]:col_edges[j + 1]]
                if sp.issparse(block):
                    row.append(sp.csr_matrix(block))
                else:
                    row.append(kernels.aligned(np.ascontiguousarray(block)))
            grid.append(row)
        return cls(grid, chunks, executor=executor, name=name)


def is_blocks(x: Any) -> bool:
    return isinstance(x, Blocks)


def timed(name: str, func: Callable[[], Any]) -> Any:
    """``func()``, its wall time added to ``name``'s phase while a :func:`timing` block is open."""
    seconds = _phase_seconds.get()
    if seconds is None:
        return func()
    began = time.perf_counter()
    try:
        return func()
    finally:
        seconds[name] += time.perf_counter() - began


def add_up(parts: Sequence[Any]) -> Any:
    """Partial products summed left to right (the order of the graph path's tree sums), into a fresh aligned
    array, so that the kernels it feeds need not copy it (see :func:`dnmf.core.kernels.aligned`)."""
    first = np.asarray(parts[0])
    total = kernels.empty_aligned(first.shape, first.dtype)
    np.copyto(total, first)
    for part in parts[1:]:
        total += part
    return total


def _rows(A: Blocks, name: str, row: Callable[[int], Any], width: int) -> Blocks:
    """A row-aligned ``(m, width)`` result, one block per row block of A."""
    grid = timed(name, lambda: A.map(row, range(A.numblocks[0])))
    return A.like([[block] for block in grid], (A.chunks[0], (width,)))


def _cols(A: Blocks, name: str, col: Callable[[int], Any], height: int) -> Blocks:
    """A column-aligned ``(height, n)`` result, one block per column block of A."""
    grid = timed(name, lambda: A.map(col, range(A.numblocks[1])))
    return A.like([grid], ((height,), A.chunks[1]))


def _total(A: Blocks, name: str, block: Callable[[int, int], Any]) -> Any:
    """The sum of ``block(i, j)`` over the grid: over rows within each column block, then over column blocks."""
    p, q = A.numblocks
    per_column = timed(name, lambda: A.map(lambda j: add_up([block(i, j) for i in range(p)]), range(q)))
    return add_up(per_column)


def wta(A: Blocks, W: Blocks) -> Blocks:
    return _cols(A, "dnmf-wta", lambda j: add_up(
        [kernels.wta_block(W.block(i, 0), A.block(i, j))[0] for i in range(A.numblocks[0])]), W.shape[1])


def aht(A: Blocks, H: Blocks) -> Blocks:
    return _rows(A, "dnmf-aht", lambda i: add_up(
        [kernels.aht_block(A.block(i, j), H.block(0, j))[:, 0] for j in range(A.numblocks[1])]), H.shape[0])


def gram_rows(W: Blocks, name: str) -> np.ndarray:
    return timed(name, lambda: add_up(W.map(lambda i: kernels.gram_rows_block(W.block(i, 0))[0],
                                            range(W.numblocks[0]))))


def gram_cols(H: Blocks, name: str) -> np.ndarray:
    return timed(name, lambda: add_up(H.map(lambda j: kernels.gram_cols_block(H.block(0, j))[:, :, 0],
                                            range(H.numblocks[1]))))


def sum_rows(W: Blocks, name: str) -> np.ndarray:
    return timed(name, lambda: add_up([kernels.sum_rows_block(W.block(i, 0))[0] for i in range(W.numblocks[0])]))


def sum_cols(H: Blocks, name: str) -> np.ndarray:
    return timed(name, lambda: add_up([kernels.sum_cols_block(H.block(0, j))[:, 0] for j in range(H.numblocks[1])]))


def inner(F: Blocks, G: Blocks, name: str) -> np.ndarray:
    return _total(F, name, lambda i, j: kernels.inner_block(F.block(i, j), G.block(i, j))).reshape(())


def map_factor(func: Callable[..., Any], factor: Blocks, aligned: tuple[Blocks, ...], small: tuple[Any, ...],
               name: str, by_rows: bool, components: int | None, kwargs: dict[str, Any]) -> Blocks:
    """:func:`dnmf.core.products.map_rows` (``by_rows``) or ``map_cols`` on blocks."""
    values = tuple(np.asarray(x) for x in small)
    if by_rows:
        return _rows(factor, name, lambda i: kernels.apply_kernel(
            factor.block(i, 0), *(x.block(i, 0) for x in aligned), *values, kernel=func, **kwargs),
            components or factor.shape[1])
    return _cols(factor, name, lambda j: kernels.apply_kernel(
        factor.block(0, j), *(x.block(0, j) for x in aligned), *values, kernel=func, **kwargs),
        components or factor.shape[0])


def residual_norm_squared(A: Blocks, W: Blocks, H: Blocks) -> np.ndarray:
    return _total(A, "dnmf-residual", lambda i, j: kernels.residual_block(
        A.block(i, j), W.block(i, 0), H.block(0, j))).reshape(())


def beta_wta(A: Blocks, W: Blocks, H: Blocks, *, beta: float, masked: bool, holes: bool = False) -> Blocks:
    height = kernels.gradient_width(W.shape[1], beta, masked)
    return _cols(A, "dnmf-wta-beta", lambda j: add_up(
        [kernels.beta_wta_block(W.block(i, 0), A.block(i, j), H.block(0, j), beta=beta, masked=masked,
                                holes=holes)[0]
         for i in range(A.numblocks[0])]), height)


def beta_divergence(A: Blocks, W: Blocks, H: Blocks, *, beta: float, masked: bool, name: str,
                    holes: bool = False) -> np.ndarray:
    total = _total(A, name, lambda i, j: kernels.divergence_block(
        A.block(i, j), W.block(i, 0), H.block(0, j), beta=beta, masked=masked, holes=holes))
    return kernels.finish_divergence(total.reshape(()))


def beta_aht_and_divergence(A: Blocks, W: Blocks, H: Blocks, *, beta: float, masked: bool,
                            holes: bool = False) -> tuple[Blocks, np.ndarray]:
    width = kernels.gradient_width(W.shape[1], beta, masked)
    shares: dict[tuple[int, int], np.ndarray] = {}

    def row(i: int) -> Any:
        parts = []
        for j in range(A.numblocks[1]):
            part, shares[i, j] = kernels.beta_aht_loss_block(A.block(i, j), W.block(i, 0), H.block(0, j),
                                                             beta=beta, masked=masked, holes=holes)
            parts.append(part[:, 0])
        return add_up(parts)

    rows = _rows(A, "dnmf-aht-beta", row, width)
    p, q = A.numblocks
    total = add_up([add_up([shares[i, j] for i in range(p)]) for j in range(q)])
    return rows, kernels.finish_divergence(total.reshape(()))


def unobserved(A: Blocks) -> Blocks:
    p, q = A.numblocks
    grid = timed("dnmf-unobserved", lambda: A.map(lambda ij: kernels.unobserved_block(A.block(*ij)),
                                                    [(i, j) for i in range(p) for j in range(q)]))
    return A.like([grid[i * q:(i + 1) * q] for i in range(p)], A.chunks)


def masked_aht(A: Blocks, H: Blocks, unobserved: Blocks | None) -> Blocks:
    k = H.shape[0]
    return _rows(A, "dnmf-aht-masked", lambda i: add_up(
        [kernels.masked_aht_block(A.block(i, j), H.block(0, j), _block_of(unobserved, i, j))[:, 0]
         for j in range(A.numblocks[1])]), k + k * k)


def masked_wta(A: Blocks, W: Blocks, unobserved: Blocks | None) -> Blocks:
    k = W.shape[1]
    return _cols(A, "dnmf-wta-masked", lambda j: add_up(
        [kernels.masked_wta_block(W.block(i, 0), A.block(i, j), _block_of(unobserved, i, j))[0]
         for i in range(A.numblocks[0])]), k + k * k)


def imputed_aht(A: Blocks, W: Blocks, H: Blocks, unobserved: Blocks) -> Blocks:
    return _rows(A, "dnmf-aht-imputed", lambda i: add_up(
        [fills.imputed_aht_block(A.block(i, j), W.block(i, 0), H.block(0, j), unobserved.block(i, j))[:, 0]
         for j in range(A.numblocks[1])]), H.shape[0] + 1)


def imputed_wta(A: Blocks, W: Blocks, H: Blocks, unobserved: Blocks) -> Blocks:
    return _cols(A, "dnmf-wta-imputed", lambda j: add_up(
        [fills.imputed_wta_block(W.block(i, 0), A.block(i, j), H.block(0, j), unobserved.block(i, j))[0]
         for i in range(A.numblocks[0])]), W.shape[1])


def imputed_cross_inner(parts: Blocks, W: Blocks) -> np.ndarray:
    return _total(parts, "dnmf-loss-imputed", lambda i, j: fills.imputed_cross_inner_block(
        parts.block(i, 0), W.block(i, 0))).reshape(())


def _block_of(x: Blocks | None, i: int, j: int) -> Any:
    return None if x is None else x.block(i, j)


def masked_terms(parts: Blocks, F: Blocks, *, by_rows: bool) -> np.ndarray:
    pairs = ([(parts.block(i, 0), F.block(i, 0)) for i in range(F.numblocks[0])] if by_rows else
             [(parts.block(0, j), F.block(0, j)) for j in range(F.numblocks[1])])
    return timed("dnmf-loss-masked", lambda: add_up(
        [kernels.masked_terms_block(p, f, by_rows=by_rows)[0] for p, f in pairs]))


def block_stats(A: Blocks) -> np.ndarray:
    p, q = A.numblocks
    per_block = timed("dnmf-stats", lambda: A.map(lambda ij: kernels.block_stats(A.block(*ij))[0, 0],
                                                  [(i, j) for i in range(p) for j in range(q)]))
    return np.asarray(per_block).reshape(p, q, len(kernels.STAT_FIELDS))


def reconstruct(W: Blocks, H: Blocks) -> Blocks:
    grid = [[kernels.matmul(W.block(i, 0), H.block(0, j)) for j in range(H.numblocks[1])]
            for i in range(W.numblocks[0])]
    return W.like(grid, (W.chunks[0], H.chunks[1]))
