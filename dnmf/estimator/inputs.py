"""The estimator's checks of what ``fit`` and ``transform`` are given, with scikit-learn's messages.

In-memory input (NumPy, SciPy sparse, pandas, lists) goes through scikit-learn's ``check_array``: numeric
object-dtype arrays are converted, complex data, 1-D and empty input are refused with scikit-learn's wording, and
integers become float64 while float32 stays float32. Dask arrays, Zarr arrays and store paths pass unchanged: the
one validating pass over them is :func:`dnmf.data.first_pass.first_pass`, on the cluster. Every message contains
scikit-learn's phrase (its tests and estimator checks match on it) followed by what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    check_array,
)

from dnmf.estimator.preparation import in_memory

__all__ = ["check_X"]


def _check_form(X: Any) -> None:
    """scikit-learn's refusals of complex, non-2-D and empty arrays, worded as ``check_array`` words them, with
    dnmf's advice and without printing the array; other array-likes are left to ``check_array``."""
    if not hasattr(X, "shape"):
        return
    if hasattr(X, "dtype") and np.iscomplexobj(X):
        raise ValueError("Complex data not supported: NMF needs real, non-negative values. Pass np.abs(X) or X.real.")
    shape = tuple(X.shape)
    if len(shape) == 1:
        raise ValueError(f"Expected 2D array, got 1D array instead (shape {shape}). Reshape your data either using "
                         "array.reshape(-1, 1) if your data has a single feature or array.reshape(1, -1) if it "
                         "contains a single sample.")
    if len(shape) != 2:
        raise ValueError(f"Found array with dim {len(shape)}. NMF expected <= 2: pass a 2-D matrix (shape "
                         f"{shape} given), e.g. X.reshape(len(X), -1).")
    for axis, what in enumerate(("sample(s)", "feature(s)")):
        if shape[axis] == 0:
            raise ValueError(f"Found array with 0 {what} (shape={shape}) while a minimum of 1 is required by NMF. "
                             "The input matrix is empty: NMF needs at least one row and one column.")


def _first_at(X: Any, flagged: Callable[[np.ndarray], np.ndarray]) -> str:
    """Where the first value of ``X`` that ``flagged`` marks is."""
    if sp.issparse(X):
        coo = X.tocoo()
        i = int(np.argmax(flagged(coo.data)))
        return f"row {coo.row[i]}, column {coo.col[i]}"
    row, column = np.argwhere(flagged(X))[0]
    return f"row {row}, column {column}"


def check_X(estimator: Any, X: Any, *, reset: bool, mask: Any = None) -> Any:
    """``X`` as the estimator passes it on, after scikit-learn's checks; records or checks its feature names.

    Parameters
    ----------
    estimator : NMF
        Its ``feature_names_in_`` is set (``reset=True``, in ``fit``) or checked against (in ``transform``), as
        scikit-learn does; ``transform`` also checks the number of features of in-memory input.
    X : any input :meth:`dnmf.NMF.fit` accepts
    reset : bool
        Whether this is a fit.
    mask : optional
        The observation mask: with one, NaN may stand at unobserved entries (checked later, with the mask).

    Returns
    -------
    X : ndarray or sparse matrix (float32 or float64) for in-memory input, else ``X`` itself

    Raises
    ------
    ValueError
        For complex, non-numeric, 1-D or empty input, for NaN or infinity (NaN allowed with ``missing='nan'`` or
        a mask), and for negative values.
    """
    _check_feature_names(estimator, X, reset=reset)
    if not in_memory(X):
        return X
    _check_form(X)
    X = check_array(X, accept_sparse=("csr", "csc", "coo"), dtype=[np.float64, np.float32], ensure_all_finite=False,
                    input_name="X", estimator=estimator)
    if not reset:
        _check_n_features(estimator, X, reset=False)
    values = X.data if sp.issparse(X) else X
    allow_nan = estimator.missing == "nan" or mask is not None
    if not np.isfinite(values.sum(dtype=np.float64)):
        fix = ("NMF needs finite values at observed entries." if allow_nan else
               "NMF needs finite values: pass missing='nan' (NaN missing; a sparse X's unstored entries stay zeros) or "
               "fit(X, mask=...) to treat entries as "
               "missing, or impute or drop them first.")
        for found, what in ((np.isinf, f"infinity or a value too large for {X.dtype!r}"), (np.isnan, "NaN")):
            bad = found(values)
            if bad.any() and not (found is np.isnan and allow_nan):
                raise ValueError(f"Input X contains {what} ({int(bad.sum())} value(s), first at "
                                 f"{_first_at(X, found)}). {fix}")
    smallest = np.fmin.reduce(values, axis=None, initial=np.inf)
    if smallest < 0:
        raise ValueError(f"Negative values in data passed to NMF (input X): the smallest is {smallest:g}, first at "
                         f"{_first_at(X, lambda v: v < 0)}. NMF needs non-negative data: shift or clip it first.")
    return X


