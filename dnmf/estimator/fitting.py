"""One fit, from its prepared input to its factors: initialisation or resume, the engine's loop with its
checkpoints, and the final error, for any object that carries :class:`dnmf.NMF`'s parameters.

:class:`dnmf.NMF` fits through :func:`fit_prepared` and keeps the :class:`FitOutcome` as its fitted attributes.
:func:`fit_whole` runs the same fit whole in the process that calls it, on the in-process executor: a rank survey
sends it to Dask workers as one task per fit. Nothing here imports scikit-learn, which a worker must not import.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import dask
import numpy as np

from dnmf.core import engine, initialization, products
from dnmf.core.engine import Progress
from dnmf.core.graph import counting_passes
from dnmf.core.rules import canonical_solver
from dnmf.data.checkpoint import open_run
from dnmf.data.fingerprint import fingerprint
from dnmf.data.masks import n_observed, zero_filled
from dnmf.data.matrix import estimated_nbytes
from dnmf.data.results import jsonable
from dnmf.estimator.parameters import (RESULT_PARAMETERS, entropy_of, n_components_for, penalties_for,
                                       recorded_parameters)
from dnmf.estimator.preparation import PreparedInput, custom_factors, objective_for, prepare_input, rule_of
from dnmf.runtime import dashboard
from dnmf.view.progress import ProgressBar, chain_callbacks

__all__ = ["FitOutcome", "fit_prepared", "fit_whole"]

logger = logging.getLogger("dnmf")


@dataclass
class FitOutcome:
    """What a fit found: the factors and what :meth:`dnmf.NMF._set_fitted` keeps of the run.

    Attributes
    ----------
    W : ndarray or dask.array.Array
        NumPy for in-memory input, a persisted Dask array for Dask and Zarr input.
    H : ndarray
    resumed_from : int or None
        The checkpoint's iteration the fit continued from.
    fitted : dict
        The keyword arguments of ``_set_fitted`` after ``W``, the column chunks and the labels.
    column_chunks : tuple of int
        The input's column blocks.
    """

    W: Any
    H: np.ndarray
    resumed_from: int | None
    fitted: dict[str, Any]
    column_chunks: tuple[int, ...]


def fit_prepared(params: Any, prepared: PreparedInput, W: Any, H: Any, *, resume: bool, passes: list[int],
                 warn_unconverged: bool = True) -> FitOutcome:
    """Fit ``prepared`` with the parameters of ``params`` (an :class:`dnmf.NMF`, or anything with its parameter
    attributes), from custom ``W`` and ``H`` if ``init='custom'``, continuing from ``params.checkpoint`` if
    ``resume``; ``passes`` is the pass counter of :func:`dnmf.core.graph.counting_passes`, ``warn_unconverged``
    as in :func:`dnmf.core.engine.run`."""
    matrix, stats, runtime, digests = prepared.matrix, prepared.stats, prepared.runtime, prepared.digests
    objective = objective_for(params, matrix, stats)
    A = matrix.array
    k = n_components_for(params, A.shape[1], W, H)
    method = initialization.resolve_init(params.init, k, A.shape)
    if method != "custom" and (W is not None or H is not None):
        warnings.warn("When init!='custom', provided W or H are ignored. Set init='custom' to use them as "
                      "initialization.", RuntimeWarning, stacklevel=4)
    solver = canonical_solver(params.solver)
    if solver == "mu" and method == "nndsvd":
        warnings.warn("The multiplicative update ('mu') solver cannot update zeros present in the "
                      "initialization, and so leads to poorer results when used jointly with init='nndsvd'. "
                      "You may try init='nndsvda' or init='nndsvdar' instead.", UserWarning, stacklevel=4)
    input_fingerprint = None if digests is None else fingerprint(A, stats, digests)
    recorded = recorded_parameters({name: getattr(params, name) for name in RESULT_PARAMETERS}, RESULT_PARAMETERS)
    run = {"params": recorded, "n_components": k, "init": method, "fingerprint": input_fingerprint}
    store, resumed = open_run(params.checkpoint, resume=resume, run=jsonable(run))
    if resumed is not None:
        W0, H0 = runtime.adopt(resumed.W), runtime.adopt(resumed.H)
        progress = Progress.from_json(resumed.state["progress"])
    elif method == "custom":
        W0, H0, progress = *custom_factors(A, k, W, H, runtime), None
    else:
        W0, H0 = initialization.initialize(zero_filled(matrix), k, method, entropy=entropy_of(params.random_state),
                                           mean=stats.mean, nbytes=estimated_nbytes(A, stats.nnz),
                                           streamed=matrix.streamed, runtime=runtime)
        if matrix.masked:
            scale = np.sqrt(A.shape[0] * A.shape[1] / max(n_observed(matrix, stats), 1)).astype(A.dtype)
            W0, H0 = products.persist(W0 * scale, H0 * scale)
        progress = None
    link = runtime.dashboard_link
    if link:
        logger.info("Dask dashboard: %s", link)
    bar = (ProgressBar(params.max_iter, initial=0 if progress is None else progress.iteration,
                       description=f"dnmf {solver} k={k}", dashboard_link=link) if params.verbose else None)
    passes_before_loop = passes[0]
    try:
        result = engine.run(
            A, W0, H0, rule=rule_of(params, matrix, objective), runtime=runtime,
            objective=objective, stream_input=matrix.streamed,
            penalties=penalties_for(params, A.shape), max_iter=params.max_iter, tol=params.tol,
            callback=chain_callbacks(bar, dashboard.publisher(), params.callback),
            progress=progress,
            checkpoint=None if store is None else store.checkpointer(jsonable(run)),
            checkpoint_every=params.checkpoint_every, checkpoint_seconds=params.checkpoint_seconds,
            warn_unconverged=warn_unconverged,
        )
    finally:
        if bar is not None:
            bar.close()
    passes_in_loop = passes[0] - passes_before_loop
    error = engine.final_error(result.progress)
    exact = [] if error is not None else [objective.exact_loss(A, result.W, result.H)]
    if matrix.returns_dask:
        W_out = runtime.to_dask(result.W)
        H_out, *residual = runtime.compute(result.H, *exact)
    else:
        W_out, H_out, *residual = runtime.compute(result.W, result.H, *exact)
    if residual:
        error = float(np.sqrt(max(float(residual[0]), 0.0)))
    fitted = {"n_iter": result.n_iter, "reconstruction_err": error, "loss_history": list(result.loss_history),
              "converged": result.converged, "loss_resolution": list(result.progress.loss_resolution),
              "fingerprint": input_fingerprint,
              "timings": {"seconds_per_iteration": list(result.progress.seconds_per_iteration),
                          "tasks_per_iteration": list(result.progress.tasks_per_iteration),
                          "checkpoint_seconds": list(result.progress.checkpoint_seconds),
                          "phase_seconds": list(result.progress.phase_seconds), "executor": runtime.name,
                          "passes_over_a": {"before_loop": passes_before_loop, "loop": passes_in_loop,
                                            "total": passes[0]},
                          "exact_losses": result.progress.exact_losses,
                          "exact_loss_seconds": result.progress.exact_loss_seconds}}
    return FitOutcome(W_out, H_out, None if resumed is None else resumed.iteration, fitted, tuple(A.chunks[1]))


def fit_whole(X: Any, params: dict[str, Any], *, resume: bool = False) -> FitOutcome:
    """A whole fit of the in-memory ``X`` in this process, on one thread of the in-process executor, with Dask's
    synchronous scheduler for anything else: what one task of a rank survey runs on a worker. It does not warn
    when ``max_iter`` ends it (``fitted["converged"]`` says so).

    Parameters
    ----------
    X : ndarray or sparse matrix
        Checked already (as :meth:`dnmf.NMF.fit` checks it).
    params : dict
        :class:`dnmf.NMF`'s parameters, as its ``get_params()`` gives them.
    resume : bool
        Continue from ``params["checkpoint"]`` if it holds a checkpoint of this fit.
    """
    from dnmf.runtime.inprocess import InProcess

    spec = SimpleNamespace(**params)
    with dask.config.set({"scheduler": "sync"}), counting_passes() as passes:
        prepared = prepare_input(X, chunks=spec.chunks, nan_is_missing=spec.missing == "nan",
                                 keeps_fingerprint=spec.checkpoint is not None, rank=spec.n_components,
                                 runtime=InProcess(threads=1))
        return fit_prepared(spec, prepared, None, None, resume=resume, passes=passes, warn_unconverged=False)
