"""The estimator's checks of what ``fit`` and ``transform`` are given, with scikit-learn's messages.

In-memory input (NumPy, SciPy sparse, pandas, lists) goes through scikit-learn's ``check_array``: numeric
object-dtype arrays are converted, complex data, 1-D and empty input are refused with scikit-learn's wording, and
integers become float64 while float32 stays float32. Dask arrays, Zarr arrays and store paths pass unchanged: the
one validating pass over them is :func:`dnmf.data.first_pass.first_pass`, on the cluster. Every message contains
scikit-learn's phrase (its tests and estimator checks match on it) followed by what to do.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NamedTuple

import dask.array as da
import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    check_array,
)

from dnmf.core import products
from dnmf.core.grid import planning_rank
from dnmf.core.objectives import BetaDivergence, Frobenius, MaskedFrobenius, Objective
from dnmf.core.rules import SOLVERS, canonical_solver, rule_for
from dnmf.core.seam import Runtime
from dnmf.data.first_pass import first_pass
from dnmf.data.matrix import (
    InputMatrix,
    MatrixStats,
    as_input_matrix,
    mask_input,
    matrix_stats,
    n_observed,
)
from dnmf.data.store import open_matrix, read_labels, stored_nnz
from dnmf.estimator.parameters import BETA_VALUES

__all__ = ["PreparedInput", "check_X", "custom_factors", "objective_for", "prepare_input", "runtime_for"]


def _in_memory(X: Any) -> bool:
    return not (isinstance(X, (str, os.PathLike, da.Array)) or type(X).__module__.split(".")[0] == "zarr")


def runtime_for(X: Any) -> Runtime:
    """The runtime a fit of ``X`` (a store's path, or an array) runs on."""
    from dnmf.runtime import current

    return current(in_memory_input=_in_memory(X))


class PreparedInput(NamedTuple):
    """An input after its one pass (see :func:`prepare_input`)."""

    matrix: InputMatrix
    stats: MatrixStats
    labels: tuple[Any, Any]
    runtime: Runtime
    digests: list[str] | None


def prepare_input(X: Any, mask: Any = None, *, chunks: Any = "auto", nan_is_missing: bool = False,
                  keeps_fingerprint: bool = False, rank: Any = None) -> PreparedInput:
    """The chunked, validated matrix (held in memory if it fits) with its observation mask, its statistics, its
    labels if it came from a store, the runtime the fit runs on and the digests of its fingerprint (where the fit
    keeps one, ``keeps_fingerprint``, or on a cluster), all from one pass over X (see :mod:`dnmf.data.first_pass`).
    A mask that hides nothing is dropped, so that the fit is the unmasked one. ``rank`` (the fit's
    ``n_components``) sizes the default grid's factor panels (:func:`dnmf.core.grid.planning_rank`)."""
    labels: tuple[Any, Any] = (None, None)
    nnz = None
    with planning_rank(rank):
        if isinstance(X, (str, os.PathLike)):
            labels, nnz = read_labels(X), stored_nnz(X)
            X = open_matrix(X, chunks=chunks)
        runtime = runtime_for(X)
        matrix = mask_input(as_input_matrix(X, chunks=chunks, runtime=runtime), mask, nan_is_missing=nan_is_missing)
    # The fingerprint hashes A's corner blocks, which is costly for one large block held in this process: there it
    # is made only where a checkpoint or a result store keeps it.
    matrix, stats, digests = first_pass(matrix, runtime, what="data passed to NMF (input X)",
                                        with_digests=keeps_fingerprint or runtime.name != "in-process", nnz=nnz)
    if matrix.masked and n_observed(matrix, stats) == stats.shape[0] * stats.shape[1]:
        matrix = InputMatrix(matrix.array, matrix.kind)
    return PreparedInput(matrix, stats, labels, runtime, digests)


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
    if not _in_memory(X):
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
               "NMF needs finite values: pass missing='nan' (dense input) or fit(X, mask=...) to treat entries as "
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


def _check_factor(value: Any, shape: tuple[int, int], chunks: tuple[Any, Any], name: str, runtime: Runtime) -> Any:
    whom = f"NMF (input {name})"
    got = tuple(np.shape(value))
    if len(got) != 2:
        raise ValueError(f"Expected 2D array passed to {whom}, got shape {got}: pass an array of shape {shape}.")
    for axis, ordinal in enumerate(("first", "second")):
        if got[axis] != shape[axis]:
            raise ValueError(f"Array with wrong {ordinal} dimension passed to {whom}. Expected {shape[axis]}, but "
                             f"got {got[axis]}. It must have shape {shape} (n_samples, n_components for W; "
                             "n_components, n_features for H).")
    if np.iscomplexobj(value):
        raise ValueError(f"Complex data not supported in {whom}: pass real, non-negative values.")
    factor = runtime.hold(as_input_matrix(value, chunks=chunks, runtime=runtime).array)
    stats = matrix_stats(factor, what=f"data passed to {whom}")
    if stats.sum == 0:
        raise ValueError(f"Array passed to {whom} is full of zeros. Pass a factor with positive entries, or use "
                         "another init.")
    return factor


def _dtype_of(value: Any) -> np.dtype:
    dtype = getattr(value, "dtype", None)
    return np.dtype(dtype) if dtype is not None else np.asarray(value).dtype


def custom_factors(A: Any, k: int, W: Any, H: Any, runtime: Runtime) -> tuple[Any, Any]:
    """``init='custom'``: the given ``W`` and ``H``, checked as scikit-learn checks them, chunked like ``A``, held
    by ``runtime`` and persisted.

    Raises
    ------
    ValueError
        If either is missing, has the wrong shape, negative values or only zeros.
    TypeError
        If their dtype is not ``A``'s (scikit-learn's rule: no silent cast of the starting point).
    """
    if W is None or H is None:
        raise ValueError("init='custom' needs both W and H: pass fit(X, W=W, H=H).")
    m, n = A.shape
    H0 = _check_factor(H, (k, n), ((k,), A.chunks[1]), "H", runtime)
    W0 = _check_factor(W, (m, k), (A.chunks[0], (k,)), "W", runtime)
    if _dtype_of(H) != A.dtype or _dtype_of(W) != A.dtype:
        raise TypeError(f"H and W should have the same dtype as X. Got H.dtype = {_dtype_of(H)} and W.dtype = "
                        f"{_dtype_of(W)}, X.dtype = {A.dtype}. Pass H.astype(X.dtype) and W.astype(X.dtype).")
    return products.persist(W0, H0)


def objective_for(model: Any, matrix: InputMatrix, stats: MatrixStats) -> Objective:
    """What the fit minimises: the Frobenius loss (any solver; over the observed entries for the solvers with a
    masked rule), or the β-divergence and masked β losses (mu).

    Raises
    ------
    ValueError
        For a loss or missing values the solver does not handle, and for β ≤ 0 on data with zeros.
    """
    beta = BETA_VALUES[model.beta_loss] if isinstance(model.beta_loss, str) else float(model.beta_loss)
    rule_for(model.solver, model.beta_loss, masked=matrix.masked)
    if beta <= 0:
        implicit_zeros = (not matrix.masked and sp.issparse(getattr(matrix.array, "_meta", None))
                          and stats.n_stored < stats.shape[0] * stats.shape[1])
        if implicit_zeros or stats.min_stored <= 0:
            where = (" Sparse X has implicit zeros: pass it dense with small positive values, or declare the "
                     "unstored entries missing with mask=." if implicit_zeros else "")
            raise ValueError("When beta_loss <= 0 and X contains zeros, the solver may diverge. Please add "
                             f"small values to X, or use a positive beta_loss.{where}")
    if beta == 2 and not matrix.masked:
        return Frobenius(stats.norm_squared)
    if beta == 2 and SOLVERS[canonical_solver(model.solver)].masked_rule is not None:
        return MaskedFrobenius(stats.norm_squared)
    return BetaDivergence(beta, masked=matrix.masked)
