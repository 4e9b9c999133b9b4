"""``verbose=2``: every iteration of a fit logged to the ``dnmf`` logger."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["iteration_log"]

logger = logging.getLogger("dnmf")


@contextmanager
def iteration_log(verbose: int) -> Iterator[None]:
    """With ``verbose >= 2``, log every iteration to stderr for the duration of a fit (unless logging is already
    configured), then leave the logging configuration as it was."""
    if verbose < 2:
        yield
        return
    handler = None
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[dnmf] %(message)s"))
        logger.addHandler(handler)
    level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.setLevel(level)
        if handler is not None:
            logger.removeHandler(handler)
