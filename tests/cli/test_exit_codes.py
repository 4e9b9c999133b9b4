"""Exit statuses of ``dnmf fit``: 2 for bad input and usage, 3 for an unreachable scheduler, 4 for
``--require-convergence``; each with a message naming the problem."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from cli_helpers import CLUSTER_CONFIGS, environment, run_dnmf, summary

from dnmf.cli.main import main


def test_missing_input_is_bad_input(tmp_path):
    started = time.monotonic()
    done = run_dnmf("fit", tmp_path / "nope.zarr", "--rank", "2", "--out", tmp_path / "r.zarr")
    assert done.returncode == 2
    assert "nope.zarr" in done.stderr and "Traceback" not in done.stderr
    assert summary(done)["status"] == "failed" and summary(done)["exit_code"] == 2
    assert time.monotonic() - started < 60


def test_bad_flag_is_a_usage_error():
    done = run_dnmf("fit", "x.zarr", "--rank", "2", "--out", "r.zarr", "--max-iterations", "3", timeout=60)
    assert done.returncode == 2 and "unrecognized arguments: --max-iterations" in done.stderr
    with pytest.raises(SystemExit) as exited:
        main(["fit", "x.zarr", "--rank", "two", "--out", "r.zarr"])
    assert exited.value.code == 2


def test_bad_cluster_config_key_names_key_and_file(tmp_path, counts_store, capsys):
    config = tmp_path / "cluster.yaml"
    config.write_text("kind: local\nn_worker: 2\n")
    done = run_dnmf("fit", counts_store, "--rank", "2", "--out", tmp_path / "r.zarr", "--cluster", config,
                    timeout=60)
    assert done.returncode == 2
    assert "unknown key 'n_worker'" in done.stderr and str(config) in done.stderr
    config.write_text("kind: local\nn_workers: two\n")
    assert main(["fit", counts_store, "--rank", "2", "--out", str(tmp_path / "r.zarr"), "--cluster",
                 str(config)]) == 2
    assert "'n_workers' must be of type int" in capsys.readouterr().err


def test_bad_job_file_key_and_type(tmp_path, capsys):
    job = tmp_path / "job.toml"
    job.write_text('rank = 2\nout = "r.zarr"\nmax_iters = 5\n')
    assert main(["fit", "x.zarr", "--config", str(job)]) == 2
    assert "unknown key 'max_iters'" in capsys.readouterr().err
    job.write_text('rank = "2"\n')
    assert main(["fit", "x.zarr", "--config", str(job)]) == 2
    assert "'rank' must be an integer" in capsys.readouterr().err


def test_missing_extra_names_the_extra(tmp_path, counts_store):
    code = ("import sys; sys.modules['dask_jobqueue'] = None; from dnmf.cli.main import main; "
            f"sys.exit(main(['fit', {counts_store!r}, '--rank', '2', '--out', {str(tmp_path / 'r.zarr')!r}, "
            f"'--cluster', {str(CLUSTER_CONFIGS / 'slurm.yaml')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=environment())
    assert done.returncode == 2
    assert "cluster kind 'slurm' needs dask-jobqueue: pip install 'dnmf[slurm]'" in done.stderr


def test_unreachable_scheduler_fails_fast_and_is_resumable(tmp_path, counts_store):
    from cli_helpers import free_port

    started = time.monotonic()
    done = run_dnmf("fit", counts_store, "--rank", "2", "--out", tmp_path / "r.zarr", "--scheduler",
                    f"tcp://127.0.0.1:{free_port()}", "--connect-timeout", "3", "--log-format", "json", timeout=120)
    assert done.returncode == 3
    assert time.monotonic() - started < 45
    errors = [json.loads(line) for line in done.stderr.splitlines() if '"ERROR"' in line]
    assert errors and "Could not reach the Dask scheduler" in errors[0]["message"]
    assert summary(done)["resumable"] is True and not (tmp_path / "r.zarr").exists()


@pytest.mark.cluster
def test_negative_matrix_is_bad_input(tmp_path, scheduler):
    from dnmf import save_matrix

    X = np.random.default_rng(0).random((40, 30))
    X[3, 4] = -1.0
    save_matrix(X, tmp_path / "neg.zarr")
    done = run_dnmf("fit", tmp_path / "neg.zarr", "--rank", "2", "--out", tmp_path / "r.zarr", "--scheduler",
                    scheduler)
    assert done.returncode == 2 and "Negative values" in done.stderr
    assert not (tmp_path / "r.zarr").exists()


@pytest.mark.cluster
def test_require_convergence_exits_4_when_not_converged(tmp_path, scheduler, counts_store):
    done = run_dnmf("fit", counts_store, "--rank", "2", "--out", tmp_path / "r.zarr", "--max-iter", "2",
                    "--scheduler", scheduler, "--require-convergence", "--no-checkpoint")
    assert done.returncode == 4, done.stderr
    assert summary(done)["converged"] is False and (tmp_path / "r.zarr").exists()
