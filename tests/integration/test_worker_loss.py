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
    assert scheduler_tasks[-1] <= scheduler_tasks[2] + 10, "the scheduler's lineage grows with the iterations"
