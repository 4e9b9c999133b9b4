"""Bad input, damaged stores and crafted metadata through the ``dnmf`` command: exit status 2 with a message
naming the problem, no traceback, and nothing computed first when the problem can be seen before the fit."""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr
from cli_helpers import make_counts, run_dnmf, summary

from dnmf import NMF, save_matrix


def _bad_input(done, *messages: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    for message in messages:
        assert message in done.stderr, done.stderr


def _fit(store, tmp_path, *extra: str, scheduler: str | None = None):
    where = ("--scheduler", scheduler) if scheduler else ()
    return run_dnmf("fit", store, "--rank", "3", "--max-iter", "3", "--out", tmp_path / "r.zarr", *where, *extra)


def test_an_undecodable_chunk_is_bad_input(tmp_path, scheduler, rng):
    save_matrix(rng.random((60, 20)), tmp_path / "d.zarr", chunks=(30, 20))
    with open(tmp_path / "d.zarr" / "X" / "c" / "1" / "0", "r+b") as handle:
        handle.seek(8)
        handle.write(b"\xff" * 16)
    done = _fit(tmp_path / "d.zarr", tmp_path, scheduler=scheduler)
    _bad_input(done, "Could not decode rows 30–59", "the store is damaged")
    assert summary(done)["exit_code"] == 2


def test_a_sparse_shape_with_a_zero_is_bad_input(tmp_path):
    A, _, _ = make_counts(60, 20)
    save_matrix(A, tmp_path / "s.zarr")
    zarr.open_group(str(tmp_path / "s.zarr" / "X"), mode="r+").attrs["shape"] = [60, 0]
    _bad_input(_fit(tmp_path / "s.zarr", tmp_path), "shape attribute [60, 0]", "two positive integers")


def test_a_crafted_huge_sparse_shape_is_bad_input(tmp_path):
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="w", zarr_format=3)
    group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": [10**11, 10]})
    group.create_array("indptr", shape=(10**11 + 1,), dtype=np.int64, chunks=(2**20,))
    for name, dtype in (("data", np.float64), ("indices", np.int32)):
        group.create_array(name, shape=(0,), dtype=dtype, chunks=(1,))
    _bad_input(_fit(tmp_path / "s.zarr", tmp_path), "lacks chunk 95367 of its 'indptr' array")


def test_a_dense_chunk_of_1e6_by_1e6_is_bad_input(tmp_path):
    zarr.create_array(str(tmp_path / "d.zarr"), shape=(10**6, 10**6), chunks=(10**6, 10**6), dtype=np.float64)
    _bad_input(run_dnmf("inspect", tmp_path / "d.zarr", timeout=120), "more than a worker's memory")


@pytest.mark.parametrize("chunks", ["0,0", "-5,10", "10,0"])
def test_non_positive_chunks_are_a_usage_error(tmp_path, counts_store, chunks):
    _bad_input(_fit(counts_store, tmp_path, f"--chunks={chunks}"), "--chunks must be ROWS,COLS of positive integers")


@pytest.mark.parametrize("timeout", ["nan", "inf", "0", "-1"])
def test_a_connect_timeout_that_is_not_a_positive_number_is_a_usage_error(tmp_path, counts_store, timeout):
    _bad_input(_fit(counts_store, tmp_path, f"--connect-timeout={timeout}"),
               "--connect-timeout must be a positive, finite number of seconds")


def test_a_summary_path_that_is_a_folder_is_refused_before_the_fit(tmp_path, counts_store):
    (tmp_path / "reports").mkdir()
    done = _fit(counts_store, tmp_path, "--summary", tmp_path / "reports")
    _bad_input(done, "--summary", "is a folder")
    assert "iteration" not in done.stderr and not (tmp_path / "r.zarr").exists()


@pytest.mark.parametrize("where", ["sys", "under-a-file"])
def test_an_unwritable_out_is_refused_before_the_fit(tmp_path, counts_store, where):
    if where == "sys":
        if not os.path.isdir("/sys"):
            pytest.skip("no /sys on this machine, where no file can be created")
        out = "/sys/dnmf-result.zarr"
    else:
        (tmp_path / "a-file").write_text("not a folder")
        out = str(tmp_path / "a-file" / "result.zarr")
    done = run_dnmf("fit", counts_store, "--rank", "3", "--max-iter", "3", "--out", out, "--no-checkpoint")
    _bad_input(done, "--out", "cannot be")
    assert "iteration" not in done.stderr


def test_inspect_refuses_a_result_with_an_edited_h_shape(tmp_path):
    A, _, _ = make_counts(60, 20)
    NMF(3, max_iter=3, random_state=0).fit(A, out=tmp_path / "r.zarr")
    group = zarr.open_group(str(tmp_path / "r.zarr"), mode="r+")
    del group["H"]
    group.create_array("H", shape=(3, 150_000_000), dtype=np.float64, chunks=(3, 2**20))
    _bad_input(run_dnmf("inspect", tmp_path / "r.zarr", timeout=120), "is inconsistent", "20 columns")


def test_inspect_escapes_terminal_control_characters_in_labels(tmp_path):
    A, rows, cols = make_counts(60, 20)
    rows, cols = rows.astype(object), cols.astype(object)
    rows[0], cols[1] = "\x1b[2J\x1b[31mred", "bell\x07\u202eevil"
    save_matrix(A, tmp_path / "s.zarr", labels=(rows, cols))
    NMF(3, max_iter=3, random_state=0).fit(str(tmp_path / "s.zarr"), out=tmp_path / "r.zarr")
    for path in ("s.zarr", "r.zarr"):
        done = run_dnmf("inspect", tmp_path / path, "--top", "20", timeout=120)
        assert done.returncode == 0, done.stderr
        assert not any(not c.isprintable() for line in done.stdout.splitlines() for c in line), done.stdout
    assert "\\x1b[2J\\x1b[31mred" in run_dnmf("inspect", tmp_path / "s.zarr", timeout=120).stdout
    assert "bell\\x07\\u202eevil" in done.stdout


def test_a_header_only_csv_says_it_holds_no_entries(tmp_path):
    (tmp_path / "t.csv").write_text("doc,word,count\n")
    _bad_input(run_dnmf("ingest", tmp_path / "t.csv", tmp_path / "t.zarr", timeout=120),
               "holds no entries: it has a header line")


def test_an_mtx_with_a_huge_size_line_is_bad_input(tmp_path):
    (tmp_path / "a.mtx").write_text("%%MatrixMarket matrix coordinate real general\n100000000000 3 1\n1 1 1.0\n")
    _bad_input(run_dnmf("ingest", tmp_path / "a.mtx", tmp_path / "a.zarr", timeout=120),
               "its factors alone would need 373 GiB")


def test_transform_without_out_says_out_is_required(tmp_path, counts_store):
    NMF(3, max_iter=3, random_state=0).fit(counts_store, out=tmp_path / "r.zarr")
    done = run_dnmf("transform", tmp_path / "r.zarr", counts_store, timeout=120)
    _bad_input(done, "--out W_NEW is required")
