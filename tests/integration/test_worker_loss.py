"""A worker process killed with SIGKILL in the middle of a fit: the fit still ends with the right factors."""

from __future__ import annotations

import os
import signal

import dask
import numpy as np
import pytest

from dnmf import NMF, save_matrix
from dnmf.datasets import make_sampled_low_rank

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    A = make_sampled_low_rank(40_000, 4_000, 6, 1_000_000, random_state=0)
    url = tmp_path_factory.mktemp("loss") / "a.zarr"
    with dask.config.set(scheduler="sync"):
        save_matrix(A, url, chunks=(10_000, 2_000))
    return str(url)


def fit(url, **kwargs):
    return NMF(6, init="random", max_iter=12, tol=0, random_state=0, chunks=(10_000, 2_000), **kwargs)


@pytest.mark.parametrize("kill_at", [3, 8])
def test_fit_survives_a_killed_worker(client, store, tmp_path, kill_at):
    with dask.config.set(scheduler="sync"):
        reference = fit(store)
        W_reference = reference.fit_transform(store).compute()
    client.wait_for_workers(2)
    victim = next(iter(client.run(os.getpid).values()))
    scheduler_tasks = []

    def kill(record):
        scheduler_tasks.append(client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)))
        if record.iteration == kill_at:
            os.kill(victim, signal.SIGKILL)

    model = fit(store, checkpoint=str(tmp_path / "ck"), callback=kill)
    W = model.fit_transform(store).compute()
    assert victim not in client.run(os.getpid).values()
    np.testing.assert_array_equal(W, W_reference)
    np.testing.assert_array_equal(model.components_, reference.components_)
    assert model.loss_history_ == reference.loss_history_
    # The count swings by up to an iteration's tasks with when the callback looks; a lineage that grew would
    # add that many at every iteration (8 more by the end).
    per_iteration = model.timings_["tasks_per_iteration"][-1]
    assert max(scheduler_tasks[-4:]) <= max(scheduler_tasks[:4]) + per_iteration + 10, "the scheduler's lineage grows"


def in_memory(kind):
    A = make_sampled_low_rank(3_000, 600, 5, 200_000, random_state=1)
    return A.tocsr() if kind == "sparse" else A.toarray()


def fit_in_memory(**kwargs):
    return NMF(5, init="nndsvda", max_iter=15, tol=0, random_state=0, chunks=(750, 300), **kwargs)


def killer(client, iteration, times=1, every_worker=False):
    """A callback that SIGKILLs one worker (or every worker) when a fit attempt reaches ``iteration``, the first
    ``times`` times."""
    kills = []

    def kill(record):
        if record.iteration == iteration and len(kills) < times:
            kills.append(record.iteration)
            client.wait_for_workers(2)
            pids = list(client.run(os.getpid).values())
            for pid in pids if every_worker else pids[:1]:
                os.kill(pid, signal.SIGKILL)

    return kill


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_in_memory_input_survives_a_killed_worker(client, kind):
    """Scattered NumPy/SciPy blocks die with their worker; the fit places them again and gives the same factors."""
    A = in_memory(kind)
    client.wait_for_workers(2)
    reference = fit_in_memory()
    W_reference = reference.fit_transform(A)
    model = fit_in_memory(callback=killer(client, 4, every_worker=True))
    with pytest.warns(RuntimeWarning, match="starts again from the start"):
        W = model.fit_transform(A)
    np.testing.assert_array_equal(W, W_reference)
    np.testing.assert_array_equal(model.components_, reference.components_)
    assert model.loss_history_ == reference.loss_history_


def test_in_memory_input_with_a_checkpoint_resumes_after_a_killed_worker(client, tmp_path):
    A = in_memory("dense")
    client.wait_for_workers(2)
    reference = fit_in_memory().fit(A)
    model = fit_in_memory(checkpoint=str(tmp_path / "ck"), callback=killer(client, 9, every_worker=True))
    with pytest.warns(RuntimeWarning, match="starts again from its last checkpoint"):
        model.fit(A)
    assert model.resumed_from_ is not None and 1 <= model.resumed_from_ < 15
    np.testing.assert_array_equal(model.components_, reference.components_)
    assert model.loss_history_ == reference.loss_history_
