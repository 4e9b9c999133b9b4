"""The scheduler's side of the dnmf dashboard page: the fits it has heard of, and the routes that show them.

A fit's client logs small records under the ``dnmf`` event topic (:mod:`dnmf.runtime.dashboard`). The
:class:`DashboardPlugin`, once on the scheduler, keeps them by fit in a :class:`FitLog` and serves

- ``/dnmf``: a page that polls the JSON below and draws every fit's loss curve (:mod:`dnmf.runtime.dashboard_page`);
- ``/dnmf.json``: every fit's summary and its per-iteration records, for scripts.

The page joins the dashboard's "More..." menu and ``/individual-plots.json``, the list dask-labextension offers.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import OrderedDict
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin
from tornado import web

from dnmf.runtime.dashboard_page import PAGE

__all__ = ["MAX_FITS", "MAX_RECORDS", "PLUGIN_NAME", "TOPIC", "DashboardPlugin", "FitLog", "add_routes"]

#: Under ``distributed``, so that the line shows in a ``dask scheduler``'s log and not in a fit's.
logger = logging.getLogger("distributed.dnmf")

#: The event topic the client logs its records under.
TOPIC = "dnmf"
#: The name the plugin is registered under, so that registering it again changes nothing.
PLUGIN_NAME = "dnmf-dashboard"
#: Fits kept; the oldest finished one goes first.
MAX_FITS = 100
#: Per-iteration records kept per fit; beyond it the oldest are dropped (``records_dropped`` counts them).
MAX_RECORDS = 20_000
#: Iterations the time per iteration (and so the ETA) is averaged over.
RECENT = 10
FINISHED = ("converged", "stopped", "failed")


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats as None, so that the JSON is valid for browsers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


class FitLog:
    """The fits heard of, by fit id, in the order they started.

    Parameters
    ----------
    max_fits : int
        Fits kept.
    max_records : int
        Per-iteration records kept per fit.
    """

    def __init__(self, max_fits: int = MAX_FITS, max_records: int = MAX_RECORDS) -> None:
        self.max_fits = max_fits
        self.max_records = max_records
        self._fits: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def add(self, msg: Any, received: float | None = None) -> None:
        """Take one message of the ``dnmf`` topic: ``kind`` is ``start``, ``iteration`` or ``end``. Anything else
        is ignored."""
        if not isinstance(msg, dict) or not isinstance(msg.get("fit"), str):
            return
        received = time.time() if received is None else received
        fit = self._fits.get(msg["fit"])
        if fit is None:
            fit = self._new_fit(msg["fit"], received)
        fit["updated"] = received
        kind = msg.get("kind")
        if kind == "start":
            for key in ("label", "client", "max_iter", "checkpoint_every", "checkpoint_seconds"):
                if key in msg:
                    fit[key] = msg[key]
            fit["started"] = received
        elif kind == "iteration":
            record = {key: msg.get(key) for key in ("iteration", "loss", "improvement", "seconds", "phase_seconds",
                                                    "checkpoint")}
            fit["records"].append(record)
            if len(fit["records"]) > self.max_records:
                del fit["records"][0]
                fit["records_dropped"] += 1
            fit["iteration"] = msg.get("iteration", fit["iteration"])
            for key in ("max_iter", "shape"):
                if key in msg:
                    fit[key] = msg[key]
        elif kind == "end":
            fit["status"] = msg.get("status", "failed")
            fit["reason"] = msg.get("reason")
            fit["finished"] = received
            if msg.get("iteration") is not None:
                fit["iteration"] = msg["iteration"]

    def _new_fit(self, fit_id: str, received: float) -> dict[str, Any]:
        if len(self._fits) >= self.max_fits:
            finished = [key for key, fit in self._fits.items() if fit["status"] in FINISHED]
            del self._fits[finished[0] if finished else next(iter(self._fits))]
        fit = {"fit": fit_id, "label": fit_id, "client": None, "status": "running", "reason": None,
               "iteration": 0, "max_iter": None, "shape": None, "checkpoint_every": None,
               "checkpoint_seconds": None, "started": received, "updated": received, "finished": None,
               "records": [], "records_dropped": 0}
        self._fits[fit_id] = fit
        return fit

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """What ``/dnmf.json`` answers: ``{"fits": [...], "time": ...}``, each fit with its records and what the
        page shows: ``seconds_per_iteration`` (mean of the last iterations), ``phase_seconds`` (mean task seconds
        per phase), ``eta_seconds`` (to ``max_iter``, for a running fit), ``last_checkpoint`` and
        ``next_checkpoint`` (iterations)."""
        now = time.time() if now is None else now
        return _finite({"time": now, "fits": [self._describe(fit) for fit in self._fits.values()]})

    @staticmethod
    def _describe(fit: dict[str, Any]) -> dict[str, Any]:
        records = fit["records"]
        recent = [r["seconds"] for r in records[-RECENT:] if isinstance(r.get("seconds"), (int, float))]
        per_iteration = sum(recent) / len(recent) if recent else None
        phases: dict[str, float] = {}
        timed = [r["phase_seconds"] for r in records if isinstance(r.get("phase_seconds"), dict)]
        for seconds in timed:
            for phase, value in seconds.items():
                phases[phase] = phases.get(phase, 0.0) + float(value) / len(timed)
        eta = None
        if fit["status"] == "running" and per_iteration is not None and fit["max_iter"]:
            eta = max(int(fit["max_iter"]) - int(fit["iteration"]), 0) * per_iteration
        every = fit["checkpoint_every"]
        written = [r["iteration"] for r in records if r.get("checkpoint")]
        next_checkpoint = None
        if fit["status"] == "running" and (every or fit["checkpoint_seconds"]) and fit["max_iter"]:
            next_checkpoint = int(fit["max_iter"])
            if every:
                next_checkpoint = min(next_checkpoint, (int(fit["iteration"]) // every + 1) * every)
        return {**fit, "records": list(records), "seconds_per_iteration": per_iteration,
                "phase_seconds": {phase: round(value, 6) for phase, value in phases.items()},
                "eta_seconds": eta, "last_checkpoint": written[-1] if written else None,
                "next_checkpoint": next_checkpoint}


class DashboardPlugin(SchedulerPlugin):
    """Keeps the ``dnmf`` events in a :class:`FitLog` and adds the ``/dnmf`` routes to the dashboard.

    Registered by the client at the start of a fit (``client.register_plugin``), or from the scheduler's command
    line with ``dask scheduler --preload dnmf.runtime.dashboard``.
    """

    name = PLUGIN_NAME
    idempotent = True

    def __init__(self) -> None:
        self.fits = FitLog()

    async def start(self, scheduler: Any) -> None:
        """Take the events logged before the plugin came, and serve the page if the scheduler has a dashboard."""
        for received, msg in scheduler.get_events(TOPIC):
            self.fits.add(msg, received)
        add_routes(scheduler, self.fits)

    def log_event(self, topic: str, msg: Any) -> None:
        if topic == TOPIC:
            self.fits.add(msg)


class _Handler(web.RequestHandler):
    def initialize(self, fits: FitLog) -> None:
        self.fits = fits

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")


class PageHandler(_Handler):
    """``/dnmf``: the page; it draws what ``dnmf.json`` answers."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(PAGE)


