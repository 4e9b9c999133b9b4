"""Same data and initial factors: dnmf's loss curve and result against scikit-learn's NMF."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.decomposition import NMF as SklearnNMF
from sklearn.decomposition._nmf import _initialize_nmf

from dnmf import NMF


@pytest.fixture
def problem(rng):
    A = rng.random((60, 45)) * (rng.random((60, 45)) < 0.6)
    return A, rng.random((60, 5)), rng.random((5, 45))


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("alpha_W,l1_ratio", [(0.0, 0.0), (0.01, 0.5)])
def test_mu_matches_sklearn(problem, sparse, alpha_W, l1_ratio):
    A, W0, H0 = problem
    X = sp.csr_matrix(A) if sparse else A
    kwargs = dict(init="custom", solver="mu", max_iter=60, tol=1e-4, alpha_W=alpha_W, l1_ratio=l1_ratio)
    ours = NMF(5, chunks=(25, 20), **kwargs)
    W = ours.fit_transform(X, W=W0.copy(), H=H0.copy())
    theirs = SklearnNMF(5, **kwargs)
    W_ref = theirs.fit_transform(X, W=W0.copy(), H=H0.copy())
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.reconstruction_err_, theirs.reconstruction_err_, rtol=1e-6)
    np.testing.assert_allclose(W, W_ref, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(ours.components_, theirs.components_, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_hals_converges_within_one_percent_of_sklearn_cd(problem, sparse):
    A, W0, H0 = problem
    X = sp.csr_matrix(A) if sparse else A
    ours = NMF(5, init="custom", solver="hals", max_iter=200, tol=1e-6, chunks=(25, 20))
    ours.fit(X, W=W0.copy(), H=H0.copy())
    theirs = SklearnNMF(5, init="custom", solver="cd", max_iter=200, tol=1e-6)
    theirs.fit(X, W=W0.copy(), H=H0.copy())
    assert ours.reconstruction_err_ <= 1.01 * theirs.reconstruction_err_


def test_hals_iterates_match_sklearn_cd_exactly(problem):
    """With tol=0 both run the same sweeps in the same order."""
    A, W0, H0 = problem
    ours = NMF(5, init="custom", solver="cd", max_iter=30, tol=0, chunks=(25, 20)).fit(A, W=W0.copy(), H=H0.copy())
    theirs = SklearnNMF(5, init="custom", solver="cd", max_iter=30, tol=0).fit(A, W=W0.copy(), H=H0.copy())
    np.testing.assert_allclose(ours.components_, theirs.components_, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("init", ["nndsvd", "nndsvda", "nndsvdar"])
def test_nndsvd_init_matches_sklearn(rng, init):
    A = rng.random((80, 6)) @ rng.random((6, 50)) + 0.01 * rng.random((80, 50))
    from dnmf.core import initialization as initialization
    from dnmf.data.matrix import as_input_matrix, matrix_stats

    matrix = as_input_matrix(A, chunks=(30, 20)).array
    W, H = initialization.initialize(matrix, 6, init, entropy=0, mean=matrix_stats(matrix).mean)
    W_ref, H_ref = _initialize_nmf(A, 6, init=init, random_state=0)
    ours = np.linalg.norm(A - W.compute() @ H.compute())
    theirs = np.linalg.norm(A - W_ref @ H_ref)
    assert ours == pytest.approx(theirs, rel=0.02)
    if init != "nndsvdar":  # the random fill differs by design
        np.testing.assert_allclose(W.compute() @ H.compute(), W_ref @ H_ref, rtol=1e-6, atol=1e-8)


def test_default_init_follows_sklearn_rule(rng):
    A = rng.random((30, 20))
    model = NMF(3, max_iter=400, random_state=0).fit(A)
    reference = SklearnNMF(3, max_iter=400, random_state=0).fit(A)
    assert model.reconstruction_err_ == pytest.approx(reference.reconstruction_err_, rel=0.02)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("ours,theirs,beta_loss", [
    ("cd", "cd", "frobenius"),
    ("hals", "cd", "frobenius"),
    ("mu", "mu", "frobenius"),
    ("mu", "mu", "kullback-leibler"),
])
def test_same_rule_gives_the_same_components(problem, sparse, ours, theirs, beta_loss):
    """Every solver pair that shares an update rule: from the same custom W and H, the same components_ after the
    same number of iterations (tol=0: no stopping rule involved)."""
    A, W0, H0 = problem
    X = sp.csr_matrix(A) if sparse else A
    kwargs = dict(init="custom", beta_loss=beta_loss, max_iter=25, tol=0)
    model = NMF(5, solver=ours, chunks=(25, 20), **kwargs).fit(X, W=W0.copy(), H=H0.copy())
    reference = SklearnNMF(5, solver=theirs, **kwargs).fit(X, W=W0.copy(), H=H0.copy())
    assert model.n_iter_ == reference.n_iter_ == 25
    np.testing.assert_allclose(model.components_, reference.components_, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(model.reconstruction_err_, reference.reconstruction_err_, rtol=1e-7)
