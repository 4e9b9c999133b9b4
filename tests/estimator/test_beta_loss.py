"""β-divergence losses with solver="mu": iterates, losses and stopping against scikit-learn's solver="mu"."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.decomposition import NMF as SklearnNMF
from sklearn.decomposition._nmf import _beta_divergence

from dnmf import NMF

LOSSES = ["kullback-leibler", "itakura-saito", 0.5, 1.5, 3.0]


def problem(rng, positive: bool):
    A = rng.random((60, 45)) * (rng.random((60, 45)) < 0.6)
    if positive:
        A = A + 0.05
    return A, rng.random((60, 5)) + 0.1, rng.random((5, 45)) + 0.1


def fit_both(X, W0, H0, **kwargs):
    ours = NMF(5, init="custom", solver="mu", chunks=(25, 20), **kwargs)
    W = ours.fit_transform(X, W=W0.copy(), H=H0.copy())
    theirs = SklearnNMF(5, init="custom", solver="mu", **kwargs)
    W_ref = theirs.fit_transform(X, W=W0.copy(), H=H0.copy())
    return ours, W, theirs, W_ref


def assert_same_fit(ours, W, theirs, W_ref):
    np.testing.assert_allclose(W, W_ref, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(ours.components_, theirs.components_, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(ours.reconstruction_err_, theirs.reconstruction_err_, rtol=1e-6)


@pytest.mark.parametrize("beta_loss", LOSSES)
@pytest.mark.parametrize("alpha_W,l1_ratio", [(0.0, 0.0), (0.01, 0.5)])
def test_dense_iterates_match_sklearn(rng, beta_loss, alpha_W, l1_ratio):
    A, W0, H0 = problem(rng, positive=beta_loss in ("itakura-saito",))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same_fit(*fit_both(A, W0, H0, beta_loss=beta_loss, max_iter=40, tol=0, alpha_W=alpha_W,
                                  l1_ratio=l1_ratio))


@pytest.mark.parametrize("beta_loss", ["kullback-leibler", 1.5, 3.0])
def test_sparse_iterates_match_sklearn(rng, beta_loss):
    A, W0, H0 = problem(rng, positive=False)
    assert_same_fit(*fit_both(sp.csr_matrix(A), W0, H0, beta_loss=beta_loss, max_iter=40, tol=0))


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_kl_stops_at_the_same_iteration_as_sklearn(rng, sparse):
    A, W0, H0 = problem(rng, positive=False)
    X = sp.csr_matrix(A) if sparse else A
    ours, W, theirs, W_ref = fit_both(X, W0, H0, beta_loss="kullback-leibler", max_iter=500, tol=1e-3)
    assert ours.converged_ and ours.n_iter_ == theirs.n_iter_ < 500
    assert_same_fit(ours, W, theirs, W_ref)


def test_loss_history_is_sklearns_beta_divergence(rng):
    A, W0, H0 = problem(rng, positive=False)
    losses = []
    model = NMF(5, init="custom", solver="mu", beta_loss="kullback-leibler", max_iter=3, tol=0, chunks=(25, 20),
                callback=lambda record: losses.append((record.loss, record.W.compute(), record.H.compute())))
    model.fit(A, W=W0.copy(), H=H0.copy())
    for loss, W, H in losses:
        assert loss == pytest.approx(_beta_divergence(A, W, H, 1, square_root=True), rel=1e-10)
    assert model.loss_history_ == [loss for loss, _, _ in losses]
    assert np.all(np.diff(model.loss_history_) < 0)


def test_float32_kl_stays_float32(rng):
    A, W0, H0 = problem(rng, positive=False)
    model = NMF(5, init="custom", solver="mu", beta_loss="kullback-leibler", max_iter=20, tol=0, chunks=(25, 20))
    W = model.fit_transform(sp.csr_matrix(A, dtype=np.float32), W=W0.astype(np.float32), H=H0.astype(np.float32))
    assert W.dtype == model.components_.dtype == np.float32
    reference = SklearnNMF(5, init="custom", solver="mu", beta_loss="kullback-leibler", max_iter=20, tol=0)
    reference.fit(A, W=W0.copy(), H=H0.copy())
    np.testing.assert_allclose(model.reconstruction_err_, reference.reconstruction_err_, rtol=1e-4)


def test_transform_matches_sklearn(rng):
    A, W0, H0 = problem(rng, positive=False)
    kwargs = dict(init="custom", solver="mu", beta_loss="kullback-leibler", max_iter=50, tol=0)
    ours = NMF(5, chunks=(25, 20), **kwargs).fit(A, W=W0.copy(), H=H0.copy())
    theirs = SklearnNMF(5, **kwargs).fit(A, W=W0.copy(), H=H0.copy())
    X_new = rng.random((30, 45))
    np.testing.assert_allclose(ours.transform(X_new), theirs.transform(X_new), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("beta_loss", ["itakura-saito", -0.5])
def test_non_positive_beta_rejects_zeros_and_sparse_input(rng, beta_loss):
    A, _, _ = problem(rng, positive=True)
    with pytest.raises(ValueError, match="beta_loss <= 0 and X contains zeros"):
        NMF(3, solver="mu", beta_loss=beta_loss).fit(np.where(A > 0.5, A, 0.0))
    with pytest.raises(ValueError, match="Sparse X has implicit zeros"):
        NMF(3, solver="mu", beta_loss=beta_loss).fit(sp.csr_matrix(np.where(A > 0.5, A, 0.0)))
    NMF(3, solver="mu", beta_loss=beta_loss, max_iter=5, tol=0).fit(A)


@pytest.mark.parametrize("solver", ["hals", "cd"])
def test_other_solvers_refuse_beta_losses(solver):
    with pytest.raises(ValueError, match="does not handle beta_loss = 'kullback-leibler'"):
        NMF(3, solver=solver, beta_loss="kullback-leibler").fit(np.ones((4, 4)))


def test_frobenius_path_is_unchanged(rng):
    """beta_loss=2.0 is the Frobenius objective: same tasks and bitwise the same factors as 'frobenius'."""
    A, W0, H0 = problem(rng, positive=False)
    named = NMF(5, init="custom", solver="mu", max_iter=12, tol=0, chunks=(25, 20)).fit(A, W=W0.copy(), H=H0.copy())
    number = NMF(5, init="custom", solver="mu", beta_loss=2.0, max_iter=12, tol=0, chunks=(25, 20))
    number.fit(A, W=W0.copy(), H=H0.copy())
    np.testing.assert_array_equal(named.components_, number.components_)
    assert named.timings_["tasks_per_iteration"] == number.timings_["tasks_per_iteration"]


def test_task_count_per_iteration_is_constant_for_kl(rng):
    A, W0, H0 = problem(rng, positive=False)
    model = NMF(5, init="custom", solver="mu", beta_loss="kullback-leibler", max_iter=6, tol=0, chunks=(25, 20))
    model.fit(sp.csr_matrix(A), W=W0.copy(), H=H0.copy())
    counts = model.timings_["tasks_per_iteration"]
    # The initial loss comes from the first iteration's own first pass, so the first iteration is no larger.
    assert len(set(counts)) == 1


WORKER_MEMORY = 300 * 2**20


@pytest.mark.cluster
def test_sparse_kl_never_forms_a_dense_block():
    """KL on a sparse matrix whose every dense block (20,000 × 20,000 float64, 3.2 GB) is ten times a worker's
    memory_limit: a worker that formed one would be killed by its nanny."""
    from distributed import Client, LocalCluster

    from dnmf.datasets import make_sampled_low_rank

    A = make_sampled_low_rank(40_000, 40_000, 4, 200_000, dtype=np.float64, random_state=0)
    block_rows, block_cols = 20_000, 20_000
    assert block_rows * block_cols * A.dtype.itemsize > 10 * WORKER_MEMORY
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=WORKER_MEMORY,
                      host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        workers_before = set(client.scheduler_info()["workers"])
        model = NMF(4, solver="mu", beta_loss="kullback-leibler", init="random", max_iter=4, tol=0,
                    random_state=0, chunks=(block_rows, block_cols))
        W = model.fit_transform(A)
        assert set(client.scheduler_info()["workers"]) == workers_before, "a worker died or was restarted"
    assert np.all(np.diff(model.loss_history_) < 0)
    expected = _beta_divergence(A, W, model.components_, 1, square_root=True)
    assert model.reconstruction_err_ == pytest.approx(expected, rel=1e-8)
