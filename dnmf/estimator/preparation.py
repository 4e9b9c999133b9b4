"""What a fit is given, made ready for the engine: the input placed and checked in its one pass, the runtime,
the objective, custom starting factors.

Nothing here imports scikit-learn, so that a whole fit can run on a Dask worker
(:func:`dnmf.estimator.fitting.fit_prepared`); scikit-learn's own checks of what the estimator is given are in
:mod:`dnmf.estimator.inputs`.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, NamedTuple

import dask.array as da
import numpy as np
import scipy.sparse as sp

from dnmf.core import products
from dnmf.core.grid import planning_rank
from dnmf.core.imputation import ImputedFrobenius
from dnmf.core.objectives import BetaDivergence, Frobenius, MaskedFrobenius, Objective
from dnmf.core.rules import SOLVERS, canonical_solver, rule_for
from dnmf.core.seam import Runtime
from dnmf.data.first_pass import first_pass
from dnmf.data.masks import mask_input, n_observed
from dnmf.data.matrix import InputMatrix, MatrixStats, as_input_matrix, fits_in_memory, matrix_stats
from dnmf.data.store import open_matrix, read_labels, stored_nnz
from dnmf.estimator.parameters import BETA_VALUES

__all__ = ["PreparedInput", "custom_factors", "in_memory", "objective_for", "prepare_input", "rule_of", "runtime_for"]


def in_memory(X: Any) -> bool:
    """Whether ``X`` is held in this process already (NumPy, SciPy, array-likes), not a store or a Dask or Zarr
    array."""
    return not (isinstance(X, (str, os.PathLike, da.Array)) or type(X).__module__.split(".")[0] == "zarr")


def runtime_for(X: Any) -> Runtime:
    """The runtime a fit of ``X`` (a store's path, or an array) runs on."""
    from dnmf.runtime import current

    return current(in_memory_input=in_memory(X))


class PreparedInput(NamedTuple):
    """An input after its one pass (see :func:`prepare_input`)."""

    matrix: InputMatrix
    stats: MatrixStats
    labels: tuple[Any, Any]
    runtime: Runtime
    digests: list[str] | None
    cache: Any = None  # where a streamed store's blocks are kept on the workers (Runtime.local_cache)


def prepare_input(X: Any, mask: Any = None, *, chunks: Any = "auto", nan_is_missing: bool = False,
                  keeps_fingerprint: bool = False, rank: Any = None, runtime: Runtime | None = None) -> PreparedInput:
    """The chunked, validated matrix (held in memory if it fits) with its observation mask, its statistics, its
    labels if it came from a store, the runtime the fit runs on and the digests of its fingerprint (where the fit
    keeps one, ``keeps_fingerprint``, or on a cluster), all from one pass over X (see :mod:`dnmf.data.first_pass`).
    A store too large to hold is read through the runtime's :meth:`~dnmf.core.seam.Runtime.local_cache`, which
    the caller drops when the fit ends.
    A mask that hides nothing is dropped, so that the fit is the unmasked one. ``rank`` (the fit's
    ``n_components``) sizes the default grid's factor panels (:func:`dnmf.core.grid.planning_rank`); ``runtime``
    replaces the one :func:`runtime_for` picks."""
    labels: tuple[Any, Any] = (None, None)
    nnz, cache = None, None
    runtime = runtime_for(X) if runtime is None else runtime
    with planning_rank(rank):
        if isinstance(X, (str, os.PathLike)):
            labels, nnz = read_labels(X), stored_nnz(X)
            url, X = X, open_matrix(X, chunks=chunks)
            if not fits_in_memory(X, nnz, runtime) and (cache := runtime.local_cache()) is not None:
                X = open_matrix(url, chunks=chunks, cache=cache)
        matrix = mask_input(as_input_matrix(X, chunks=chunks, runtime=runtime), mask, nan_is_missing=nan_is_missing)
    # The fingerprint hashes A's corner blocks, which is costly for one large block held in this process: there it
    # is made only where a checkpoint or a result store keeps it.
    matrix, stats, digests = first_pass(matrix, runtime, what="data passed to NMF (input X)",
                                        with_digests=keeps_fingerprint or runtime.name != "in-process", nnz=nnz)
    if matrix.masked and n_observed(matrix, stats) == stats.shape[0] * stats.shape[1]:
        matrix = replace(matrix, masked=False, holes=False)
    return PreparedInput(matrix, stats, labels, runtime, digests, cache)


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
        implicit_zeros = ((not matrix.masked or matrix.holes) and sp.issparse(getattr(matrix.array, "_meta", None))
                          and stats.n_stored < stats.shape[0] * stats.shape[1])
        if implicit_zeros or stats.min_stored <= 0:
            where = (" Sparse X has implicit zeros: pass it dense with small positive values, or declare the "
                     "unstored entries missing with mask=." if implicit_zeros else "")
            raise ValueError("When beta_loss <= 0 and X contains zeros, the solver may diverge. Please add "
                             f"small values to X, or use a positive beta_loss.{where}")
    if beta == 2 and not matrix.masked:
        return Frobenius(stats.norm_squared)
    if model.mask_updates == "impute":
        if beta != 2:
            raise ValueError("mask_updates='impute' fits the Frobenius loss over the observed entries; got "
                             f"beta_loss={model.beta_loss!r}. Use beta_loss='frobenius', or mask_updates='exact'.")
        if sp.issparse(getattr(matrix.array, "_meta", None)) and not matrix.holes:
            raise ValueError("mask_updates='impute' fills the missing entries of a dense X (NaN, or a mask on dense "
                             "X) or the stored NaN of a sparse X (missing='nan'); this X is sparse with a mask, its "
                             "unstored entries missing. Pass it dense, or use mask_updates='exact'.")
        return ImputedFrobenius(stats.norm_squared, holes=matrix.holes)
    if beta == 2 and SOLVERS[canonical_solver(model.solver)].masked_rule is not None:
        return MaskedFrobenius(stats.norm_squared, holes=matrix.holes)
    return BetaDivergence(beta, masked=matrix.masked, holes=matrix.holes)


def rule_of(model: Any, matrix: InputMatrix, objective: Objective) -> Any:
    """The update rule ``objective`` runs for ``model``'s solver: a masked rule where the objective solves the
    observed entries exactly, the plain one where it fits a filled A (:class:`ImputedFrobenius`)."""
    return rule_for(model.solver, model.beta_loss,
                    masked=matrix.masked and not isinstance(objective, ImputedFrobenius))
