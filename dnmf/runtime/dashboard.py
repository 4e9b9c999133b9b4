"""A fit's progress on the Dask dashboard: the client's side.

While a distributed ``Client`` is active, every fit logs small records to the scheduler under the ``dnmf`` event
topic (``Client.log_event``): one when it starts, one per iteration (iteration, loss, relative improvement,
seconds, task seconds per phase, whether a checkpoint is due after it) and one when it ends (``converged``,
``stopped`` or ``failed``). Nothing the size of A, W or H is sent. The scheduler's side
(:mod:`dnmf.runtime.dashboard_server`) keeps them and serves them as the ``/dnmf`` page and ``/dnmf.json``.

The client registers the scheduler plugin at the first fit. The scheduler imports it from its own ``dnmf`` (which it
needs anyway, to unpickle a fit's task graph). A scheduler started by hand can also load it at its start, so that
the page is there before any client comes::

    dask scheduler --preload dnmf.runtime.dashboard

A scheduler that cannot load it (its ``dnmf`` predates the page, say) gets no page: the client logs one warning and
the fit goes on.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from dnmf.runtime.client import active_client

__all__ = ["Publisher", "dask_setup", "install", "page_link", "publisher", "publishing"]

logger = logging.getLogger("dnmf")

#: Per client: the page's URL once the plugin is on its scheduler, None if the scheduler could not load it.
_installed: weakref.WeakKeyDictionary[Any, str | None] = weakref.WeakKeyDictionary()
_current: ContextVar[Publisher | None] = ContextVar("dnmf_dashboard_publisher", default=None)


def _page_url(client: Any) -> str | None:
    link = client.dashboard_link
    if not link or "dashboard" not in client.scheduler_info().get("services", {}):
        return None
    return link.rsplit("/", 1)[0] + "/dnmf"


def install(client: Any) -> str | None:
    """Put the dnmf page on ``client``'s scheduler, once per client.

    Parameters
    ----------
    client : distributed.Client

    Returns
    -------
    str or None
        The page's URL; None if the scheduler has no dashboard or could not load the plugin (logged once, as a
        warning that says what the scheduler needs).
    """
    if client in _installed:
        return _installed[client]
    from dnmf.runtime.dashboard_server import PLUGIN_NAME, DashboardPlugin

    try:
        client.register_plugin(DashboardPlugin(), name=PLUGIN_NAME)
        url = _page_url(client)
    except Exception as error:  # whatever the scheduler raised unpickling or starting the plugin
        reason = str(error).splitlines()[0] if str(error) else ""
        logger.warning("No dnmf page on the Dask dashboard: the scheduler could not load dnmf's plugin "
                       "(%s: %s); the fit goes on. Install this dnmf version where the scheduler runs.",
                       type(error).__name__, reason)
        url = None
    _installed[client] = url
    return url


def page_link() -> str | None:
    """The dnmf page of the active client's dashboard, if a fit (or the CLI) put it there; else None."""
    client = active_client()
    return None if client is None else _installed.get(client)


