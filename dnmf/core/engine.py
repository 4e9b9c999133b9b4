"""The alternating loop, solver-agnostic.

One iteration updates W, then H (as scikit-learn does), and ends with the loss. An objective
(:mod:`dnmf.core.objectives`) builds that graph from products formed by :mod:`dnmf.core.products`: by default the Frobenius
loss, whose loss comes from the trace identity at no extra pass over A. The whole iteration is one graph: it is
persisted at once, and only the loss, a scalar, comes back to the client. W, H and what the objective carries
(``HHᵀ`` for Frobenius) stay persisted between iterations, so every iteration submits the same number of tasks.

On a distributed cluster the next iteration is submitted before this one's loss comes back, so that the workers
do not wait for the client to fetch the loss and build the next graph. It is dropped unused
when the fit stops there or a checkpoint swaps the factors for their read-back copies, and it is not submitted
when a checkpoint is due or the input streams from its store (its reads would not wait for the current
iteration). Results are the same either way.

The loop knows no update rule's or objective's maths: a rule is any :class:`dnmf.core.rules.UpdateRule`.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import dask
import dask.array as da
import numpy as np

from dnmf.core import objectives
from dnmf.core import products
from dnmf.runtime.client import active_client
from dnmf import exceptions
from dnmf.runtime.phases import PhaseClock
from dnmf.core.rules import UpdateRule
from dnmf.runtime.workers import tune_workers

__all__ = ["CONVERGENCE_CHECK_EVERY", "FitResult", "IterationRecord", "Penalties", "run"]

logger = logging.getLogger("dnmf")

#: The stopping test runs every this many iterations, as in scikit-learn's ``solver="mu"``.
CONVERGENCE_CHECK_EVERY = 10



@dataclass(frozen=True)
class IterationRecord:
    """What a ``callback`` receives after every iteration.

    Attributes
    ----------
    iteration : int
        Iterations done, counted from the start of the fit (a resumed run included).
    loss : float
        ``‖A − WH‖_F`` after this iteration.
    seconds : float
        Wall time from the end of the previous iteration (its callback and checkpoint excluded) to this loss.
    W, H : dask.array.Array
        The factors after this iteration, persisted on the cluster: ``record.H.compute()`` fetches H, and nothing
        moves unless asked for.
    """

    iteration: int
    loss: float
    seconds: float
    W: da.Array = field(repr=False)
    H: da.Array = field(repr=False)


Callback = Callable[[IterationRecord], Any]


@dataclass(frozen=True)
class Penalties:
    """Scaled L1 and L2 penalties on W and H, as scikit-learn's ``_compute_regularization`` returns them."""

    l1_w: float = 0.0
    l2_w: float = 0.0
    l1_h: float = 0.0
    l2_h: float = 0.0

    @classmethod
    def from_alphas(cls, shape: tuple[int, int], alpha_w: float, alpha_h: float, l1_ratio: float) -> Penalties:
        m, n = shape
        return cls(
            l1_w=n * alpha_w * l1_ratio,
            l2_w=n * alpha_w * (1.0 - l1_ratio),
            l1_h=m * alpha_h * l1_ratio,
            l2_h=m * alpha_h * (1.0 - l1_ratio),
        )


