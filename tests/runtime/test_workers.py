"""Worker tuning: the malloc mmap threshold dnmf sets on the workers it runs on."""

from __future__ import annotations

import platform

import dask
import numpy as np
import pytest

from dnmf import NMF
from dnmf.runtime.workers import DEFAULT_MMAP_THRESHOLD

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")


def _tuned(dask_worker) -> bool:
    return "dnmf-malloc-tuning" in dask_worker.plugins


_PROBE = """
import ctypes, ctypes.util, sys
import numpy as np
from dnmf.runtime.workers import set_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL(ctypes.util.find_library("c")).mallinfo2
mallinfo2.restype = MallInfo2
assert set_mmap_threshold(int(sys.argv[1]))
before = mallinfo2().hblkhd
held = np.ones(4 << 20, dtype=np.uint8)
print(mallinfo2().hblkhd - before)
"""


def _mmapped_bytes_for_4_mib(threshold: int) -> int:
    """Bytes malloc maps while a fresh process holds a 4 MiB array, at the given mmap threshold (glibc's
    ``mallinfo2``). A fresh process, because a long-lived heap may serve 4 MiB from free chunks at any threshold."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _PROBE, str(threshold)], capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


@glibc
def test_mmap_threshold_serves_large_arrays_from_the_heap():
    assert _mmapped_bytes_for_4_mib(128 * 1024) >= 4 << 20
    assert _mmapped_bytes_for_4_mib(DEFAULT_MMAP_THRESHOLD) == 0


@pytest.mark.cluster
def test_a_fit_tunes_every_worker():
    from distributed import Client, LocalCluster

    A = np.random.default_rng(0).random((60, 40))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        assert not any(client.run(_tuned).values())
        NMF(3, max_iter=2, random_state=0).fit(A)
        assert all(client.run(_tuned).values()) and len(client.run(_tuned)) == 2


@pytest.mark.cluster
def test_tuning_can_be_turned_off():
    from distributed import Client, LocalCluster

    A = np.random.default_rng(0).random((60, 40))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        with dask.config.set({"dnmf.worker-mmap-threshold": 0}):
            NMF(3, max_iter=2, random_state=0).fit(A)
        assert not any(client.run(_tuned).values())
        NMF(3, max_iter=2, random_state=0).fit(A)
        assert all(client.run(_tuned).values())
