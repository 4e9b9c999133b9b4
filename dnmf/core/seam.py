"""The runtime seam: everything the engine asks of the machine or the cluster it runs on.

The engine, the objectives and the initialisations build each step from :mod:`dnmf.core.products`, and hand what
they built to a :class:`Runtime`: to persist it, to fetch the few scalars the loop needs, to time it. They never
ask which scheduler is active. The implementations live in :mod:`dnmf.runtime` (modelled on xarray's
``ChunkManagerEntrypoint``): Dask's local schedulers, a distributed client, and an in-process executor that holds
the blocks in this process and runs the products on them directly, with no Dask graph per iteration.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

__all__ = ["Runtime", "StepTimer"]


class StepTimer(AbstractContextManager):
    """What :meth:`Runtime.clock` returns: a context, entered once per iteration, whose ``seconds`` (phase → task
    seconds, see :mod:`dnmf.runtime.phases`) are filled when it closes."""

    seconds: dict[str, float]


class Runtime(ABC):
    """One way of running a fit.

    Attributes
    ----------
    name : str
        ``"in-process"``, ``"dask-local"`` or ``"distributed"``; reported in ``NMF.timings_["executor"]``.
    pipelines : bool
        Submit the next iteration before this one's loss is back (worthwhile where submission is asynchronous).
    dashboard_link : str or None
        Where the user can watch the fit.
    """

    name: str = "runtime"
    pipelines: bool = False
    dashboard_link: str | None = None

    # -- the cluster's size, for the default chunk grid --------------------------------------------------------
    @property
    @abstractmethod
    def n_workers(self) -> int:
        """Workers (or threads) that products run on in parallel."""

    @property
    @abstractmethod
    def worker_memory(self) -> int | None:
        """The smallest worker's memory limit in bytes, if known."""

    @property
    @abstractmethod
    def total_memory(self) -> int:
        """Memory that inputs may be held in, in bytes."""

    def grid(self, shape: tuple[int, int], nbytes: int) -> tuple[int, int]:
        """The default number of row and column blocks for a matrix of ``nbytes`` (see :mod:`dnmf.core.grid`)."""
        from dnmf.core.grid import default_grid

        return default_grid(shape, nbytes, self.n_workers, self.worker_memory)

    # -- blocks ------------------------------------------------------------------------------------------------
    @abstractmethod
    def place(self, blocks: dict[tuple[int, int], Any], chunks: tuple[tuple[int, ...], tuple[int, ...]],
              dtype: Any, sparse: bool, token: Callable[[], str]) -> Any:
        """An array over blocks held by the caller, where this runtime keeps them; ``token()`` names them (a hash
        of the data, computed only where keys need it)."""

    @abstractmethod
    def hold(self, array: Any) -> Any:
        """``array`` (a Dask array or blocks) held in memory where this runtime computes."""

    def local_cache(self) -> Any | None:
        """Where an input read from its store at every pass may keep the blocks it read, uncompressed, for the next
        passes (:class:`dnmf.runtime.local_cache.StripCache`, given to :func:`dnmf.open_matrix`); None where this
        runtime keeps none."""
        return None

    def drop_local_cache(self, cache: Any) -> None:
        """Remove what a fit kept in ``cache`` (from :meth:`local_cache`), wherever it was kept."""

    def to_dask(self, x: Any) -> Any:
        """``x`` as a Dask array (for checkpoints, callbacks and Dask output)."""
        return x

    def adopt(self, x: Any) -> Any:
        """A Dask array (e.g. read back from a checkpoint) in this runtime's form."""
        return x

    # -- running -----------------------------------------------------------------------------------------------
    @contextmanager
    def session(self, *, streamed: bool) -> Iterator[None]:
        """Open around a whole fit: worker tuning, thread limits. ``streamed``: A is read from its store anew for
        every pass."""
        yield

    @abstractmethod
    def persist(self, collections: dict[str, Any], *, priority: int = 0,
                persisted: tuple[Any, ...] = ()) -> tuple[dict[str, Any], int]:
        """Start computing ``collections`` and keep the results; returns them and the number of tasks (or block
        kernel calls) this added to those of ``persisted``, what the step started from. A lower ``priority``
        runs after a higher one."""

    def persist_step(self, build: Callable[[dict[str, Any]], dict[str, Any]], inputs: dict[str, Any], *,
                     signature: Hashable, priority: int = 0,
                     persisted: tuple[Any, ...] = ()) -> tuple[dict[str, Any], int]:
        """:meth:`persist` of ``build(inputs)``, a step of the loop computed from ``inputs`` (by role: ``"W"``,
        ``"H"``, what the objective carries) and from the rest of ``persisted``, which it does not change. Steps
        with the same ``signature`` differ only by their inputs, so a runtime may build one and submit its graph
        again for the next ones."""
        return self.persist(build(inputs), priority=priority, persisted=persisted)

    def recovers_from(self, error: BaseException) -> bool:
        """Whether a fit that failed with ``error`` can start again on this runtime: the work was lost (a worker
        died holding blocks that only it had) but the runtime itself still runs. The caller then places the
        input anew and starts again, from the fit's checkpoint if it has one."""
        return False

    @abstractmethod
    def compute(self, *values: Any) -> tuple[Any, ...]:
        """Concrete values (NumPy or SciPy) of small or final results."""

    @abstractmethod
    def gather(self, scalars: list[Any]) -> list[float]:
        """The values of persisted scalars, as floats."""

    @abstractmethod
    def clock(self) -> StepTimer:
        """A timer of the work done while it is open, by phase."""
