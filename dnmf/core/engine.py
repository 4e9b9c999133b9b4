"""The alternating loop, solver-agnostic and deployment-agnostic.

One iteration updates W, then H (as scikit-learn does), and ends with the loss. An objective
(:mod:`dnmf.core.objectives`) builds that step from the products of :mod:`dnmf.core.products`: by default the
Frobenius loss, whose loss comes from the trace identity at no extra pass over A. The loop hands each step to the
:class:`~dnmf.core.seam.Runtime` it was given, which persists it (a Dask graph, or blocks computed in this
process) and returns only the loss, a scalar. W, H and what the objective carries (``HHᵀ`` for Frobenius) stay
persisted between iterations, so every iteration costs the same.

Where the runtime pipelines (a distributed client), the next iteration is submitted before this one's loss comes
back, so that the workers do not wait for the client. It is dropped unused when the fit stops there or a
checkpoint swaps the factors for their read-back copies, and it is not submitted when a checkpoint is due or the
input streams from its store (its reads would not wait for the current iteration). Results are the same either way.

An objective whose loss lags (``loss_lags``: the β-divergences, EM steps for missing entries) reports, in each
iteration's first pass over A, the loss of the factors that iteration starts from (and its rounding, if it has
one). The loop then always submits the next iteration before it reads the current one's loss (whose first pass
waits for the current H even on streamed input), and evaluates the last iteration's loss exactly; the initial error
comes from the first iteration's own first pass.

The loop knows no update rule's or objective's maths, and no scheduler: a rule is any
:class:`dnmf.core.rules.UpdateRule`, and everything it asks of the machine goes through the runtime.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

from dnmf.core import objectives, products
from dnmf.core.records import (
    Callback,
    Checkpointer,
    FitResult,
    IterationRecord,
    Penalties,
    Progress,
)
from dnmf.core.rules import UpdateRule
from dnmf.core.seam import Runtime
from dnmf import exceptions
from dnmf.exceptions import DivergenceError

__all__ = ["CONVERGENCE_CHECK_EVERY", "EXACT_SHARE", "FINAL_ERROR_PRECISION", "FitResult", "IterationRecord",
           "Penalties", "Progress", "final_error", "resolution", "run"]

logger = logging.getLogger("dnmf")

#: The stopping test runs every this many iterations, as in scikit-learn's ``solver="mu"``.
CONVERGENCE_CHECK_EVERY = 10

#: At a convergence check, a loss whose rounding error (see :func:`resolution`) reaches this share of the decrease
#: the test looks for (``tol`` times the initial error) is evaluated exactly instead, so that no stopping decision
#: rests on rounding noise.
EXACT_SHARE = 0.1

#: The relative rounding error below which the last iteration's loss stands as the fit's final error
#: (``reconstruction_err_``) instead of an exact evaluation at one more pass over A (see :func:`final_error`).
FINAL_ERROR_PRECISION = 1e-6

#: The message logged after every iteration; its record carries the :meth:`IterationRecord.event` fields as
#: ``dnmf_event``, which the CLI's JSON log writes out.
ITERATION_MESSAGE = "iteration %d: loss %.6g (%.3f s)"


def final_error(progress: Progress) -> float | None:
    """The error of the factors a fit ends with, from its last iteration's loss when that loss is known to
    :data:`FINAL_ERROR_PRECISION` (always for β-divergences and exact checks, for the trace identity in float64);
    None where it is not, and the caller evaluates it exactly at one more pass over A."""
    history, resolutions = progress.loss_history, progress.loss_resolution
    if not history or len(resolutions) != len(history):
        return None
    return history[-1] if resolutions[-1] <= FINAL_ERROR_PRECISION * history[-1] else None


def resolution(loss_squared: float, rounding: float) -> float:
    """The rounding error of ``sqrt(loss_squared)`` when ``loss_squared`` is known to ``± rounding``: about
    ``rounding / (2·loss)`` for a loss well above the noise, ``sqrt(rounding)`` at the noise floor."""
    if rounding <= 0:
        return 0.0
    loss_squared = max(loss_squared, 0.0)
    return math.sqrt(loss_squared + rounding) - math.sqrt(loss_squared)


@dataclass
class _State:
    """The persisted collections one iteration starts from: the factors and what the objective carries."""

    W: Any
    H: Any
    carried: dict[str, Any]

    def collections(self) -> tuple[Any, ...]:
        return self.W, self.H, *self.carried.values()


@dataclass
class _Submitted:
    """One iteration in flight: the state it leads to, its loss (and the initial loss) as persisted scalars, the
    tasks it added and the client's seconds to build its graph."""

    state: _State
    loss: Any
    rounding: Any | None
    initial_loss: Any | None
    n_tasks: int
    graph_seconds: float

    def scalars(self) -> list[Any]:
        return [self.loss, *(x for x in (self.rounding, self.initial_loss) if x is not None)]


