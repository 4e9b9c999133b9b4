"""The ``dnmf`` command, run as a real subprocess."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


def run_dnmf(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dnmf", *args], capture_output=True, text=True, timeout=timeout)


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


def test_help():
    done = run_dnmf("--help", timeout=60)
    assert done.returncode == 0 and "demo" in done.stdout
    done = run_dnmf("demo", "--help", timeout=60)
    assert done.returncode == 0 and "--max-iter" in done.stdout


def test_unknown_command_is_a_usage_error():
    done = run_dnmf("frobnicate", timeout=60)
    assert done.returncode == 2 and "invalid choice" in done.stderr
