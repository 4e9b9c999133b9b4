"""``dnmf.NMF``: scikit-learn's ``NMF`` API over the distributed engine.

The estimator validates its parameters once, turns the input into a chunked Dask array, draws the initial factors,
hands everything to :func:`dnmf.core.engine.run` and keeps the fitted attributes. NumPy and SciPy input give NumPy
output; Dask and Zarr input give Dask output that stays on the cluster.

Around it: :mod:`dnmf.estimator.inputs` checks what ``fit`` and ``transform`` are given (scikit-learn's checks and
messages); :mod:`dnmf.estimator.preparation` places the input and checks the custom factors;
:mod:`dnmf.estimator.fitting` runs one fit, free of scikit-learn; :mod:`dnmf.estimator.sklearn` holds the
scikit-learn base classes and tags;
:mod:`dnmf.estimator.fitted` the fitted attributes and result stores; :mod:`dnmf.estimator.parameters` the
parameter table.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from dnmf.core import engine
from dnmf.core import initialization as initialization
from dnmf.core.engine import IterationRecord
from dnmf.core.graph import counting_passes
from dnmf.core.objectives import Objective
from dnmf.core.rules import canonical_solver
from dnmf.core.seam import Runtime
from dnmf.data.masks import n_observed
from dnmf.data.matrix import InputMatrix, MatrixStats, as_input_matrix
from dnmf.estimator.fitted import FittedState
from dnmf.estimator.fitting import FitOutcome, fit_prepared
from dnmf.estimator.inputs import check_X
from dnmf.estimator.preparation import (PreparedInput, custom_factors, objective_for, prepare_input, rule_of,
                                         runtime_for)
from dnmf.estimator.parameters import (
    n_components_for,
    penalties_for,
    validate_parameters,
)
from dnmf.estimator.restarts import fit_with_restarts, raise_if_lost
from dnmf.estimator.sklearn import Factorization
from dnmf.runtime import dashboard
from dnmf.view.verbose import iteration_log

__all__ = ["NMF"]

logger = logging.getLogger("dnmf")


class NMF(FittedState, Factorization):
    """Non-negative Matrix Factorization on a Dask cluster, with scikit-learn's API.

    Finds non-negative ``W`` (m × k) and ``H`` (k × n) whose product approximates the non-negative matrix ``X``
    by minimising ``½‖X − WH‖²_F + alpha_W·(l1_ratio·n·‖W‖₁ + ½(1 − l1_ratio)·n·‖W‖²_F) + alpha_H·(...)``
    exactly as :class:`sklearn.decomposition.NMF` does.

    Parameters
    ----------
    n_components : int, 'auto' or None, default='auto'
        Number of components ``k``. ``None`` keeps all features; ``'auto'`` takes ``k`` from custom ``W``/``H``
        when given, else keeps all features.
    init : {'random', 'nndsvd', 'nndsvda', 'nndsvdar', 'custom'} or None, default=None
        Initialisation. ``None`` means ``'nndsvda'`` if ``k <= min(m, n)``, else ``'random'``. The SVD behind
        the NNDSVD variants is computed on the cluster by a randomized range finder.
    solver : {'hals', 'cd', 'mu', 'bpp'}, default='hals'
        Local update rule: ``'hals'`` (fast HALS, i.e. coordinate descent; ``'cd'`` is an alias), ``'mu'``
        (Lee–Seung multiplicative update) or ``'bpp'`` (alternating non-negative least squares, each step solved
        exactly by block principal pivoting: fewer, dearer iterations).
    beta_loss : float or {'frobenius', 'kullback-leibler', 'itakura-saito'}, default='frobenius'
        The β-divergence minimised, with scikit-learn's meaning (2, 1 and 0 for the names). Other than
        ``'frobenius'`` it needs ``solver='mu'``; β ≤ 0 needs strictly positive data, so no sparse input. On sparse
        input, KL costs O(nnz·k) per pass; other β ∉ {1, 2} cost O(m·n·k), as in scikit-learn.
    missing : {None, 'nan'}, default=None
        ``'nan'``: NaN in dense input mark missing entries. The fit then minimises the loss over the observed
        entries only (see ``mask`` in :meth:`fit`), with any solver.
    mask_updates : {'exact', 'impute'}, default='exact'
        How a fit with missing entries steps: ``'exact'`` solves every row of W and column of H on its observed
        entries (each with its own Gram for ``'hals'`` and ``'bpp'``); ``'impute'`` (Frobenius loss, dense X) fills
        the missing entries with the current ``WH`` and takes a plain step (EM): the same fixed points, a
        little less descent per iteration, and an iteration that costs little more than an unmasked one at any
        ``k`` (see :mod:`dnmf.core.imputation`).
    tol : float, default=1e-4
        Every 10 iterations, stop when ``‖X − WH‖`` fell by less than ``tol`` times its value at initialisation
        since the last check.
    max_iter : int, default=200
        Most iterations before stopping with a :class:`~dnmf.exceptions.ConvergenceWarning`.
    random_state : int, RandomState, Generator or None, default=None
        Seed for ``'random'`` and ``'nndsvdar'`` initialisation and for the randomized SVD. With the same seed and
        chunking, runs are reproducible.
    alpha_W, alpha_H, l1_ratio : float, default=0.0, 'same', 0.0
        Regularisation, with scikit-learn's meaning and scaling.
    verbose : int, default=0
        ``0`` is silent. ``1`` draws a progress bar per fit (:mod:`dnmf.view.progress`: iteration, loss, relative
        improvement and time left; a widget in Jupyter with ``dnmf[notebook]`` installed) and writes the dashboard
        link above it when a ``Client`` is active. ``2`` also logs every iteration to the ``dnmf`` logger (stderr if
        logging is not configured).
    callback : callable, default=None
        Called as ``callback(record)`` after every iteration with a :class:`dnmf.IterationRecord`: ``iteration``,
        ``loss`` (``‖X − WH‖_F``), ``seconds``, and the persisted factors ``W`` and ``H`` as lazy Dask arrays.
        Raising ``StopIteration`` in it ends the fit after that iteration.
    chunks : 'auto', int or (rows, columns), default='auto'
        Block grid for NumPy, SciPy and Zarr input (see :func:`dnmf.data.matrix.default_grid`). Dask input keeps its own
        chunks unless this is set.
    checkpoint : str or path, default=None
        Folder or URL where W, H and the state of the run are checkpointed between iterations
        (see :mod:`dnmf.data.checkpoint`); ``fit(..., resume=True)`` continues from it.
    checkpoint_every : int or None, default=1
        Checkpoint every this many iterations.
    checkpoint_seconds : float or None, default=None
        Also checkpoint once this many seconds passed since the last checkpoint.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        ``H``.
    n_components_ : int
    reconstruction_err_ : float
        ``‖X − WH‖_F`` at the end of fit: the last entry of ``loss_history_`` where that is known to 1e-6
        relative (see ``loss_resolution_``), else from an exact float64 pass over X's stored entries; for other β,
        scikit-learn's ``sqrt(2·D_β(X | WH))``; with missing values, over the observed entries.
    n_iter_ : int
    n_features_in_ : int
    loss_history_ : list of float
        ``‖X − WH‖_F`` after every iteration, by the trace identity (no extra pass over X), or exactly (from X's
        stored entries, in float64) where the trace identity's value was within its rounding error or a
        convergence check needed it. For other β or with missing values, the same measure as
        ``reconstruction_err_``, from one more pass over X per iteration.
    loss_resolution_ : list of float
        For every entry of ``loss_history_``, an estimate of its rounding error: 0 where it was evaluated exactly.
        In float32 the trace identity resolves about ``sqrt(eps) · ‖X‖``; a value no larger than its resolution
        is noise, and is then evaluated exactly instead.
    converged_ : bool
        Whether ``tol`` was met before ``max_iter``.
    timings_ : dict
        Per iteration: ``seconds_per_iteration`` (wall), ``tasks_per_iteration`` (tasks submitted to the scheduler),
        ``phase_seconds`` (task seconds per phase, ``aht``, ``update``, ``gram``, ``wta``, ``loss``, ``other``, summed
        over workers, and ``graph``, the client's time to build and optimise the graph); ``checkpoint_seconds``
        per checkpoint written. Per fit: ``executor`` (the runtime's name), ``passes_over_a`` (``before_loop``,
        ``loop``, ``total``), ``exact_losses`` (losses evaluated exactly because the trace identity could not
        resolve them) and ``exact_loss_seconds`` (the wall seconds those took).
    """

    def __init__(
        self,
        n_components: int | str | None = "auto",
        *,
        init: str | None = None,
        solver: str = "hals",
        beta_loss: str | float = "frobenius",
        missing: str | None = None,
        mask_updates: str = "exact",
        tol: float = 1e-4,
        max_iter: int = 200,
        random_state: Any = None,
        alpha_W: float = 0.0,
        alpha_H: float | str = "same",
        l1_ratio: float = 0.0,
        verbose: int = 0,
        callback: Callable[[IterationRecord], Any] | None = None,
        chunks: Any = "auto",
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = 1,
        checkpoint_seconds: float | None = None,
    ) -> None:
        self.n_components = n_components
        self.init = init
        self.solver = solver
        self.beta_loss = beta_loss
        self.missing = missing
        self.mask_updates = mask_updates
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.verbose = verbose
        self.callback = callback
        self.chunks = chunks
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds

    # -- validation --------------------------------------------------------------------------------------------

    def _validate_params(self) -> None:
        validate_parameters(self.get_params(deep=False))

    def _n_components(self, n_features: int, W: Any, H: Any) -> int:
        return n_components_for(self, n_features, W, H)

    def _penalties(self, shape: tuple[int, int]) -> engine.Penalties:
        return penalties_for(self, shape)

    def _as_input(self, X: Any, mask: Any = None, *, keeps_fingerprint: bool = False) -> PreparedInput:
        return prepare_input(X, mask, chunks=self.chunks, nan_is_missing=self.missing == "nan",
                             keeps_fingerprint=keeps_fingerprint, rank=self.n_components)

    def _objective(self, matrix: InputMatrix, stats: MatrixStats) -> Objective:
        return objective_for(self, matrix, stats)

    # -- fitting ---------------------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None, W: Any = None, H: Any = None, out: Any = None, resume: bool = False,
            mask: Any = None) -> NMF:
        """Learn the factorization of ``X``.

        Parameters
        ----------
        X : {ndarray, sparse matrix, dask.array.Array, zarr.Array, str, path} of shape (n_samples, n_features)
            Non-negative data, or the path or URL of a matrix store (see :func:`dnmf.open_matrix`).
        y : Ignored
        W : array-like of shape (n_samples, n_components), optional
            Initial W when ``init='custom'``, of X's dtype after conversion (float32 stays, the rest is float64).
        H : array-like of shape (n_components, n_features), optional
            Initial H when ``init='custom'``, of the same dtype; neither may be all zeros.
        out : str or path, optional
            Write the result store there as part of the fit (see :meth:`save`).
        resume : bool, default=False
            Continue from the newest complete checkpoint in ``checkpoint``, after checking that it belongs to this
            input and these parameters. With no checkpoint there, start afresh (and log it).
        mask : {ndarray, sparse matrix, dask.array.Array} of shape (n_samples, n_features), optional
            Non-zero (True) where an entry of ``X`` is observed; the loss is then over observed entries only,
            ``‖M ⊙ (X − WH)‖`` for Frobenius. A sparse mask (ratings data) costs O(nnz(mask)·k) per iteration and
            keeps observed zeros of sparse ``X``; ``hals`` and ``bpp`` also form each row's and column's Gram
            over its observed entries, O(nnz(mask)·k²) for a sparse mask and O(unobserved·k²) for a dense one. A
            mask that hides nothing gives the unmasked fit.

        Returns
        -------
        self
        """
        self.fit_transform(X, W=W, H=H, out=out, resume=resume, mask=mask)
        return self

    def fit_transform(self, X: Any, y: Any = None, W: Any = None, H: Any = None, out: Any = None,
                      resume: bool = False, mask: Any = None) -> Any:
        """Learn the factorization of ``X`` and return ``W``; parameters as in :meth:`fit`.

        Returns
        -------
        W : ndarray or dask.array.Array of shape (n_samples, n_components)
            NumPy for NumPy or SciPy input; a persisted Dask array for Dask or Zarr input.
        """
        self._validate_params()
        X = check_X(self, X, reset=True, mask=mask)
        with iteration_log(self.verbose), dashboard.publishing(self), counting_passes() as self._passes:
            return fit_with_restarts(lambda resume: self._fit_transform(X, W, H, out, resume, mask),
                                     resume=resume, checkpoint=self.checkpoint)

    def _fit_transform(self, X: Any, W: Any, H: Any, out: Any, resume: bool, mask: Any) -> Any:
        prepared = None
        try:
            prepared = self._as_input(X, mask, keeps_fingerprint=self.checkpoint is not None or out is not None)
            return self._fit_placed(prepared, W, H, out, resume)
        except Exception as error:
            raise_if_lost(error, runtime_for(X), self.checkpoint)
            raise
        finally:
            if prepared is not None:
                prepared.runtime.drop_local_cache(prepared.cache)

    def _fit_placed(self, prepared: PreparedInput, W: Any, H: Any, out: Any, resume: bool) -> Any:
        W_out = self._keep(fit_prepared(self, prepared, W, H, resume=resume, passes=self._passes), prepared.labels)
        if out is not None:
            self.save(out)
        return W_out

    def _keep(self, outcome: FitOutcome, labels: tuple[Any, Any] = (None, None)) -> Any:
        """Take a fit's outcome (this estimator's, or one run elsewhere with its parameters) as the fitted
        attributes; returns its W."""
        self.components_ = outcome.H
        self.resumed_from_ = outcome.resumed_from
        self._set_fitted(outcome.W, outcome.column_chunks, labels, **outcome.fitted)
        return outcome.W

    def _custom_factors(self, A: Any, k: int, W: Any, H: Any, runtime: Runtime) -> tuple[Any, Any]:
        return custom_factors(A, k, W, H, runtime)

    def transform(self, X: Any, mask: Any = None) -> Any:
        """Solve for ``W`` with ``H = components_`` fixed, using the same update rule and loss.

        Parameters
        ----------
        X : {ndarray, sparse matrix, dask.array.Array, zarr.Array, str, path} of shape (n_samples, n_features)
        mask : array-like or sparse matrix of shape (n_samples, n_features), optional
            Observed entries, as in :meth:`fit`; with ``missing='nan'``, NaN in dense X are missing too. Each row of
            W then fits that row's observed entries only; a row with none observed gets zeros.

        Returns
        -------
        W : ndarray or dask.array.Array of shape (n_samples, n_components)
        """
        self._check_is_fitted()
        self._validate_params()
        X = check_X(self, X, reset=False, mask=mask)
        prepared = self._as_input(X, mask)
        matrix, stats, runtime = prepared.matrix, prepared.stats, prepared.runtime
        try:
            objective = self._objective(matrix, stats)
            A = matrix.array
            if A.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {A.shape[1]} features, but NMF is expecting {self.n_features_in_} features "
                                 "as input.")
            k = self.n_components_
            H = runtime.hold(as_input_matrix(self.components_.astype(A.dtype, copy=False), chunks=((k,), A.chunks[1]),
                                             runtime=runtime).array)
            solver = canonical_solver(self.solver)
            mean = stats.sum / max(n_observed(matrix, stats), 1)
            start = float(np.sqrt(mean / k)) if solver == "mu" else 0.0
            W0 = initialization.constant_rows(A.chunks[0], k, start, A.dtype, like=A)
            result = engine.run(
                A, W0, H, rule=rule_of(self, matrix, objective), runtime=runtime, objective=objective,
                penalties=self._penalties(A.shape), max_iter=self.max_iter, tol=self.tol, update_h=False,
            )
            return runtime.to_dask(result.W) if matrix.returns_dask else runtime.compute(result.W)[0]
        finally:
            runtime.drop_local_cache(prepared.cache)
