"""Real ``dask scheduler`` and ``dask worker`` processes on loopback: the scheduler is killed mid-fit, the fit
fails with a clear error, and a rerun with resume=True on a new cluster ends with the uninterrupted result."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import dask
import numpy as np
import pytest

from dnmf import NMF, load_result, save_matrix
from dnmf.datasets import make_sampled_low_rank

pytestmark = pytest.mark.cluster

CHILD = """
import sys
from distributed import Client
from dnmf import NMF
address, store, checkpoint, out = sys.argv[1:5]
with Client(address, timeout=10) as client:
    model = NMF(6, init="random", max_iter=30, tol=0, random_state=0, chunks=(10_000, 2_000), checkpoint=checkpoint)
    model.fit(store, resume="resume" in sys.argv, out=out)
print("done", model.n_iter_, model.resumed_from_)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def dask_cluster():
    """``dask scheduler`` and two ``dask worker`` processes, as the commands distributed installs start them."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen(["dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--dashboard-address", "127.0.0.1:0"], stderr=subprocess.DEVNULL)
    workers = [subprocess.Popen(["dask", "worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                                 "--no-dashboard"], stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, scheduler
    finally:
        for process in [*workers, scheduler]:
            process.kill()
            process.wait(timeout=30)


def test_scheduler_killed_then_resumed_on_a_new_cluster(tmp_path):
    A = make_sampled_low_rank(40_000, 4_000, 6, 1_000_000, random_state=0)
    store = str(tmp_path / "a.zarr")
    with dask.config.set(scheduler="sync"):
        save_matrix(A, store, chunks=(10_000, 2_000))
        reference = NMF(6, init="random", max_iter=30, tol=0, random_state=0, chunks=(10_000, 2_000))
        W_reference = reference.fit_transform(store).compute()
    (tmp_path / "child.py").write_text(CHILD)
    args = [sys.executable, str(tmp_path / "child.py")]
    paths = [store, str(tmp_path / "ck"), str(tmp_path / "out.zarr")]
    with dask_cluster() as (address, scheduler):
        child = subprocess.Popen([*args, address, *paths], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not (tmp_path / "ck" / "manifest.json").exists():
            assert time.monotonic() < deadline and child.poll() is None, child.stderr.read() if child.poll() else ""
            time.sleep(0.1)
        scheduler.kill()
        killed = time.monotonic()
        _, stderr = child.communicate(timeout=120)
        assert time.monotonic() - killed < 60
    assert child.returncode != 0
    assert "ClusterLostError: Lost the Dask scheduler" in stderr and "resume=True" in stderr
    assert not (tmp_path / "out.zarr").exists()
    with dask_cluster() as (address, _):
        done = subprocess.run([*args, address, *paths, "resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    n_iter, resumed_from = done.stdout.split()[1:3]
    assert n_iter == "30" and resumed_from != "None"
    result = load_result(tmp_path / "out.zarr")
    np.testing.assert_array_equal(result.W.compute(), W_reference)
    np.testing.assert_array_equal(result.H, reference.components_)
