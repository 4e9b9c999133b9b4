"""dnmf: distributed Non-negative Matrix Factorization on Dask."""

from dnmf.estimator import NMF
from dnmf.exceptions import ConvergenceWarning, NotFittedError

__all__ = ["NMF", "ConvergenceWarning", "NotFittedError", "__version__"]

__version__ = "0.1.0"
