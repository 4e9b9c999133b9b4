"""How a rank survey runs its fits: whole on the workers, one task per fit, or each fit's iterations across the
cluster, several at a time (see :func:`dnmf.estimator.rank.select_rank`, whose ``fits_on_workers`` chooses).

A small training input is cheapest fitted whole on a worker: the worker runs the in-process executor
(:func:`dnmf.estimator.fitting.fit_whole`), so that an iteration costs its arithmetic and no scheduler round trip,
and the survey's fits run side by side on every worker thread. A larger one is fitted by :class:`dnmf.NMF` with
its blocks across the cluster.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dask.array as da
import numpy as np

from dnmf import exceptions
from dnmf.core.grid import nbytes_of
from dnmf.estimator.fitting import FitOutcome, fit_whole
from dnmf.estimator.training import held_out_loss_of, training_input, training_nbytes
from dnmf.runtime.client import active_client, cluster_memory, n_workers, worker_memory

__all__ = ["WHOLE_FIT_COPIES", "fit_across_cluster", "fit_on_workers", "fits_at_once", "whole_fits_on_workers"]


def fits_at_once(concurrent_fits: int | None, n_ranks: int, training: Any) -> int:
    """How many fits of one replicate run at once: ``concurrent_fits`` if given; else, with a distributed client,
    two per worker while a copy of the training input per fit takes at most a quarter of the cluster's memory
    (a small fit waits on round trips more than it computes); else one (in this process, one fit already uses
    every core)."""
    if concurrent_fits is not None:
        return min(int(concurrent_fits), n_ranks)
    if active_client() is None:
        return 1
    nbytes = nbytes_of(training)
    return max(1, min(n_ranks, 2 * n_workers(), int(cluster_memory() / 4 // max(1, nbytes))))


#: With a distributed client, a survey runs each fit whole on a worker (:func:`dnmf.estimator.fitting.fit_whole`)
#: when X and the training input, once per worker, and about :data:`WHOLE_FIT_COPIES` copies of it per fit running
#: there take at most half of the smallest worker's ``memory_limit``.
WHOLE_FIT_COPIES = 1.5


def whole_fits_on_workers(fits_on_workers: bool | None, X: Any, holdout: dict[str, Any] | None = None) -> bool:
    """Whether the survey's fits run whole on workers, one task each (see :func:`select_rank`), for the training
    input of ``holdout``."""
    client = active_client()
    if client is None:
        if fits_on_workers:
            raise ValueError("fits_on_workers=True needs an active distributed Client, whose workers run the fits: "
                             "create one (distributed.Client(...)) or leave fits_on_workers=None.")
        return False
    if fits_on_workers is not None:
        return bool(fits_on_workers)
    memory, threads = worker_memory(), max(client.nthreads().values(), default=1)
    nbytes = training_nbytes(X, **(holdout or {}))
    return memory is not None and nbytes * (2 + WHOLE_FIT_COPIES * threads) <= memory / 2


def fit_on_workers(X: Any, ranks: list[int], held: list[dict[str, Any]],
                   parameters: Callable[[int, int], dict[str, Any]], *, resume: bool,
                   beta: float) -> list[list[tuple[Any, float, int]]]:
    """Every fit of the survey as one task on the workers (:func:`_fit_and_score`), all submitted at once, larger
    ranks first: per replicate, per rank, ``(fitted NMF, test error, held-out count)``. X and each replicate's
    training input are sent to every worker once."""
    from dnmf.estimator.nmf import NMF

    client = active_client()
    X = X.compute() if isinstance(X, da.Array) else X
    survey = uuid.uuid4().hex
    X_there = client.scatter(X, broadcast=True, hash=False)
    futures = []
    for r, holdout in enumerate(held):
        training = client.scatter(training_input(X, **holdout), broadcast=True, hash=False)
        futures.append([client.submit(_fit_and_score, X_there, training, NMF(**parameters(k, r)).get_params(),
                                      resume=resume, holdout=holdout, beta=beta,
                                      key=f"dnmf-survey-fit-{r}-{k}-{survey}", priority=k) for k in ranks])
    fitted = []
    for r, row in enumerate(futures):
        replicate = []
        for k, future in zip(ranks, row):
            model = NMF(**parameters(k, r))
            outcome, error, count = future.result()
            model._keep(outcome)
            replicate.append((model, error, count))
        fitted.append(replicate)
    return fitted


def _fit_and_score(X: Any, training: Any, params: dict[str, Any], *, resume: bool, holdout: dict[str, Any],
                   beta: float) -> tuple[FitOutcome, float, int]:
    """One task of a survey on workers: the fit of ``training``, and its loss at the held-out entries of X."""
    outcome = fit_whole(training, params, resume=resume)
    return (outcome, *held_out_loss_of(X, outcome.W, outcome.H, beta=beta, **holdout))


def fit_across_cluster(X: Any, ranks: list[int], r: int, holdout: dict[str, Any],
                       parameters: Callable[[int, int], dict[str, Any]], *, resume: bool, beta: float,
                       concurrent_fits: int | None) -> list[tuple[Any, float, int]]:
    """Replicate ``r``'s fits, each an :class:`dnmf.NMF` fit whose iterations run on the cluster (or in this
    process without a client), :func:`fits_at_once` at a time: per rank, ``(fitted NMF, test error,
    held-out count)``."""
    from dnmf.estimator.nmf import NMF

    training = training_input(X, **holdout)

    def fit(k: int) -> tuple[Any, float, int]:
        model = NMF(**parameters(k, r))
        W = model.fit_transform(training, resume=resume)
        return (model, *held_out_loss_of(X, np.asarray(W), np.asarray(model.components_), beta=beta, **holdout))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", exceptions.ConvergenceWarning)
        return _map(fit, ranks, fits_at_once(concurrent_fits, len(ranks), training))


def _map(fit: Callable[[int], Any], ranks: list[int], at_once: int) -> list[Any]:
    """``[fit(k) for k in ranks]``, ``at_once`` at a time on threads of this process: the fits share the cluster,
    each submitting its own iterations, so that one fit's round trips leave the workers to the others."""
    if at_once <= 1:
        return [fit(k) for k in ranks]
    with ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="dnmf-rank") as pool:
        return list(pool.map(fit, ranks))
