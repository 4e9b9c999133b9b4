"""``dnmf.NMF`` as scikit-learn code uses it: tags, feature names, pandas output, pipelines, grid search, clone and
the warning class."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils import get_tags

import dnmf
from dnmf import NMF


def fast(**kwargs):
    return NMF(**{"n_components": 2, "max_iter": 20, "tol": 0, "random_state": 0, **kwargs})


@pytest.fixture
def frame(rng):
    return pd.DataFrame(rng.random((12, 4)), columns=["a", "b", "c", "d"], index=[f"r{i}" for i in range(12)])


def test_tags():
    tags = get_tags(NMF())
    assert tags.input_tags.positive_only and tags.input_tags.sparse and not tags.input_tags.allow_nan
    assert tags.transformer_tags.preserves_dtype == ["float64", "float32"]
    assert tags.requires_fit
    assert get_tags(NMF(missing="nan")).input_tags.allow_nan


def test_feature_names_from_a_dataframe(frame):
    model = fast().fit(frame)
    assert model.n_features_in_ == 4
    assert list(model.feature_names_in_) == ["a", "b", "c", "d"]
    assert list(model.get_feature_names_out()) == ["nmf0", "nmf1"]
    assert not hasattr(fast().fit(frame.to_numpy()), "feature_names_in_")
    with pytest.raises(ValueError, match="The feature names should match those that were passed during fit"):
        model.transform(frame[["b", "a", "c", "d"]])


def test_pandas_output(frame):
    model = fast().set_output(transform="pandas")
    W = model.fit_transform(frame)
    assert isinstance(W, pd.DataFrame) and list(W.columns) == ["nmf0", "nmf1"] and list(W.index) == list(frame.index)
    assert isinstance(model.transform(frame), pd.DataFrame)


def test_clone_keeps_every_parameter():
    model = NMF(3, solver="mu", beta_loss="kullback-leibler", chunks=(10, 5), callback=print)
    copy = clone(model)
    assert copy is not model and copy.get_params() == model.get_params()
    assert not hasattr(clone(fast().fit(np.ones((4, 3)))), "components_")


def test_pipeline_and_grid_search(rng):
    X = np.vstack([rng.random((10, 6)) * [1, 1, 1, 0, 0, 0], rng.random((10, 6)) * [0, 0, 0, 1, 1, 1]])
    y = np.repeat([0, 1], 10)
    search = GridSearchCV(make_pipeline(fast(), LogisticRegression()), {"nmf__n_components": [1, 2]}, cv=2)
    search.fit(X, y)
    assert search.best_params_ == {"nmf__n_components": 2}
    assert search.best_estimator_[0].components_.shape == (2, 6)


def test_convergence_warning_is_sklearns():
    assert issubclass(dnmf.ConvergenceWarning, ConvergenceWarning)
    assert dnmf.ConvergenceWarning is dnmf.exceptions.ConvergenceWarning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        NMF(2, max_iter=1).fit(np.ones((3, 3)))
    with pytest.warns(ConvergenceWarning, match="Maximum number of iterations 1 reached"):
        NMF(2, max_iter=1).fit(np.ones((3, 3)))


def test_lazy_names_are_listed():
    assert {"NMF", "ConvergenceWarning"} <= set(dnmf.__all__) & set(dir(dnmf))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        dnmf.nothing  # noqa: B018
