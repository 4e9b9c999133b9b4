"""Warnings and errors of dnmf.

scikit-learn is deliberately not imported: it would cost every worker process over 100 MB.
"""

from __future__ import annotations

__all__ = ["ClusterLostError", "ConvergenceWarning", "DivergenceError", "NotFittedError", "StoreError"]


class ConvergenceWarning(UserWarning):
    """The solver stopped at ``max_iter`` before meeting ``tol`` (like scikit-learn's warning of the same name)."""


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before ``fit``."""


class ClusterLostError(RuntimeError):
    """The connection to the Dask scheduler was lost during a fit; a checkpointed run can be resumed."""


class DivergenceError(ValueError):
    """The loss stopped being finite during a fit (overflowing data or penalties): nothing of the fit is kept."""


class StoreError(ValueError):
    """A store that is missing, of an unknown layout, inconsistent or damaged."""
