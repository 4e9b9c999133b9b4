"""Tuning of the worker processes a fit runs on: glibc's mmap threshold.

A distributed Nanny starts each worker with ``MALLOC_TRIM_THRESHOLD_`` set (``distributed.nanny.pre-spawn-environ``)
so that freed memory goes back to the operating system. Setting any malloc parameter turns off glibc's dynamic mmap
threshold, which then stays at 128 KiB: every array above that size is a fresh ``mmap`` whose pages fault in on first
touch and go back to the system on ``free``. A block update allocates several arrays of a few MiB per task, so worker
tasks ran 1.5–2× slower than the same tasks in a threaded scheduler (dnmf's fit of S1 of the benchmarks inside
one worker: 1.09 → 0.56 s per iteration). Raising the mmap threshold serves such arrays from the malloc arenas, whose
free memory is still trimmed as the Nanny asked.

:func:`tune_workers` installs :class:`MallocTuning` on every worker of a client, present and future, once per
client. The engine does so unless the input streams from its store: arenas keep more memory resident than fresh
mappings do (S3 of the benchmarks: peak worker RSS 483 instead of 384 MiB of 512, for 8.0 instead of 10.0 s per
iteration), and an out-of-core fit runs for its memory bound. The threshold is the Dask configuration value
``dnmf.worker-mmap-threshold`` (bytes; ``0`` leaves workers untouched). It is a no-op where the C library has no
``mallopt`` (macOS, Windows).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import weakref
from typing import Any

import dask
from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["DEFAULT_MMAP_THRESHOLD", "MallocTuning", "set_mmap_threshold", "tune_workers"]

logger = logging.getLogger(__name__)

#: The ceiling of glibc's dynamic threshold on 64-bit systems (``DEFAULT_MMAP_THRESHOLD_MAX``): what the threshold
#: grows to by itself in a process whose malloc parameters nobody set.
DEFAULT_MMAP_THRESHOLD = 32 * 2**20
_M_MMAP_THRESHOLD = -3
_PLUGIN_NAME = "dnmf-malloc-tuning"
_tuned_clients: weakref.WeakSet = weakref.WeakSet()


def set_mmap_threshold(size: int) -> bool:
    """Set this process's malloc mmap threshold to ``size`` bytes; False where the C library cannot."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(size)))


class MallocTuning(WorkerPlugin):
    """A worker plugin that sets the mmap threshold of each worker process it is installed on.

    Parameters
    ----------
    mmap_threshold : int
        Bytes; allocations below it come from the malloc arenas.
    """

    idempotent = True
    name = _PLUGIN_NAME

    def __init__(self, mmap_threshold: int = DEFAULT_MMAP_THRESHOLD) -> None:
        self.mmap_threshold = mmap_threshold

    def setup(self, worker: Any) -> None:
        if not set_mmap_threshold(self.mmap_threshold):
            logger.debug("worker %s: this C library has no mallopt; mmap threshold left as it is", worker.address)



def tune_workers(client: Any) -> None:
    """Install :class:`MallocTuning` on the client's workers, unless done before or turned off by the
    ``dnmf.worker-mmap-threshold`` configuration value."""
    threshold = int(dask.config.get("dnmf.worker-mmap-threshold", DEFAULT_MMAP_THRESHOLD) or 0)
    if threshold <= 0 or client in _tuned_clients:
        return
    client.register_plugin(MallocTuning(threshold), name=_PLUGIN_NAME)
    _tuned_clients.add(client)
