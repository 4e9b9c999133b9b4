"""Warnings and errors of dnmf."""

from __future__ import annotations

try:  # Let ``pytest.warns(sklearn.exceptions.ConvergenceWarning)`` and sklearn's filters catch ours.
    from sklearn.exceptions import ConvergenceWarning as _SklearnConvergenceWarning
except ImportError:  # pragma: no cover - scikit-learn is optional
    _SklearnConvergenceWarning = UserWarning  # type: ignore[misc,assignment]

__all__ = ["ConvergenceWarning", "NotFittedError"]


class ConvergenceWarning(_SklearnConvergenceWarning):  # type: ignore[misc,valid-type]
    """The solver stopped at ``max_iter`` before meeting ``tol``."""


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before ``fit``."""
