"""An iteration's graph, built and optimised once and resubmitted with new inputs.

Every iteration of a fit has the same graph: only the keys of what it starts from (W, H and what the objective
carries) and of what it makes differ. Building it through :mod:`dask.array` and optimising it costs the client
hundreds of milliseconds at a hundred blocks, whatever the block size. A :class:`StepTemplate` keeps the
optimised low-level graph of the first such iteration; each later one renames its keys (the inputs' to the new
inputs', every other name to a fresh one) and submits it as it is, with no graph optimisation: every task of the
copy runs the template's task on the values of its renamed dependencies.

Keys stay those of dnmf's layers (``dnmf-wta-…``, ``dnmf-update-w-…``) with a new token, so that the dashboard,
the phase clock and the task stream group them as before.
"""

from __future__ import annotations

import gc
import re
import uuid
from collections.abc import Iterable
from functools import partial
from typing import Any

import dask
import dask.array as da
from dask._task_spec import Task, TaskRef
from dask.highlevelgraph import HighLevelGraph

__all__ = ["StepTemplate", "is_held", "opaque"]

_TOKEN = re.compile(r"-[0-9a-f]{32}$")


def _name(key: Any) -> str:
    return key[0] if isinstance(key, tuple) else key


def _keys(x: da.Array) -> list[Any]:
    return list(dask.core.flatten(x.__dask_keys__()))


def is_held(x: Any) -> bool:
    """Whether ``x`` is a Dask array whose graph holds its own blocks and nothing upstream (a persisted array)."""
    return isinstance(x, da.Array) and len(x.__dask_graph__()) == len(_keys(x))


def _evaluate(task: Any, dependencies: tuple[Any, ...], *values: Any) -> Any:
    """``task`` of a template, run on the values of its dependencies (given in the order of ``dependencies``)."""
    return task(dict(zip(dependencies, values)))


def _evaluate_pickled(task: bytes, dependencies: tuple[Any, ...], *values: Any) -> Any:
    """:func:`_evaluate` of a task pickled once, when the template was made, rather than at every submission."""
    from distributed.protocol.pickle import loads

    return _evaluate(loads(task), dependencies, *values)


def opaque(x: da.Array) -> da.Array:
    """A stand-in for ``x`` with its name, chunks and dtype and no graph: a step built from stand-ins refers to the
    inputs' keys and cannot have their data fused or inlined into its tasks."""
    return da.Array(HighLevelGraph({x.name: {}}, {x.name: set()}), x.name, chunks=x.chunks, dtype=x.dtype,
                    meta=x._meta)


def _fresh(name: str, token: str, index: int) -> str:
    """``name`` with the token of a new copy, made unique per name by ``index`` (so that names that differed
    only by their token stay distinct)."""
    return f"{_TOKEN.sub('', name)}-{token}{index:08x}"


class StepTemplate:
    """The optimised graph of one step, to be submitted again with other inputs.

    Parameters
    ----------
    optimized : dict of str to dask.array.Array
        The step's results, optimised together (:func:`dask.optimize`).
    graph : dict
        Their merged low-level graph, without the keys of what they were computed from.
    inputs : dict of str to dask.array.Array
        What the step started from, by role (``"W"``, ``"H"``, …): held arrays whose keys the graph refers to.
    passes : int
        The passes over A the step makes (:func:`dnmf.core.graph.count_pass`), counted again at every reuse.
    pickled : bool
        Copies are sent to other processes (a distributed scheduler): pickle each task once, here, so that a
        submission ships bytes instead of pickling the (fused, nested) tasks again.

    Raises
    ------
    ValueError
        If a result is not computed by the graph (an input passed through).
    """

    def __init__(self, optimized: dict[str, da.Array], graph: dict[Any, Any], inputs: dict[str, da.Array], *,
                 passes: int = 0, pickled: bool = False) -> None:
        self.passes = passes
        self._inputs = {role: (x.name, x.chunks, x.dtype) for role, x in inputs.items()}
        self._outputs = {role: (x.name, x.chunks, x.dtype, x._meta) for role, x in optimized.items()}
        self._names = sorted({_name(key) for key in graph})
        if any(name not in self._names for name, *_ in self._outputs.values()):
            raise ValueError("A step whose results include one of its inputs cannot be a template.")
        # Each task of a copy calls the template's own task on its renamed dependencies' values: one small Task
        # per key, instead of substituting keys all through the (fused, nested) original.
        if pickled:
            from distributed.protocol.pickle import dumps

            runs = {key: partial(_evaluate_pickled, dumps(task)) for key, task in graph.items()}
        else:
            runs = {key: partial(_evaluate, task) for key, task in graph.items()}
        dependencies = {key: tuple(sorted(task.dependencies, key=str)) for key, task in graph.items()}
        self._runs = {key: (partial(run, dependencies[key]), dependencies[key]) for key, run in runs.items()}
        external = {dep for task in graph.values() for dep in task.dependencies} - set(graph)
        self._all_keys = [*graph, *external]

    def fits(self, inputs: dict[str, Any]) -> bool:
        """Whether ``inputs`` have the roles, chunks and dtypes of this template's, and are held arrays."""
        return set(inputs) == set(self._inputs) and all(
            is_held(x) and (x.chunks, x.dtype) == self._inputs[role][1:] for role, x in inputs.items())

    def instantiate(self, inputs: dict[str, da.Array], constants: Iterable[Any]) -> dict[str, da.Array]:
        """The step's results computed from ``inputs`` (lazy arrays over the renamed graph), which also depends
        on ``constants``: held arrays the step reads but does not change (A held in memory). What was not held
        when the template was built (A streamed from its store) is part of the template and read anew."""
        graph, outputs = self.copy(inputs)
        dependencies = [x for x in (*inputs.values(), *constants) if dask.is_dask_collection(x)]
        hlg = HighLevelGraph.from_collections(_fresh("dnmf-step", uuid.uuid4().hex[:24], 0), graph,
                                              dependencies=dependencies)
        return {role: da.Array(hlg, name, chunks=chunks, dtype=dtype, meta=meta)
                for role, (name, chunks, dtype, meta) in outputs.items()}

    def copy(self, inputs: dict[str, da.Array]) -> tuple[dict[Any, Task], dict[str, tuple[str, Any, Any, Any]]]:
        """The renamed low-level graph of a copy that starts from ``inputs`` (its tasks only: it refers to the
        inputs' and the constants' keys), and each result's name, chunks, dtype and meta."""
        token = uuid.uuid4().hex[:24]
        rename = {name: _fresh(name, token, index) for index, name in enumerate(self._names)}
        rename.update({self._inputs[role][0]: x.name for role, x in inputs.items()})
        keys = {key: (rename.get(key[0], key[0]), *key[1:]) if isinstance(key, tuple) else rename.get(key, key)
                for key in self._all_keys}
        # A copy makes a few thousand small objects; a cyclic collection they set off midway would scan every
        # graph this process holds (a fifth of the copy's time at 100 blocks). Nothing here makes a cycle.
        collecting = gc.isenabled()
        gc.disable()
        try:
            graph = {keys[key]: Task(keys[key], run, *(TaskRef(keys[dep]) for dep in deps))
                     for key, (run, deps) in self._runs.items()}
        finally:
            if collecting:
                gc.enable()
        return graph, {role: (rename[name], *rest) for role, (name, *rest) in self._outputs.items()}

    @property
    def n_tasks(self) -> int:
        return len(self._runs)
