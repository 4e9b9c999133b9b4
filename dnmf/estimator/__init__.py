"""The scikit-learn face of dnmf: :class:`NMF`.

``NMF`` is imported on first use (PEP 562), so that a Dask worker can import this package's scikit-learn-free
modules (:mod:`dnmf.estimator.fitting`, which runs a rank survey's fits there) without importing scikit-learn.
"""

__all__ = ["NMF"]


def __getattr__(name: str) -> object:
    if name == "NMF":
        from dnmf.estimator.nmf import NMF

        return NMF
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