class JSONHandler(_Handler):
    """``/dnmf.json``: :meth:`FitLog.summary`."""

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(self.fits.summary(), allow_nan=False))


def _prefix(application: Any) -> str:
    """The dashboard's URL prefix (``dask scheduler --dashboard-prefix``), read off a route distributed added."""
    for rule in application.wildcard_router.rules:
        pattern = getattr(getattr(rule.matcher, "regex", None), "pattern", "")
        if pattern.endswith("individual-plots.json$"):
            return pattern[: -len("individual-plots.json$")]
    return "/"


def _individual_plots(prefix: str) -> type:
    from distributed.http.scheduler.info import IndividualPlots

    class IndividualPlotsWithDnmf(IndividualPlots):
        """distributed's list of single plots (what dask-labextension offers), with the dnmf page in it."""

        def write(self, chunk: Any) -> None:
            if isinstance(chunk, dict):
                chunk = {**chunk, "Dnmf": f"{prefix}dnmf"}
            super().write(chunk)

    return IndividualPlotsWithDnmf


def add_routes(scheduler: Any, fits: FitLog) -> bool:
    """Serve ``/dnmf`` and ``/dnmf.json`` from ``scheduler``'s dashboard and list the page among its plots.

    Returns
    -------
    bool
        False if the scheduler has no HTTP server (started with ``--no-dashboard``), True otherwise; routes
        already added are not added twice.
    """
    application = getattr(scheduler, "http_application", None)
    if application is None:
        return False
    if getattr(application, "_dnmf_routes", False):
        return True
    prefix = _prefix(application)
    application.add_handlers(r".*", [
        (rf"{prefix}dnmf", PageHandler, {"fits": fits}),
        (rf"{prefix}dnmf\.json", JSONHandler, {"fits": fits}),
        (rf"{prefix}individual-plots\.json", _individual_plots(prefix), {"dask_server": scheduler}),
    ])
    application._dnmf_routes = True
    try:
        from distributed.dashboard.scheduler import template_variables

        plots = template_variables(scheduler)["plots"]
        if not any(plot.get("url") == "dnmf" for plot in plots):
            plots.append({"url": "dnmf", "name": "dnmf"})
    except ImportError:  # no bokeh: no "More..." menu to join
        pass
    logger.info("dnmf dashboard page at %sdnmf", prefix)
    return True
