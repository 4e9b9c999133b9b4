"""The benchmark harness end to end on a tiny case: every figure the report promises is there and consistent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.cluster
def test_harness_reports_medians_targets_and_memory(tmp_path):
    out = tmp_path / "run.json"
    command = [sys.executable, "-m", "benchmarks.run", "--cases", "S1", "--scale", "0.02", "--repeats", "2",
               "--iterations", "3", "--target-iterations", "5", "--only", "inmemory[hals],threads[hals],[hals]-to-target",
               "--workdir", str(tmp_path / "data"), "--out", str(out)]
    done = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    summaries = report["summaries"]
    assert set(summaries) == {"S1 inmemory[hals]", "S1 dnmf-threads[hals]", "S1 sklearn-cd",
                              "S1 dnmf-cluster-2w[hals]-to-target"}
    for key in ("S1 inmemory[hals]", "S1 dnmf-threads[hals]"):
        summary = summaries[key]
        assert summary["repeats"] == 2
        s = summary["seconds_per_iteration"]
        assert 0 < s["min"] <= s["median"] <= s["max"]
        assert summary["peak_rss_mib"] > 50
    # Same rule, same start, same data: the in-memory limit and dnmf agree on the result.
    assert summaries["S1 dnmf-threads[hals]"]["relative_error"]["median"] == pytest.approx(
        summaries["S1 inmemory[hals]"]["relative_error"]["median"], rel=1e-4)
    assert summaries["S1 dnmf-threads[hals]"]["phase_seconds_per_iteration"].keys() >= {"aht", "wta", "update"}
    to_target = report["time_to_target"]["dnmf-cluster-2w[hals]-to-target"]
    assert to_target["reference_seconds"] > 0
    assert summaries["S1 dnmf-cluster-2w[hals]-to-target"]["peak_worker_rss_mib"] > 50
    figures = {row["figure"] for row in report["targets"]}
    assert any(figure.startswith("time to scikit-learn cd's loss") for figure in figures)
    assert "| case | figure | target | measured | met |" in report["table_markdown"]


def test_sizes_benchmark_races_scikit_learn_from_the_same_start():
    import sys

    sys.path.insert(0, str(ROOT))
    from benchmarks import sizes

    report = sizes.main(["--cases", "tiny", "--repeats", "1"])
    (result,) = report["results"]
    custom = result["custom"]
    assert custom["executor"] == "in-process" and custom["dnmf_seconds"] > 0 and custom["sklearn_seconds"] > 0
    assert custom["dnmf_error"] == pytest.approx(custom["sklearn_error"], rel=1e-3)  # same rule, same start
    assert "tiny 50×40 k=5" in report["table"] and "Fixed cost per iteration" in report["table"]
