"""``dnmf ingest → fit → inspect → transform`` as real subprocesses, and the batch semantics of reruns."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
from cli_helpers import make_counts, run_dnmf, summary

from dnmf import load_result, open_matrix

pytestmark = pytest.mark.cluster

LOCAL_CONFIG = """kind: local
n_workers: 2
memory_limit: 1GiB
dashboard_address: 127.0.0.1:0
"""


def test_ingest_fit_inspect_transform_on_a_local_cluster(tmp_path, scheduler):
    A, _, _ = make_counts()
    scipy.io.mmwrite(tmp_path / "counts.mtx", sp.coo_matrix(A))
    (tmp_path / "local.yaml").write_text(LOCAL_CONFIG)
    ingested = run_dnmf("ingest", "counts.mtx", "counts.zarr", "--chunks", "300,100", cwd=tmp_path)
    assert ingested.returncode == 0, ingested.stderr

    fit_command = ["fit", "counts.zarr", "--rank", "4", "--out", "topics.zarr", "--max-iter", "6", "--tol", "0",
                   "--checkpoint-every", "3", "--cluster", "local.yaml", "--log-format", "json"]
    fitted = run_dnmf(*fit_command, "--summary", "fit.json", cwd=tmp_path)
    assert fitted.returncode == 0, fitted.stderr
    report = json.loads((tmp_path / "fit.json").read_text())
    assert report["status"] == "completed" and report["exit_code"] == 0 and report["iterations"] == 6
    assert report["result"] == str(tmp_path / "topics.zarr") and report["relative_error"] < 0.2
    assert report["cluster"]["kind"] == "local" and report["cluster"]["workers"] == 2
    assert report["cluster"]["scheduler"].startswith("tls://127.0.0.1:")
    assert report["cluster"]["dashboard"].startswith("http://127.0.0.1:")
    assert fitted.stdout == ""
    records = [json.loads(line) for line in fitted.stderr.splitlines() if line.startswith("{")]
    iterations = [r for r in records if "iteration" in r and r["logger"] == "dnmf"]
    assert [r["iteration"] for r in iterations] == list(range(1, 7))
    assert all(r["level"] == "INFO" and r["loss"] > 0 for r in iterations)
    assert not (tmp_path / "topics.zarr.checkpoint").exists()
    result = load_result(tmp_path / "topics.zarr")
    assert result.W.shape == (600, 4) and result.H.shape == (4, 200)

    inspected = run_dnmf("inspect", "topics.zarr", "--json", "--top", "3", cwd=tmp_path)
    assert inspected.returncode == 0, inspected.stderr
    described = json.loads(inspected.stdout)
    assert described["kind"] == "result" and described["n_iter"] == 6 and len(described["loss_history"]) == 6
    assert len(described["top_features"]) == 4 and all(len(c) == 3 for c in described["top_features"])
    assert described["input"]["shape"] == [600, 200] and described["input"]["nnz"] == A.nnz
    matrix = run_dnmf("inspect", "counts.zarr", cwd=tmp_path)
    assert matrix.returncode == 0, matrix.stderr
    assert "600 × 200" in matrix.stdout and f"nnz {A.nnz:,}" in matrix.stdout and "sparse" in matrix.stdout

    projected = run_dnmf("transform", "topics.zarr", "counts.zarr", "--out", "w-new.zarr", "--scheduler", scheduler,
                         cwd=tmp_path)
    assert projected.returncode == 0, projected.stderr
    assert summary(projected)["shape"] == [600, 4]
    W_new = open_matrix(tmp_path / "w-new.zarr").compute()
    error_new = np.linalg.norm(A.toarray() - W_new @ result.H)
    assert W_new.min() >= 0 and error_new <= 1.05 * result.info["reconstruction_err"] + 1e-9
    again = run_dnmf("transform", "topics.zarr", "counts.zarr", "--out", "w-new.zarr", "--scheduler", scheduler,
                     cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr

    attributes = (tmp_path / "topics.zarr" / "zarr.json").stat().st_mtime_ns
    rerun = run_dnmf(*fit_command, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert summary(rerun)["status"] == "already-done" and summary(rerun)["cluster"] is None
    assert "nothing to do" in rerun.stderr
    assert (tmp_path / "topics.zarr" / "zarr.json").stat().st_mtime_ns == attributes

    other = run_dnmf(*fit_command[:-4], "--seed", "1", "--scheduler", scheduler, cwd=tmp_path)
    assert other.returncode == 2 and "random_state" in other.stderr and "--force" in other.stderr
    forced = run_dnmf(*fit_command[:-4], "--seed", "1", "--scheduler", scheduler, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert summary(forced)["status"] == "completed"
    assert load_result(tmp_path / "topics.zarr").info["params"]["random_state"] == 1
    assert not any(p.name.startswith(".topics.zarr") for p in tmp_path.iterdir())


def test_job_file_with_flags_overriding_it(tmp_path, scheduler, counts_store):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "job.toml").write_text(
        f'input = "{counts_store}"\nrank = 3\nout = "topics.zarr"\nmax-iter = 50\ntol = 0.0\n'
        f'scheduler = "{scheduler}"\nno_checkpoint = true\nsummary = "summary.json"\n'
    )
    done = run_dnmf("fit", "--config", tmp_path / "jobs" / "job.toml", "--max-iter", "4", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "jobs" / "summary.json").read_text())
    assert report["iterations"] == 4 and report["n_components"] == 3 and report["checkpoint"] is None
    assert report["result"] == str(tmp_path / "jobs" / "topics.zarr")
    assert load_result(tmp_path / "jobs" / "topics.zarr").info["params"]["max_iter"] == 4
