"""Choosing the number of components by cross-validation: :func:`select_rank` and its :class:`RankSelection`.

Each replicate holds out a random ``test_fraction`` of the entries (:mod:`dnmf.core.holdout`: a hash of the entry
and a seed, never stored), fits every candidate rank on the rest with a masked fit, and measures the loss at the
held-out entries. Replicates differ in their holdout seed; every rank of one replicate sees the same holdout.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dnmf.core.grid import planning_rank
from dnmf.core.holdout import holdout_seeds
from dnmf.core.rules import beta_value, canonical_solver, loss_name, rule_for
from dnmf.data.store import open_matrix
from dnmf.data.survey import SurveyFolder
from dnmf.estimator.survey_fits import fit_across_cluster, fit_on_workers, whole_fits_on_workers
from dnmf.estimator.training import zeros_per_row

__all__ = ["RankSelection", "select_rank", "stability"]

#: With a checkpoint folder, each fit of a survey checkpoints at its end and at most this often on the way.
SURVEY_CHECKPOINT_SECONDS = 60.0

#: The rule :func:`select_rank` chooses ``best_rank`` by, as stored in the result.
RULE = "smallest rank whose mean test error is within one standard deviation (over replicates) of the minimum"


@dataclass
class RankSelection:
    """The outcome of :func:`select_rank`: per-rank test and train errors, and the rank chosen.

    Errors are mean β-divergences per entry (for ``beta_loss='frobenius'``, half the mean squared error): the test
    error over the held-out entries, the train error over the entries the fit saw.

    Attributes
    ----------
    best_rank : int
        The smallest rank whose mean test error is within one standard deviation (over replicates, ``ddof=1``) of
        the smallest mean test error: the simplest model the data cannot tell apart from the best one.
    ranks : list of int
    test_error, test_error_std, train_error : list of float
        Per rank: mean test error and its standard deviation over replicates, and mean train error.
    test_errors : list of list of float
        Per rank, the test error of each replicate.
    n_iter : list of list of int
        Per rank, the iterations each replicate's fit ran.
    test_fraction : float
    seeds : list of int
        The holdout seed of each replicate.
    solver, beta_loss : str
    rule : str
        The rule ``best_rank`` was chosen by, in words.
    stability : list of float or None
        Per rank, how alike the replicates' components are (:func:`stability`: a mean silhouette, 1 when every
        replicate found the same components; None for rank 1). Reported beside the test error, not used by the
        rule: a rank can be stable and still underfit.
    """

    best_rank: int
    ranks: list[int]
    test_error: list[float]
    test_error_std: list[float]
    train_error: list[float]
    test_errors: list[list[float]]
    n_iter: list[list[int]]
    test_fraction: float
    seeds: list[int]
    solver: str
    beta_loss: str
    rule: str = field(default=RULE)
    stability: list[float | None] = field(default_factory=list)

    @property
    def table(self) -> list[dict[str, Any]]:
        """One row per rank: ``rank``, ``test_error``, ``test_error_std``, ``train_error``, ``stability``."""
        stability = self.stability or [None] * len(self.ranks)
        return [{"rank": k, "test_error": t, "test_error_std": s, "train_error": e, "stability": c}
                for k, t, s, e, c in zip(self.ranks, self.test_error, self.test_error_std, self.train_error,
                                         stability)]

    def to_json(self) -> str:
        """The result as a JSON document; :meth:`from_json` reads it back."""
        return json.dumps({**asdict(self), "table": self.table}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> RankSelection:
        """The result :meth:`to_json` wrote."""
        fields = json.loads(text)
        fields.pop("table", None)
        return cls(**fields)

    def plot(self, ax: Any = None) -> Any:
        """Test error (mean ± one standard deviation) and train error against rank, ``best_rank`` marked, and
        the stability of the components on a second axis.

        Needs matplotlib (``pip install 'dnmf[plot]'``); returns the ``Axes``.
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as error:
            raise ImportError("RankSelection.plot needs matplotlib: pip install 'dnmf[plot]'") from error
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        ax.errorbar(self.ranks, self.test_error, yerr=self.test_error_std, marker="o", capsize=3,
                    label="test error")
        ax.plot(self.ranks, self.train_error, marker=".", linestyle="--", label="train error")
        ax.axvline(self.best_rank, color="grey", linestyle=":", label=f"best rank = {self.best_rank}")
        ax.set_xlabel("rank")
        ax.set_ylabel(f"mean {self.beta_loss} loss per entry")
        handles, labels = ax.get_legend_handles_labels()
        stable = [(k, c) for k, c in zip(self.ranks, self.stability) if c is not None]
        if stable:
            right = ax.twinx()
            right.plot(*zip(*stable), marker="s", color="tab:green", label="stability")
            right.set_ylabel("stability (silhouette)")
            right.set_ylim(min(0.0, min(c for _, c in stable)), 1.05)
            more_handles, more_labels = right.get_legend_handles_labels()
            handles, labels = handles + more_handles, labels + more_labels
        ax.legend(handles, labels)
        return ax


