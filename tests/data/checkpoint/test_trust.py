"""Which checkpoint folders a run trusts, what the per-block hashes catch, and that only dnmf's files are deleted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import zarr

from dnmf import NMF
from dnmf.data.checkpoint import CheckpointStore, CheckpointWarning
from dnmf.data.safety import NotOwnStoreError, UnsafeLocationError


def model(checkpoint, max_iter=4, **kwargs):
    params = dict(solver="hals", max_iter=max_iter, tol=0, random_state=0, chunks=(100, 40), checkpoint=checkpoint)
    return NMF(3, **{**params, **kwargs})


def chunk_files(version: Path, name: str) -> list[Path]:
    return sorted(p for p in (version / name).rglob("*") if p.is_file() and p.name != "zarr.json")


def test_swapped_values_in_a_block_are_detected(store, tmp_path):
    """Swapping two values keeps every block sum; the BLAKE2b hash of the block's bytes changes."""
    model(tmp_path / "ck").fit(store)
    chunk = chunk_files(tmp_path / "ck" / "v00000004", "W")[0]
    raw = bytearray(chunk.read_bytes())
    assert raw[:8] != raw[8:16]
    raw[:8], raw[8:16] = raw[8:16], raw[:8]
    chunk.write_bytes(bytes(raw))
    with pytest.warns(CheckpointWarning, match="v00000004.*checksums"):
        assert CheckpointStore(tmp_path / "ck").load().iteration == 3


def test_lowest_bit_flipped_is_detected(store, tmp_path):
    model(tmp_path / "ck").fit(store)
    chunk = chunk_files(tmp_path / "ck" / "v00000004", "H")[-1]
    raw = bytearray(chunk.read_bytes())
    raw[0] ^= 1
    chunk.write_bytes(bytes(raw))
    with pytest.warns(CheckpointWarning, match="v00000004.*checksums"):
        assert CheckpointStore(tmp_path / "ck").load().iteration == 3


def test_checkpoints_of_the_previous_release_still_resume(store, tmp_path):
    """dnmf 0.1.0 wrote per-block sums only, no hashes and no marker: such a checkpoint still loads."""
    model(tmp_path / "ck", max_iter=3).fit(store)
    (tmp_path / "ck" / "dnmf-checkpoint.json").unlink()
    for version in ("v00000003", "v00000002"):
        group = zarr.open_group(tmp_path / "ck" / version, mode="r+")
        state = dict(group.attrs["state"])
        del state["hashes"]
        group.attrs["state"] = state
    resumed = model(tmp_path / "ck", max_iter=5)
    resumed.fit(store, resume=True)
    assert resumed.resumed_from_ == 3 and resumed.n_iter_ == 5


def test_a_symlinked_version_is_skipped_and_never_written_through(store, tmp_path):
    model(tmp_path / "ck", max_iter=3).fit(store)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("mine")
    (tmp_path / "ck" / "v00000005").symlink_to(elsewhere, target_is_directory=True)
    (tmp_path / "ck" / "manifest.json").write_text(json.dumps({"format": 1, "versions": ["v00000005", "v00000003"]}))
    resumed = model(tmp_path / "ck", max_iter=6)
    with pytest.warns(CheckpointWarning, match="v00000005.*symbolic link"):
        resumed.fit(store, resume=True)
    assert resumed.resumed_from_ == 3 and resumed.n_iter_ == 6
    assert sorted(p.name for p in elsewhere.iterdir()) == ["precious.txt"]
    assert (elsewhere / "precious.txt").read_text() == "mine"
    assert not (tmp_path / "ck" / "v00000005").is_symlink()
    assert json.loads((tmp_path / "ck" / "manifest.json").read_text())["versions"] == ["v00000006", "v00000005"]


def test_a_folder_others_may_write_to_is_refused(store, tmp_path):
    folder = tmp_path / "ck"
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(UnsafeLocationError, match="chmod go-w"):
        model(folder).fit(store, resume=True)
    assert list(folder.iterdir()) == []


def test_a_folder_of_another_user_is_refused(store, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root can give a folder to another user here")
    folder = tmp_path / "ck"
    folder.mkdir(mode=0o755)
    os.chown(folder, 65534, 65534)
    with pytest.raises(UnsafeLocationError, match="belongs to .*65534"):
        model(folder).fit(store, resume=True)
    assert list(folder.iterdir()) == []


def test_a_user_folder_is_refused_and_an_empty_one_is_kept(store, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    with pytest.raises(NotOwnStoreError, match="not made by dnmf.*notes.txt"):
        model(folder).fit(store, resume=True)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    model(empty).fit(store, resume=True)
    assert CheckpointStore(empty).discard() is False
    assert empty.is_dir() and list(empty.iterdir()) == []


def test_discard_deletes_only_dnmf_files(store, tmp_path):
    model(tmp_path / "ck").fit(store)
    (tmp_path / "ck" / "notes.txt").write_text("keep")
    assert CheckpointStore(tmp_path / "ck").discard() is False
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["dnmf-checkpoint.json", "notes.txt"]
    (tmp_path / "ck" / "notes.txt").unlink()
    model(tmp_path / "ck").fit(store)
    assert CheckpointStore(tmp_path / "ck").discard() is True
    assert not (tmp_path / "ck").exists()


def test_hashes_are_recorded_per_block(store, tmp_path):
    model(tmp_path / "ck", max_iter=1).fit(store)
    state = zarr.open_group(tmp_path / "ck" / "v00000001", mode="r").attrs["state"]
    assert state["hashes"]["kind"] == "blake2b-256"
    assert len(state["hashes"]["W"]) == 3 and len(state["hashes"]["H"]) == 3
    assert len(set(state["hashes"]["W"])) == 3 and all(len(h) == 64 for h in state["hashes"]["W"])
    assert np.isfinite(state["checksums"]["W"]).all()
