"""dnmf.NMF as a scikit-learn estimator: parameters, input kinds, output kinds, dtypes."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
import zarr
from sklearn.base import clone

from dnmf import NMF, NotFittedError
from dnmf.datasets import make_low_rank


@pytest.fixture
def A():
    return make_low_rank(40, 30, 3, random_state=0)[0]


def fast(**kwargs):
    return NMF(3, max_iter=30, tol=0, random_state=0, chunks=(15, 10), **kwargs)


def test_get_set_params_and_clone():
    model = NMF(4, solver="mu", alpha_W=0.1)
    params = model.get_params()
    assert params["n_components"] == 4 and params["solver"] == "mu" and params["alpha_H"] == "same"
    copy = clone(model)
    assert copy is not model and copy.get_params() == params
    assert model.set_params(max_iter=7) is model and model.max_iter == 7
    with pytest.raises(ValueError, match="Invalid parameter 'bogus'"):
        model.set_params(bogus=1)
    assert repr(model) == "NMF(n_components=4, solver='mu', max_iter=7, alpha_W=0.1)"


def test_fitted_attributes(A):
    model = fast()
    assert model.fit(A) is model
    assert model.components_.shape == (3, 30) and isinstance(model.components_, np.ndarray)
    assert model.n_components_ == 3 and model.n_features_in_ == 30 and model.n_iter_ == 30
    assert len(model.loss_history_) == 30
    W = model.transform(A)
    assert model.reconstruction_err_ == pytest.approx(np.linalg.norm(A - model.fit_transform(A) @ model.components_))
    assert W.shape == (40, 3)
    assert set(model.timings_) == {"seconds_per_iteration", "tasks_per_iteration", "checkpoint_seconds",
                                  "phase_seconds", "executor", "passes_over_a", "exact_losses",
                                  "exact_loss_seconds"}
    assert model.timings_["executor"] == "in-process"


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "lil"])
def test_any_sparse_format(A, fmt):
    model = fast()
    W = model.fit_transform(sp.csr_matrix(A).asformat(fmt))
    assert isinstance(W, np.ndarray)
    assert model.reconstruction_err_ == pytest.approx(fast().fit(A).reconstruction_err_, rel=1e-8)


def test_dask_input_gives_dask_output(A):
    model = fast()
    W = model.fit_transform(da.from_array(A, chunks=(15, 10)))
    assert isinstance(W, da.Array) and W.chunks[0] == (15, 15, 10)
    assert isinstance(model.transform(da.from_array(A, chunks=(20, 10))), da.Array)
    assert isinstance(model.inverse_transform(W), da.Array)
    np.testing.assert_allclose(model.inverse_transform(W).compute(), W.compute() @ model.components_)


def test_dask_array_with_sparse_blocks(A):
    blocks = da.from_array(A, chunks=(15, 10)).map_blocks(sp.csr_matrix, meta=sp.csr_matrix((0, 0)))
    model = fast()
    W = model.fit_transform(blocks)
    assert isinstance(W, da.Array)
    assert model.reconstruction_err_ == pytest.approx(fast().fit(A).reconstruction_err_, rel=1e-8)


def test_zarr_array_input(A, tmp_path):
    store = zarr.open_array(tmp_path / "a.zarr", mode="w", shape=A.shape, chunks=(8, 8), dtype="f4")
    store[:] = A
    model = fast()
    W = model.fit_transform(store)
    assert isinstance(W, da.Array) and W.dtype == np.float32
    assert model.components_.dtype == np.float32
    assert model.reconstruction_err_ == pytest.approx(fast().fit(A.astype(np.float32)).reconstruction_err_, rel=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(A, dtype):
    model = fast()
    W = model.fit_transform(A.astype(dtype))
    assert W.dtype == dtype and model.components_.dtype == dtype
    assert model.transform(A.astype(dtype)).dtype == dtype


def test_integer_input_becomes_float(A):
    W = fast().fit_transform(np.round(A * 10).astype(np.int32))
    assert W.dtype == np.float64


def test_transform_solves_for_w_with_fixed_h(A):
    model = NMF(3, max_iter=500, tol=1e-8, random_state=0).fit(A)
    W = model.transform(A)
    assert np.linalg.norm(A - W @ model.components_) <= 1.05 * model.reconstruction_err_ + 1e-8
    with pytest.raises(ValueError, match="X has 29 features, but NMF is expecting 30"):
        model.transform(A[:, :29])


def test_mu_transform(A):
    model = NMF(3, solver="mu", max_iter=300, random_state=0).fit(A)
    assert np.linalg.norm(A - model.transform(A) @ model.components_) < 1.2 * model.reconstruction_err_ + 1e-6


def test_inverse_transform_numpy(A):
    model = fast().fit(A)
    W = model.transform(A)
    np.testing.assert_allclose(model.inverse_transform(W), W @ model.components_)


def test_not_fitted():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        NMF(2).transform(np.ones((3, 3)))


def test_reproducible_with_random_state(A):
    first = NMF(3, init="random", max_iter=20, tol=0, random_state=7).fit(A).components_
    second = NMF(3, init="random", max_iter=20, tol=0, random_state=7).fit(A).components_
    third = NMF(3, init="random", max_iter=20, tol=0, random_state=8).fit(A).components_
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, third)


def test_n_components_auto_and_none(A):
    assert NMF(None, max_iter=5).fit(A[:, :6]).n_components_ == 6
    W0, H0 = np.ones((40, 2)), np.ones((2, 30))
    assert NMF(init="custom", max_iter=5).fit(A, W=W0, H=H0).n_components_ == 2


def test_more_components_than_min_dimension_uses_random_init(A):
    model = NMF(35, max_iter=10, tol=0, random_state=0).fit(A)
    assert model.components_.shape == (35, 30)
    with pytest.raises(ValueError, match="init = 'nndsvda' can only be used when n_components <= min"):
        NMF(35, init="nndsvda").fit(A)


def test_all_zero_rows_and_columns_give_no_nan(A):
    X = A.copy()
    X[5] = 0
    X[:, 7] = 0
    for solver in ("mu", "hals"):
        for init in ("nndsvd", "nndsvda", "random"):
            model = NMF(3, solver=solver, init=init, max_iter=20, random_state=0)
            W = model.fit_transform(sp.csr_matrix(X))
            assert np.all(np.isfinite(W)) and np.all(np.isfinite(model.components_))
            assert np.isfinite(model.reconstruction_err_)


def test_all_zero_matrix_gives_no_nan():
    model = NMF(2, max_iter=5)
    W = model.fit_transform(np.zeros((6, 4)))
    assert np.all(W == 0) and np.all(np.isfinite(model.components_)) and model.reconstruction_err_ == 0


def test_verbose_logs_iterations(A, caplog):
    NMF(3, max_iter=3, tol=0, verbose=0).fit(A)
    assert "iteration 3: loss" not in caplog.text  # the dnmf logger stays at WARNING without verbose
    NMF(3, max_iter=3, tol=0, verbose=2).fit(A)
    assert "iteration 3: loss" in caplog.text


def test_callback(A):
    seen = []
    model = NMF(3, max_iter=4, tol=0, callback=lambda record: seen.append(record.iteration)).fit(A)
    assert seen == [1, 2, 3, 4] and model.n_iter_ == 4
