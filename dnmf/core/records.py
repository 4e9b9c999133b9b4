"""What a fit records: the per-iteration record callbacks receive, where the loop stands, and the penalties.

Plain data with no Dask in it, shared by the engine, the objectives, checkpoints and the views.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["Callback", "Checkpointer", "FitResult", "IterationRecord", "Penalties", "Progress"]


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
        The factors after this iteration, persisted where the fit runs: ``record.H.compute()`` fetches H, and
        nothing moves unless asked for. Built on first access (``factors`` returns them).
    phase_seconds : dict of str to float
        Task seconds per phase of this iteration (see :mod:`dnmf.runtime.phases`), and ``"graph"``, the
        client's seconds to build and submit it.
    loss_resolution : float
        An estimate of the rounding error of ``loss``: 0 where the loss was evaluated exactly; a loss not above it
        is noise (see :func:`dnmf.core.engine.resolution`).
    """

    iteration: int
    loss: float
    seconds: float
    factors: Callable[[], tuple[Any, Any]] = field(repr=False, compare=False)
    phase_seconds: dict[str, float] = field(default_factory=dict, repr=False, compare=False)
    loss_resolution: float = 0.0

    @property
    def W(self) -> Any:
        return self.factors()[0]

    @property
    def H(self) -> Any:
        return self.factors()[1]

    def event(self) -> dict[str, Any]:
        """The record as the JSON fields of the per-iteration log event (``iteration``, ``loss``, ``seconds``)."""
        return {"iteration": self.iteration, "loss": self.loss, "loss_resolution": self.loss_resolution,
                "seconds": round(self.seconds, 6)}


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
    #: Per iteration, the rounding error of its entry of ``loss_history`` (0 where it was evaluated exactly);
    #: NaN for iterations of a run checkpointed by a release that did not record it.
    loss_resolution: list[float] = field(default_factory=list)
    #: Losses evaluated exactly because the trace identity's were within their rounding error.
    exact_losses: int = 0
    #: Wall seconds those exact evaluations took.
    exact_loss_seconds: float = 0.0
    seconds_per_iteration: list[float] = field(default_factory=list)
    tasks_per_iteration: list[int] = field(default_factory=list)
    checkpoint_seconds: list[float] = field(default_factory=list)
    #: Per iteration: task seconds per phase (:mod:`dnmf.runtime.phases`) and ``"graph"``, the client's wall time to
    #: build and optimise the iteration's graph. On a cluster, the tasks are those that ended between two losses, a
    #: few of them the next iteration's.
    phase_seconds: list[dict[str, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        progress = cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
        missing = len(progress.loss_history) - len(progress.loss_resolution)
        progress.loss_resolution = [*progress.loss_resolution, *[math.nan] * max(missing, 0)]
        return progress


#: ``checkpoint(W, H, progress)``: persist the state after an iteration. It may return equal factors to continue
#: with, e.g. read back from the checkpoint, so that the scheduler's lineage starts there.
Checkpointer = Callable[[Any, Any, "Progress"], "tuple[Any, Any] | None"]


@dataclass
class FitResult:
    """What :func:`run` returns: persisted factors and the record of the run."""

    W: Any
    H: Any
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
