"""The scikit-learn face of dnmf: :class:`NMF`."""

from dnmf.estimator.nmf import NMF

__all__ = ["NMF"]