def stability(components: list[np.ndarray]) -> float | None:
    """How alike the replicates' components are: the mean silhouette (cosine distance) of all replicates'
    components, each assigned to the component of the first replicate it matches best (a one-to-one matching by
    cosine similarity, as consensus methods align replicates before clustering them). 1 means every replicate
    found the same components, values near 0 or below mean they differ; None for a single component, where a
    silhouette is not defined.

    Parameters
    ----------
    components : list of ndarray of shape (k, n_features)
        Each replicate's ``components_``.
    """
    from scipy.optimize import linear_sum_assignment

    k = components[0].shape[0]
    if k < 2:
        return None
    unit = [H / np.maximum(np.linalg.norm(H, axis=1, keepdims=True), np.finfo(np.float64).tiny)
            for H in (np.asarray(c, dtype=np.float64) for c in components)]
    labels = []
    for H in unit:
        _, match = linear_sum_assignment(-(H @ unit[0].T))
        labels.append(match)
    points, labels = np.concatenate(unit), np.concatenate(labels)
    distance = np.clip(1.0 - points @ points.T, 0.0, 2.0)
    scores = []
    for i, label in enumerate(labels):
        same = labels == label
        same[i] = False
        inside = distance[i, same].mean() if same.any() else 0.0
        outside = min(distance[i, labels == other].mean() for other in range(k) if other != label)
        scores.append(0.0 if max(inside, outside) == 0 else (outside - inside) / max(inside, outside))
    return float(np.mean(scores))


def choose_rank(ranks: list[int], mean: list[float], std: list[float]) -> int:
    """The smallest rank whose mean is within one standard deviation (of the best rank's) of the minimum mean."""
    best = int(np.argmin(mean))
    spread = std[best] if math.isfinite(std[best]) else 0.0
    return next(k for k, m in zip(ranks, mean) if m <= mean[best] + spread)


#: ``k · test_fraction`` from which EM steps (``mask_updates='impute'``) reach a given masked loss sooner than exact
#: masked HALS steps (``benchmarks/cv_cost.py --to-target 200``, 4000 × 1000, 10 % held out: EM in 0.86× the exact
#: steps' time at k = 8, 0.15× at k = 32, but 1.34× at k = 4; per iteration 1.54× against 1.80× a plain one at
#: k = 8, 1.70× against 1.45× at k = 4).
IMPUTE_FROM_K_TIMES_FRACTION = 0.8

#: How ``mask_updates='auto'`` chooses, as a survey's checkpoint folder records it: a folder keeps the rule it
#: began with when a later release changes it, so that its fits resume with the steps they were made by.
AUTO_RULE = {"mu": "impute", "impute_from_k_times_fraction": IMPUTE_FROM_K_TIMES_FRACTION}


def _mask_updates_for(k: int, mask_updates: str, solver: str, beta: float, test_fraction: float,
                      rule: dict[str, Any] = AUTO_RULE) -> str:
    """A survey fit's ``mask_updates``: ``mask_updates`` itself unless ``'auto'``, then by ``rule`` (a recorded
    :data:`AUTO_RULE`; empty for exact steps only, as before EM steps existed; see :func:`select_rank`)."""
    if mask_updates != "auto":
        return mask_updates
    if beta != 2 or not rule:
        return "exact"
    if canonical_solver(solver) == "mu":
        return str(rule.get("mu", "exact"))
    threshold = rule.get("impute_from_k_times_fraction")
    return "impute" if threshold is not None and k * test_fraction >= float(threshold) else "exact"


