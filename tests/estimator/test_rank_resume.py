"""A rank survey with a checkpoint folder resumes: after SIGKILL, on a rerun, with more ranks; other surveys refused."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import dnmf
from dnmf.data.checkpoint import CheckpointError
from dnmf.data.survey import MANIFEST
from dnmf.datasets import make_low_rank

SURVEY = {"replicates": 2, "solver": "hals", "max_iter": 150, "tol": 0, "random_state": 3}

CHILD = """
import sys
import numpy as np
import dnmf
X = np.load(sys.argv[1])
dnmf.select_rank(X, [1, 2, 3, 4], checkpoint=sys.argv[2], **{kwargs})
"""


def data() -> np.ndarray:
    A = make_low_rank(90, 60, 3, random_state=1)[0]
    return A + 0.05 * np.random.default_rng(2).random(A.shape)


def versions(folder: Path) -> dict[str, list[str]]:
    return {fit.name: sorted(v.name for v in fit.glob("v*")) for fit in sorted(folder.glob("replicate-*"))}


def test_a_rerun_refits_nothing_and_gives_the_same_result(tmp_path):
    first = dnmf.select_rank(data(), [1, 2, 3], checkpoint=tmp_path / "survey", **SURVEY)
    written = versions(tmp_path / "survey")
    assert len(written) == 6 and all(written.values())
    again = dnmf.select_rank(data(), [1, 2, 3], checkpoint=tmp_path / "survey", **SURVEY)
    assert again == first
    assert versions(tmp_path / "survey") == written, "a finished fit was fitted again"


def test_more_ranks_fit_only_the_new_ones(tmp_path):
    dnmf.select_rank(data(), [1, 2], checkpoint=tmp_path / "survey", **SURVEY)
    before = versions(tmp_path / "survey")
    wider = dnmf.select_rank(data(), [1, 2, 3], checkpoint=tmp_path / "survey", **SURVEY)
    after = versions(tmp_path / "survey")
    assert {name: after[name] for name in before} == before
    assert sorted(set(after) - set(before)) == ["replicate-0-rank-3", "replicate-1-rank-3"]
    assert wider == dnmf.select_rank(data(), [1, 2, 3], **SURVEY)


def test_a_survey_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path):
    np.save(tmp_path / "x.npy", data())
    (tmp_path / "child.py").write_text(CHILD.format(kwargs=SURVEY))
    folder = tmp_path / "survey"
    child = subprocess.Popen([sys.executable, str(tmp_path / "child.py"), str(tmp_path / "x.npy"), str(folder)],
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while len(list(folder.glob("replicate-*/v*"))) < 3 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, f"the survey ended before it could be killed: {stderr[-2000:]}"
    resumed = dnmf.select_rank(data(), [1, 2, 3, 4], checkpoint=folder, **SURVEY)
    assert resumed == dnmf.select_rank(data(), [1, 2, 3, 4], **SURVEY)


@pytest.mark.parametrize(("change", "named"), [({"test_fraction": 0.2}, "test_fraction"),
                                                ({"solver": "mu"}, "solver"), ({"max_iter": 40}, "max_iter")])
def test_a_folder_of_another_survey_is_refused_naming_what_differs(tmp_path, change, named):
    dnmf.select_rank(data(), [1, 2], checkpoint=tmp_path / "survey", **{**SURVEY, "max_iter": 20})
    with pytest.raises(CheckpointError, match=f"other parameters \\({named}: "):
        dnmf.select_rank(data(), [1, 2], checkpoint=tmp_path / "survey", **{**SURVEY, "max_iter": 20, **change})


def test_a_folder_with_other_files_is_refused_and_left_alone(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(CheckpointError, match="not a dnmf rank survey"):
        dnmf.select_rank(data(), [1, 2], checkpoint=tmp_path / "mine", **SURVEY)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_without_a_seed_a_rerun_keeps_the_holdouts_it_began_with(tmp_path):
    kwargs = {**SURVEY, "random_state": None, "max_iter": 20}
    first = dnmf.select_rank(data(), [1, 2], checkpoint=tmp_path / "survey", **kwargs)
    assert json.loads((tmp_path / "survey" / MANIFEST).read_text())["seeds"] == first.seeds
    assert dnmf.select_rank(data(), [1, 2], checkpoint=tmp_path / "survey", **kwargs).seeds == first.seeds


@pytest.mark.parametrize(("solver", "ranks", "recorded"), [
    ("mu", [1, 2], None),  # a folder begun before EM steps existed: no rule recorded
    ("hals", [7, 8], {"mu": "impute", "impute_from_k_times_fraction": 1.6}),  # an earlier rule: EM from k = 16
], ids=["before-em-steps", "earlier-auto-rule"])
def test_a_folder_resumes_with_auto_by_the_steps_its_fits_were_made_by(tmp_path, solver, ranks, recorded):
    folder = tmp_path / "survey"
    survey = {**SURVEY, "solver": solver, "max_iter": 40}
    exact = dnmf.select_rank(data(), ranks, checkpoint=folder, mask_updates="exact", **survey)
    # What a survey begun with mask_updates='auto' under that rule wrote, its fits having taken exact steps.
    manifest = json.loads((folder / MANIFEST).read_text())
    del manifest["parameters"]["mask_updates"]
    if recorded is None:
        del manifest["auto_mask_updates"]
    else:
        manifest["auto_mask_updates"] = recorded
    (folder / MANIFEST).write_text(json.dumps(manifest))
    written = versions(folder)
    resumed = dnmf.select_rank(data(), ranks, checkpoint=folder, **survey)
    assert resumed == exact
    assert versions(folder) == written, "a finished fit was fitted again"


def test_a_survey_of_sampled_zeros_resumes_and_refuses_to_become_one_of_every_entry(tmp_path):
    import scipy.sparse as sp

    X = sp.csr_matrix(np.where(data() > 0.5, data(), 0.0))
    kwargs = {**SURVEY, "max_iter": 30, "held_out_zeros": "sampled"}
    first = dnmf.select_rank(X, [1, 2], checkpoint=tmp_path / "survey", **kwargs)
    manifest = json.loads((tmp_path / "survey" / MANIFEST).read_text())
    assert json.dumps(manifest).count('"zeros_per_row"') == 1
    assert dnmf.select_rank(X, [1, 2], checkpoint=tmp_path / "survey", **kwargs) == first
    with pytest.raises(CheckpointError, match="other parameters \\(zeros_per_row: "):
        dnmf.select_rank(X, [1, 2], checkpoint=tmp_path / "survey", **{**kwargs, "held_out_zeros": "all"})
