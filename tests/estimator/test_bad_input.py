"""Bad input gives a clear error that names the problem and the fix."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from dnmf import NMF


@pytest.fixture
def X(rng):
    return rng.random((20, 15))


@pytest.mark.parametrize("kind", ["numpy", "sparse", "dask"])
def test_negative_values(X, kind):
    X = X.copy()
    X[12, 9] = -0.5
    data = {"numpy": X, "sparse": sp.csr_matrix(X), "dask": da.from_array(X, chunks=5)}[kind]
    with pytest.raises(ValueError, match=r"Negative values in the data passed to NMF \(input X\).*-0\.5"):
        NMF(2).fit(data)


@pytest.mark.parametrize("value,word", [(np.nan, "NaN"), (np.inf, "infinite")])
@pytest.mark.parametrize("sparse", [False, True])
def test_nan_and_inf(X, value, word, sparse):
    X = X.copy()
    X[3, 4] = value
    with pytest.raises(ValueError, match="contains 1 NaN or infinite value.*rows 0–.*impute"):
        NMF(2).fit(sp.csr_matrix(X) if sparse else X)


@pytest.mark.parametrize("shape", [(0, 5), (5, 0)])
def test_empty(shape):
    with pytest.raises(ValueError, match="empty"):
        NMF(2).fit(np.zeros(shape))


@pytest.mark.parametrize("array", [np.ones(5), np.ones((2, 3, 4))])
def test_not_two_dimensional(array):
    with pytest.raises(ValueError, match="Expected a 2-D matrix"):
        NMF(2).fit(array)


def test_complex_dtype():
    with pytest.raises(TypeError, match="real-valued"):
        NMF(2).fit(np.ones((3, 3), dtype=complex))


@pytest.mark.parametrize("k", [0, -1, 1.5, "three", True])
def test_bad_n_components(X, k):
    with pytest.raises(ValueError, match="'n_components' parameter of NMF must be a positive integer"):
        NMF(k).fit(X)


@pytest.mark.parametrize("param,value,expected", [
    ("solver", "lbfgs", "'bpp', 'cd', 'hals', 'mu'"),
    ("init", "pca", "'random', 'nndsvd', 'nndsvda', 'nndsvdar', 'custom'"),
    ("beta_loss", "hinge", "'frobenius', 'kullback-leibler', 'itakura-saito'"),
    ("tol", -1, "non-negative number"),
    ("max_iter", 0, "positive integer"),
    ("alpha_W", -0.1, "non-negative"),
    ("alpha_H", "different", "'same'"),
    ("l1_ratio", 1.5, r"\[0, 1\]"),
    ("random_state", "seed", "RandomState"),
    ("callback", 3, "callable"),
    ("chunks", "big", "'auto'"),
])
def test_bad_options_list_valid_choices(X, param, value, expected):
    with pytest.raises(ValueError, match=expected):
        NMF(2, **{param: value}).fit(X)


@pytest.mark.parametrize("solver", ["hals", "cd"])
def test_unsupported_loss_for_solver(X, solver):
    with pytest.raises(ValueError, match=f"solver='{solver}' does not support beta_loss='kullback-leibler'.*"
                                         "Supported: solver='hals'"):
        NMF(2, solver=solver, beta_loss="kullback-leibler").fit(X)


def test_custom_init_needs_both_factors(X):
    with pytest.raises(ValueError, match="needs both W and H"):
        NMF(2, init="custom").fit(X, W=np.ones((20, 2)))


@pytest.mark.parametrize("W_shape,H_shape,which", [((20, 3), (2, 15), "W"), ((20, 2), (2, 14), "H")])
def test_custom_factors_of_wrong_shape(X, W_shape, H_shape, which):
    with pytest.raises(ValueError, match=f"wrong shape passed to NMF \\(input {which}\\)"):
        NMF(2, init="custom").fit(X, W=np.ones(W_shape), H=np.ones(H_shape))


def test_custom_factors_with_negatives(X):
    W = np.ones((20, 2))
    W[0, 0] = -1
    with pytest.raises(ValueError, match=r"Negative values in the data passed to NMF \(input W\)"):
        NMF(2, init="custom").fit(X, W=W, H=np.ones((2, 15)))


def test_factors_given_without_custom_init_warn(X):
    with pytest.warns(RuntimeWarning, match="provided W or H are ignored"):
        NMF(2, init="random", max_iter=2, tol=0).fit(X, W=np.ones((20, 2)), H=np.ones((2, 15)))


def test_bad_chunks(X):
    with pytest.raises(ValueError, match="Invalid chunks"):
        NMF(2, chunks=(7, 0)).fit(X)


def test_inverse_transform_shape(X):
    model = NMF(2, max_iter=2, tol=0).fit(X)
    with pytest.raises(ValueError, match=r"shape \(n_samples, 2\)"):
        model.inverse_transform(np.ones((4, 3)))
