"""What dnmf may trust, replace or delete on a local file system.

* A folder dnmf reads state from (a checkpoint, a previous result) must belong to the current user and be
  writable by no one else: :func:`check_private`. Otherwise another user could have planted or changed it.
* dnmf replaces or deletes only what it wrote itself, recognised by its own metadata: :func:`replaceable_store`
  for matrix and result stores. Checkpoint folders carry their own marker (see :mod:`dnmf.data.checkpoint`).
* Two paths of one job (input, result, checkpoint, source) must not be the same or lie inside one another:
  :func:`overlapping`.

Object stores (``s3://`` and other fsspec URLs) have their own access control; the ownership checks apply to local
paths only.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

__all__ = ["NotOwnStoreError", "UnsafeLocationError", "check_private", "overlapping", "replaceable_store"]

#: The entries at the top of a store each writer makes, by the ``kind`` in its ``dnmf`` attributes.
STORE_ENTRIES = {
    "result": {"zarr.json", "W", "H", "row_labels", "col_labels"},
    "matrix": {"zarr.json", "X", "obs", "var"},
}
#: Root attributes of a matrix store written by dnmf 0.1.0, which did not mark its matrix stores yet.
_LEGACY_MATRIX_ATTRIBUTES = {"encoding-type": "anndata", "encoding-version": "0.1.0"}


class UnsafeLocationError(PermissionError):
    """A folder that another user owns or may write to, or a symbolic link, where dnmf reads or writes state."""


class NotOwnStoreError(FileExistsError):
    """Something dnmf was asked to replace or delete that it did not write (or that holds other files)."""


def _describe_owner(uid: int) -> str:
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name!r} (uid {uid})"
    except (KeyError, ImportError):
        return f"uid {uid}"


def check_private(path: str, what: str) -> os.stat_result | None:
    """Check that the local folder or file ``path`` is the current user's and that no one else may write to it.

    Returns its ``lstat``, or None when nothing is there.

    Raises
    ------
    UnsafeLocationError
        If ``path`` is a symbolic link, belongs to another user, or is writable by its group or by others; the
        message says what to do.
    """
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(status.st_mode):
        raise UnsafeLocationError(f"The {what} {path!r} is a symbolic link; dnmf does not follow links to state "
                                  "it trusts. Point the option at the real folder, or choose another.")
    if status.st_uid != os.geteuid():
        raise UnsafeLocationError(f"The {what} {path!r} belongs to {_describe_owner(status.st_uid)}, not to you: "
                                  "its content may have been planted or changed by them. Choose another path, "
                                  "or remove it if you trust it.")
    if status.st_mode & 0o022:
        raise UnsafeLocationError(f"The {what} {path!r} can be written by its group or by others (mode "
                                  f"{oct(status.st_mode & 0o777)}), so its content may have been changed by "
                                  f"someone else. If you trust it, run: chmod go-w {path!r}; or choose another "
                                  "path.")
    return status


def _local_root_attributes(path: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(path, "zarr.json")) as handle:
            metadata = json.load(handle)
    except (OSError, ValueError):
        return None
    attributes = metadata.get("attributes") if isinstance(metadata, dict) else None
    return attributes if isinstance(attributes, dict) else None


def _store_kind(attributes: dict[str, Any]) -> str | None:
    marker = attributes.get("dnmf")
    if isinstance(marker, dict) and marker.get("kind") in STORE_ENTRIES:
        return str(marker["kind"])
    if attributes == _LEGACY_MATRIX_ATTRIBUTES:
        return "matrix"
    return None


def replaceable_store(location: Any) -> str | None:
    """Why ``location`` (a :class:`dnmf.data.store.Location` where something exists) is not a store dnmf wrote and
    may replace, or None when it is one: a Zarr group whose ``dnmf`` attributes name a matrix or result store and
    that holds nothing but what that writer puts there."""
    if location.is_local:
        path = location.url
        if os.path.islink(path) or not os.path.isdir(path):
            return "it is not a folder"
        attributes = _local_root_attributes(path)
        entries = set(os.listdir(path))
    else:
        fs, remote = location._fs
        try:
            attributes = json.loads(fs.cat_file(f"{remote}/zarr.json")).get("attributes")
            entries = {entry.rstrip("/").rpartition("/")[2] for entry in fs.ls(remote, detail=False)}
        except (OSError, ValueError, AttributeError):
            return "it is not a Zarr store"
    if not isinstance(attributes, dict):
        return "it is not a Zarr store"
    kind = _store_kind(attributes)
    if kind is None:
        return "its metadata does not mark it as a store dnmf wrote"
    extra = sorted(entries - STORE_ENTRIES[kind])
    if extra:
        return f"it holds files dnmf did not write ({', '.join(extra[:5])})"
    return None


def _normalized(url: str) -> str:
    text = os.fspath(url)
    if text.startswith("file://"):
        text = text[len("file://"):]
    if "://" in text:
        return text.rstrip("/")
    return os.path.realpath(os.path.abspath(text))


def overlapping(first: str, second: str) -> bool:
    """Whether two local paths or URLs are the same or one lies inside the other (after resolving links)."""
    a, b = _normalized(first), _normalized(second)
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")
