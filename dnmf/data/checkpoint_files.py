"""What a checkpoint folder holds besides the checkpoints, and who may trust it: the marker that says dnmf made
the folder, the checks before a run uses it, deletion of dnmf's own files only, and the per-block hashes that
W and H are checked against on load (see :mod:`dnmf.data.checkpoint`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
from typing import Any

import dask.array as da
import numpy as np

from dnmf.data.location import Location
from dnmf.data.safety import NotOwnStoreError, check_private

__all__ = ["HASH", "MARKER", "CheckpointFolder", "block_hashes", "check_version_tree", "hash_list"]

logger = logging.getLogger("dnmf")

FORMAT = 1
MARKER = "dnmf-checkpoint.json"
HASH = "blake2b-256"
#: Names of the entries dnmf writes in a checkpoint folder: versions, the manifest (and its temporary copies),
#: the marker.
_OWN_ENTRY = re.compile(r"^(v\d{8}|manifest\.json|manifest\.json\.tmp-[0-9a-f]{8}|dnmf-checkpoint\.json)$")


def _block_hash(block: np.ndarray) -> np.ndarray:
    contiguous = np.ascontiguousarray(block)
    digest = hashlib.blake2b(digest_size=32)
    digest.update(f"{contiguous.dtype.str}{contiguous.shape}".encode())
    digest.update(contiguous.data)
    return np.frombuffer(digest.digest(), dtype=np.uint8).reshape(1, 32)


def block_hashes(x: da.Array) -> da.Array:
    """The BLAKE2b-256 hash of every block's dtype, shape and bytes, 32 bytes per block in block order; read back
    with :func:`hash_list`."""
    return x.map_blocks(_block_hash, chunks=((1,) * x.numblocks[0], (32,) * x.numblocks[1]), dtype=np.uint8,
                        token="dnmf-checkpoint-hash", meta=np.empty((0, 0), dtype=np.uint8))


def hash_list(hashes: np.ndarray) -> list[str]:
    """The computed :func:`block_hashes` as hex strings, in block order (row-major)."""
    rows, width = hashes.shape
    return [bytes(row).hex() for row in hashes.reshape(rows, width // 32, 32).reshape(-1, 32)]


def check_version_tree(path: str) -> None:
    """Refuse a local version folder that is a link, holds one, or holds entries of another owner than the
    checkpoint folder's or that anyone may write to: it was not written by this checkpoint's owner."""
    owner = os.stat(os.path.dirname(path)).st_uid
    for root, folders, files in os.walk(path):
        for name in [root, *(os.path.join(root, entry) for entry in folders + files)]:
            status = os.lstat(name)
            if stat.S_ISLNK(status.st_mode):
                raise ValueError(f"{name!r} is a symbolic link")
            if status.st_uid != owner or status.st_mode & 0o002:
                raise ValueError(f"{name!r} belongs to uid {status.st_uid} with mode {oct(status.st_mode & 0o777)}")



class CheckpointFolder:
    """The folder of a :class:`dnmf.data.checkpoint.CheckpointStore`, as a place dnmf may or may not use."""

    def __init__(self, location: Location) -> None:
        self.location = location

    def _entries(self) -> list[str]:
        if self.location.is_local:
            return os.listdir(self.location.url) if os.path.isdir(self.location.url) else []
        fs, remote = self.location._fs
        if not fs.exists(remote):
            return []
        return [entry.rstrip("/").rpartition("/")[2] for entry in fs.ls(remote, detail=False)]

    def _marker(self) -> dict[str, Any] | None:
        path = self.location.child(MARKER)
        try:
            if self.location.is_local:
                if os.path.islink(path.url):
                    return None
                with open(path.url) as handle:
                    marker = json.load(handle)
            else:
                fs, remote = path._fs
                marker = json.loads(fs.cat_file(remote))
        except (OSError, ValueError):
            return None
        return marker if isinstance(marker, dict) and marker.get("kind") == "checkpoint" else None

    def _write_marker(self, created_folder: bool) -> None:
        text = json.dumps({"kind": "checkpoint", "format": FORMAT, "created_folder": created_folder})
        path = self.location.child(MARKER)
        if self.location.is_local:
            descriptor = os.open(path.url, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(text)
        else:
            fs, remote = path._fs
            fs.pipe_file(remote, text.encode())

    def check(self) -> None:
        """Check that this folder may be used for a run's checkpoints: nothing there yet, or a folder of the
        current user that no one else may write to (local paths), made by dnmf (its marker, or nothing but
        dnmf's files in it) or empty.

        Raises
        ------
        dnmf.data.safety.UnsafeLocationError
            If the folder is a link, belongs to another user, or others may write to it.
        dnmf.data.safety.NotOwnStoreError
            If it is a file, or a folder holding files dnmf did not write.
        """
        if self.location.is_local:
            if check_private(self.location.url, "checkpoint folder") is None:
                return
            if not os.path.isdir(self.location.url):
                raise NotOwnStoreError(f"The checkpoint path {self.location.url!r} is a file, not a folder; "
                                       "choose another --checkpoint.")
        if self._marker() is not None:
            return
        foreign = sorted(name for name in self._entries() if not _OWN_ENTRY.match(name))
        if foreign:
            raise NotOwnStoreError(
                f"The folder {self.location.url!r} was not made by dnmf for checkpoints: it holds "
                f"{', '.join(foreign[:5])}"
                f"{' …' if len(foreign) > 5 else ''}. dnmf would write into it and delete its checkpoints later; "
                "choose another checkpoint folder (--checkpoint), move this one away, or pass --no-checkpoint.")

    def prepare(self) -> None:
        """:meth:`check` the folder, create it (mode 0700) if missing, and mark it as dnmf's."""
        self.check()
        if self.location.is_local:
            os.makedirs(os.path.dirname(os.path.abspath(self.location.url)), exist_ok=True)
            try:
                os.mkdir(self.location.url, 0o700)
            except FileExistsError:
                self.check()
            else:
                self._write_marker(created_folder=True)
                return
        if self._marker() is None:
            self._write_marker(created_folder=bool(self._entries()) or not self.location.is_local)

    def discard(self) -> bool:
        """Delete this folder's checkpoints: only the files dnmf writes (versions, manifest), and the marker and the
        folder itself only if nothing else is left in it (the folder only if dnmf created it). Returns whether the
        folder is gone.

        Raises
        ------
        dnmf.data.safety.UnsafeLocationError, dnmf.data.safety.NotOwnStoreError
            As :meth:`check`: nothing is deleted in a folder dnmf may not use.
        """
        if not self.location.exists():
            return True
        self.check()
        marker = self._marker()
        for name in self._entries():
            if _OWN_ENTRY.match(name) and name != MARKER:
                self.location.child(name).remove()
        created = True if marker is None else bool(marker.get("created_folder"))
        left = [name for name in self._entries() if name != MARKER]
        if left:
            logger.info("Kept the folder %s: it holds files dnmf did not write (%s).", self.location.url,
                        ", ".join(sorted(left)[:5]))
            return False
        if marker is not None:
            self.location.child(MARKER).remove()
        if created:
            if self.location.is_local:
                os.rmdir(self.location.url)
            else:
                self.location.remove()
        return not self.location.exists()
