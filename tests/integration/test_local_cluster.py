"""On a real LocalCluster with two worker processes."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from distributed.diagnostics.plugin import SchedulerPlugin

from dnmf import NMF
from dnmf.datasets import make_low_rank, make_sparse_low_rank

pytestmark = pytest.mark.cluster


def test_cluster_has_two_worker_processes(client):
    workers = client.scheduler_info()["workers"]
    assert len(workers) == 2
    pids = set(client.run(lambda: __import__("os").getpid()).values())
    assert len(pids) == 2 and __import__("os").getpid() not in pids


def test_dense_planted_rank_is_recovered(client):
    A = make_sparse_low_rank(300, 200, 4, column_density=0.3, random_state=1)[0].toarray()
    model = NMF(4, solver="hals", max_iter=300, tol=1e-10, random_state=0, chunks=(100, 70))
    W = model.fit_transform(A)
    assert model.reconstruction_err_ / np.linalg.norm(A) < 1e-3
    assert np.linalg.norm(A - W @ model.components_) / np.linalg.norm(A) < 1e-3


def test_sparse_planted_rank_is_recovered(client):
    A, _, _ = make_sparse_low_rank(2000, 800, 6, column_density=0.1, random_state=2)
    model = NMF(6, solver="hals", max_iter=300, tol=1e-10, random_state=0, chunks=(700, 300))
    W = model.fit_transform(A)
    assert isinstance(W, np.ndarray)
    assert model.reconstruction_err_ / sp.linalg.norm(A) < 1e-3


def test_dask_input_stays_on_cluster(client):
    A, _, _ = make_low_rank(200, 120, 3, random_state=3)
    W = NMF(3, max_iter=30, random_state=0).fit_transform(da.from_array(A, chunks=(50, 40)))
    assert isinstance(W, da.Array)
    assert all(type(f).__name__ == "Future" for f in W.__dask_graph__().values())


class _TaskCounter(SchedulerPlugin):
    """Counts every task the scheduler sends to a worker."""

    name = "dnmf-test-task-counter"

    def __init__(self) -> None:
        self.count = 0

    def transition(self, key, start, finish, *args, **kwargs) -> None:
        if finish == "processing":
            self.count += 1


def test_task_count_is_the_same_at_iteration_2_and_20(client):
    """Counted twice: by the engine from the graph it submits, and by the scheduler between callbacks."""
    client.register_plugin(_TaskCounter())
    A, _, _ = make_sparse_low_rank(1500, 600, 4, column_density=0.1, random_state=4)
    counts = []

    def read_counter(record):
        counts.append(client.run_on_scheduler(
            lambda dask_scheduler: dask_scheduler.plugins[_TaskCounter.name].count))

    model = NMF(4, init="random", max_iter=20, tol=0, random_state=0, chunks=(500, 200), callback=read_counter)
    model.fit(A)
    submitted = model.timings_["tasks_per_iteration"]
    assert submitted[1] == submitted[19] > 0
    ran = np.diff(counts)  # ran[i] is iteration i + 2
    assert ran[0] == ran[18] > 0
    assert len(set(ran)) == 1
