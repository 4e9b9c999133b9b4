"""``dnmf demo`` and ``dnmf ingest``, run as real subprocesses."""

from __future__ import annotations

import re

import pytest
from cli_helpers import run_dnmf


@pytest.mark.cluster
def test_demo_starts_its_own_cluster_and_reports_error():
    done = run_dnmf("demo", "--rows", "3000", "--cols", "800", "--rank", "5", "--density", "0.1",
                    "--max-iter", "60")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"Dashboard: http://127\.0\.0\.1:\d+/status", out)
    assert "LocalCluster: 2 worker processes" in out
    losses = [float(x) for x in re.findall(r"iteration\s+\d+\s+loss ‖A − WH‖ = (\S+)", out)]
    assert len(losses) >= 10 and losses[-1] < losses[0]
    relative = float(re.search(r"Final relative error ‖A − WH‖ / ‖A‖ = (\S+)", out).group(1))
    assert relative < 1e-3


def test_unknown_command_is_a_usage_error():
    done = run_dnmf("frobnicate", timeout=60)
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_ingest_then_fit_from_the_store(tmp_path):
    import scipy.io
    import scipy.sparse as sp

    from dnmf import NMF, read_labels

    A = sp.random(60, 30, density=0.2, format="coo", random_state=0)
    scipy.io.mmwrite(tmp_path / "a.mtx", A)
    done = run_dnmf("ingest", str(tmp_path / "a.mtx"), str(tmp_path / "a.zarr"), "--chunks", "20,15", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "60 × 30" in done.stdout
    model = NMF(3, max_iter=5, tol=0).fit(str(tmp_path / "a.zarr"))
    assert model.components_.shape == (3, 30)
    assert len(read_labels(tmp_path / "a.zarr")[0]) == 60
    again = run_dnmf("ingest", str(tmp_path / "a.mtx"), str(tmp_path / "a.zarr"), timeout=120)
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr
    missing = run_dnmf("ingest", str(tmp_path / "nope.mtx"), str(tmp_path / "b.zarr"), timeout=120)
    assert missing.returncode == 2 and "nope.mtx" in missing.stderr


@pytest.mark.cluster
def test_fit_offers_every_registered_solver(tmp_path, counts_store, scheduler):
    import json

    done = run_dnmf("fit", counts_store, "--rank", "3", "--out", str(tmp_path / "bpp.zarr"), "--solver", "bpp",
                    "--max-iter", "3", "--tol", "0", "--no-checkpoint", "--scheduler", scheduler, "--summary",
                    str(tmp_path / "bpp.json"), timeout=180)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "bpp.json").read_text())["iterations"] == 3
    kl = run_dnmf("fit", counts_store, "--rank", "3", "--out", str(tmp_path / "kl.zarr"), "--solver", "bpp",
                  "--beta-loss", "kullback-leibler", "--scheduler", scheduler, timeout=120)
    assert kl.returncode == 2 and "does not handle beta_loss = 'kullback-leibler'" in kl.stderr
