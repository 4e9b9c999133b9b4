"""examples/batch_job/run.sh end to end in its small mode: make an input, ingest, fit with checkpoints on the
LocalCluster of its cluster.yaml, inspect; a rerun after success does no more work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dnmf

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "batch_job" / "run.sh"


@pytest.mark.cluster
def test_batch_job_small_mode(tmp_path):
    env = {**os.environ, "DNMF_BATCH_SMALL": "1",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    result = dnmf.load_result(tmp_path / "result.zarr")
    assert result.W.shape == (20_000, 16) and result.H.shape == (16, 2_000)
    assert result.info["fingerprint"]["nnz"] > 190_000
    assert result.info["n_iter"] >= 5 and result.info["loss_history"][-1] < result.info["loss_history"][0]
    assert summary["command"] == "fit" and summary["status"] == "completed"
    assert summary["iterations"] == result.info["n_iter"] and summary["n_components"] == 16
    assert (tmp_path / "checkpoint" / "manifest.json").exists()
    assert "top features per component" in run.stdout and "W 20,000 × 16" in run.stdout
    rerun = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], env=env, capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert dnmf.load_result(tmp_path / "result.zarr").info["n_iter"] == result.info["n_iter"]
