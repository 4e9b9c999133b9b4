"""On a real LocalCluster with two worker processes."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from dask.utils import key_split
from distributed import get_task_stream
from distributed.diagnostics.plugin import SchedulerPlugin

from dnmf import NMF
from dnmf.core.rules import hals
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


def _masked_hals_reference(X, W, H, iterations):
    """Masked HALS iterations done densely: every row's and column's Gram formed from its observed entries."""
    observed, values = ~np.isnan(X), np.nan_to_num(X)
    for _ in range(iterations):
        W = hals.update_each(W, values @ H.T, np.stack([H[:, o] @ H[:, o].T for o in observed]))
        H = hals.update_each(H.T, values.T @ W, np.stack([W[o].T @ W[o] for o in observed.T])).T
    return W, H


def test_masked_hals_on_the_cluster_matches_a_dense_masked_reference(client):
    A, _, _ = make_low_rank(240, 150, 4, random_state=5)
    A[np.random.default_rng(5).random(A.shape) < 0.15] = np.nan
    r = np.random.default_rng(6)
    W0, H0 = r.random((240, 4)), r.random((4, 150))
    model = NMF(4, solver="hals", init="custom", missing="nan", max_iter=12, tol=0, chunks=(80, 50))
    W = model.fit_transform(A, W=W0, H=H0)
    assert model.timings_["executor"] == "distributed"
    W_ref, H_ref = _masked_hals_reference(A, W0, H0, 12)
    np.testing.assert_allclose(W, W_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.components_, H_ref, rtol=1e-9, atol=1e-12)
    observed = ~np.isnan(A)
    exact = np.sqrt(np.sum((A - W_ref @ H_ref)[observed] ** 2))
    assert model.reconstruction_err_ == pytest.approx(exact, rel=1e-9)


def test_dask_input_stays_on_cluster(client):
    A, _, _ = make_low_rank(200, 120, 3, random_state=3)
    W = NMF(3, max_iter=30, random_state=0).fit_transform(da.from_array(A, chunks=(50, 40)))
    assert isinstance(W, da.Array)
    assert all(type(f).__name__ == "Future" for f in W.__dask_graph__().values())


class _TaskCounter(SchedulerPlugin):
    """Counts the tasks the scheduler sends to a worker, except aliases of the scattered input's blocks: two
    iterations in flight share those, so how many run depends on timing."""

    name = "dnmf-test-task-counter"

    def __init__(self) -> None:
        self.count = 0

    def transition(self, key, start, finish, *args, **kwargs) -> None:
        if finish == "processing" and not key_split(key).startswith("dnmf-input"):
            self.count += 1


def test_task_count_is_the_same_at_iteration_2_and_20(client):
    """Counted twice: by the engine from the graph it submits, and by the scheduler over whole fits. An iteration
    is submitted before the previous one's loss is back, so the scheduler's count between two callbacks mixes two
    iterations; fits of 2, 3 and 20 iterations tell the count of one."""
    client.register_plugin(_TaskCounter())
    A, _, _ = make_sparse_low_rank(1500, 600, 4, column_density=0.1, random_state=4)
    A.data *= np.random.default_rng(4).uniform(0.8, 1.2, A.nnz)  # a loss floor the trace identity resolves

    def tasks_run(max_iter: int) -> tuple[int, list[int]]:
        def count() -> int:
            return client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.plugins[_TaskCounter.name].count)

        before = count()
        model = NMF(4, init="random", max_iter=max_iter, tol=0, random_state=0, chunks=(500, 200)).fit(A)
        assert model.timings_["exact_losses"] == 0
        return count() - before, model.timings_["tasks_per_iteration"]

    two, _ = tasks_run(2)
    three, _ = tasks_run(3)
    twenty, submitted = tasks_run(20)
    assert submitted[1] == submitted[19] > 0
    assert three - two > 0
    assert twenty - two == 18 * (three - two)


def test_iterations_submitted_ahead_change_no_result(client, tmp_path):
    """On a cluster the next iteration is submitted before the loss comes back; stopping from a callback, or a
    checkpoint that swaps the factors for their read-back copies, must give the factors of a plain run."""
    A, _, _ = make_sparse_low_rank(900, 400, 4, column_density=0.1, random_state=5)
    options = dict(init="random", tol=0, random_state=0, chunks=(300, 200))
    plain = NMF(4, max_iter=7, **options).fit(A)

    def stop_at_7(record):
        if record.iteration == 7:
            raise StopIteration

    stopped = NMF(4, max_iter=50, callback=stop_at_7, **options).fit(A)
    checkpointed = NMF(4, max_iter=7, checkpoint=tmp_path / "ckpt", checkpoint_every=3, **options).fit(A)
    for model in (stopped, checkpointed):
        assert model.n_iter_ == 7
        np.testing.assert_array_equal(model.components_, plain.components_)
        assert model.loss_history_ == plain.loss_history_


@pytest.mark.parametrize("init,sparse", [("nndsvd", True), ("nndsvda", False), ("nndsvdar", True)])
def test_a_small_input_gets_its_nndsvd_in_this_process_equal_to_the_cluster_one(client, monkeypatch, sparse, init):
    """Under SMALL_INPUT_BYTES, NNDSVD runs on a copy of A's blocks here (one gather, no power iteration on the
    cluster) and starts the fit from bitwise the factors that the cluster's products give."""
    from dnmf.core import initialization

    A = make_sparse_low_rank(400, 150, 4, column_density=0.3, random_state=3)[0]
    A = A if sparse else A.toarray()
    fit = NMF(4, init=init, max_iter=3, tol=0, random_state=0, chunks=(200, 75))
    with get_task_stream(client) as here:
        local = fit.fit(A).components_
    assert not [t for t in here.data if key_split(t["key"]).startswith("dnmf-init-orth")]

    def on_the_cluster(A, k, method, *, entropy, mean, power_iterations, runtime):
        return initialization.products.persist(*initialization.nndsvd(
            A, k, method, entropy=entropy, mean=mean, power_iterations=power_iterations))

    monkeypatch.setattr(initialization, "in_process_nndsvd", on_the_cluster)
    with get_task_stream(client) as there:
        graph = fit.fit(A).components_
    assert [t for t in there.data if key_split(t["key"]).startswith("dnmf-init-orth")]
    np.testing.assert_array_equal(local, graph)


def test_a_rank_survey_fits_ranks_concurrently_with_the_results_of_one_at_a_time(client):
    from dnmf import select_rank
    from dnmf.estimator.survey_fits import fits_at_once
    from dnmf.estimator.training import training_input

    X = make_low_rank(120, 80, 3, random_state=7)[0] + 0.01
    training = training_input(X, seed=1, test_fraction=0.1)
    assert fits_at_once(None, 5, training) == 4 and fits_at_once(None, 3, training) == 3  # two per worker
    surveys = [select_rank(X, [2, 3, 4], replicates=2, solver="hals", max_iter=20, random_state=0,
                           concurrent_fits=at_once, fits_on_workers=False) for at_once in (1, 3)]
    assert surveys[0].test_errors == surveys[1].test_errors
    assert surveys[0].train_error == surveys[1].train_error and surveys[0].n_iter == surveys[1].n_iter
    assert surveys[0].best_rank == surveys[1].best_rank == 3
