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
               "--iterations", "3", "--target-iterations", "5",
               "--only", "inmemory[hals],threads[hals],[hals]-to-target",
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


def test_gpu_benchmark_logic_runs_on_cpu_with_numpy_standing_in(tmp_path):
    out = tmp_path / "gpu.json"
    command = [sys.executable, "-m", "benchmarks.gpu", "--backend", "numpy", "--scale", "0.005", "--iterations", "2",
               "--cpu-workers", "0", "--cpu-iterations", "2", "--out", str(out)]
    done = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["backend"] == "numpy" and report["measured_on_gpu"] is False
    assert report["case"] == {"shape": [5000, 1000], "nnz": report["case"]["nnz"], "rank": 32, "dtype": "float32",
                              "scale": 0.005, "iterations": 2}
    assert 2400 <= report["case"]["nnz"] <= 2500
    assert (set(report["dnmf_ms_per_iteration"]) == {"mu", "hals"}
            and set(report["cupy_loop_ms_per_iteration"]) == {"mu"})
    assert report["dnmf_over_cupy_loop"]["mu"] == pytest.approx(
        report["dnmf_ms_per_iteration"]["mu"] / report["cupy_loop_ms_per_iteration"]["mu"])
    assert set(report["speedup_over_cpu_workers"]) == {"mu", "hals"}
    assert all(v > 0 for v in report["cpu_ms_per_iteration"].values())
    assert report["peak_gpu_memory_mib"] is None and report["date"] and "NumPy standing in" in report["device"]


def test_gpu_benchmark_dnmf_iteration_computes_the_reference_mu_iteration():
    sys.path.insert(0, str(ROOT))
    from benchmarks import gpu
    from dnmf.core.rules import mu

    backend = gpu.numpy_backend()
    A, At, W, H, _ = gpu.make_case(backend, 0.002)
    norm_squared_a = float((A.data.astype(float) ** 2).sum())
    W_ref, H_ref = gpu.cupy_loop_iteration(backend, A, At, W, H)
    W_dnmf, H_dnmf, loss = gpu.dnmf_iteration(backend, A, At, W, H, rule=mu.update, norm_squared_a=norm_squared_a)
    assert W_dnmf.flags.c_contiguous
    import numpy as np

    # The hand loop adds ε to every denominator, dnmf (like scikit-learn) replaces zero denominators by ε; at this
    # case's small factor entries that alone moves entries by up to ~2e-3.
    np.testing.assert_allclose(W_dnmf, W_ref, rtol=1e-2)
    np.testing.assert_allclose(H_dnmf, H_ref, rtol=1e-2)
    assert not np.allclose(W_dnmf, W, rtol=1e-2)
    assert loss == pytest.approx(float(np.linalg.norm(A.toarray() - W_dnmf @ H_dnmf)), rel=1e-3)


def test_gpu_benchmark_without_cupy_exits_2_with_one_line():
    try:
        import cupy  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("CuPy is importable here, so the benchmark would run instead of refusing")
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--scale", "0.001"], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.count("\n") == 1 and "pip install 'dnmf[gpu]'" in done.stderr


def test_cv_cost_reports_both_tables_for_every_rank():
    command = [sys.executable, "-m", "benchmarks.cv_cost", "--rows", "240", "--cols", "80", "--ranks", "3", "6",
               "--repeats", "1", "--iterations", "5", "--kernels"]
    done = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    fits, kernels = done.stdout.split("One iteration's block work alone")
    for table, width in ((fits, 7), (kernels, 6)):
        rows = [line.strip("|").split("|") for line in table.splitlines() if line.startswith("| ") and
                line[2].isdigit()]
        assert [int(row[0]) for row in rows] == [3, 6]
        assert all(len(row) == width and all(float(cell) > 0 for cell in row) for row in rows)
