"""Bitwise determinism on every executor: two clean runs, and a run killed with SIGKILL and resumed, give the same
W and H as an uninterrupted run; and the in-process executor equals the graph path on the same grid."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import numpy as np
import pytest
import scipy.sparse as sp

from dnmf import NMF
from dnmf.datasets import make_sparse_low_rank

CHILD = Path(__file__).with_name("child_executor_fit.py")
EXECUTORS = ["in-process", "threads", "processes"]
MAX_ITER = 40


def run_child(executor: str, checkpoint: str, out: Path, *flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(CHILD), executor, checkpoint, str(out), str(MAX_ITER), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen, out: Path) -> dict[str, np.ndarray]:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    with np.load(out) as saved:
        return {name: saved[name] for name in saved.files}


@pytest.fixture(scope="module")
def clean_runs(tmp_path_factory):
    """Two uninterrupted runs per executor, all started at once."""
    folder = tmp_path_factory.mktemp("clean")
    started = {(executor, i): run_child(executor, "-", folder / f"{executor}-{i}.npz")
               for executor in EXECUTORS for i in range(2)}
    return {key: finished(process, folder / f"{key[0]}-{key[1]}.npz") for key, process in started.items()}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_two_clean_runs_are_bitwise_equal(clean_runs, executor):
    first, second = clean_runs[executor, 0], clean_runs[executor, 1]
    assert str(first["executor"]) == {"threads": "dask-local", "processes": "distributed"}.get(executor, executor)
    np.testing.assert_array_equal(first["W"], second["W"])
    np.testing.assert_array_equal(first["H"], second["H"])


@pytest.mark.parametrize("executor", EXECUTORS)
def test_sigkill_then_resume_is_bitwise_equal(clean_runs, executor, tmp_path):
    checkpoint = tmp_path / "run.checkpoint"
    killed = run_child(executor, str(checkpoint), tmp_path / "killed.npz")
    deadline = time.monotonic() + 240
    while len(list(checkpoint.glob("v*"))) < 2 and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL, "the fit ended before it could be killed"
    resumed = finished(run_child(executor, str(checkpoint), tmp_path / "resumed.npz", "resume"),
                       tmp_path / "resumed.npz")
    assert 0 < int(resumed["resumed_from"]) < MAX_ITER
    np.testing.assert_array_equal(resumed["W"], clean_runs[executor, 0]["W"])
    np.testing.assert_array_equal(resumed["H"], clean_runs[executor, 0]["H"])


def test_executors_agree(clean_runs):
    reference = clean_runs["threads", 0]
    for executor in ("in-process", "processes"):
        np.testing.assert_allclose(clean_runs[executor, 0]["H"], reference["H"], rtol=1e-12, atol=0)
        np.testing.assert_allclose(clean_runs[executor, 0]["W"], reference["W"], rtol=1e-12, atol=0)


@pytest.mark.parametrize("solver,beta_loss", [("hals", "frobenius"), ("mu", "frobenius"), ("bpp", "frobenius"),
                                              ("mu", "kullback-leibler")])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_in_process_equals_graph_path_on_the_same_grid(solver, beta_loss, sparse):
    X, _, _ = make_sparse_low_rank(90, 70, 3, random_state=2)
    X = X if sparse else X.toarray() + 0.01
    fits = {}
    for executor in ("in-process", "dask"):
        with dask.config.set({"dnmf.executor": executor}):
            model = NMF(3, solver=solver, beta_loss=beta_loss, max_iter=25, tol=0, random_state=0,
                        chunks=(30, 35), init="nndsvda").fit(X)
        fits[executor] = model
    assert fits["in-process"].timings_["executor"] == "in-process"
    assert fits["dask"].timings_["executor"] == "dask-local"
    np.testing.assert_allclose(fits["in-process"].components_, fits["dask"].components_, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(fits["in-process"].loss_history_, fits["dask"].loss_history_, rtol=1e-12)
    assert fits["in-process"].reconstruction_err_ == pytest.approx(fits["dask"].reconstruction_err_, rel=1e-12)
    assert sp.issparse(X) == sparse