@dataclass
class Progress:
    """Where the loop stands; plain JSON types only, so a checkpoint can carry it and a resumed run continue
    exactly where an uninterrupted one would."""

    iteration: int = 0
    converged: bool = False
    error_at_init: float = math.nan
    previous_error: float = math.nan
    loss_history: list[float] = field(default_factory=list)
    seconds_per_iteration: list[float] = field(default_factory=list)
    tasks_per_iteration: list[int] = field(default_factory=list)
    checkpoint_seconds: list[float] = field(default_factory=list)
    #: Per iteration: task seconds per phase (:mod:`dnmf.runtime.phases`) and ``"graph"``, the client's wall time to build
    #: and optimise the iteration's graph. On a cluster, the tasks are those that ended between two losses, a few
    #: of them the next iteration's.
    phase_seconds: list[dict[str, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


#: ``checkpoint(W, H, progress)``: persist the state after an iteration. It may return equal factors to continue
#: with, e.g. read back from the checkpoint, so that the scheduler's lineage starts there.
Checkpointer = Callable[[da.Array, da.Array, Progress], "tuple[da.Array, da.Array] | None"]


@dataclass
class FitResult:
    """What :func:`run` returns: persisted factors and the record of the run."""

    W: da.Array
    H: da.Array
    progress: Progress

    @property
    def n_iter(self) -> int:
        return self.progress.iteration

    @property
    def converged(self) -> bool:
        return self.progress.converged

    @property
    def loss_history(self) -> list[float]:
        return self.progress.loss_history

    @property
    def error_at_init(self) -> float:
        return self.progress.error_at_init


@dataclass
class _State:
    """The persisted collections one iteration starts from: the factors and what the objective carries."""

    W: da.Array
    H: da.Array
    carried: dict[str, da.Array]


@dataclass
class _Submitted:
    """One iteration in flight: the state it leads to, its loss (and the initial loss) as persisted scalars, the
    tasks it added and the client's seconds to build its graph."""

    state: _State
    loss: da.Array
    initial_loss: da.Array | None
    n_tasks: int
    graph_seconds: float


def _optimize_counting_tasks(collections: dict[str, da.Array],
                             persisted: list[da.Array]) -> tuple[dict[str, da.Array], int]:
    """Optimise the iteration's graph once, and count the tasks it adds to those already persisted."""
    optimized = dask.optimize(*collections.values())
    graph: dict = {}
    for x in optimized:
        graph.update(x.__dask_graph__())
    known = {key for x in persisted for key in dask.core.flatten(x.__dask_keys__())}
    n_tasks = sum(1 for key in graph if key not in known)
    return dict(zip(collections, optimized)), n_tasks


def run(
    A: da.Array,
    W: da.Array,
    H: da.Array,
    *,
    rule: UpdateRule,
    norm_squared_a: float | None = None,
    objective: objectives.Objective | None = None,
    stream_input: bool = False,
    penalties: Penalties = Penalties(),
    max_iter: int = 200,
    tol: float = 1e-4,
    update_h: bool = True,
    callback: Callback | None = None,
    progress: Progress | None = None,
    checkpoint: Checkpointer | None = None,
    checkpoint_every: int | None = 1,
    checkpoint_seconds: float | None = None,
) -> FitResult:
    """Alternate W- and H-updates until the loss stops falling.

    Parameters
    ----------
    A : dask.array.Array of shape (m, n)
        Validated, non-negative data with NumPy or CSR blocks.
    W : dask.array.Array of shape (m, k)
        Initial W, row-aligned with A.
    H : dask.array.Array of shape (k, n)
        Initial H, column-aligned with A. Held fixed when ``update_h`` is False.
    rule : UpdateRule
        The local update applied to every block of W and H.
    norm_squared_a : float, optional
        ``‖A‖²``, from one pass over A done by the caller; needed by the default objective.
    objective : Objective, optional
        What the iterations minimise and how (see :mod:`dnmf.core.objectives`); by default
        ``Frobenius(norm_squared_a)``, whose steps apply ``rule``.
    stream_input : bool
        A is read from its store block by block and is not held in memory: each pass over it then reads it anew,
        so that no block outlives the product it feeds.
    penalties : Penalties
        Scaled regularisation strengths.
    max_iter : int
        Iteration at which to stop, counted from the start of the fit (a resumed run included).
    tol : float
        Stop when, checked every :data:`CONVERGENCE_CHECK_EVERY` iterations, the decrease of ``‖A − WH‖`` since the
        last check is below ``tol`` times the error at initialisation (scikit-learn's rule). ``tol=0`` runs
        ``max_iter`` iterations.
    update_h : bool
        If False, only W is updated (``transform``); ``AHᵀ`` is then formed once and A is read once.
    callback : callable, optional
        Called as ``callback(record)`` after every iteration, with an :class:`IterationRecord`. A callback that
        raises ``StopIteration`` ends the fit after this iteration (checkpointed, and with no convergence warning).
    progress : Progress, optional
        Where a resumed run stands; ``W`` and ``H`` are then the factors after ``progress.iteration``.
    checkpoint : callable, optional
        Called as ``checkpoint(W, H, progress)`` every ``checkpoint_every`` iterations, or once
        ``checkpoint_seconds`` passed since the last one, and after the last iteration.

    Returns
    -------
    FitResult
    """
    progress = progress if progress is not None else Progress()
    if objective is None:
        if norm_squared_a is None:
            raise TypeError("run() needs norm_squared_a for the default Frobenius objective, or an objective.")
        objective = objectives.Frobenius(norm_squared_a)
    (carried,) = dask.persist(objective.carried(A, W, H, update_h=update_h))
    state = _State(W, H, carried)
    last_checkpoint = time.perf_counter()
    client = active_client()
    if client is not None and not stream_input:
        tune_workers(client)
    clock = PhaseClock(client)
    read_again = products.reread if stream_input else objectives.read_in_place

    def submit(state: _State, iteration: int, with_initial_loss: bool) -> _Submitted:
        began = time.perf_counter()
        graph = objective.iteration(A, state.W, state.H, state.carried, rule=rule, penalties=penalties,
                                    update_h=update_h, with_initial_loss=with_initial_loss, read_again=read_again)
        graph, n_tasks = _optimize_counting_tasks(graph, [A, state.W, state.H, *state.carried.values()])
        graph_seconds = time.perf_counter() - began
        # Each iteration ranks below the one before it, so that its tasks only fill workers the previous one leaves
        # idle and never delay the previous loss.
        priority = {"priority": -iteration} if client is not None else {}
        values = dict(zip(graph, dask.persist(*graph.values(), optimize_graph=False, **priority)))
        after = _State(values["W"], values.get("H", state.H),
                       {name: values.get(name, value) for name, value in state.carried.items()})
        return _Submitted(after, values["loss"], values.get("initial_loss"), n_tasks, graph_seconds)

    def fetch(scalars: list[da.Array]) -> list[float]:
        """Values of persisted scalars: on a cluster straight from their futures, with no task that could queue
        behind the next iteration's."""
        if client is None:
            return [float(x) for x in dask.compute(*scalars)]
        from distributed import futures_of

        return [float(np.asarray(value)) for value in client.gather([futures_of(x)[0] for x in scalars])]

    def checkpoint_due(iteration: int) -> bool:
        return checkpoint is not None and (
            iteration == max_iter
            or bool(checkpoint_every and iteration % checkpoint_every == 0)
            or (checkpoint_seconds is not None and time.perf_counter() - last_checkpoint >= checkpoint_seconds)
        )

    pipelined = client is not None and not stream_input
    stopped_by_callback = False
    ahead: _Submitted | None = None
    started = time.perf_counter()
    while progress.iteration < max_iter and not progress.converged and not stopped_by_callback:
        iteration = progress.iteration + 1
        with clock:
            current = ahead or submit(state, iteration, with_initial_loss=math.isnan(progress.error_at_init))
            ahead = None
            state = current.state
            if pipelined and iteration < max_iter and not checkpoint_due(iteration):
                ahead = submit(state, iteration + 1, with_initial_loss=False)
            losses = fetch([current.loss] + ([current.initial_loss] if current.initial_loss is not None else []))
        error = math.sqrt(float(losses[0]))
        if current.initial_loss is not None:
            progress.error_at_init = progress.previous_error = math.sqrt(float(losses[1]))
        progress.iteration = iteration
        progress.loss_history.append(error)
        progress.tasks_per_iteration.append(current.n_tasks)
        progress.seconds_per_iteration.append(time.perf_counter() - started)
        progress.phase_seconds.append({"graph": round(current.graph_seconds, 6), **clock.seconds})
        logger.info("iteration %d: loss %.6g (%.3f s)", iteration, error, progress.seconds_per_iteration[-1])
        if callback is not None:
            try:
                callback(IterationRecord(iteration, error, progress.seconds_per_iteration[-1], state.W, state.H))
            except StopIteration:
                stopped_by_callback = True
        if tol > 0 and iteration % CONVERGENCE_CHECK_EVERY == 0:
            decrease = progress.previous_error - error
            if progress.error_at_init == 0 or decrease / progress.error_at_init < tol:
                progress.converged = True
            progress.previous_error = error
        if checkpoint is not None and (progress.converged or stopped_by_callback or checkpoint_due(iteration)):
            written = time.perf_counter()
            replacement = checkpoint(state.W, state.H, progress)
            if replacement is not None:
                ahead = None
                state.W, state.H = replacement
                state.carried = objective.carried(A, state.W, state.H, update_h=update_h)
            progress.checkpoint_seconds.append(time.perf_counter() - written)
            last_checkpoint = time.perf_counter()
        started = time.perf_counter()
    if tol > 0 and not progress.converged and not stopped_by_callback:
        warnings.warn(
            f"Maximum number of iterations {max_iter} reached. Increase it to improve convergence.",
            exceptions.ConvergenceWarning, stacklevel=3,
        )
    return FitResult(W=state.W, H=state.H, progress=progress)
