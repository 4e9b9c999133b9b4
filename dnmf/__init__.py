"""dnmf: distributed Non-negative Matrix Factorization on Dask.

:class:`NMF` and :class:`ConvergenceWarning` are built on scikit-learn and are imported on first use (PEP 562), so
that a Dask worker, which imports this package to unpickle its tasks, never imports scikit-learn.
"""

from dnmf.core.engine import IterationRecord
from dnmf.data.ingest import ingest
from dnmf.data.results import Result, load_result
from dnmf.data.store import StoreError, open_matrix, read_labels, save_matrix
from dnmf.exceptions import ClusterLostError, NotFittedError

__all__ = [
    "NMF",
    "ClusterLostError",
    "ConvergenceWarning",
    "IterationRecord",
    "NotFittedError",
    "Result",
    "StoreError",
    "__version__",
    "ingest",
    "load_result",
    "open_matrix",
    "read_labels",
    "save_matrix",
]

__version__ = "0.1.0"

#: Names imported on first use, and the module that defines each.
_LAZY = {"NMF": "dnmf.estimator.nmf", "ConvergenceWarning": "dnmf.exceptions"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
