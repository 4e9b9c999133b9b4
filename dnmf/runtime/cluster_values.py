"""The values cluster configuration keys accept beyond their type (see :data:`dnmf.runtime.cluster.SCHEMAS`)."""

from __future__ import annotations

from typing import Any

__all__ = ["VALUE_CHECKS"]


def _memory(value: Any) -> bool:
    from dask.utils import parse_bytes

    if isinstance(value, int):
        return value >= 0
    if value.lower() == "auto":
        return True
    try:
        return parse_bytes(value) >= 0
    except ValueError:
        return False


def _address(value: str) -> bool:
    port = value.rpartition(":")[2]
    return value.lower() == "none" or (port.isdigit() and int(port) <= 65535)


#: Checks of values beyond their type, by the name a :class:`dnmf.runtime.cluster.Key` gives in ``valid``: the
#: check, and what it accepts (for the message).
VALUE_CHECKS: dict[str, tuple[Any, str]] = {
    "positive": (lambda v: v >= 1, "at least 1"),
    "non-negative": (lambda v: v >= 0, "0 or more"),
    "seconds": (lambda v: 0 < v < float("inf"), "a finite number of seconds above 0"),
    "port": (lambda v: 0 <= v <= 65535, "a port number from 0 (any free port) to 65535"),
    "memory": (_memory, "bytes (0: no limit), a size such as '4GiB', or 'auto'"),
    "address": (_address, "HOST:PORT, or 'none'"),
    "non-empty": (lambda v: bool(v.strip()), "a non-empty string"),
}
