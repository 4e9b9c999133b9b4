"""The schema of a checkpoint version's ``state`` (JSON), checked before a version is trusted.

A state that does not match, such as a ``progress`` that is not a record of the loop or whose iteration is not
the version's, is damage like a truncated chunk: :meth:`dnmf.data.checkpoint.CheckpointStore.load` skips the
version with a warning and falls back to the previous one. A resumed run therefore always continues from the
iteration it reports.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

__all__ = ["check_state"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _non_negative_number(value: Any) -> bool:
    return _is_number(value) and not value < 0


def _list_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, list) and all(check(item) for item in value)


def _phase_record(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and _non_negative_number(v) for k, v in value.items())


#: Fields of ``state["progress"]`` (see :class:`dnmf.core.engine.Progress`): required or not, and the check.
PROGRESS_FIELDS: dict[str, tuple[bool, Callable[[Any], bool], str]] = {
    "iteration": (True, lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "converged": (False, lambda v: isinstance(v, bool), "true or false"),
    "error_at_init": (False, _is_number, "a number"),
    "previous_error": (False, _is_number, "a number"),
    "loss_history": (True, _list_of(lambda v: _is_number(v) and math.isfinite(v)), "a list of finite numbers"),
    "seconds_per_iteration": (False, _list_of(_non_negative_number), "a list of non-negative numbers"),
    "tasks_per_iteration": (False, _list_of(lambda v: _is_int(v) and v >= 0), "a list of non-negative integers"),
    "checkpoint_seconds": (False, _list_of(_non_negative_number), "a list of non-negative numbers"),
    "phase_seconds": (False, _list_of(_phase_record), "a list of {phase: seconds} records"),
}


def _grid(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2
            and all(isinstance(axis, list) and axis and all(_is_int(c) and c > 0 for c in axis) for axis in value))


def _problems(state: Any, version: str) -> str | None:
    if not isinstance(state, dict):
        return f"the state is {type(state).__name__}, not a record"
    iteration = state.get("iteration")
    if not _is_int(iteration) or iteration < 0:
        return f"iteration is {iteration!r}, not a non-negative integer"
    match = re.fullmatch(r"v(\d+)", version)
    if match and int(match.group(1)) != iteration:
        return f"iteration {iteration} is not the version's ({version})"
    for name, check in (("checksums", lambda v: isinstance(v, dict) and set(v) >= {"W", "H"}),
                        ("chunks", lambda v: isinstance(v, dict) and _grid(v.get("W")) and _grid(v.get("H"))),
                        ("run", lambda v: isinstance(v, dict))):
        if not check(state.get(name)):
            return f"{name} is {state.get(name)!r:.80}, not a record of the expected form"
    progress = state.get("progress")
    if not isinstance(progress, dict):
        return f"progress is {progress!r:.80}, not a record of the loop"
    for name, (required, check, expected) in PROGRESS_FIELDS.items():
        if name not in progress:
            if required:
                return f"progress lacks {name}"
            continue
        if not check(progress[name]):
            return f"progress.{name} is {progress[name]!r:.80}, not {expected}"
    if progress["iteration"] != iteration:
        return f"progress.iteration is {progress['iteration']}, but the version is iteration {iteration}"
    return None


def check_state(state: Any, version: str) -> None:
    """Check a version's state against the schema.

    Raises
    ------
    ValueError
        Naming the first field that does not match.
    """
    problem = _problems(state, version)
    if problem:
        raise ValueError(f"its state is malformed: {problem}")
