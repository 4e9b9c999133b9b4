"""A checkpoint version whose state does not match its schema is damage: skipped with a warning, and the resume
continues from the previous version, from the iteration it reports."""

from __future__ import annotations

import copy

import pytest
import zarr

from dnmf import NMF, save_matrix
from dnmf.data.checkpoint import CheckpointStore, CheckpointWarning
from dnmf.datasets import make_sparse_low_rank


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    A, _, _ = make_sparse_low_rank(120, 60, 3, column_density=0.3, random_state=0)
    url = tmp_path_factory.mktemp("data") / "a.zarr"
    save_matrix(A, url, chunks=(60, 30))
    return str(url)


def model(checkpoint, max_iter):
    return NMF(3, solver="hals", max_iter=max_iter, tol=0, random_state=0, chunks=(60, 30), checkpoint=checkpoint)


@pytest.fixture(scope="module")
def reference(store):
    return model(None, 6).fit(store).loss_history_


def _edit_state(version, edit) -> None:
    group = zarr.open_group(str(version), mode="r+")
    state = copy.deepcopy(dict(group.attrs["state"]))
    group.attrs["state"] = edit(state)


def _set(path: str, value):
    def edit(state):
        *parents, last = path.split(".")
        target = state
        for name in parents:
            target = target[name]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
        return state

    return edit


def test_garbage_progress_falls_back_to_the_previous_version_and_resumes_from_it(store, reference, tmp_path):
    model(tmp_path / "ck", 4).fit(store)
    _edit_state(tmp_path / "ck" / "v00000004", _set("progress", "garbage"))
    resumed = model(tmp_path / "ck", 6)
    with pytest.warns(CheckpointWarning, match=r"v00000004.*progress is 'garbage', not a record of the loop"):
        resumed.fit(store, resume=True)
    assert resumed.resumed_from_ == 3
    assert resumed.n_iter_ == 6 and resumed.loss_history_ == reference


@pytest.mark.parametrize("edit,message", [
    (_set("progress.iteration", "30"), "progress.iteration is '30', not a non-negative integer"),
    (_set("progress.iteration", 30), "progress.iteration is 30, but the version is iteration 4"),
    (_set("iteration", 30), "iteration 30 is not the version's"),
    (_set("iteration", -1), "iteration is -1"),
    (_set("iteration", True), "iteration is True"),
    (_set("progress.loss_history", ["a", 1.0]), "progress.loss_history is .*, not a list of finite numbers"),
    (_set("progress.loss_history", KeyError), "progress lacks loss_history"),
    (_set("progress.converged", "no"), "progress.converged is 'no', not true or false"),
    (_set("progress.phase_seconds", [3]), r"progress.phase_seconds is \[3\]"),
    (_set("progress.seconds_per_iteration", [-1.0]), "seconds_per_iteration"),
    (_set("chunks", {"W": "x", "H": [[3], [60]]}), "chunks is"),
    (_set("chunks.W", [[0], [3]]), "chunks is"),
    (_set("checksums", None), "checksums is None"),
    (_set("run", KeyError), "run is None"),
    (lambda state: [1, 2], "the state is list, not a record"),
])
def test_every_malformed_field_is_damage(store, tmp_path, edit, message):
    model(tmp_path / "ck", 4).fit(store)
    _edit_state(tmp_path / "ck" / "v00000004", edit)
    with pytest.warns(CheckpointWarning, match=f"Skipping damaged checkpoint .*v00000004.*{message}"):
        loaded = CheckpointStore(tmp_path / "ck").load()
    assert loaded.iteration == 3
