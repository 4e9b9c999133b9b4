"""Checks, before any work, that the files a batch command will write can be written."""

from __future__ import annotations

import os
import tempfile

from dnmf.cli.options import UsageError

__all__ = ["check_writable"]


def _nearest_existing(path: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder


def check_writable(path: str | None, flag: str, *, folder_ok: bool = True) -> None:
    """Make sure ``path`` (a local path; URLs are not checked) can be created, by creating and removing a probe
    file in the nearest folder that exists above it.

    Parameters
    ----------
    path : str or None
        The path a command will write; None is not checked.
    flag : str
        The option that named it, for the message (``--out``, ``--summary``).
    folder_ok : bool
        Whether ``path`` may be an existing folder (a store is one; a summary file is not).

    Raises
    ------
    UsageError
        If ``path`` is a folder where a file is expected, or its folder cannot be written.
    """
    if path is None or "://" in path:
        return
    if not folder_ok and os.path.isdir(path):
        raise UsageError(f"{flag} {path!r} is a folder; name a file to write, e.g. "
                         f"{os.path.join(path, 'summary.json')!r}.")
    folder = _nearest_existing(path)
    if not os.path.isdir(folder):
        raise UsageError(f"{flag} {path!r} cannot be created: {folder!r} is a file, not a folder.")
    try:
        descriptor, probe = tempfile.mkstemp(prefix=".dnmf-write-probe-", dir=folder)
    except OSError as error:
        raise UsageError(f"{flag} {path!r} cannot be written: creating a file in {folder!r} fails "
                         f"({error.strerror or error}). Choose a folder you can write to.") from error
    os.close(descriptor)
    os.unlink(probe)
