"""What a fit does when its cluster loses work: start again where that can help, say why where it cannot.

A block computed by a task is recomputed by the scheduler when the worker holding it dies. A block of in-memory
input (NumPy or SciPy) was scattered from this process and has no task to recompute it from, so a fit that loses
one fails. While the scheduler still answers and has workers (a Nanny restarts a killed one), :func:`fit_with_restarts`
then places the input again and starts the fit again: from its checkpoint, if it has one, otherwise from the
start. Same input, seed and grid give the same factors, so the result is the one an undisturbed fit gives. A lost
scheduler cannot be recovered from here: the error then says whether and how the run can be resumed.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import TypeVar

from distributed.comm.core import CommClosedError

from dnmf.core.seam import Runtime
from dnmf.exceptions import ClusterLostError
from dnmf.runtime.client import active_client

__all__ = ["MAX_RESTARTS", "fit_with_restarts", "raise_if_lost"]

#: Restarts a fit makes after losing work before it gives up.
MAX_RESTARTS = 3

Result = TypeVar("Result")

_CLUSTER_ERRORS = (CancelledError, ConnectionError, CommClosedError)


class _WorkLost(Exception):
    """Raised by :func:`raise_if_lost` when the runtime can start the fit again."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def raise_if_lost(error: BaseException, runtime: Runtime, checkpoint: str | os.PathLike[str] | None) -> None:
    """Turn ``error``, raised while a fit ran on ``runtime``, into a restart request when ``runtime`` recovers
    from it, or into a :class:`ClusterLostError` that says what the user can do when the cluster is lost; return
    for any other error."""
    if not isinstance(error, _CLUSTER_ERRORS) or (active_client() is None and not isinstance(error, CommClosedError)):
        return
    if runtime.recovers_from(error):
        raise _WorkLost(error) from error
    advice = (f"The last complete checkpoint is in {os.fspath(checkpoint)!r}: run the same fit with resume=True "
              "to continue from it." if checkpoint is not None else
              "No checkpoint was configured: pass checkpoint='folder' to make the run resumable.")
    client = active_client()
    what = ("Lost the cluster's workers during the fit, and none came back" if client is not None
            and client.status == "running" else "Lost the Dask scheduler during the fit")
    raise ClusterLostError(f"{what} ({type(error).__name__}: {(str(error).splitlines() or [''])[0]}). "
                           f"{advice}") from error


def fit_with_restarts(fit: Callable[[bool], Result], *, resume: bool,
                      checkpoint: str | os.PathLike[str] | None) -> Result:
    """``fit(resume)``, started again (resuming from ``checkpoint`` if there is one) up to :data:`MAX_RESTARTS`
    times when it lost work its runtime recovers from (see :func:`raise_if_lost`)."""
    restarts = 0
    while True:
        try:
            return fit(resume)
        except _WorkLost as lost:
            restarts += 1
            if restarts > MAX_RESTARTS:
                raise ClusterLostError(
                    f"The fit lost work to dying workers {restarts} times ({type(lost.error).__name__}: "
                    f"{lost.error}). Check the workers' logs (memory limits are the usual cause), and give them more "
                    "memory or pass the input as a Zarr store, whose blocks are re-read when lost.") from lost.error
            resume = resume or checkpoint is not None
            where = "its last checkpoint" if checkpoint is not None else "the start"
            warnings.warn(f"A worker died holding blocks of the fit ({type(lost.error).__name__}): the input was "
                          f"placed again and the fit starts again from {where}.", RuntimeWarning, stacklevel=3)