class Publisher:
    """The callback that logs one record per iteration of a fit to the scheduler.

    Parameters
    ----------
    client : distributed.Client
    model : dnmf.NMF
        The estimator being fitted: its ``max_iter``, solver, rank and checkpoint policy label the records.

    Attributes
    ----------
    fit_id : str
        What tells this fit's records from others' on the scheduler.
    """

    def __init__(self, client: Any, model: Any) -> None:
        self.client = client
        self.fit_id = uuid.uuid4().hex[:12]
        self.max_iter = int(model.max_iter)
        self.checkpointed = model.checkpoint is not None
        self.checkpoint_every = model.checkpoint_every if self.checkpointed else None
        self.checkpoint_seconds = model.checkpoint_seconds if self.checkpointed else None
        self.label = f"NMF {model.solver} k={model.n_components}"
        self.active = True
        self.iteration: int | None = None
        self._previous_loss: float | None = None
        self._last_checkpoint = time.perf_counter()

    def _send(self, msg: dict[str, Any]) -> None:
        if not self.active:
            return
        try:
            self.client.log_event("dnmf", {"fit": self.fit_id, **msg})
        except Exception as error:  # the scheduler went away: the engine reports that; the fit owes us nothing
            self.active = False
            logger.warning("dnmf stopped reporting fit %s to the scheduler (%s: %s).", self.fit_id,
                           type(error).__name__, error)

    def start(self) -> None:
        """Log the start of the fit."""
        self._send({"kind": "start", "label": self.label, "max_iter": self.max_iter,
                    "checkpoint_every": self.checkpoint_every, "checkpoint_seconds": self.checkpoint_seconds,
                    "client": f"{socket.gethostname()}:{os.getpid()}"})

    def _checkpoint_due(self, iteration: int) -> bool:
        """Whether the engine checkpoints after ``iteration`` by the estimator's policy (at the end of a fit it
        also checkpoints on convergence and on a stop, which the end record tells)."""
        if not self.checkpointed:
            return False
        due = (iteration == self.max_iter or bool(self.checkpoint_every and iteration % self.checkpoint_every == 0)
               or (self.checkpoint_seconds is not None
                   and time.perf_counter() - self._last_checkpoint >= self.checkpoint_seconds))
        if due:
            self._last_checkpoint = time.perf_counter()
        return due

    def __call__(self, record: Any) -> None:
        """Log ``record`` (a :class:`dnmf.IterationRecord`): its numbers only, never its factors."""
        if not self.active:
            return
        try:
            loss = float(record.loss)
            improvement = None
            if self._previous_loss and math.isfinite(self._previous_loss) and math.isfinite(loss):
                improvement = (self._previous_loss - loss) / self._previous_loss
            msg = {"kind": "iteration", "iteration": int(record.iteration), "max_iter": self.max_iter,
                   "loss": loss if math.isfinite(loss) else None, "improvement": improvement,
                   "seconds": float(record.seconds), "phase_seconds": dict(record.phase_seconds),
                   "checkpoint": self._checkpoint_due(int(record.iteration)), "status": "running"}
            if self.iteration is None:
                msg["shape"] = [int(record.W.shape[0]), int(record.H.shape[1]), int(record.H.shape[0])]
        except Exception as error:  # a failing report must not fail the fit
            self.active = False
            logger.warning("dnmf stopped reporting fit %s to the scheduler (%s: %s).", self.fit_id,
                           type(error).__name__, error)
            return
        self._previous_loss = loss
        self.iteration = int(record.iteration)
        self._send(msg)

    def finish(self, status: str, reason: str | None = None, iteration: int | None = None) -> None:
        """Log the end of the fit: ``status`` is ``converged``, ``stopped`` or ``failed``."""
        self._send({"kind": "end", "status": status, "reason": reason,
                    "iteration": self.iteration if iteration is None else iteration})


def publisher() -> Publisher | None:
    """The publisher of the fit running in this context (see :func:`publishing`), to chain with the fit's other
    callbacks; None when no distributed client is active."""
    return _current.get()


@contextmanager
def publishing(model: Any) -> Iterator[Publisher | None]:
    """Report the fit of ``model`` run inside the ``with`` block to the active client's scheduler.

    Puts the page on the scheduler (:func:`install`), logs the start, makes :func:`publisher` return the callback
    and, on the way out, logs how the fit ended: ``converged``, ``stopped`` (at ``max_iter``, by a callback's
    ``StopIteration`` or by an interrupt) or ``failed`` (with the error). Without a distributed client it does
    nothing. Exceptions pass through unchanged.
    """
    client = active_client()
    if client is None:
        yield None
        return
    install(client)
    current = Publisher(client, model)
    current.start()
    token = _current.set(current)
    try:
        yield current
    except KeyboardInterrupt:
        current.finish("stopped", "interrupted")
        raise
    except BaseException as error:
        text = str(error).splitlines()[0] if str(error) else ""
        current.finish("failed", f"{type(error).__name__}: {text}"[:300])
        raise
    else:
        n_iter = getattr(model, "n_iter_", current.iteration)
        if getattr(model, "converged_", False):
            current.finish("converged", None, n_iter)
        else:
            reason = "max_iter reached" if n_iter is not None and n_iter >= current.max_iter else \
                "stopped by a callback"
            current.finish("stopped", reason, n_iter)
    finally:
        _current.reset(token)


def dask_setup(scheduler: Any) -> None:
    """Preload hook: ``dask scheduler --preload dnmf.runtime.dashboard`` serves the page from the start (the
    scheduler starts the plugin once it listens)."""
    from dnmf.runtime.dashboard_server import PLUGIN_NAME, DashboardPlugin

    scheduler.add_plugin(DashboardPlugin(), name=PLUGIN_NAME, idempotent=True)
