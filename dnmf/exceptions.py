"""Warnings and errors of dnmf.

scikit-learn is imported here only on demand: importing it costs a process about 125 MB, and every Dask worker of
a fit imports ``dnmf`` (and so this module) when it unpickles its first task. :class:`ConvergenceWarning` is
therefore looked up lazily (PEP 562): the first ``dnmf.exceptions.ConvergenceWarning`` (or
``dnmf.ConvergenceWarning``) imports ``sklearn.exceptions`` and returns
:class:`dnmf.estimator.sklearn.ConvergenceWarning`, a subclass of scikit-learn's, so that scikit-learn's warning
filters catch dnmf's warning. Only the process that runs the fit loop (the client) emits it, so only the client
imports scikit-learn; code that emits it must look it up at that moment, not at import.
"""

__all__ = ["ClusterLostError", "ConvergenceWarning", "DivergenceError", "NotFittedError"]


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before ``fit``."""


class ClusterLostError(RuntimeError):
    """The connection to the Dask scheduler was lost during a fit; a checkpointed run can be resumed."""


class DivergenceError(ValueError):
    """The loss stopped being finite during a fit (overflowing data or penalties): nothing of the fit is kept."""


def __getattr__(name: str) -> type:
    if name == "ConvergenceWarning":
        from dnmf.estimator.sklearn import ConvergenceWarning

        return ConvergenceWarning
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
