"""Helpers for the ``dnmf`` command's tests: the command as a subprocess, small stores, and a real cluster of
``dask scheduler`` and ``dask worker`` processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CLUSTER_CONFIGS = REPO / "cluster_configs"


def environment() -> dict[str, str]:
    """The environment of every child process: this checkout first on the path, whatever is installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_dnmf(*args: str, timeout: float = 240, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dnmf", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=environment(), cwd=cwd)


def start_dnmf(*args: str, cwd: str | Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dnmf", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environment(), cwd=cwd)


def summary(done: subprocess.CompletedProcess) -> dict:
    """The JSON summary a batch command printed on stdout."""
    return json.loads(done.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def dask_processes(n_workers: int = 2,
                   scheduler_args: tuple[str, ...] = ()) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, started with the commands distributed
    installs (the scheduler with ``scheduler_args`` added); all of them are killed and reaped on exit."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes = [subprocess.Popen(["dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                   "--dashboard-address", "127.0.0.1:0", *scheduler_args],
                                  stderr=subprocess.DEVNULL, env=environment())]
    processes += [subprocess.Popen(["dask", "worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                                    "--no-dashboard", "--memory-limit", "1GiB"], stderr=subprocess.DEVNULL,
                                   env=environment()) for _ in range(n_workers)]
    try:
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(n_workers, timeout=60)
        yield address, processes
    finally:
        for process in reversed(processes):
            process.kill()
            process.wait(timeout=30)


def make_counts(m: int = 600, n: int = 200, k: int = 4, seed: int = 0):
    """A sparse matrix with planted rank-k structure and word-like column labels."""
    from dnmf.datasets import make_sparse_low_rank

    A, _, _ = make_sparse_low_rank(m, n, k, column_density=0.15, random_state=seed)
    return A, np.array([f"doc{i}" for i in range(m)]), np.array([f"word{j}" for j in range(n)])


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended (status {process.returncode}) before {what}: "
                                 f"{process.stderr.read() if process.stderr else ''}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
