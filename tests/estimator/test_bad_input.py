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
    where = "block" if kind == "dask" else "row 12, column 9"
    with pytest.raises(ValueError, match=rf"Negative values in data passed to NMF \(input X\).*-0\.5.*{where}"):
        NMF(2).fit(data)


@pytest.mark.parametrize("value,word", [(np.nan, "NaN"), (np.inf, "infinity")])
@pytest.mark.parametrize("sparse", [False, True])
def test_nan_and_inf(X, value, word, sparse):
    X = X.copy()
    X[3, 4] = value
    with pytest.raises(ValueError, match=f"Input X contains {word}.*\\(1 value.*row 3, column 4.*impute"):
        NMF(2).fit(sp.csr_matrix(X) if sparse else X)


@pytest.mark.parametrize("value,word", [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite")])
def test_nan_and_inf_on_the_cluster(X, value, word):
    X = X.copy()
    X[3, 4] = value
    with pytest.raises(ValueError, match=f"contains 1 {word} value.*rows 0–.*impute"):
        NMF(2).fit(da.from_array(X, chunks=5))


@pytest.mark.parametrize("shape", [(0, 5), (5, 0)])
def test_empty(shape):
    with pytest.raises(ValueError, match=r"Found array with 0 (sample|feature)\(s\).*required by NMF.*empty"):
        NMF(2).fit(np.zeros(shape))


@pytest.mark.parametrize("array,expected", [(np.ones(5), "Expected 2D array, got 1D array instead.*reshape"),
                                            (np.ones((2, 3, 4)), "Found array with dim 3.*reshape")])
def test_not_two_dimensional(array, expected):
    with pytest.raises(ValueError, match=expected):
        NMF(2).fit(array)


def test_complex_dtype():
    with pytest.raises(ValueError, match="Complex data not supported.*np.abs"):
        NMF(2).fit(np.ones((3, 3), dtype=complex))


def test_numeric_object_array_is_converted(X):
    model = NMF(2, init="nndsvd", max_iter=20, tol=0, random_state=0)
    W = model.fit_transform(X.astype(object))
    assert W.dtype == np.float64
    np.testing.assert_allclose(W, model.fit_transform(X))


def test_non_numeric_object_array(X):
    with pytest.raises(ValueError, match="could not convert string to float"):
        NMF(2).fit(np.array([["a", 1.0], [2.0, 3.0]], dtype=object))


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
    with pytest.raises(ValueError, match=f"Invalid beta_loss parameter: solver '{solver}' does not handle "
                                         "beta_loss = 'kullback-leibler'.*Supported: solver='hals'"):
        NMF(2, solver=solver, beta_loss="kullback-leibler").fit(X)


def test_custom_init_needs_both_factors(X):
    with pytest.raises(ValueError, match="needs both W and H"):
        NMF(2, init="custom").fit(X, W=np.ones((20, 2)))


@pytest.mark.parametrize("W_shape,H_shape,expected", [
    ((20, 3), (2, 15), r"wrong second dimension passed to NMF \(input W\). Expected 2, but got 3.*\(20, 2\)"),
    ((19, 2), (2, 15), r"wrong first dimension passed to NMF \(input W\). Expected 20, but got 19"),
    ((20, 2), (2, 14), r"wrong second dimension passed to NMF \(input H\). Expected 15, but got 14.*\(2, 15\)"),
])
def test_custom_factors_of_wrong_shape(X, W_shape, H_shape, expected):
    with pytest.raises(ValueError, match=expected):
        NMF(2, init="custom").fit(X, W=np.ones(W_shape), H=np.ones(H_shape))


def test_custom_factors_with_negatives(X):
    W = np.ones((20, 2))
    W[0, 0] = -1
    with pytest.raises(ValueError, match=r"Negative values in data passed to NMF \(input W\)"):
        NMF(2, init="custom").fit(X, W=W, H=np.ones((2, 15)))


def test_custom_factor_full_of_zeros(X):
    with pytest.raises(ValueError, match=r"Array passed to NMF \(input H\) is full of zeros.*positive entries"):
        NMF(2, init="custom").fit(X, W=np.ones((20, 2)), H=np.zeros((2, 15)))


@pytest.mark.parametrize("W_dtype,H_dtype", [(np.float64, np.float32), (np.float32, np.float64)])
def test_custom_factors_of_another_dtype(X, W_dtype, H_dtype):
    with pytest.raises(TypeError, match="H and W should have the same dtype as X.*astype"):
        NMF(2, init="custom").fit(X, W=np.ones((20, 2), dtype=W_dtype), H=np.ones((2, 15), dtype=H_dtype))


def test_custom_factors_of_the_dtype_of_float32_input(X):
    X = X.astype(np.float32)
    model = NMF(2, init="custom", max_iter=5, tol=0)
    W = model.fit_transform(X, W=np.ones((20, 2), dtype=np.float32), H=np.ones((2, 15), dtype=np.float32))
    assert W.dtype == model.components_.dtype == np.float32


@pytest.mark.parametrize("init", ["nndsvd", "nndsvda", "nndsvdar"])
def test_nndsvd_rank_limit(X, init):
    with pytest.raises(ValueError, match=f"init = '{init}' can only be used when n_components <= "
                                         r"min\(n_samples, n_features\) = 15.*init='random'"):
        NMF(16, init=init).fit(X)


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
