"""The in-process executor: blocks held in this process, products run on them directly, no Dask graph.

Chosen when no distributed client is active and the input is in memory already (NumPy or SciPy), unless the Dask
configuration value ``dnmf.executor`` says otherwise (see :func:`dnmf.runtime.current`). Each iteration calls the
same block kernels as the graph path, in the same order, so a fit costs only its arithmetic plus a few
microseconds of Python per block product.

Parallelism: a matrix small enough for one block (under :data:`PARALLEL_MIN_BYTES`) is one block, and BLAS uses
every core; a larger one is cut into at least one block per core along each axis, and a thread pool maps each
product over its output blocks while BLAS runs one thread per call, as on distributed workers. One BLAS thread per
call also makes results independent of how the threads overlap, so two runs are bitwise equal.
"""

from __future__ import annotations

import functools

import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import dask
import dask.array as da
import numpy as np
import psutil
import scipy.sparse as sp

from dnmf.core import blocks as block_products
from dnmf.core.blocks import Blocks, is_blocks
from dnmf.core.grid import default_grid
from dnmf.core.kernels import aligned
from dnmf.core.seam import Runtime
from dnmf.runtime.dask_graph import _graph_array
from dnmf.runtime.phases import phase_of

__all__ = ["PARALLEL_MIN_BYTES", "InProcess"]

#: Matrices smaller than this are one block: below it, threads over blocks cost more than they save.
PARALLEL_MIN_BYTES = 16 * 2**20


#: The phase of an in-process product's name; there are a few dozen names, and a fit asks after every iteration.
_phase_of_product = functools.lru_cache(maxsize=None)(phase_of)


class _Timer:
    """Phase seconds of the block products run while it is open (a :class:`dnmf.core.seam.StepTimer`)."""

    def __init__(self, totals: dict[str, float]) -> None:
        self._totals = totals
        self._before: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def __enter__(self) -> _Timer:
        self._before = dict(self._totals)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        seconds: dict[str, float] = {}
        for name, total in self._totals.items():
            spent = total - self._before.get(name, 0.0)
            if spent > 0:
                phase = _phase_of_product(name)
                seconds[phase] = seconds.get(phase, 0.0) + spent
        self.seconds = {phase: round(value, 6) for phase, value in seconds.items()}


class InProcess(Runtime):
    """Run every product in this process, on threads over blocks (see the module's docstring).

    Parameters
    ----------
    threads : int, optional
        Threads over blocks; by default the CPU count.
    """

    name = "in-process"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = max(1, threads or os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None
        self._phase_totals: dict[str, float] = {}
        self._calls = [0]
        self._calls_at_last_persist = 0

    @property
    def n_workers(self) -> int:
        return self.threads

    @property
    def worker_memory(self) -> int | None:
        return None

    @property
    def total_memory(self) -> int:
        return int(psutil.virtual_memory().available)

    def grid(self, shape: tuple[int, int], nbytes: int) -> tuple[int, int]:
        workers = self.threads if nbytes >= PARALLEL_MIN_BYTES else 1
        return default_grid(shape, nbytes, workers)

    def _executor(self, n_blocks: int) -> ThreadPoolExecutor | None:
        if n_blocks < 2 or self.threads < 2:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="dnmf-block")
        return self._pool

    def place(self, blocks: dict[tuple[int, int], Any], chunks: tuple[tuple[int, ...], tuple[int, ...]],
              dtype: Any, sparse: bool, token: Callable[[], str]) -> Blocks:
        grid = [[_held(blocks[i, j], dtype) for j in range(len(chunks[1]))] for i in range(len(chunks[0]))]
        return Blocks(grid, chunks, executor=self._executor(len(blocks)), name="dnmf-input")

    def hold(self, array: Any) -> Blocks:
        return array if is_blocks(array) else self.adopt(array)

    def adopt(self, x: Any) -> Any:
        if not isinstance(x, da.Array):
            return x
        p, q = x.numblocks
        values = dask.compute(*[x.blocks[i, j] for i in range(p) for j in range(q)], scheduler="sync")
        blocks = {(i, j): values[i * q + j] for i in range(p) for j in range(q)}
        return self.place(blocks, x.chunks, x.dtype, sp.issparse(values[0]), lambda: "adopted")

    def to_dask(self, x: Any) -> Any:
        if not is_blocks(x):
            return x
        grid = {(i, j): x.block(i, j) for i in range(x.numblocks[0]) for j in range(x.numblocks[1])}
        return _graph_array(grid, x.chunks, x.dtype, x.sparse, f"dnmf-held-{uuid.uuid4().hex}")

    @contextmanager
    def session(self, *, streamed: bool) -> Iterator[None]:
        with block_products.timing() as (totals, calls):
            self._phase_totals, self._calls, self._calls_at_last_persist = totals, calls, 0
            if self._pool is None:
                yield
                return
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=1, user_api="blas"):
                yield

    def persist(self, collections: dict[str, Any], *, priority: int = 0,
                persisted: tuple[Any, ...] = ()) -> tuple[dict[str, Any], int]:
        calls = self._calls[0] - self._calls_at_last_persist
        self._calls_at_last_persist = self._calls[0]
        return collections, calls

    def compute(self, *values: Any) -> tuple[Any, ...]:
        return tuple(value.compute() if is_blocks(value) else dask.compute(value)[0] for value in values)

    def gather(self, scalars: list[Any]) -> list[float]:
        return [float(x) for x in scalars]

    def clock(self) -> _Timer:
        return _Timer(self._phase_totals)


def _held(block: Any, dtype: Any) -> Any:
    """A block as the products want it: CSR of ``dtype``, or an aligned contiguous array (copied only if needed)."""
    if sp.issparse(block):
        return block if isinstance(block, sp.csr_matrix) and block.dtype == dtype else sp.csr_matrix(block,
                                                                                                    dtype=dtype)
    return aligned(np.ascontiguousarray(block, dtype=dtype))
