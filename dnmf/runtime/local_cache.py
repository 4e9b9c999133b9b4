"""Blocks of a streamed store kept uncompressed on the workers' local disks, for the passes after the first.

A fit whose input does not fit in the cluster's memory reads it from its store at every pass: each row strip's
compressed arrays are decoded, checked and cut into the grid's column blocks, which costs more than the
arithmetic of a HALS iteration on them (``python -m benchmarks.read_path``). With a :class:`StripCache`, the first
read of a strip on a worker also writes its blocks, raw, to a file in the worker's local directory (the folder
Dask spills to, which it removes with the worker); a later read of that strip on that worker, or on another
worker of the same host, loads the file instead: one read from the page cache or the local disk, no decoding,
no checks, no cut. The blocks are the same arrays, so a fit gives the same bits with or without the cache.

A kept file is mapped into memory copy-on-write, not read (:func:`load_blocks`): a block's arrays are the pages of
the page cache themselves, with no allocation, no zeroing and no copy; they are writable, and what a task writes
stays in its own pages. Each array starts on a :data:`dnmf.core.alignment.ALIGNMENT`-byte boundary of the file,
so the blocks are aligned as the kernels want them and are never copied to be.

A cache belongs to one fit (its :attr:`StripCache.token` is a fresh UUID), and the fit removes it from every
worker when it ends (:func:`drop`). A strip read on a host that has no copy yet is read from its store, so a
task that moves to another host is only slower, never wrong.

Only files this user wrote are trusted: a file is read only if it is a regular file of this process's user,
opened without following links, in a folder of this user that no one else may write to. Anything else is
ignored, and the strip is read from its store. A worker whose disk would keep less than :data:`MIN_FREE_BYTES`
free after a strip does not cache it, nor does one whose local directory is in memory (tmpfs, ramfs): there the
cache would take the memory that streaming the input spares.
"""

from __future__ import annotations

import functools
import itertools
import logging
import mmap
import os
import shutil
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from dnmf.core.alignment import ALIGNMENT

__all__ = ["FOLDER", "MEMORY_FILESYSTEMS", "MIN_FREE_BYTES", "StripCache", "drop", "in_memory_filesystem",
           "load_blocks", "save_blocks"]

logger = logging.getLogger(__name__)

#: The folder of a worker's local directory that holds the caches, one subfolder per fit.
FOLDER = "dnmf-strips"
#: Disk space a worker leaves free: a strip that would leave less is not cached.
MIN_FREE_BYTES = 1 << 30

#: File systems that hold their files in memory.
MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})

_DENSE, _CSR = 0, 1
#: The ``.npy`` format versions ``np.save`` writes for a kept array, and how to read their headers.
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _pad(file: Any) -> None:
    """Zeros up to the next :data:`ALIGNMENT` boundary of ``file``, where the next array starts."""
    file.write(b"\0" * (-file.tell() % ALIGNMENT))


