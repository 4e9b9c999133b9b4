"""Checkpoints: the protocol, resume after SIGKILL with equal factors, mismatches and corruption."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from dnmf import NMF, load_result
from dnmf.data.checkpoint import CheckpointError, CheckpointStore, CheckpointWarning
from dnmf.datasets import make_sparse_low_rank

CHILD = Path(__file__).with_name("child_fit.py")
MAX_ITER = 12


@pytest.fixture(scope="module")
def uninterrupted(store, tmp_path_factory):
    model = NMF(3, solver="hals", max_iter=MAX_ITER, tol=0, random_state=0, chunks=(100, 40))
    W = model.fit_transform(store).compute()
    return W, model.components_, model.loss_history_


def model(checkpoint, max_iter=MAX_ITER, **kwargs):
    params = dict(solver="hals", max_iter=max_iter, tol=0, random_state=0, chunks=(100, 40), checkpoint=checkpoint)
    return NMF(3, **{**params, **kwargs})


def manifest(folder) -> dict:
    return json.loads((Path(folder) / "manifest.json").read_text())


def test_protocol_keeps_two_committed_versions(store, tmp_path):
    fitted = model(tmp_path / "ck", max_iter=5).fit(store)
    assert manifest(tmp_path / "ck") == {"format": 1, "versions": ["v00000005", "v00000004"]}
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["dnmf-checkpoint.json", "manifest.json", "v00000004",
                                                                   "v00000005"]
    assert (tmp_path / "ck").stat().st_mode & 0o777 == 0o700
    state = zarr.open_group(tmp_path / "ck" / "v00000005", mode="r").attrs["state"]
    assert state["iteration"] == 5 and state["progress"]["loss_history"] == fitted.loss_history_
    assert state["run"]["params"]["solver"] == "hals" and state["run"]["fingerprint"]["shape"] == [300, 120]
    assert len(fitted.timings_["checkpoint_seconds"]) == 5


def test_checkpoint_every_and_final(store, tmp_path):
    model(tmp_path / "ck", max_iter=7, checkpoint_every=3).fit(store)
    assert manifest(tmp_path / "ck")["versions"] == ["v00000007", "v00000006"]


def test_resume_in_process_equals_uninterrupted_bitwise(store, uninterrupted, tmp_path):
    model(tmp_path / "ck", max_iter=5).fit(store)
    resumed = model(tmp_path / "ck")
    W = resumed.fit_transform(store, resume=True).compute()
    assert resumed.resumed_from_ == 5 and resumed.n_iter_ == MAX_ITER
    np.testing.assert_array_equal(W, uninterrupted[0])
    np.testing.assert_array_equal(resumed.components_, uninterrupted[1])
    assert resumed.loss_history_ == uninterrupted[2]


def test_resume_without_checkpoint_starts_afresh_and_says_so(store, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="dnmf"):
        fitted = model(tmp_path / "ck", max_iter=2).fit(store, resume=True)
    assert "No checkpoint at" in caplog.text and fitted.resumed_from_ is None and fitted.n_iter_ == 2


def test_existing_checkpoint_is_never_overwritten(store, tmp_path):
    model(tmp_path / "ck", max_iter=2).fit(store)
    before = manifest(tmp_path / "ck")
    with pytest.raises(FileExistsError, match="resume=True"):
        model(tmp_path / "ck", max_iter=2).fit(store)
    assert manifest(tmp_path / "ck") == before


def test_resume_needs_a_checkpoint_folder(store):
    with pytest.raises(ValueError, match="resume=True needs a checkpoint folder"):
        NMF(3).fit(store, resume=True)


@pytest.mark.parametrize("change,expected", [
    ({"n_components": 4}, "n_components: checkpoint has 3, this run has 4"),
    ({"solver": "mu"}, "params.solver: checkpoint has 'hals', this run has 'mu'"),
    ({"alpha_W": 0.1}, "params.alpha_W"),
])
def test_resume_refuses_another_run(store, tmp_path, change, expected):
    model(tmp_path / "ck", max_iter=2).fit(store)
    with pytest.raises(CheckpointError, match=expected):
        NMF(**{**model(tmp_path / "ck").get_params(), **change}).fit(store, resume=True)


def test_resume_refuses_another_input(store, tmp_path):
    model(tmp_path / "ck", max_iter=2).fit(store)
    other, _, _ = make_sparse_low_rank(300, 120, 3, column_density=0.2, random_state=1)
    with pytest.raises(CheckpointError, match="fingerprint"):
        model(tmp_path / "ck").fit(other, resume=True)


def _chunk_files(version: Path, name: str) -> list[Path]:
    return sorted(p for p in (version / name).rglob("*") if p.is_file() and p.name != "zarr.json")


@pytest.mark.parametrize("damage", ["truncate", "delete-W", "garbage-metadata"])
def test_damaged_latest_version_falls_back_to_previous(store, tmp_path, damage):
    model(tmp_path / "ck", max_iter=4).fit(store)
    latest = tmp_path / "ck" / "v00000004"
    if damage == "truncate":
        chunk = _chunk_files(latest, "W")[0]
        chunk.write_bytes(chunk.read_bytes()[: len(chunk.read_bytes()) // 2])
    elif damage == "delete-W":
        import shutil

        shutil.rmtree(latest / "W")
    else:
        (latest / "zarr.json").write_text("{not json")
    with pytest.warns(CheckpointWarning, match="Skipping damaged checkpoint .*v00000004"):
        loaded = CheckpointStore(tmp_path / "ck").load()
    assert loaded.iteration == 3


def test_missing_chunk_is_detected(store, tmp_path):
    """Zarr reads a missing chunk as zeros; the checksums catch it."""
    model(tmp_path / "ck", max_iter=4).fit(store)
    _chunk_files(tmp_path / "ck" / "v00000004", "H")[0].unlink()
    with pytest.warns(CheckpointWarning, match="checksums"):
        assert CheckpointStore(tmp_path / "ck").load().iteration == 3


def test_garbage_manifest_falls_back_to_the_folders(store, tmp_path):
    model(tmp_path / "ck", max_iter=3).fit(store)
    (tmp_path / "ck" / "manifest.json").write_text("garbage")
    with pytest.warns(CheckpointWarning, match="manifest .* is unreadable"):
        assert CheckpointStore(tmp_path / "ck").load().iteration == 3


def test_every_version_damaged_fails_clearly(store, tmp_path):
    model(tmp_path / "ck", max_iter=3).fit(store)
    for version in ("v00000003", "v00000002"):
        (tmp_path / "ck" / version / "zarr.json").unlink()
    with pytest.warns(CheckpointWarning), pytest.raises(CheckpointError, match="No complete checkpoint"):
        model(tmp_path / "ck").fit(store, resume=True)


@pytest.mark.parametrize("stopped", ["before its metadata", "before its state"])
def test_a_first_write_that_never_finished_is_no_checkpoint(store, tmp_path, caplog, stopped):
    """What a kill inside the first checkpoint write leaves: a version folder that no manifest lists, with arrays
    but no state (or not even its group's metadata). Resuming starts afresh rather than calling it damage."""
    model(tmp_path / "ck", max_iter=3, checkpoint_every=None).fit(store)
    (tmp_path / "ck" / "manifest.json").unlink()
    metadata = tmp_path / "ck" / "v00000003" / "zarr.json"
    if stopped == "before its metadata":
        metadata.unlink()
    else:
        group = json.loads(metadata.read_text())
        del group["attributes"]["state"]
        metadata.write_text(json.dumps(group))
    again = model(tmp_path / "ck", max_iter=3, checkpoint_every=None)
    with caplog.at_level("INFO", logger="dnmf"):
        again.fit(store, resume=True)
    assert "a checkpoint write stopped before it was complete" in caplog.text
    assert again.resumed_from_ is None and again.n_iter_ == 3
    assert manifest(tmp_path / "ck")["versions"] == ["v00000003"]


# -- real processes, real signals -------------------------------------------------------------------------------


def start_child(store, checkpoint, out, *flags):
    return subprocess.Popen([sys.executable, str(CHILD), store, str(checkpoint), str(out), str(MAX_ITER), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def committed_iteration(folder) -> int:
    try:
        return int(manifest(folder)["versions"][0][1:])
    except (FileNotFoundError, json.JSONDecodeError, KeyError, IndexError):
        return 0


def finish_and_compare(store, checkpoint, out, uninterrupted):
    done = start_child(store, checkpoint, out, "resume")
    stdout, stderr = done.communicate(timeout=300)
    assert done.returncode == 0, stderr
    assert f"done n_iter={MAX_ITER}" in stdout
    result = load_result(out)
    np.testing.assert_array_equal(result.W.compute(), uninterrupted[0])
    np.testing.assert_array_equal(result.H, uninterrupted[1])
    assert result.info["loss_history"] == uninterrupted[2]
    return stdout


def test_sigkill_after_some_iterations_then_resume(store, uninterrupted, tmp_path):
    child = start_child(store, tmp_path / "ck", tmp_path / "out.zarr")
    wait_for(lambda: committed_iteration(tmp_path / "ck") >= 4)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert CheckpointStore(tmp_path / "ck").load().iteration >= 4
    stdout = finish_and_compare(store, tmp_path / "ck", tmp_path / "out.zarr", uninterrupted)
    assert "resumed_from=None" not in stdout


def test_sigkill_inside_a_checkpoint_write(store, uninterrupted, tmp_path):
    """Killed after version 3's arrays are written but before the manifest moved: version 2 stays the latest."""
    child = start_child(store, tmp_path / "ck", tmp_path / "out.zarr", "pause-before-commit")
    wait_for(lambda: Path(f"{tmp_path / 'ck'}.writing").exists())
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert manifest(tmp_path / "ck")["versions"] == ["v00000002", "v00000001"]
    assert CheckpointStore(tmp_path / "ck").load().iteration == 2
    stdout = finish_and_compare(store, tmp_path / "ck", tmp_path / "out.zarr", uninterrupted)
    assert "resumed_from=2" in stdout


def test_sigkill_at_random_instants(store, uninterrupted, tmp_path):
    """Several kills at random moments: once a version was committed, one always loads."""
    rng = random.Random(0)
    for _ in range(3):
        child = start_child(store, tmp_path / "ck", tmp_path / "out.zarr", "resume")
        wait_for(lambda: committed_iteration(tmp_path / "ck") >= 1 or child.poll() is not None)
        time.sleep(rng.uniform(0.0, 1.5))
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert CheckpointStore(tmp_path / "ck").load() is not None
    if (tmp_path / "out.zarr").exists():  # the last kill came after the run had finished
        import shutil

        shutil.rmtree(tmp_path / "out.zarr")
    finish_and_compare(store, tmp_path / "ck", tmp_path / "out.zarr", uninterrupted)
