"""Where an iteration's time goes: seconds of task execution per phase of the algorithm.

Every task dnmf submits carries a key prefix from DESIGN.md §3 (``dnmf-gram-w``, ``dnmf-wta-block``, …), so the
phase of a task is read off its key. :class:`PhaseClock` adds up the execution time of the tasks that finish while it
is open: from the scheduler's task stream when a distributed ``Client`` is active, and from Dask's local-scheduler
callbacks otherwise. The figures are task seconds summed over workers, not wall time: on two busy workers a phase
can take twice as long in task seconds as on the clock.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Hashable
from types import TracebackType

from dask.callbacks import Callback
from dask.utils import key_split

__all__ = ["PHASES", "PhaseClock", "phase_of"]

#: Phase name and the key prefixes that belong to it, in the order an iteration runs them; ``read`` is the
#: reading (and casting) of A's blocks from their store when A is not held in memory.
PHASES: dict[str, tuple[str, ...]] = {
    "read": ("dnmf-read", "dnmf-input"),
    "aht": ("dnmf-aht",),
    "update": ("dnmf-update",),
    "gram": ("dnmf-gram",),
    "wta": ("dnmf-wta",),
    "loss": ("dnmf-loss",),
}
OTHER = "other"


def phase_of(key: Hashable) -> str:
    """The phase a task belongs to, from its key's prefix; ``"other"`` for tasks of no phase, e.g. not dnmf's."""
    prefix = key_split(key)
    for phase, prefixes in PHASES.items():
        if prefix.startswith(prefixes):
            return phase
    return OTHER


class PhaseClock:
    """Seconds of task execution per phase, for the tasks that finish while the clock is open.

    Parameters
    ----------
    client : distributed.Client, optional
        Read the scheduler's task stream. Without one, time the tasks a local Dask scheduler runs in this process.

    Attributes
    ----------
    seconds : dict of str to float
        Filled when the ``with`` block ends; phases with no task are absent.
    """

    def __init__(self, client=None) -> None:
        self.client = client
        self.seconds: dict[str, float] = {}
        self._started_at = 0.0
        self._local: _LocalTaskTimer | None = None
        self._recording = False

    def __enter__(self) -> PhaseClock:
        """Start timing; a clock can be entered again for the next iteration."""
        if self.client is None:
            self._local = _LocalTaskTimer()
            self._local.__enter__()
        else:
            if not self._recording:
                self.client.get_task_stream(count=0)  # starts the scheduler's recording if nothing else has
                self._recording = True
            self._started_at = time.time()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._local is not None:
            self._local.__exit__(kind, error, trace)
            totals = self._local.seconds
        elif kind is None:
            totals = defaultdict(float)
            for record in self.client.get_task_stream(start=self._started_at):
                for span in record["startstops"]:
                    if span["action"] == "compute" and span["stop"] >= self._started_at:
                        totals[phase_of(record["key"])] += span["stop"] - span["start"]
        else:
            totals = {}
        self.seconds = {phase: round(seconds, 6) for phase, seconds in totals.items()}


class _LocalTaskTimer(Callback):
    """Times each task a local Dask scheduler (synchronous or threaded) runs, by phase."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self._started: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def _pretask(self, key, dsk, state) -> None:
        self._started[key] = time.perf_counter()

    def _posttask(self, key, result, dsk, state, worker_id) -> None:
        elapsed = time.perf_counter() - self._started.pop(key, time.perf_counter())
        with self._lock:
            self.seconds[phase_of(key)] += elapsed
