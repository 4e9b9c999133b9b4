"""Worker tuning: the malloc mmap threshold dnmf sets on the workers it runs on."""

from __future__ import annotations

import platform

import dask
import numpy as np
import pytest

from dnmf import NMF
from dnmf.workers import DEFAULT_MMAP_THRESHOLD, set_mmap_threshold

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")


def _tuned(dask_worker) -> bool:
    return "dnmf-malloc-tuning" in dask_worker.plugins


def _mmapped_bytes_while_holding(nbytes: int) -> int:
    """Bytes malloc holds in mmapped regions while an array of ``nbytes`` is alive (glibc's ``mallinfo2``)."""
    import ctypes
    import ctypes.util

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                         "fsmblks", "uordblks", "fordblks", "keepcost")]

    mallinfo2 = ctypes.CDLL(ctypes.util.find_library("c")).mallinfo2
    mallinfo2.restype = MallInfo2
    before = mallinfo2().hblkhd
    held = np.ones(nbytes, dtype=np.uint8)
    during = mallinfo2().hblkhd
    del held
    return during - before


@glibc
def test_mmap_threshold_serves_large_arrays_from_the_heap():
    assert set_mmap_threshold(128 * 1024)
    assert _mmapped_bytes_while_holding(4 << 20) >= 4 << 20
    assert set_mmap_threshold(DEFAULT_MMAP_THRESHOLD)
    assert _mmapped_bytes_while_holding(4 << 20) == 0


@pytest.mark.cluster
def test_a_fit_tunes_every_worker(client):
    A = np.random.default_rng(0).random((60, 40))
    NMF(3, max_iter=2, random_state=0).fit(A)
    assert all(client.run(_tuned).values())


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
