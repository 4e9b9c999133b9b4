"""``dnmf fit --scheduler`` against ``dask scheduler`` and ``dask worker`` processes, and a ``dnmf fit`` killed with
SIGKILL and rerun."""

from __future__ import annotations

import json
import signal
import socket

import dask
import numpy as np
import pytest
from cli_helpers import dask_processes, run_dnmf, start_dnmf, summary, wait_for

from dnmf import NMF, load_result

pytestmark = pytest.mark.cluster

PARAMS = ["--rank", "4", "--init", "random", "--tol", "0", "--seed", "0", "--chunks", "300,100"]


def reference(store: str, max_iter: int) -> tuple[np.ndarray, NMF]:
    """W and the model of the same fit, in this process on the synchronous scheduler."""
    with dask.config.set(scheduler="sync"):
        model = NMF(4, init="random", tol=0, random_state=0, chunks=(300, 100), max_iter=max_iter)
        return model.fit_transform(store).compute(), model


def test_fit_on_separate_scheduler_and_worker_processes(tmp_path, counts_store):
    with dask_processes(n_workers=2) as (address, processes):
        done = run_dnmf("fit", counts_store, *PARAMS, "--max-iter", "8", "--out", tmp_path / "r.zarr",
                        "--scheduler", address)
        assert done.returncode == 0, done.stderr
    assert all(process.poll() is not None for process in processes)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", int(address.rpartition(":")[2]))) != 0
    report = summary(done)
    assert report["cluster"] == {**report["cluster"], "kind": "address", "scheduler": address, "workers": 2}
    assert report["status"] == "completed" and report["iterations"] == 8
    W, expected = reference(counts_store, 8)
    result = load_result(tmp_path / "r.zarr")
    np.testing.assert_allclose(result.W.compute(), W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result.H, expected.components_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result.info["loss_history"], expected.loss_history_, rtol=1e-10)
    assert list(result.col_labels[:2]) == ["word0", "word1"]


def test_sigkilled_fit_resumes_when_rerun(tmp_path, counts_store, scheduler):
    command = ["fit", counts_store, *PARAMS, "--max-iter", "30", "--out", tmp_path / "r.zarr", "--checkpoint-every",
               "1", "--scheduler", scheduler]
    first = start_dnmf(*command)
    wait_for(lambda: (tmp_path / "r.zarr.checkpoint" / "manifest.json").exists(), 120, "a checkpoint", first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    assert not (tmp_path / "r.zarr").exists()

    rerun = run_dnmf(*command)
    assert rerun.returncode == 0, rerun.stderr
    report = summary(rerun)
    assert report["status"] == "resumed" and report["exit_code"] == 0
    assert 1 <= report["resumed_from"] < 30 and report["iterations"] == 30
    assert f"Resuming from iteration {report['resumed_from']}" in rerun.stderr
    W, expected = reference(counts_store, 30)
    result = load_result(tmp_path / "r.zarr")
    np.testing.assert_allclose(result.W.compute(), W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result.H, expected.components_, rtol=1e-10, atol=1e-12)
    assert result.info["loss_history"] == pytest.approx(expected.loss_history_, rel=1e-10)
    assert not (tmp_path / "r.zarr.checkpoint").exists()


def test_sigterm_exits_3_and_says_how_to_resume(tmp_path, counts_store, scheduler):
    fit = start_dnmf("fit", counts_store, *PARAMS, "--max-iter", "500", "--out", tmp_path / "r.zarr",
                     "--checkpoint-every", "1", "--scheduler", scheduler)
    wait_for(lambda: (tmp_path / "r.zarr.checkpoint" / "manifest.json").exists(), 120, "a checkpoint", fit)
    fit.send_signal(signal.SIGTERM)
    stdout, stderr = fit.communicate(timeout=60)
    assert fit.returncode == 3
    assert "Stopped by a signal. Rerun the same command to resume from the last checkpoint" in stderr
    report = json.loads(stdout)
    assert report["resumable"] is True and report["exit_code"] == 3 and not (tmp_path / "r.zarr").exists()
