"""dnmf: distributed Non-negative Matrix Factorization on Dask."""

from dnmf.core.engine import IterationRecord
from dnmf.data.ingest import ingest
from dnmf.data.results import Result, load_result
from dnmf.data.store import StoreError, open_matrix, read_labels, save_matrix
from dnmf.estimator.nmf import NMF
from dnmf.exceptions import ClusterLostError, ConvergenceWarning, NotFittedError

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
