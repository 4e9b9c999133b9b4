"""Runtimes that run each step as a Dask graph: Dask's local schedulers, and a distributed client.

Both build the same graphs from :mod:`dnmf.core.products`; they differ in where blocks live and how results come
back. On a distributed client the input's blocks are scattered to the workers, each iteration is submitted with a
priority below the one before it and pipelined, losses come straight from their futures, and the workers' malloc
is tuned (:mod:`dnmf.runtime.workers`). On the local schedulers everything stays in this process, and the
threaded scheduler's concurrent tasks run single-threaded BLAS, as workers do, so that results do not depend on
how the tasks happened to overlap.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any

import dask
import dask.array as da
import numpy as np
import psutil
import scipy.sparse as sp
from dask.highlevelgraph import HighLevelGraph

from dnmf.core.graph import count_pass, passes_counted
from dnmf.core.grid import PLACED_INPUT, strip_axis
from dnmf.core.seam import Runtime
from dnmf.runtime.local_cache import StripCache, drop
from dnmf.runtime.phases import PhaseClock
from dnmf.runtime.templates import StepTemplate, is_held, opaque

__all__ = ["DaskLocal", "Distributed"]

#: How long a fit that lost a worker waits for one to be there before it gives up.
WORKER_WAIT_SECONDS = 60

_LOCAL_SCHEDULERS = {"sync": 1, "synchronous": 1, "single-threaded": 1}


def _optimize(collections: dict[str, Any], persisted: list[Any]) -> tuple[dict[str, Any], dict[Any, Any]]:
    """Optimise a step's graph once; return it with the tasks it adds to those already persisted."""
    optimized = dask.optimize(*collections.values())
    graph: dict = {}
    for x in optimized:
        graph.update(x.__dask_graph__())
    known = {key for x in persisted if dask.is_dask_collection(x) for key in dask.core.flatten(x.__dask_keys__())}
    return dict(zip(collections, optimized)), {key: task for key, task in graph.items() if key not in known}


def _block_keys(name: str, chunks: tuple[tuple[int, ...], ...]) -> list[Any]:
    """The keys of the blocks of an array called ``name`` with ``chunks``, in C order."""
    return [(name, *index) for index in itertools.product(*(range(len(c)) for c in chunks))]


def _graph_array(blocks: dict[tuple[int, int], Any], chunks: tuple[tuple[int, ...], tuple[int, ...]], dtype: Any,
                 sparse: bool, name: str) -> da.Array:
    layer = {(name, i, j): value for (i, j), value in blocks.items()}
    graph = HighLevelGraph.from_collections(name, layer, dependencies=())
    meta = sp.csr_matrix((0, 0), dtype=dtype) if sparse else np.empty((0, 0), dtype=dtype)
    return da.Array(graph, name, chunks=chunks, dtype=dtype, meta=meta)


class _DaskRuntime(Runtime):
    """What both graph runtimes share."""

    #: Tasks are pickled to reach the processes that run them.
    ships_tasks = False

    def hold(self, array: da.Array) -> da.Array:
        (held,) = dask.persist(array)
        return held

    _templates: dict[Hashable, StepTemplate]

    def persist(self, collections: dict[str, Any], *, priority: int = 0,
                persisted: tuple[Any, ...] = ()) -> tuple[dict[str, Any], int]:
        optimized, graph = _optimize(collections, list(persisted))
        return self._submit(optimized, priority), len(graph)

    def _submit(self, collections: dict[str, Any], priority: int) -> dict[str, Any]:
        values = dask.persist(*collections.values(), optimize_graph=False, **self._priority(priority))
        return dict(zip(collections, values))

    def persist_step(self, build: Callable[[dict[str, Any]], dict[str, Any]], inputs: dict[str, Any], *,
                     signature: Hashable, priority: int = 0,
                     persisted: tuple[Any, ...] = ()) -> tuple[dict[str, Any], int]:
        """The step is built once per ``signature`` from stand-ins of its inputs, optimised and kept
        (:mod:`dnmf.runtime.templates`); every step of that signature then submits the kept graph under new keys,
        from its inputs, persisted first where they are not (factors read back from a checkpoint). The Dask
        configuration value ``dnmf.resubmit-graphs: false`` builds every step anew instead."""
        if not dask.config.get("dnmf.resubmit-graphs", True):
            return super().persist_step(build, inputs, signature=signature, priority=priority, persisted=persisted)
        templates = self.__dict__.setdefault("_templates", {})
        held = {role: x if is_held(x) else self.hold(x) for role, x in inputs.items()}
        constants = [x for x in persisted if is_held(x) and not any(x is y for y in inputs.values())]
        template = templates.get(signature)
        if template is None or not template.fits(held):
            stand_ins = {role: opaque(x) for role, x in held.items()}
            before = passes_counted()
            optimized, graph = _optimize(build(stand_ins), constants)
            try:
                template = templates[signature] = StepTemplate(optimized, graph, stand_ins,
                                                               passes=passes_counted() - before,
                                                               pickled=self.ships_tasks)
            except ValueError:  # a step that passes an input through: built anew each time
                return self.persist(build(held), priority=priority, persisted=persisted)
        else:
            count_pass(template.passes)
        return self._submit_copy(template, held, constants, priority), template.n_tasks

    def _submit_copy(self, template: StepTemplate, inputs: dict[str, da.Array], constants: list[Any],
                     priority: int) -> dict[str, Any]:
        return self._submit(template.instantiate(inputs, constants), priority)

    def _priority(self, priority: int) -> dict[str, Any]:
        return {}

    def compute(self, *values: Any) -> tuple[Any, ...]:
        return dask.compute(*values)

    def gather(self, scalars: list[Any]) -> list[float]:
        return [float(x) for x in dask.compute(*scalars)]


