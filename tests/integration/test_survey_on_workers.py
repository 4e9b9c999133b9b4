"""A rank survey whose fits run whole on the workers of a real LocalCluster, one task per fit."""

from __future__ import annotations

import sys

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pytest
from distributed import get_task_stream
from distributed.utils import key_split

from dnmf import select_rank
from dnmf.datasets import make_low_rank
from dnmf.estimator.survey_fits import whole_fits_on_workers

pytestmark = pytest.mark.cluster

# The probe travels by value: a worker must not import this module (and through it scikit-learn).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

SURVEY = {"replicates": 2, "solver": "hals", "max_iter": 40, "tol": 0, "random_state": 0}


def _imports_sklearn() -> bool:
    return "sklearn" in sys.modules


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return make_low_rank(120, 80, 3, random_state=7)[0] + 0.01


def test_each_fit_is_one_task_on_a_worker_and_gives_the_in_process_survey(client, X):
    with get_task_stream(client) as stream:
        survey = select_rank(X, [2, 3, 4], **SURVEY)
    kinds = [key_split(task["key"]) for task in stream.data]
    assert kinds.count("dnmf-survey-fit") == 6, sorted(set(kinds))
    assert not [kind for kind in kinds if kind.startswith(("dnmf-aht", "dnmf-wta", "dnmf-update"))]
    assert not any(client.run(_imports_sklearn).values())
    assert survey.best_rank == 3
    with dask.config.set(scheduler="sync"):
        here = select_rank(X, [2, 3, 4], **SURVEY)
    assert survey.test_errors == here.test_errors and survey.train_error == here.train_error
    assert survey.n_iter == here.n_iter == [[40, 40]] * 3


def test_fits_across_the_cluster_agree_with_fits_on_workers_to_rounding(client, X):
    on_workers = select_rank(X, [2, 3, 4], **SURVEY, fits_on_workers=True)
    with get_task_stream(client) as stream:
        across = select_rank(X, [2, 3, 4], **SURVEY, fits_on_workers=False)
    kinds = {key_split(task["key"]) for task in stream.data}
    assert "dnmf-survey-fit" not in kinds and any(kind.startswith("dnmf-update") for kind in kinds), kinds
    # Up to the planted rank the fits agree to rounding; past it, the spare component's rounding grows.
    np.testing.assert_allclose(across.test_errors[:2], on_workers.test_errors[:2], rtol=1e-6)
    np.testing.assert_allclose(across.test_errors, on_workers.test_errors, rtol=1e-3)
    assert across.best_rank == on_workers.best_rank == 3


def test_a_survey_on_workers_checkpoints_there_and_a_rerun_reads_the_fits_back(client, X, tmp_path):
    first = select_rank(X, [2, 3], **SURVEY, checkpoint=tmp_path / "survey")
    written = sorted(p.name for p in (tmp_path / "survey").iterdir() if p.name.startswith("replicate-"))
    assert written == ["replicate-0-rank-2", "replicate-0-rank-3", "replicate-1-rank-2", "replicate-1-rank-3"]
    with get_task_stream(client) as stream:
        again = select_rank(X, [2, 3], **SURVEY, checkpoint=tmp_path / "survey")
    assert again.test_errors == first.test_errors and again.n_iter == first.n_iter
    assert [key_split(task["key"]) for task in stream.data].count("dnmf-survey-fit") == 4


def test_the_default_fits_on_workers_only_an_input_small_against_a_worker(client, X):
    assert whole_fits_on_workers(None, X)
    assert not whole_fits_on_workers(None, da.zeros((200_000, 100_000), chunks=(10_000, 10_000)))
    assert whole_fits_on_workers(True, da.zeros((200_000, 100_000), chunks=(10_000, 10_000)))
    assert not whole_fits_on_workers(False, X)


def test_fits_on_workers_without_a_client_is_refused(X):
    with dask.config.set(scheduler="sync"), pytest.raises(ValueError, match="needs an active distributed Client"):
        select_rank(X, [2, 3], **SURVEY, fits_on_workers=True)
