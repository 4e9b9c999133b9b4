"""``dnmf`` never deletes or overwrites what the user owns: ``--force``/``--overwrite`` replace only what dnmf
wrote, never the input or a folder around it; one fit per ``--out`` at a time."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_dnmf, start_dnmf, summary, wait_for

from dnmf.cli.lock import lock_path

pytestmark = pytest.mark.cluster


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def fit(input_url, out, scheduler, *extra, max_iter=3):
    return run_dnmf("fit", input_url, "--rank", "2", "--max-iter", str(max_iter), "--out", out, "--scheduler",
                    scheduler, *extra, timeout=180)


@pytest.fixture
def input_copy(tmp_path, counts_store) -> Path:
    copy = tmp_path / "input.zarr"
    shutil.copytree(counts_store, copy)
    return copy


def test_force_keeps_files_that_are_not_dnmf_checkpoints(tmp_path, counts_store, scheduler):
    checkpoint = tmp_path / "ck"
    first = fit(counts_store, tmp_path / "r.zarr", scheduler, "--checkpoint", checkpoint)
    assert first.returncode == 0, first.stderr
    (checkpoint / "notes.txt").write_text("my notes")
    again = fit(counts_store, tmp_path / "r.zarr", scheduler, "--checkpoint", checkpoint, "--force")
    assert again.returncode == 0, again.stderr
    assert (checkpoint / "notes.txt").read_text() == "my notes"


def test_checkpoint_at_or_inside_the_input_is_refused(tmp_path, input_copy, scheduler):
    before = tree(input_copy)
    for checkpoint in (input_copy, input_copy / "ck"):
        for extra in ((), ("--force",)):
            done = fit(input_copy, tmp_path / "r.zarr", scheduler, "--checkpoint", checkpoint, *extra)
            assert done.returncode == 2, done.stderr
            assert "--checkpoint" in done.stderr and "INPUT" in done.stderr and "Traceback" not in done.stderr
    assert tree(input_copy) == before
    assert not (tmp_path / "r.zarr").exists()


def test_out_at_or_around_the_input_is_refused(tmp_path, input_copy, scheduler):
    before = tree(input_copy)
    for out in (input_copy, tmp_path):
        done = fit(input_copy, out, scheduler, "--force")
        assert done.returncode == 2, done.stderr
        assert "--out" in done.stderr and "INPUT" in done.stderr
    assert tree(input_copy) == before


def test_checkpoint_equal_to_out_is_refused_up_front(tmp_path, counts_store, scheduler):
    done = fit(counts_store, tmp_path / "r.zarr", scheduler, "--checkpoint", tmp_path / "r.zarr")
    assert done.returncode == 2, done.stderr
    assert "--checkpoint" in done.stderr and "--out" in done.stderr
    assert not (tmp_path / "r.zarr").exists()


def test_a_user_folder_at_the_default_checkpoint_path_is_neither_used_nor_deleted(tmp_path, counts_store,
                                                                                  scheduler):
    folder = tmp_path / "r.zarr.checkpoint"
    folder.mkdir()
    (folder / "data.csv").write_text("a,b\n1,2\n")
    done = fit(counts_store, tmp_path / "r.zarr", scheduler)
    assert done.returncode == 2, done.stderr
    assert "not made by dnmf" in done.stderr and "data.csv" in done.stderr
    assert tree(folder) == {"data.csv": b"a,b\n1,2\n"}
    for name in folder.iterdir():
        name.unlink()
    done = fit(counts_store, tmp_path / "r.zarr", scheduler)
    assert done.returncode == 0, done.stderr
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_the_default_checkpoint_folder_dnmf_made_is_removed_after_success(tmp_path, counts_store, scheduler):
    done = fit(counts_store, tmp_path / "r.zarr", scheduler)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.zarr"]


def test_force_replaces_only_a_result_store(tmp_path, counts_store, scheduler):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("chapter 1")
    done = fit(counts_store, out, scheduler, "--force")
    assert done.returncode == 2, done.stderr
    assert tree(out) == {"thesis.tex": b"chapter 1"}


def test_a_second_fit_on_the_same_out_exits_2_and_names_the_holder(tmp_path, counts_store, scheduler):
    out = tmp_path / "r.zarr"
    first = start_dnmf("fit", counts_store, "--rank", "2", "--max-iter", "100000", "--tol", "0", "--out", out,
                       "--no-checkpoint", "--scheduler", scheduler)
    try:
        wait_for(lambda: Path(lock_path(str(out))).exists() and Path(lock_path(str(out))).stat().st_size > 0,
                 120, "the first fit's lock", first)
        second = fit(counts_store, out, scheduler, "--no-checkpoint")
        assert second.returncode == 2, second.stderr
        assert f"pid {first.pid}" in second.stderr and "Another dnmf fit is writing" in second.stderr
        assert summary(second)["status"] == "failed"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    assert Path(lock_path(str(out))).exists()
    after = fit(counts_store, out, scheduler, "--no-checkpoint")
    assert after.returncode == 0, after.stderr
    assert not Path(lock_path(str(out))).exists()


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "counts.csv").write_text("doc,word,count\nd1,w1,3\nd2,w2,1\nd1,w2,2\n")
    (folder / "README.txt").write_text("my project")
    return folder


def test_ingest_overwrite_never_deletes_the_source_or_its_folder(project):
    before = tree(project)
    for out in (project, project / "counts.csv", project.parent):
        done = run_dnmf("ingest", project / "counts.csv", out, "--overwrite", timeout=120)
        assert done.returncode == 2, done.stderr
        assert "source" in done.stderr and "Traceback" not in done.stderr
    assert tree(project) == before


def test_ingest_onto_its_own_npy_is_refused(tmp_path):
    source = tmp_path / "x.npy"
    np.save(source, np.arange(12.0).reshape(3, 4))
    before = source.read_bytes()
    done = run_dnmf("ingest", source, source, "--overwrite", timeout=120)
    assert done.returncode == 2, done.stderr
    assert source.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["x.npy"]


def test_ingest_overwrite_replaces_a_dnmf_store_but_not_a_user_folder(tmp_path, project):
    out = tmp_path / "counts.zarr"
    assert run_dnmf("ingest", project / "counts.csv", out, timeout=120).returncode == 0
    again = run_dnmf("ingest", project / "counts.csv", out, "--overwrite", timeout=120)
    assert again.returncode == 0, again.stderr
    (out / "mine.txt").write_text("x")
    refused = run_dnmf("ingest", project / "counts.csv", out, "--overwrite", timeout=120)
    assert refused.returncode == 2 and "mine.txt" in refused.stderr, refused.stderr
    assert (out / "mine.txt").read_text() == "x"
