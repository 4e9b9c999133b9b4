"""Logging of the ``dnmf`` command: everything goes to stderr, human-readable or as JSON lines.

stdout is kept for the command's result (the JSON summary, ``inspect``'s report), so that a scheduler or a shell
pipe can read it without parsing logs.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["IterationFields", "JsonFormatter", "progress_bar_available", "setup_logging"]

HUMAN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: Attributes every ``LogRecord`` has; anything else on a record was passed as ``extra`` and goes into the JSON.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime",
                                                                                      "dnmf_event"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, and any extra fields of the record
    (such as ``iteration``, ``loss`` and ``seconds``)."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update({key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES})
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class IterationFields(logging.Filter):
    """Gives the engine's per-iteration records the fields of their structured event
    (:meth:`dnmf.core.records.IterationRecord.event`: ``iteration``, ``loss``, ``seconds``); drops them when a
    progress bar shows the same."""

    def __init__(self, drop: bool = False) -> None:
        super().__init__()
        self.drop = drop

    def filter(self, record: logging.LogRecord) -> bool:
        event = getattr(record, "dnmf_event", None)
        if event is None:
            return True
        for name, value in event.items():
            setattr(record, name, value)
        return not self.drop


def progress_bar_available() -> bool:
    """Whether ``NMF(verbose=1)`` can draw a progress bar (the ``dnmf.view.progress`` module is there)."""
    return importlib.util.find_spec("dnmf.view.progress") is not None


LIBRARIES = ("distributed", "dask", "dask_jobqueue", "dask_kubernetes", "dask_gateway")


@contextmanager
def setup_logging(log_format: str, level: str, *, progress_bar: bool = False) -> Iterator[None]:
    """While open, send the records of dnmf, distributed and Python warnings to stderr in ``log_format``.

    ``dnmf`` logs at ``level``; other libraries at WARNING and above. With ``progress_bar``, the per-iteration
    lines are left to the bar. On exit the logging configuration is put back as it was, so that ``main()`` called
    from Python (a workflow task, a test) leaves no handler bound to a stream that may since have closed.
    """
    import distributed  # noqa: F401  (distributed installs its own handlers on import; replace them after)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(HUMAN_FORMAT))
    handler.addFilter(IterationFields(drop=progress_bar))
    root, dnmf_logger = logging.getLogger(), logging.getLogger("dnmf")
    libraries = [logging.getLogger(name) for name in LIBRARIES]
    saved = [(logger, list(logger.handlers), logger.level, logger.propagate)
             for logger in (root, dnmf_logger, *libraries)]
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for library in libraries:
        library.handlers.clear()
        library.propagate = True
        library.setLevel(logging.WARNING)
    dnmf_logger.setLevel(level)
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        for logger, handlers, logger_level, propagate in saved:
            logger.handlers[:] = handlers
            logger.setLevel(logger_level)
            logger.propagate = propagate
