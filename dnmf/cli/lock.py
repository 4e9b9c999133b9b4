"""One job per output: a lock file beside ``--out`` that says who holds it.

The lock is ``.NAME.dnmf-lock`` in the folder of ``--out``, held with ``flock`` for the life of the job, and
holds the holder's pid, host, user and start time in JSON. The kernel releases it when the holder ends, however it
ends (a SIGKILL too), so a lock left by a dead job never blocks the next one. Locks apply to local paths; an
object store has no such lock.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from dnmf.cli.options import UsageError

__all__ = ["OutputLockedError", "lock_path", "output_lock"]


class OutputLockedError(UsageError):
    """Another job holds the lock of this output."""


def lock_path(out: str) -> str:
    """The lock file of the output ``out``."""
    folder, name = os.path.split(os.path.abspath(out.rstrip("/")))
    return os.path.join(folder, f".{name}.dnmf-lock")


def _holder(descriptor: int) -> str:
    try:
        info = json.loads(os.pread(descriptor, 4096, 0).decode())
        return (f"pid {info['pid']} on host {info['host']!r}, user {info['user']!r}, since "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(info['started']))}")
    except (ValueError, KeyError, TypeError, OSError):
        return "a job that has not said who it is yet"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


@contextmanager
def output_lock(out: str, command: str = "fit") -> Iterator[None]:
    """Hold the lock of ``out`` while the block runs.

    Raises
    ------
    OutputLockedError
        If another job holds it; the message names that job (pid, host, user, start) and the lock file.
    """
    if "://" in out:
        yield
        return
    path = lock_path(out)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as error:
            raise UsageError(f"Cannot take the lock of {out!r}: the lock file {path!r} cannot be opened "
                             f"({error.strerror}); if it is a link or someone else's file, remove it, or choose "
                             "another --out.") from error
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(descriptor)
            os.close(descriptor)
            raise OutputLockedError(f"Another dnmf {command} is writing {out!r}: {holder} (lock file {path!r}). "
                                    "Wait for it to end and rerun (a finished job's result is then found "
                                    "complete), or choose another --out.") from None
        try:
            same = os.path.samestat(os.fstat(descriptor), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(descriptor)
    try:
        record = {"pid": os.getpid(), "host": socket.gethostname(), "user": _user(),
                  "started": time.time(), "command": command}
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(record).encode(), 0)
        yield
    finally:
        os.unlink(path)
        os.close(descriptor)