@functools.lru_cache(maxsize=16)
def in_memory_filesystem(folder: Path) -> bool:
    """Whether ``folder`` lies on a file system in :data:`MEMORY_FILESYSTEMS` (the longest mount point of
    ``/proc/self/mounts`` above it); False where that cannot be told."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return False
    target, best, kind = os.path.realpath(folder), "", ""
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, fields[2]
    return kind in MEMORY_FILESYSTEMS


def _nbytes(blocks: list[Any]) -> int:
    return sum(b.data.nbytes + b.indices.nbytes + b.indptr.nbytes if sp.issparse(b) else b.nbytes for b in blocks)


def save_blocks(path: Path, blocks: list[Any]) -> bool:
    """Write ``blocks`` (CSR matrices or ndarrays) to ``path`` whole or not at all (a private temporary file moved
    into place); False, with nothing left behind, if ``path`` is on a file system in memory, the disk would keep
    less than :data:`MIN_FREE_BYTES` free, or the write fails."""
    nbytes = _nbytes(blocks)
    try:
        if in_memory_filesystem(path.parent) or shutil.disk_usage(path.parent).free - nbytes < MIN_FREE_BYTES:
            return False
    except OSError:
        return False
    header = np.array([len(blocks), *(v for b in blocks for v in (_CSR if sp.issparse(b) else _DENSE, *b.shape))],
                      dtype=np.int64)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            np.save(file, header)
            for block in blocks:
                for array in (block.indptr, block.indices, block.data) if sp.issparse(block) else (block,):
                    _pad(file)
                    np.save(file, array, allow_pickle=False)
        os.replace(temporary, path)
        return True
    except OSError as error:
        logger.warning("dnmf could not cache a strip in %s (%s); it is read from its store instead.", path.parent,
                       error)
        temporary.unlink(missing_ok=True)
        return False


def _private_folder(path: Path) -> bool:
    """``path`` is a folder of this user that no one else may write to (checked without following a link)."""
    try:
        status = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(status.st_mode) and status.st_uid == os.geteuid() and not status.st_mode & 0o022


def _mapped_array(file: Any, view: mmap.mmap) -> np.ndarray:
    """The ``.npy`` array that starts at the next :data:`ALIGNMENT` boundary of ``file``, as a view of ``view`` (the
    file mapped); ``file`` is left after it."""
    file.seek(-file.tell() % ALIGNMENT, os.SEEK_CUR)
    version = np.lib.format.read_magic(file)
    if version not in _HEADER_READERS:
        raise ValueError(f"a kept array has .npy format {version}")
    shape, fortran_order, dtype = _HEADER_READERS[version](file)
    if dtype.hasobject:
        raise ValueError("a kept array holds objects")
    count = int(np.prod(shape, dtype=np.int64))
    offset = file.tell()
    if offset + count * dtype.itemsize > len(view):
        raise ValueError("a kept file is shorter than its arrays")
    array = np.frombuffer(view, dtype=dtype, count=count, offset=offset)
    file.seek(count * dtype.itemsize, os.SEEK_CUR)
    return array.reshape(shape, order="F" if fortran_order else "C")


def load_blocks(path: Path) -> list[Any] | None:
    """The blocks :func:`save_blocks` wrote to ``path``, mapped copy-on-write (see the module's docstring); None if
    there is no such file, or it is not a regular file of this user in a private folder of this user, or it
    cannot be read."""
    if not _private_folder(path.parent):
        return None
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode) or status.st_uid != os.geteuid() or status.st_size == 0:
            return None
        try:
            view = mmap.mmap(file.fileno(), status.st_size, access=mmap.ACCESS_COPY)
            header = np.load(file, allow_pickle=False)
            blocks = []
            for index in range(int(header[0])):
                kind, rows, cols = (int(v) for v in header[1 + 3 * index:4 + 3 * index])
                if kind == _CSR:
                    indptr, indices, data = (_mapped_array(file, view) for _ in range(3))
                    blocks.append(sp.csr_matrix((data, indices, indptr), shape=(rows, cols)))
                else:
                    blocks.append(_mapped_array(file, view))
        except (OSError, ValueError, IndexError, EOFError):
            return None
    return blocks


def _worker_directory() -> Path | None:
    try:
        from distributed import get_worker

        return Path(get_worker().local_directory)
    except (ImportError, ValueError):
        return None


@dataclass(frozen=True)
class StripCache:
    """The local-disk cache of one fit's streamed input (see the module's docstring). Pickled into the read tasks;
    outside a worker (Dask's local schedulers) it reads from the store every time."""

    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def folder(self, worker_directory: Path) -> Path:
        return worker_directory / FOLDER / self.token

    def blocks(self, name: str, read: Callable[[], list[Any]], shapes: list[tuple[int, int]]) -> list[Any]:
        """The blocks of strip ``name`` (a file name: the same for the same blocks of the same store), of
        ``shapes``: from this host's cache if a worker of it kept them, else ``read()``, which are then kept."""
        directory = _worker_directory()
        if directory is None:
            return read()
        own = self.folder(directory) / name
        siblings = (p for p in directory.parent.glob(f"*/{FOLDER}/{self.token}/{name}") if p != own)
        for path in itertools.chain((own,), siblings):  # the host's other workers only when this one has none
            blocks = load_blocks(path)
            if blocks is not None and [b.shape for b in blocks] == [tuple(shape) for shape in shapes]:
                return blocks
        blocks = read()
        try:
            own.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:
            return blocks
        if _private_folder(own.parent):
            save_blocks(own, blocks)
        return blocks


def drop(token: str, dask_worker: Any = None) -> None:
    """Remove the cache ``token`` from the local directory of ``dask_worker`` (``Client.run`` passes it), or of
    the worker this task runs on."""
    directory = Path(dask_worker.local_directory) if dask_worker is not None else _worker_directory()
    if directory is not None:
        shutil.rmtree(directory / FOLDER / token, ignore_errors=True)
