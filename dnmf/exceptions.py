"""Warnings and errors of dnmf.

scikit-learn is imported here only on demand: importing it costs a process about 125 MB, and every Dask worker of
a fit imports ``dnmf`` (and so this module) when it unpickles its first task. :class:`ConvergenceWarning` is
therefore made on first use (PEP 562): the first ``dnmf.exceptions.ConvergenceWarning`` (or
``dnmf.ConvergenceWarning``) imports ``sklearn.exceptions`` and defines the class, a subclass of scikit-learn's, so
that scikit-learn's warning filters catch dnmf's warning. Only the process that runs the fit loop (the client)
emits it, so only the client imports scikit-learn; code that emits it must look it up at that moment
(``exceptions.ConvergenceWarning``, as :mod:`dnmf.core.engine` does), not import it at module level.
"""

__all__ = ["ClusterLostError", "ConvergenceWarning", "DivergenceError", "NotFittedError", "StoreError"]


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before ``fit``."""


class ClusterLostError(RuntimeError):
    """The connection to the Dask scheduler was lost during a fit; a checkpointed run can be resumed."""


class DivergenceError(ValueError):
    """The loss stopped being finite during a fit (overflowing data or penalties): nothing of the fit is kept."""


class StoreError(ValueError):
    """A store that is missing, of an unknown layout, inconsistent or damaged."""


def _convergence_warning() -> type:
    from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning

    class ConvergenceWarning(SklearnConvergenceWarning):
        """The solver stopped at ``max_iter`` before meeting ``tol``; a
        :class:`sklearn.exceptions.ConvergenceWarning`, so that scikit-learn's warning filters catch it."""

    ConvergenceWarning.__qualname__ = "ConvergenceWarning"
    return ConvergenceWarning


def __getattr__(name: str) -> type:
    if name == "ConvergenceWarning":
        warning = globals()["ConvergenceWarning"] = _convergence_warning()
        return warning
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
