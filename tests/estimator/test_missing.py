"""Missing values: missing="nan" and fit(X, mask=...), with solver="mu" (Frobenius and KL), "hals" and "bpp"."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.decomposition._nmf import _beta_divergence

from dnmf import NMF
from dnmf.core import engine
from dnmf.core.objectives import BetaDivergence
from dnmf.core.rules import BETA_RULES
from dnmf.data.masks import mask_input
from dnmf.data.matrix import as_input_matrix
from dnmf.datasets import make_low_rank
from dnmf.runtime import current as current_runtime


@pytest.fixture
def hidden_problem():
    A, _, _ = make_low_rank(60, 50, 3, random_state=0)
    hidden = np.random.default_rng(1).random(A.shape) < 0.3
    return A, hidden


def hidden_error(model, W, A, hidden):
    estimate = model.inverse_transform(W)
    return np.linalg.norm((estimate - A)[hidden]) / np.linalg.norm(A[hidden])


def quiet_fit(model, X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit_transform(X, **kwargs)


@pytest.mark.parametrize("beta_loss", ["frobenius", "kullback-leibler"])
def test_recovers_hidden_entries_of_a_planted_low_rank_matrix(hidden_problem, beta_loss):
    A, hidden = hidden_problem
    model = NMF(3, solver="mu", beta_loss=beta_loss, missing="nan", max_iter=400, tol=0, random_state=0,
                chunks=(30, 25))
    W = model.fit_transform(np.where(hidden, np.nan, A))
    column_means = np.nanmean(np.where(hidden, np.nan, A), axis=0)
    baseline = np.linalg.norm((column_means - A)[hidden]) / np.linalg.norm(A[hidden])
    assert hidden_error(model, W, A, hidden) < min(0.06, baseline / 5)
    assert model.reconstruction_err_ == pytest.approx(model.loss_history_[-1], rel=1e-8)


def test_sparse_mask_gives_the_nan_fit(hidden_problem):
    """A sparse mask (ratings layout, CSR blocks of the observed entries) and NaN in dense X are the same problem."""
    A, hidden = hidden_problem
    kwargs = dict(solver="mu", max_iter=30, tol=0, random_state=0, chunks=(30, 25))
    W_nan = NMF(3, missing="nan", **kwargs).fit_transform(np.where(hidden, np.nan, A))
    model = NMF(3, **kwargs)
    W_mask = model.fit_transform(sp.csr_matrix(A), mask=sp.csr_matrix(~hidden))
    np.testing.assert_allclose(W_mask, W_nan, rtol=1e-8)
    observed_error = np.linalg.norm(((W_mask @ model.components_) - A)[~hidden])
    assert model.reconstruction_err_ == pytest.approx(observed_error, rel=1e-10)


def test_sparse_mask_keeps_observed_zeros(rng):
    """Observed zeros of sparse X stay in the objective; unobserved entries do not."""
    A = rng.random((30, 20)) * (rng.random((30, 20)) < 0.5)
    observed = rng.random(A.shape) < 0.6
    assert np.sum(observed & (A == 0)) > 50
    matrix = mask_input(as_input_matrix(sp.csr_matrix(A), chunks=(15, 10)), sp.csr_matrix(observed))
    assert sum(block.compute().nnz for block in matrix.array.to_delayed().ravel()) == observed.sum()
    model = NMF(2, solver="mu", max_iter=10, tol=0, random_state=0, chunks=(15, 10))
    W = model.fit_transform(sp.csr_matrix(A), mask=sp.csr_matrix(observed))
    expected = np.linalg.norm(observed * (A - W @ model.components_))
    assert model.reconstruction_err_ == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("how", ["nan", "dense-mask"])
def test_nothing_missing_is_the_unmasked_fit(rng, how):
    A = rng.random((40, 30))
    kwargs = dict(solver="mu", max_iter=15, tol=0, random_state=0, chunks=(20, 15))
    plain = NMF(3, **kwargs)
    W_plain = plain.fit_transform(A)
    model = NMF(3, missing="nan", **kwargs) if how == "nan" else NMF(3, **kwargs)
    W = model.fit_transform(A, mask=None if how == "nan" else np.ones(A.shape, dtype=bool))
    np.testing.assert_array_equal(W, W_plain)
    np.testing.assert_array_equal(model.components_, plain.components_)
    assert model.timings_["tasks_per_iteration"] == plain.timings_["tasks_per_iteration"]


def masked_reference(A, observed, W, H, n_iter, beta):
    """Masked β-MU in memory: W ← W ⊙ (M⊙A⊙WH^(β−2))Hᵀ / (M⊙WH^(β−1))Hᵀ, then the same for H."""
    X = np.where(observed, A, 0.0)
    for _ in range(n_iter):
        WH = np.maximum(W @ H, np.finfo(np.float32).eps) if beta < 2 else W @ H
        W = W * ((observed * X * WH ** (beta - 2)) @ H.T) / ((observed * WH ** (beta - 1)) @ H.T)
        WH = np.maximum(W @ H, np.finfo(np.float32).eps) if beta < 2 else W @ H
        H = H * (W.T @ (observed * X * WH ** (beta - 2))) / (W.T @ (observed * WH ** (beta - 1)))
        if beta <= 1:
            H[H < np.finfo(np.float64).eps] = 0
    return W, H


@pytest.mark.parametrize("beta", [2.0, 1.0])
@pytest.mark.parametrize("layout", ["nan", "pattern"])
def test_masked_iterates_equal_in_memory_reference(rng, beta, layout):
    A = rng.random((50, 40)) * (rng.random((50, 40)) < 0.7)
    observed = rng.random(A.shape) < 0.6
    X = np.where(observed, A, np.nan) if layout == "nan" else sp.csr_matrix(A)
    mask = None if layout == "nan" else sp.csr_matrix(observed)
    matrix = mask_input(as_input_matrix(X, chunks=(17, 11)), mask, nan_is_missing=True)
    W0, H0 = rng.random((50, 4)) + 0.1, rng.random((4, 40)) + 0.1
    W = da.from_array(W0, chunks=(matrix.array.chunks[0], 4))
    H = da.from_array(H0, chunks=(4, matrix.array.chunks[1]))
    result = engine.run(matrix.array, W, H, rule=BETA_RULES["beta_mu"], runtime=current_runtime(),
                        objective=BetaDivergence(beta, masked=True),
                        max_iter=8, tol=0)
    W_ref, H_ref = masked_reference(A, observed, W0, H0, 8, beta)
    np.testing.assert_allclose(result.W.compute(), W_ref, rtol=1e-9)
    np.testing.assert_allclose(result.H.compute(), H_ref, rtol=1e-9)
    assert np.all(np.diff(result.loss_history) <= 1e-12)
    assert len(set(result.progress.tasks_per_iteration[1:])) == 1


@pytest.mark.parametrize("beta_loss", ["frobenius", "kullback-leibler"])
def test_unobserved_row_and_column_give_no_nan(rng, beta_loss):
    X = rng.random((30, 20))
    X[4, :] = np.nan
    X[:, 7] = np.nan
    model = NMF(3, solver="mu", beta_loss=beta_loss, missing="nan", max_iter=20, tol=0, random_state=0,
                chunks=(15, 10))
    W = model.fit_transform(X)
    assert np.all(np.isfinite(W)) and np.all(np.isfinite(model.components_))
    assert np.isfinite(model.reconstruction_err_) and all(np.isfinite(model.loss_history_))
    assert np.all(np.isfinite(model.inverse_transform(W)))


def test_transform_fits_observed_entries_and_inverse_transform_fills_the_rest(hidden_problem):
    A, hidden = hidden_problem
    X = np.where(hidden, np.nan, A)
    model = NMF(3, solver="mu", missing="nan", max_iter=200, tol=0, random_state=0, chunks=(30, 25))
    W_fit = model.fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W_new = model.transform(X[:20])
    estimate = model.inverse_transform(W_new)
    assert estimate.shape == (20, 50) and np.all(np.isfinite(estimate))
    rows_hidden = hidden[:20]
    transform_error = np.linalg.norm((estimate - A[:20])[rows_hidden])
    fit_error = np.linalg.norm((model.inverse_transform(W_fit[:20]) - A[:20])[rows_hidden])
    assert transform_error < 1.2 * fit_error < 0.15 * np.linalg.norm(A[:20][rows_hidden])


def test_nan_needs_missing_and_inf_is_still_rejected(rng):
    X = rng.random((10, 8))
    X[2, 3] = np.nan
    with pytest.raises(ValueError, match="missing='nan'"):
        NMF(2, solver="mu").fit(X)
    X[5, 5] = np.inf
    with pytest.raises(ValueError, match=r"Input X contains infinity.*\(1 value.*row 5, column 5"):
        NMF(2, solver="mu", missing="nan").fit(X)


def test_nan_at_an_observed_entry_of_the_mask_is_an_error(rng):
    X = rng.random((10, 8))
    X[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN at entries the mask declares observed"):
        NMF(2, solver="mu").fit(X, mask=np.ones(X.shape, dtype=bool))


def test_negative_observed_value_is_rejected(rng):
    X = rng.random((10, 8))
    X[1, 1] = -1.0
    X[2, 2] = np.nan
    with pytest.raises(ValueError, match="Negative values"):
        NMF(2, solver="mu", missing="nan").fit(X)


@pytest.mark.parametrize("solver", ["hals", "cd", "bpp"])
def test_hals_and_bpp_recover_hidden_entries(hidden_problem, solver):
    A, hidden = hidden_problem
    X = A.copy()
    X[hidden] = np.nan
    model = NMF(3, solver=solver, missing="nan", max_iter=300, tol=0, random_state=0)
    assert hidden_error(model, quiet_fit(model, X), A, hidden) < 0.01  # mu: 0.06 in 400 iterations


@pytest.mark.parametrize("solver", ["hals", "bpp"])
def test_hals_and_bpp_give_zeros_where_nothing_is_observed(rng, solver):
    X = rng.random((30, 20))
    X[4, :] = np.nan
    X[:, 7] = np.nan
    model = NMF(3, solver=solver, missing="nan", max_iter=20, tol=0, random_state=0, chunks=(15, 10))
    W = model.fit_transform(X)
    assert np.all(W[4] == 0) and np.all(model.components_[:, 7] == 0)
    assert np.isfinite(model.reconstruction_err_) and all(np.isfinite(model.loss_history_))


def test_mask_of_wrong_shape(rng):
    with pytest.raises(ValueError, match="mask has shape"):
        NMF(2, solver="mu").fit(rng.random((10, 8)), mask=np.ones((8, 10)))


def test_missing_is_a_validated_parameter():
    with pytest.raises(ValueError, match="'missing' parameter of NMF must be None or 'nan'"):
        NMF(2, missing="zero").fit(np.ones((3, 3)))


@pytest.mark.parametrize("changed", [{"missing": None}, {"beta_loss": "kullback-leibler"}])
def test_resume_with_other_missing_or_beta_loss_is_refused(rng, tmp_path, changed):
    from dnmf.data.checkpoint import CheckpointError

    X = rng.random((20, 10))
    kwargs = dict(solver="mu", missing="nan", max_iter=2, tol=0, random_state=0, checkpoint=str(tmp_path / "ck"))
    NMF(2, **kwargs).fit(X)
    with pytest.raises(CheckpointError, match=next(iter(changed))):
        NMF(2, **{**kwargs, **changed, "max_iter": 4}).fit(X, resume=True)


def _holed_counts(rng):
    """Sparse counts with NaN stored at a fifth of the entries, stored or not, and the same matrix dense."""
    mean = make_low_rank(80, 60, 3, random_state=2)[0]
    dense = rng.poisson(mean * (0.8 / mean.mean())).astype(np.float64)
    dense[rng.random(dense.shape) < 0.2] = np.nan
    rows, cols = np.nonzero(dense != 0)
    return sp.csr_matrix((dense[rows, cols], (rows, cols)), shape=dense.shape), dense


@pytest.mark.parametrize(("solver", "mask_updates", "beta_loss"),
                         [("hals", "exact", "frobenius"), ("bpp", "exact", "frobenius"),
                          ("hals", "impute", "frobenius"), ("mu", "impute", "frobenius"), ("mu", "exact", "frobenius"),
                          ("mu", "exact", "kullback-leibler"), ("mu", "exact", 1.5)])
@pytest.mark.parametrize("lazy", [False, True], ids=["in-memory", "dask"])
def test_sparse_x_with_nan_is_the_fit_of_its_dense_form_unstored_entries_observed_zeros(rng, solver, mask_updates,
                                                                                        beta_loss, lazy):
    holed, dense = _holed_counts(rng)
    kwargs = {"n_components": 3, "solver": solver, "mask_updates": mask_updates, "beta_loss": beta_loss,
              "missing": "nan", "max_iter": 40, "tol": 0.0, "init": "nndsvda", "random_state": 0, "chunks": (40, 30)}
    W_dense = quiet_fit(NMF(**kwargs), dense)
    sparse_model = NMF(**kwargs)
    X = da.from_array(holed, chunks=(40, 30), asarray=False) if lazy else holed
    W_sparse = quiet_fit(sparse_model, X)
    assert sparse_model.n_iter_ == 40
    np.testing.assert_allclose(W_sparse, W_dense, rtol=1e-9, atol=1e-12)
    observed = ~np.isnan(dense)
    if beta_loss == "frobenius":
        residual = np.where(observed, np.nan_to_num(dense) - W_sparse @ sparse_model.components_, 0.0)
        assert sparse_model.reconstruction_err_ == pytest.approx(np.linalg.norm(residual), rel=1e-9)
    else:
        beta = 1.0 if beta_loss == "kullback-leibler" else beta_loss
        predicted = (np.asarray(W_sparse) @ sparse_model.components_)[observed][None]
        expected = _beta_divergence(dense[observed][None], np.ones((1, 1)), predicted, beta, square_root=True)
        assert sparse_model.reconstruction_err_ == pytest.approx(expected, rel=1e-9)


def test_sparse_x_with_nan_needs_missing_nan_and_a_loss_defined_at_its_zeros(rng):
    holed, _ = _holed_counts(rng)
    with pytest.raises(ValueError, match="contains NaN"):
        NMF(3, solver="hals", max_iter=5).fit(holed)
    with pytest.raises(ValueError, match="implicit zeros"):
        NMF(3, solver="mu", beta_loss="itakura-saito", missing="nan", max_iter=5).fit(holed)