class DaskLocal(_DaskRuntime):
    """Dask's local schedulers (threaded by default, or whatever ``dask.config`` names) in this process."""

    name = "dask-local"

    @property
    def n_workers(self) -> int:
        return os.cpu_count() or 1

    @property
    def worker_memory(self) -> int | None:
        return int(psutil.virtual_memory().available / self.n_workers)

    @property
    def total_memory(self) -> int:
        return int(psutil.virtual_memory().available)

    def place(self, blocks: dict[tuple[int, int], Any], chunks: tuple[tuple[int, ...], tuple[int, ...]],
              dtype: Any, sparse: bool, token: Callable[[], str]) -> da.Array:
        return _graph_array(blocks, chunks, dtype, sparse, f"{PLACED_INPUT}-{token()}")

    @contextmanager
    def session(self, *, streamed: bool) -> Iterator[None]:
        scheduler = dask.config.get("scheduler", None)
        if scheduler in _LOCAL_SCHEDULERS or (os.cpu_count() or 1) == 1:
            yield
            return
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            yield

    def clock(self) -> PhaseClock:
        return PhaseClock(None)


class Distributed(_DaskRuntime):
    """A ``distributed.Client``: blocks scattered to the workers, iterations pipelined.

    Parameters
    ----------
    client : distributed.Client
    """

    name = "distributed"
    pipelines = True
    ships_tasks = True

    def __init__(self, client: Any) -> None:
        self.client = client
        self._clock: PhaseClock | None = None

    @property
    def dashboard_link(self) -> str | None:
        return self.client.dashboard_link

    def _workers(self) -> dict[str, Any]:
        return self.client.scheduler_info().get("workers", {})

    def _memory_limits(self) -> list[int]:
        return [limit for limit in (w.get("memory_limit") or 0 for w in self._workers().values()) if limit > 0]

    @property
    def n_workers(self) -> int:
        return max(1, len(self._workers()))

    @property
    def worker_memory(self) -> int | None:
        limits = self._memory_limits()
        return min(limits) if limits else None

    @property
    def total_memory(self) -> int:
        return sum(self._memory_limits())

    def place(self, blocks: dict[tuple[int, int], Any], chunks: tuple[tuple[int, ...], tuple[int, ...]],
              dtype: Any, sparse: bool, token: Callable[[], str]) -> da.Array:
        """Scatter the blocks, whole row strips (or column strips, for a wide matrix) per worker, so that the larger
        factor's partial products are summed where they are formed. Keys are new per call: a second fit on the
        same data must not reuse keys that the first one's futures are releasing."""
        token = f"{token()}-{uuid.uuid4().hex}"
        by_rows = strip_axis((sum(chunks[0]), sum(chunks[1]))) == 0
        strips = len(chunks[0]) if by_rows else len(chunks[1])
        for attempt in range(3):
            try:
                scattered = self._scatter_by_strip(blocks, token, by_rows, strips)
                break
            except KeyError:  # a worker the scheduler listed a moment ago is gone: ask again
                if attempt == 2:
                    raise
                time.sleep(0.5)
        futures = {(i, j): scattered[f"dnmf-input-block-{token}-{i}-{j}"] for i, j in blocks}
        return _graph_array(futures, chunks, dtype, sparse, f"{PLACED_INPUT}-{token}")

    def _scatter_by_strip(self, blocks: dict[tuple[int, int], Any], token: str, by_rows: bool,
                          strips: int) -> dict[str, Any]:
        workers = sorted(self._workers())
        if not workers:  # a cluster that is still starting
            self.client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
            workers = sorted(self._workers())
        owners = {ij: workers[ij[0 if by_rows else 1] * len(workers) // strips] for ij in blocks}
        scattered: dict[str, Any] = {}
        for worker in set(owners.values()):
            mine = {f"dnmf-input-block-{token}-{i}-{j}": block for (i, j), block in blocks.items()
                    if owners[i, j] == worker}
            scattered.update(self.client.scatter(mine, workers=[worker]))
        return scattered

    def local_cache(self) -> StripCache | None:
        """A fresh cache on the workers' local disks (see :mod:`dnmf.runtime.local_cache`); None where the Dask
        configuration sets ``dnmf.local-cache: false``."""
        return StripCache() if dask.config.get("dnmf.local-cache", True) else None

    def drop_local_cache(self, cache: StripCache | None) -> None:
        if cache is not None and self.client.status == "running":
            self.client.run(drop, cache.token)

    @contextmanager
    def session(self, *, streamed: bool) -> Iterator[None]:
        if not streamed:
            from dnmf.runtime.workers import tune_workers

            tune_workers(self.client)
        yield

    def _priority(self, priority: int) -> dict[str, Any]:
        return {"priority": priority}

    def _submit_copy(self, template: StepTemplate, inputs: dict[str, da.Array], constants: list[Any],
                     priority: int) -> dict[str, Any]:
        """The copy's low-level graph straight to the scheduler (``Client.get``), and its results as arrays over
        their futures: no collection is merged, converted or optimised on the way (a sixth of the client's time
        per iteration at 100 blocks). The graph carries the futures of the inputs and constants, so that the
        scheduler keeps their data until the copy's tasks have read it."""
        graph, outputs = template.copy(inputs)
        for x in (*inputs.values(), *constants):
            if dask.is_dask_collection(x):
                graph.update(x.__dask_graph__())
        keys = {role: _block_keys(name, chunks) for role, (name, chunks, *_) in outputs.items()}
        wanted = [key for role in keys.values() for key in role]
        layer = HighLevelGraph({"dnmf-step": graph}, {"dnmf-step": set()})  # a dict would be tokenized whole
        futures = dict(zip(wanted, self.client.get(layer, wanted, sync=False, priority=priority)))
        return {role: da.Array(HighLevelGraph.from_collections(name, {key: futures[key] for key in keys[role]},
                                                               dependencies=()),
                               name, chunks=chunks, dtype=dtype, meta=meta)
                for role, (name, chunks, dtype, meta) in outputs.items()}

    def gather(self, scalars: list[Any]) -> list[float]:
        """Straight from the futures, with no task that could queue behind the next iteration's."""
        from distributed import futures_of

        return [float(np.asarray(value)) for value in self.client.gather([futures_of(x)[0] for x in scalars])]

    def recovers_from(self, error: BaseException) -> bool:
        """True while the scheduler still answers and, within :data:`WORKER_WAIT_SECONDS`, has workers that all
        answer too (a Nanny restarts a killed one; a dead one takes the scheduler a moment to drop). Scattered
        input blocks lost with a worker cannot be recomputed from the graph, but they can be scattered again from
        the caller's memory."""
        deadline = time.monotonic() + WORKER_WAIT_SECONDS
        while self.client.status == "running" and time.monotonic() < deadline:
            try:
                self.client.wait_for_workers(1, timeout=max(deadline - time.monotonic(), 0.1))
                self.client.run(os.getpid)
                return True
            except Exception:  # noqa: BLE001 - a worker that is gone but not yet dropped, or none at all
                time.sleep(0.5)
        return False

    def clock(self) -> PhaseClock:
        if self._clock is None:
            self._clock = PhaseClock(self.client)
        return self._clock
