"""The subcommands of the ``dnmf`` command; :mod:`dnmf.cli` parses the command line and dispatches to them.

Every batch subcommand returns an :class:`Outcome`: its exit status and the JSON summary printed at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["EXIT_BAD_INPUT", "EXIT_ERROR", "EXIT_NOT_CONVERGED", "EXIT_OK", "EXIT_RESUMABLE", "Outcome",
           "ResumableError"]

EXIT_OK = 0
#: An unexpected error (a bug): the traceback is logged.
EXIT_ERROR = 1
#: Usage errors and bad input, as argparse uses.
EXIT_BAD_INPUT = 2
#: A failure that a rerun of the same command recovers from: lost or unreachable scheduler, killed job.
EXIT_RESUMABLE = 3
#: The fit stopped at max_iter before meeting tol, and ``--require-convergence`` was given.
EXIT_NOT_CONVERGED = 4


class ResumableError(RuntimeError):
    """A failure that a rerun of the same command recovers from."""


@dataclass
class Outcome:
    """What a subcommand ends with: its exit status and its JSON summary."""

    exit_code: int
    summary: dict[str, Any] = field(default_factory=dict)
