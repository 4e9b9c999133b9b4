"""``dnmf rank``: the planted rank of a store, found on a real cluster, in a JSON summary; bad ranks exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import run_dnmf, summary

from dnmf.cli.main import build_parser
from dnmf.datasets import make_low_rank


@pytest.fixture(scope="module")
def planted_store(tmp_path_factory) -> str:
    """A dense 90 × 60 store of planted rank 3 plus noise of half its spread, on a 2 × 1 grid."""
    from dnmf import save_matrix

    A = make_low_rank(90, 60, 3, random_state=31)[0]
    X = np.maximum(A + np.random.default_rng(31).normal(scale=0.5 * A.std(), size=A.shape), 0.0)
    url = tmp_path_factory.mktemp("planted") / "planted.zarr"
    save_matrix(X, url, chunks=(45, 60))
    return str(url)


def test_rank_finds_the_planted_rank_and_writes_the_table(tmp_path, scheduler, planted_store):
    out = tmp_path / "ranks.json"
    kept = tmp_path / "fits"
    done = run_dnmf("rank", planted_store, "--ranks", "2:4", "--replicates", "2", "--max-iter", "30",
                    "--tol", "1e-6", "--seed", "7", "--log-level", "WARNING", "--concurrent-fits", "3",
                    "--scheduler", scheduler, "--summary", out, "--out", kept)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["command"] == "rank" and report["exit_code"] == 0
    assert report["best_rank"] == 3, report["table"]
    assert [row["rank"] for row in report["table"]] == [2, 3, 4]
    assert len(report["test_errors"][0]) == 2 and report["cluster"]
    assert all(row["stability"] is not None for row in report["table"])
    # The chosen rank's fit is kept, and is a fitted estimator without a refit.
    from dnmf import NMF

    assert report["results"]["3"] == str(kept / "rank-3")
    model = NMF.from_result(kept / "rank-3")
    assert model.n_components_ == 3 and model.components_.shape == (3, 60)
    # A second run would replace those stores: refused before any fit, exit 2.
    again = run_dnmf("rank", planted_store, "--ranks", "3", "--out", kept, "--scheduler", "tcp://127.0.0.1:1",
                     timeout=60)
    assert again.returncode == 2 and "already holds rank-3" in again.stderr


def test_rank_with_a_checkpoint_resumes_and_refuses_another_survey(tmp_path, scheduler, planted_store):
    args = ("rank", planted_store, "--ranks", "2:3", "--replicates", "2", "--max-iter", "20", "--seed", "7",
            "--log-level", "WARNING", "--scheduler", scheduler, "--checkpoint", tmp_path / "survey")
    first = run_dnmf(*args, "--summary", tmp_path / "first.json")
    assert first.returncode == 0, first.stderr
    fits = sorted(p.name for p in (tmp_path / "survey").glob("replicate-*/v*"))
    assert len(fits) == 4
    again = run_dnmf(*args, "--summary", tmp_path / "again.json")
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in (tmp_path / "survey").glob("replicate-*/v*")) == fits
    before, after = (json.loads((tmp_path / name).read_text()) for name in ("first.json", "again.json"))
    assert after["table"] == before["table"] and after["best_rank"] == before["best_rank"]
    other = run_dnmf(*args, "--test-fraction", "0.2", "--summary", tmp_path / "other.json")
    assert other.returncode == 2 and "test_fraction: 0.1 then, 0.2 now" in other.stderr
    assert "Traceback" not in other.stderr


@pytest.mark.parametrize(("ranks", "message"), [("two", "--ranks must be FIRST:LAST"),
                                                 ("0:3", "each at least 1")])
def test_bad_ranks_exit_2_naming_the_flag(planted_store, ranks, message):
    done = run_dnmf("rank", planted_store, "--ranks", ranks, "--scheduler", "tcp://127.0.0.1:1", timeout=60)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert summary(done)["status"] == "failed"


def test_no_concurrent_fits_exits_2_before_connecting(planted_store):
    done = run_dnmf("rank", planted_store, "--ranks", "2:3", "--concurrent-fits", "0", "--scheduler",
                    "tcp://127.0.0.1:1", timeout=60)
    assert done.returncode == 2
    assert "--concurrent-fits must be at least 1" in done.stderr and "Traceback" not in done.stderr


def test_an_unknown_fit_placement_exits_2_before_connecting(planted_store):
    done = run_dnmf("rank", planted_store, "--ranks", "2:3", "--fits", "everywhere", "--scheduler",
                    "tcp://127.0.0.1:1", timeout=60)
    assert done.returncode == 2
    assert "--fits" in done.stderr and "'workers'" in done.stderr and "Traceback" not in done.stderr


def test_rank_help_names_its_flags(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["rank", "--help"])
    text = capsys.readouterr().out
    for flag in ("INPUT", "--ranks", "--replicates", "--test-fraction", "--summary", "--scheduler", "--checkpoint",
                 "--concurrent-fits", "--fits", "exit status"):
        assert flag in text, flag


def test_rank_of_a_sparse_store_holds_out_a_sample_of_its_zeros(tmp_path, scheduler):
    import scipy.sparse as sp

    from dnmf import save_matrix

    mean = make_low_rank(200, 150, 3, random_state=20)[0]
    counts = np.random.default_rng(20).poisson(mean * (3.0 / mean.mean())).astype(np.float64)
    save_matrix(sp.csr_matrix(counts), tmp_path / "counts.zarr", chunks=(100, 150))
    out = tmp_path / "ranks.json"
    done = run_dnmf("rank", tmp_path / "counts.zarr", "--ranks", "2:4", "--replicates", "2", "--max-iter", "300",
                    "--tol", "1e-6", "--seed", "20", "--held-out-zeros", "sampled", "--log-level", "WARNING",
                    "--scheduler", scheduler, "--summary", out)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["best_rank"] == 3, report["table"]


def test_sampled_zeros_of_a_dense_store_exit_2_naming_the_flag(planted_store):
    done = run_dnmf("rank", planted_store, "--ranks", "2:3", "--held-out-zeros", "sampled", "--scheduler",
                    "tcp://127.0.0.1:1", timeout=60)
    assert done.returncode == 2
    assert "held_out_zeros='sampled' keeps a sparse X sparse" in done.stderr and "Traceback" not in done.stderr