def run(
    A: Any,
    W: Any,
    H: Any,
    *,
    rule: UpdateRule,
    runtime: Runtime,
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
    warn_unconverged: bool = True,
) -> FitResult:
    """Alternate W- and H-updates until the loss stops falling.

    Parameters
    ----------
    A : dask.array.Array or Blocks of shape (m, n)
        Validated, non-negative data with NumPy or CSR blocks, in ``runtime``'s form.
    W : dask.array.Array or Blocks of shape (m, k)
        Initial W, row-aligned with A.
    H : dask.array.Array or Blocks of shape (k, n)
        Initial H, column-aligned with A. Held fixed when ``update_h`` is False.
    rule : UpdateRule
        The local update applied to every block of W and H.
    runtime : Runtime
        Where and how each step runs (:mod:`dnmf.runtime`).
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
        Called as ``checkpoint(W, H, progress)`` with Dask arrays every ``checkpoint_every`` iterations, or once
        ``checkpoint_seconds`` passed since the last one, and after the last iteration.
    warn_unconverged : bool
        Warn with a :class:`~dnmf.exceptions.ConvergenceWarning` when ``max_iter`` ends the fit before ``tol`` is
        met. A fit run whole on a Dask worker does not: the warning is scikit-learn's, and a worker must not import
        it; its ``FitResult.converged`` says the same.

    Returns
    -------
    FitResult
        Factors in ``runtime``'s form.

    Raises
    ------
    DivergenceError
        If the loss stops being finite (an overflow, or infinite penalties): the factors are then unusable.
    """
    progress = progress if progress is not None else Progress()
    if objective is None:
        if norm_squared_a is None:
            raise TypeError("run() needs norm_squared_a for the default Frobenius objective, or an objective.")
        objective = objectives.Frobenius(norm_squared_a)
    read_again = products.reread if stream_input else objectives.read_in_place
    with runtime.session(streamed=stream_input):
        prepared, _ = runtime.persist(objective.prepare(A))
        carried, _ = runtime.persist(objective.carried(A, W, H, update_h=update_h))
        state = _State(W, H, {**prepared, **carried})
        clock = runtime.clock()
        pipelined = runtime.pipelines and not stream_input
        run_token = object()

        def submit(state: _State, iteration: int, with_initial_loss: bool) -> _Submitted:
            began = time.perf_counter()

            def build(inputs: dict[str, Any]) -> dict[str, Any]:
                carried = {name: inputs[name] for name in state.carried}
                return objective.iteration(A, inputs["W"], inputs["H"], carried, rule=rule, penalties=penalties,
                                           update_h=update_h, with_initial_loss=with_initial_loss,
                                           read_again=read_again)

            # Each iteration ranks below the one before it, so that its tasks only fill workers the previous one
            # leaves idle and never delay the previous loss.
            values, n_tasks = runtime.persist_step(
                build, {"W": state.W, "H": state.H, **state.carried}, signature=(run_token, with_initial_loss),
                priority=-iteration, persisted=(A, *state.collections()))
            after = _State(values["W"], values.get("H", state.H),
                           {name: values.get(name, value) for name, value in state.carried.items()})
            return _Submitted(after, values["loss_before" if objective.loss_lags else "loss"],
                              values.get("loss_rounding"), values.get("initial_loss"), n_tasks,
                              time.perf_counter() - began)

        def lagged_losses(current: _Submitted, iteration: int) -> tuple[list[float], _Submitted | None]:
            """For an objective whose loss lags: ``[loss of current.state, its rounding?, loss it started
            from?]`` from the next iteration's first pass, submitted here, or after the last iteration from one
            exact evaluation (rounding 0); the rounding only if the objective reports one, the last only while the
            initial error is unknown."""
            initial = [current.loss] if math.isnan(progress.error_at_init) else []
            if iteration < max_iter:
                following = submit(current.state, iteration + 1, with_initial_loss=False)
                rounding = [following.rounding] if following.rounding is not None else []
                return runtime.gather([following.loss, *rounding, *initial]), following
            exact = runtime.persist({"loss": objective.exact_loss(A, current.state.W, current.state.H)})[0]["loss"]
            loss, *rest = runtime.gather([exact, *initial])
            return [loss, *([0.0] if current.rounding is not None else []), *rest], None

        def checkpoint_due(iteration: int) -> bool:
            return checkpoint is not None and (
                iteration == max_iter
                or bool(checkpoint_every and iteration % checkpoint_every == 0)
                or (checkpoint_seconds is not None and time.perf_counter() - last_checkpoint >= checkpoint_seconds)
            )

        last_checkpoint = time.perf_counter()
        stopped_by_callback = False
        ahead: _Submitted | None = None
        started = time.perf_counter()
        while progress.iteration < max_iter and not progress.converged and not stopped_by_callback:
            iteration = progress.iteration + 1
            with clock:
                initial_unknown = math.isnan(progress.error_at_init)
                current = ahead or submit(state, iteration,
                                          with_initial_loss=initial_unknown and not objective.loss_lags)
                ahead = None
                state = current.state
                if objective.loss_lags:
                    scalars, ahead = lagged_losses(current, iteration)
                else:
                    if pipelined and iteration < max_iter and not checkpoint_due(iteration):
                        ahead = submit(state, iteration + 1, with_initial_loss=False)
                    scalars = runtime.gather(current.scalars())
            if not all(math.isfinite(value) for value in scalars):
                raise DivergenceError(
                    f"The loss is no longer finite after iteration {iteration} (got {scalars[0]}): the factors "
                    "overflowed. Scale the data down (e.g. divide X by its maximum), use float64 input, or lower "
                    "alpha_W/alpha_H; nothing of this fit was kept.")
            loss_squared = scalars[0]
            rounding = scalars[1] if current.rounding is not None else 0.0
            if initial_unknown and (objective.loss_lags or current.initial_loss is not None):
                progress.error_at_init = progress.previous_error = math.sqrt(scalars[-1])
            check = tol > 0 and iteration % CONVERGENCE_CHECK_EVERY == 0
            if rounding > 0 and (loss_squared <= rounding or (check and resolution(loss_squared, rounding)
                                                              >= EXACT_SHARE * tol * progress.error_at_init)):
                evaluating = time.perf_counter()
                exact, _ = runtime.persist({"loss": objective.exact_loss(A, state.W, state.H)})
                loss_squared, rounding = runtime.gather([exact["loss"]])[0], 0.0
                progress.exact_losses += 1
                progress.exact_loss_seconds += time.perf_counter() - evaluating
            error = math.sqrt(max(loss_squared, 0.0))
            progress.iteration = iteration
            progress.loss_history.append(error)
            progress.loss_resolution.append(resolution(loss_squared, rounding))
            progress.tasks_per_iteration.append(current.n_tasks)
            progress.seconds_per_iteration.append(time.perf_counter() - started)
            progress.phase_seconds.append({"graph": round(current.graph_seconds, 6), **clock.seconds})
            if callback is not None or logger.isEnabledFor(logging.INFO):
                W_now, H_now = state.W, state.H
                record = IterationRecord(iteration, error, progress.seconds_per_iteration[-1],
                                         lambda: (runtime.to_dask(W_now), runtime.to_dask(H_now)),
                                         progress.phase_seconds[-1], progress.loss_resolution[-1])
                logger.info(ITERATION_MESSAGE, iteration, error, record.seconds, extra={"dnmf_event": record.event()})
                if callback is not None:
                    try:
                        callback(record)
                    except StopIteration:
                        stopped_by_callback = True
            if check:
                decrease = progress.previous_error - error
                if progress.error_at_init == 0 or decrease / progress.error_at_init < tol:
                    progress.converged = True
                progress.previous_error = error
            if checkpoint is not None and (progress.converged or stopped_by_callback or checkpoint_due(iteration)):
                written = time.perf_counter()
                replacement = checkpoint(runtime.to_dask(state.W), runtime.to_dask(state.H), progress)
                if replacement is not None:
                    ahead = None
                    state.W, state.H = (runtime.adopt(x) for x in replacement)
                    carried, _ = runtime.persist(objective.carried(A, state.W, state.H, update_h=update_h))
                    state.carried = {**prepared, **carried}
                progress.checkpoint_seconds.append(time.perf_counter() - written)
                last_checkpoint = time.perf_counter()
            started = time.perf_counter()
    if warn_unconverged and tol > 0 and not progress.converged and not stopped_by_callback:
        warnings.warn(
            f"Maximum number of iterations {max_iter} reached. Increase it to improve convergence.",
            exceptions.ConvergenceWarning, stacklevel=3,
        )
    return FitResult(W=state.W, H=state.H, progress=progress)
