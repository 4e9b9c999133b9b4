"""What ties :class:`dnmf.NMF` to scikit-learn: its base classes, tags, output names and views.

This is the one module of dnmf that imports scikit-learn at import time (:mod:`dnmf.estimator.inputs` uses its
input checks). Only the client process imports it (see :mod:`dnmf.exceptions`); Dask workers never do.
"""

from __future__ import annotations

import html
import inspect
from typing import Any

import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin

from dnmf.core.products import reconstruct
from dnmf.estimator.parameters import is_real
from dnmf.exceptions import NotFittedError
from dnmf.view import display

__all__ = ["Factorization"]


class Factorization(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """scikit-learn's transformer machinery for a non-negative factorization whose fit sets ``components_``.

    It gives ``get_params``/``set_params`` and ``clone``, ``get_feature_names_out`` (``nmf0``, ``nmf1``, …),
    ``set_output`` and the tags: non-negative input only, sparse input accepted, NaN accepted when
    ``missing='nan'``, float32 and float64 preserved, ``fit`` needed before ``transform``. dnmf's text and HTML
    views (the fit's summary) replace scikit-learn's, and ``inverse_transform`` is ``X @ components_``.
    """

    @property
    def _n_features_out(self) -> int:
        return int(self.components_.shape[0])

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "components_")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = getattr(self, "missing", None) == "nan"
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.requires_fit = True
        return tags

    def __repr__(self) -> str:
        defaults = {name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
                    if name != "self"}
        changed = [f"{name}={value!r}" for name, value in ((name, getattr(self, name)) for name in defaults)
                   if not (value is defaults[name] or (isinstance(value, str) and value == defaults[name])
                           or (is_real(value, -np.inf) and is_real(defaults[name], -np.inf)
                               and value == defaults[name]))]
        constructor = f"NMF({', '.join(changed)})"
        if not hasattr(self, "components_"):
            return constructor
        return f"{constructor}\n  fitted: {display.text_summary(display.summary_of_model(self))}"

    def _repr_html_(self) -> str:
        """Jupyter's view: the fit's summary with its loss curve and the dashboard link, or the parameters before
        fitting."""
        if not hasattr(self, "components_"):
            return f"<pre>{html.escape(repr(self))}</pre>"
        return display.html_card(display.summary_of_model(self))

    def _check_is_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise NotFittedError(
                "This NMF instance is not fitted yet. Call 'fit' with appropriate arguments before using this "
                "estimator."
            )

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._repr_html_()}

    def inverse_transform(self, X: Any) -> Any:
        """``X @ components_``: data back from its transformed form ``W``, every entry of it: with missing values,
        this fills in the unobserved entries.

        Parameters
        ----------
        X : ndarray or dask.array.Array of shape (n_samples, n_components)

        Returns
        -------
        ndarray or dask.array.Array of shape (n_samples, n_features)
        """
        self._check_is_fitted()
        if np.ndim(X) != 2 or np.shape(X)[1] != self.n_components_:
            raise ValueError(f"inverse_transform expects an array of shape (n_samples, {self.n_components_}), "
                             f"got shape {np.shape(X)}.")
        if isinstance(X, da.Array):
            H = da.from_array(self.components_, chunks=((self.n_components_,), self._fit_column_chunks))
            return reconstruct(X.rechunk({1: -1}), H)
        return np.asarray(X) @ self.components_