def select_rank(X: Any, ranks: Any, *, method: str = "cv", test_fraction: float = 0.1, replicates: int = 3,
                solver: str = "mu", beta_loss: str | float = "frobenius", init: str | None = None,
                max_iter: int = 500, tol: float = 1e-5, chunks: Any = "auto",
                random_state: int | None = None, out: str | os.PathLike[str] | None = None,
                checkpoint: str | os.PathLike[str] | None = None,
                concurrent_fits: int | None = None, fits_on_workers: bool | None = None,
                mask_updates: str = "auto", held_out_zeros: str = "auto") -> RankSelection:
    """Choose the number of components of ``X`` by cross-validation on held-out entries.

    For each replicate, a random ``test_fraction`` of the entries is held out (the same for every rank; another
    holdout for each replicate), every rank in ``ranks`` is fitted on the other entries with a masked fit, and the
    fit is scored by its loss at the held-out entries. Too small a rank misses structure, too large a rank fits the
    noise of the training entries: the test error is smallest near the true rank.

    Parameters
    ----------
    X : {ndarray, sparse matrix, dask.array.Array, str, path} of shape (n_samples, n_features)
        Non-negative data with no missing values, or the path or URL of a matrix store. Every entry can be held
        out, the zeros of sparse input included (see :mod:`dnmf.core.holdout` for why). With
        ``held_out_zeros='all'`` the training input is dense with NaN at the held-out entries, built block by
        block, so sparse input costs 8 bytes per entry of the whole matrix during the fits; an in-memory X whose
        dense copy would not fit, twice over, in the memory this machine has free is refused with a
        ``MemoryError`` before any fit (a Dask array or a store is not).
    ranks : iterable of int
        Candidate numbers of components, each at least 1 and at most ``min(n_samples, n_features)``.
    method : {'cv'}, default='cv'
        Cross-validation on held-out entries ("speckled" CV); the only method so far.
    test_fraction : float, default=0.1
        Expected fraction of the entries held out, in ``(0, 1)``.
    replicates : int, default=3
        Holdouts, each fitted at every rank; at least 2, so that the test error has a spread.
    solver : str, default='mu'
        A solver that handles masks (``dnmf.core.rules.SOLVERS``).
    beta_loss : float or str, default='frobenius'
        The loss fitted and scored, as in :class:`dnmf.NMF`.
    init, max_iter, tol, chunks
        As in :class:`dnmf.NMF`; more iterations and a lower ``tol`` than its defaults, since a rank is judged by
        a converged fit.
    random_state : int or None
        Seeds the holdouts and the fits; the same seed gives the same result.
    out : str or path, optional
        A folder in which to keep, for every rank, the fit of the replicate with the lowest test error as a result
        store ``rank-K`` (read it with :meth:`dnmf.NMF.from_result`, which gives a fitted estimator), so that the
        chosen rank needs no refit. Its W and H were fitted on that replicate's training entries. Refused before
        any fit if one of those stores exists already.
    checkpoint : str or path, optional
        A folder (or URL) in which every fit checkpoints (:mod:`dnmf.data.survey`), so that running the same
        survey again resumes it: finished fits are read back, not refitted, and an interrupted one continues
        where it stopped. The ranks may differ between runs; the other parameters may not (a folder holding
        another survey is refused, naming what differs). With ``random_state=None`` a rerun keeps the holdouts
        the survey began with. The folder stays after the survey; remove it when done.
    concurrent_fits : int, optional
        For fits across the cluster (see ``fits_on_workers``), how many ranks of a replicate are fitted at once,
        from threads of this process that share the cluster (each fit places its own copy of the training input).
        By default, with a distributed client, two per worker while those copies take at most a quarter of the
        workers' memory; without one, one at a time. The results are the same for every value: each fit is
        bitwise the fit it would be alone.
    fits_on_workers : bool, optional
        With a distributed client, run each fit whole on a worker, as one task (the in-process executor there:
        no scheduler round trip per iteration), all of the survey's fits submitted at once, each replicate's
        training input and X sent to every worker once. ``False`` fits each rank with its blocks across the cluster
        instead, as :class:`dnmf.NMF` does. By default (``None``) fits run on workers when X and the training
        input (dense, 8 bytes an entry in float64) once per worker and 1.5 copies of it per worker thread take at
        most half of the smallest worker's ``memory_limit``. On workers, each task also scores its fit on the
        held-out entries. Either way a fit gives the same result at every
        concurrency, but the two placements block the input differently, so their results agree to rounding, not
        bitwise. With ``checkpoint``, the workers write the checkpoints: the folder must be one they reach
        (a shared file system, or an object store URL).
    mask_updates : {'auto', 'exact', 'impute'}, default='auto'
        How each fit steps over the held-out entries, as :class:`dnmf.NMF`'s ``mask_updates``. ``'auto'`` takes the
        one that reaches a given loss sooner, as measured by ``benchmarks/cv_cost.py``: ``'impute'`` (EM) for the
        Frobenius loss with ``solver='mu'``, or with ``'hals'``/``'bpp'`` once ``k · test_fraction ≥ 0.8`` (from k = 8
        at the default fraction), else ``'exact'``. Both reach the same fixed points. A checkpoint folder begun before
        EM steps existed resumes with exact steps under ``'auto'``, as its fits were made.
    held_out_zeros : {'auto', 'all', 'sampled'}, default='auto'
        Which zeros of a sparse X are held out. ``'all'``: ``test_fraction`` of every entry, zeros included, with
        a dense training input. ``'sampled'`` (sparse X, β > 0): ``test_fraction`` of the stored entries
        and as many zeros, a uniform sample of them, with a sparse training input (NaN stored at the held-out
        entries) of about ``(1 + test_fraction)`` times X's non-zeros; the test error is then the stratified
        estimate of the same per-entry loss (:mod:`dnmf.core.holdout`). ``'auto'`` samples the zeros of a
        sparse X (β > 0) whose dense training input would pass 1 GiB.

    Returns
    -------
    RankSelection
        ``best_rank``, chosen as the smallest rank whose mean test error is within one standard deviation (over
        replicates) of the smallest mean test error, and the per-rank table with the stability of each rank's
        components across replicates.
    """
    ranks = _check_ranks(ranks)
    if method != "cv":
        raise ValueError(f"method={method!r} is not supported: use method='cv' (cross-validation).")
    if not isinstance(replicates, (int, np.integer)) or replicates < 2:
        raise ValueError(f"replicates must be an integer of at least 2, got {replicates!r}: the rule that picks "
                         "best_rank needs a spread over replicates.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}.")
    if concurrent_fits is not None and (not isinstance(concurrent_fits, (int, np.integer))
                                        or isinstance(concurrent_fits, bool) or concurrent_fits < 1):
        raise ValueError(f"concurrent_fits must be a positive integer or None, got {concurrent_fits!r}.")
    rule_for(solver, beta_loss, masked=True)
    if mask_updates not in ("auto", "exact", "impute"):
        raise ValueError(f"mask_updates must be 'auto', 'exact' or 'impute', got {mask_updates!r}.")
    if isinstance(X, (str, bytes)) or hasattr(X, "__fspath__"):
        with planning_rank(ranks[-1]):
            X = open_matrix(X)
    if len(np.shape(X)) != 2:
        raise ValueError(f"X must be a 2-D matrix, got shape {np.shape(X)}.")
    m, n = (int(s) for s in X.shape)
    if ranks[-1] > min(m, n):
        raise ValueError(f"ranks go up to {ranks[-1]}, but X of shape {(m, n)} has at most {min(m, n)} "
                         "components: pass ranks no larger than min(n_samples, n_features).")
    targets = _result_targets(out, ranks)
    beta = beta_value(beta_loss)
    seeds = holdout_seeds(random_state, replicates)
    zero_candidates = zeros_per_row(X, held_out_zeros, test_fraction=test_fraction, beta=beta)
    survey = None if checkpoint is None else SurveyFolder(checkpoint, {
        "shape": [m, n], "replicates": int(replicates), "test_fraction": float(test_fraction), "solver": solver,
        "beta_loss": str(loss_name(beta_loss)), "init": init, "max_iter": int(max_iter), "tol": float(tol),
        "chunks": str(chunks), "random_state": None if random_state is None else int(random_state),
        **({} if mask_updates == "auto" else {"mask_updates": mask_updates}),
        **({} if zero_candidates is None else {"zeros_per_row": zero_candidates})}, seeds, auto_rule=AUTO_RULE)
    if survey is not None:
        seeds = survey.seeds
    rule = AUTO_RULE if survey is None else (survey.auto_rule or {})
    fit_seeds = [int(s) % 2**31 for s in np.random.SeedSequence(seeds).generate_state(replicates)]
    test = np.empty((len(ranks), replicates))
    train = np.empty((len(ranks), replicates))
    n_iter = [[0] * replicates for _ in ranks]
    components: list[list[np.ndarray]] = [[] for _ in ranks]
    kept: dict[int, Any] = {}

    def parameters(k: int, r: int) -> dict[str, Any]:
        return {"n_components": k, "solver": solver, "beta_loss": beta_loss, "init": init, "missing": "nan",
                "mask_updates": _mask_updates_for(k, mask_updates, solver, beta, test_fraction, rule),
                "max_iter": max_iter, "tol": tol, "chunks": chunks, "random_state": fit_seeds[r],
                "checkpoint": None if survey is None else survey.fit(r, k), "checkpoint_every": None,
                "checkpoint_seconds": SURVEY_CHECKPOINT_SECONDS}

    held = [{"seed": seed, "test_fraction": test_fraction,
             **({} if zero_candidates is None else {"zeros_per_row": zero_candidates})} for seed in seeds]
    if whole_fits_on_workers(fits_on_workers, X, held[0]):
        fitted_by_replicate = fit_on_workers(X, ranks, held, parameters, resume=survey is not None, beta=beta)
    else:
        fitted_by_replicate = [fit_across_cluster(X, ranks, r, held[r], parameters, resume=survey is not None,
                                                  beta=beta, concurrent_fits=concurrent_fits)
                               for r in range(replicates)]
    for r, fitted in enumerate(fitted_by_replicate):
        for q, (model, error, count) in enumerate(fitted):
            test[q, r] = error
            train[q, r] = model.reconstruction_err_**2 / 2.0 / (m * n - count)
            n_iter[q][r] = int(model.n_iter_)
            components[q].append(np.asarray(model.components_))
            if targets and test[q, r] <= test[q, :r + 1].min():
                kept[q] = model
    for q, target in enumerate(targets):
        kept[q].save(target)
    mean, std = test.mean(axis=1).tolist(), test.std(axis=1, ddof=1).tolist()
    return RankSelection(best_rank=choose_rank(ranks, mean, std), ranks=ranks, test_error=mean, test_error_std=std,
                         train_error=train.mean(axis=1).tolist(), test_errors=test.tolist(), n_iter=n_iter,
                         test_fraction=float(test_fraction), seeds=seeds, solver=solver,
                         beta_loss=str(loss_name(beta_loss)), stability=[stability(c) for c in components])


def _result_targets(out: str | os.PathLike[str] | None, ranks: list[int]) -> list[str]:
    """Where each rank's result store goes under ``out`` (none without ``out``), checked free before any fit."""
    if out is None:
        return []
    targets = [os.path.join(os.fspath(out), f"rank-{k}") for k in ranks]
    taken = [target for target in targets if os.path.exists(target)]
    if taken:
        raise FileExistsError(f"{taken[0]!r} exists already: select_rank(out=...) writes a result store rank-K "
                              "per rank and replaces none. Choose another folder, or remove those stores first.")
    return targets


def _check_ranks(ranks: Any) -> list[int]:
    try:
        values = sorted({int(k) for k in ranks})
        exact = all(float(k) == int(k) for k in ranks)
    except (TypeError, ValueError):
        values, exact = [], False
    if not values or not exact or values[0] < 1:
        raise ValueError(f"ranks must be a non-empty collection of positive integers (e.g. range(2, 11)), got "
                         f"{ranks!r}.")
    return values
