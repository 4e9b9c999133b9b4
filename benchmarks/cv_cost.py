"""What cross-validation costs per iteration: a masked fit on a holdout against a plain fit of the same matrix.

``select_rank`` fits X with NaN at the held-out entries. The masked W- and H-steps need, per row (column), the Gram
of H (W) over its observed entries: ``HHᵀ`` less the outer products of the held-out columns, O(held-out · k²) on
top of a plain step's O(m · n · k). At a holdout fraction f the masked iteration therefore costs about
``1 + f·k/2`` plain ones at best, whatever the implementation: the issue's ≤ 1.3× holds only for small ``k·f``.
The table sets dnmf's measured ratio beside that bound (on 2026-12-01, 4000 × 1000, 10 iterations, 3 rounds:
9.1× at k = 4 and 22.5× at k = 32; on 2026-12-02, after the triangle-only pattern Grams and the position-built
holdout patterns, 5.45× and 11.5×; with the pattern found once per fit, 2.8–2.9× and 9.9–10.5×; on 2026-12-03,
with the held-out entries filled one cached row tile at a time, 0.99× and 6.8× (block work alone: 1.09× and
6.4×); against bounds of 1.2 and 2.6).

Dense planted data, HALS, no cluster (the in-process executor), ``--iterations`` iterations from the same random
start; the figure is the median seconds per iteration over iterations 3 onwards, medians over ``--repeats``
interleaved rounds, in alternating order.

Whole fits on this machine swing by up to 2× from one to the next, so ``--kernels`` also times one iteration's
block work alone (products, rule updates and the loss's terms, on the whole matrix as one block and one BLAS
thread), the three kinds interleaved, medians over ``--repeats`` × 5 rounds: what an iteration costs wherever it
runs, without the scheduler.

Run from the repository root::

    python -m benchmarks.cv_cost --repeats 3

``--sparse`` takes the issue's S1 matrix instead (``benchmarks.cases``: 200,000 × 50,000, 10M non-zeros,
float32) and the survey's design for it, ``held_out_zeros='sampled'``: a holed CSR training input with NaN at the
held-out stored entries and at as many sampled zeros (:mod:`dnmf.core.holdout`). The masked steps then cost
O(held-out · k²) (exact) or O(held-out · k) (EM) on top of a plain sparse step's O(nnz · k), and the bound's ``f``
is the held-out entries as a share of the non-zeros (about twice the test fraction)::

    python -m benchmarks.cv_cost --sparse --ranks 4 16 32 --iterations 8 --repeats 3

``--to-target ITERATIONS`` adds what the per-iteration figures leave out: an EM step descends less than an exact
one, so it also times both kinds of step to a masked loss both reach.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

#: How far above the loss both kinds of step reach the time-to-target figure stops the clock.
TARGET_SLACK = 1e-3


def planted_matrix(args: argparse.Namespace, k: int) -> tuple[Any, Any, str, float]:
    """The case's matrix (dense planted rank ``k`` of ``--rows`` × ``--cols``, or with ``--sparse`` the S1
    matrix), the training input of one holdout of it, a description, and the held-out entries as a share of
    those a plain product reads (all of a dense X's, a sparse X's non-zeros): the ``f`` of the bound."""
    from dnmf.core.holdout import holdout_seeds
    from dnmf.datasets import make_low_rank
    from dnmf.estimator.training import training_input, zeros_per_row

    seed = holdout_seeds(0, 1)[0]
    if args.sparse:
        from benchmarks.cases import CASES, _planted_sparse

        X = _planted_sparse(CASES["S1"])
        per_row = zeros_per_row(X, "sampled", test_fraction=args.test_fraction, beta=2.0)
        training = training_input(X, seed=seed, test_fraction=args.test_fraction, zeros_per_row=per_row)
        held = int(np.isnan(training.data).sum())
        return X, training, (f"{CASES['S1'].describe()}, held-out zeros sampled ({per_row} a row, {held:,} "
                             "held out)"), held / X.nnz
    X = make_low_rank(args.rows, args.cols, k, random_state=0)[0] + 0.01
    training = training_input(X, seed=seed, test_fraction=args.test_fraction)
    return X, training, f"{args.rows} × {args.cols} dense", float(np.isnan(training).mean())


def fitted(X: np.ndarray, k: int, iterations: int, how: str, solver: str) -> Any:
    """A fit of ``iterations`` iterations from a fixed random start: ``how`` is ``"plain"`` (X whole), or the
    ``mask_updates`` of a fit with NaN at the held-out entries (``"exact"``, ``"impute"``)."""
    from dnmf import NMF

    masked = {} if how == "plain" else {"missing": "nan", "mask_updates": how}
    model = NMF(k, solver=solver, init="random", max_iter=iterations, tol=0, random_state=0, **masked)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    return model


def seconds_per_iteration(X: np.ndarray, k: int, iterations: int, how: str, solver: str = "hals") -> float:
    """Median seconds per iteration of a fit (see :func:`fitted`), over its iterations 3 onwards."""
    return statistics.median(fitted(X, k, iterations, how, solver).timings_["seconds_per_iteration"][2:])


def seconds_to_target(training: np.ndarray, k: int, iterations: int, solver: str) -> dict[str, float]:
    """Seconds each masked kind of step takes to bring the masked loss within :data:`TARGET_SLACK` of the higher
    of the two kinds' losses after ``iterations`` iterations: a loss both reach, so the time to it weighs what
    an iteration costs against how far it descends."""
    histories = {}
    for how in ("exact", "impute"):
        model = fitted(training, k, iterations, how, solver)
        histories[how] = (np.asarray(model.loss_history_), np.cumsum(model.timings_["seconds_per_iteration"]))
    target = max(float(losses[-1]) for losses, _ in histories.values()) * (1 + TARGET_SLACK)
    return {how: float(seconds[np.argmax(losses <= target)]) for how, (losses, seconds) in histories.items()}


def iteration_kernels(X: np.ndarray, training: np.ndarray, k: int, how: str) -> Callable[[], object]:
    """One HALS iteration's block work for ``how`` (``"plain"``, ``"exact"``, ``"impute"``) on the whole matrix as
    one block: both half-steps' products and updates and the loss's terms, as the fits' tasks run them."""
    from dnmf.core import fills, kernels, objectives
    from dnmf.core.alignment import aligned
    from dnmf.core.rules import MASKED_RULES, RULES

    X, training = aligned(X), aligned(training)  # as a runtime places blocks, so that no kernel copies them
    rng = np.random.default_rng(0)
    W, H = rng.random((X.shape[0], k)), rng.random((k, X.shape[1]))
    unobserved = kernels.unobserved_block(training)
    rule, masked_rule = RULES["hals"], MASKED_RULES["hals"]

    def plain() -> object:
        W1 = objectives.update_rows(W, kernels.aht_block(X, H)[:, 0], H @ H.T, rule=rule, l1=0.0, l2=0.0)
        wta = kernels.wta_block(W1, X)
        H1 = objectives.update_cols(H, wta[0], W1.T @ W1, rule=rule, l1=0.0, l2=0.0)
        return kernels.inner_block(wta, H1)

    def exact() -> object:
        W1 = objectives._masked_update_rows(W, kernels.masked_aht_block(training, H, unobserved)[:, 0],
                                            rule=masked_rule, l1=0.0, l2=0.0)
        parts = kernels.masked_wta_block(W1, training, unobserved)[0]
        H1 = objectives._masked_update_cols(H, parts, rule=masked_rule, l1=0.0, l2=0.0)
        return kernels.masked_terms_block(parts, H1, by_rows=False)

    def impute() -> object:
        parts = fills.imputed_aht_block(training, W, H, unobserved)[:, 0]
        W1 = objectives.update_rows(W, parts[:, :k], H @ H.T, rule=rule, l1=0.0, l2=0.0)
        H1 = objectives.update_cols(H, fills.imputed_wta_block(W1, training, H, unobserved)[0], W1.T @ W1,
                                    rule=rule, l1=0.0, l2=0.0)
        return H1, fills.imputed_cross_inner_block(parts, W)

    return {"plain": plain, "exact": exact, "impute": impute}[how]


def kernel_seconds(X: np.ndarray, training: np.ndarray, k: int, rounds: int) -> dict[str, float]:
    """Median seconds of :func:`iteration_kernels` for each kind, interleaved in alternating order, one BLAS
    thread."""
    from threadpoolctl import threadpool_limits

    order = ("plain", "exact", "impute")
    work = {name: iteration_kernels(X, training, k, name) for name in order}
    seconds: dict[str, list[float]] = {name: [] for name in order}
    with threadpool_limits(limits=1, user_api="blas"):
        for round_ in range(rounds):
            for name in (order if round_ % 2 == 0 else order[::-1]):
                start = time.perf_counter()
                work[name]()
                seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in seconds.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--cols", type=int, default=2000)
    parser.add_argument("--ranks", type=int, nargs="+", default=[4, 8, 32])
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--solver", default="hals", choices=["mu", "hals", "bpp"],
                        help="the fits' solver (the block-work table is HALS's)")
    parser.add_argument("--to-target", type=int, default=0, metavar="ITERATIONS",
                        help="also time both masked kinds of step to a loss both reach in ITERATIONS iterations")
    parser.add_argument("--kernels", action="store_true",
                        help="also time one iteration's block work alone, without the scheduler")
    parser.add_argument("--sparse", action="store_true",
                        help="the S1 sparse matrix with a sample of its zeros held out, instead of dense data")
    args = parser.parse_args(argv)
    if args.sparse and args.kernels:
        parser.error("--kernels times dense blocks only; leave it out with --sparse")
    order = ("plain", "exact", "impute")
    kernel_rows: list[tuple[int, dict[str, float]]] = []
    target_rows: list[tuple[int, dict[str, float]]] = []
    for number, k in enumerate(args.ranks):
        if number == 0 or not args.sparse:  # S1 is the same matrix at every k
            X, training, described, share = planted_matrix(args, k)
        if number == 0:
            print(f"{described}, {args.solver}, holdout {args.test_fraction}, in process")
            print("| k | plain s/it | exact masked s/it | ÷ plain | imputed (EM) s/it | ÷ plain | 1 + f·k/2 |")
            print("|---|---|---|---|---|---|---|")
        runs: dict[str, list[float]] = {name: [] for name in order}
        for round_ in range(args.repeats):
            for name in (order if round_ % 2 == 0 else order[::-1]):
                runs[name].append(seconds_per_iteration(X if name == "plain" else training, k, args.iterations,
                                                        name, args.solver))
        plain, exact, imputed = (statistics.median(runs[name]) for name in order)
        print(f"| {k} | {plain:.4f} | {exact:.4f} | {exact / plain:.2f} | {imputed:.4f} | {imputed / plain:.2f} | "
              f"{1 + share * k / 2:.2f} |")
        if args.kernels:
            kernel_rows.append((k, kernel_seconds(X, training, k, 5 * args.repeats)))
        if args.to_target:
            rounds = [seconds_to_target(training, k, args.to_target, args.solver) for _ in range(args.repeats)]
            target_rows.append((k, {how: statistics.median(r[how] for r in rounds) for how in ("exact", "impute")}))
    if kernel_rows:
        print("\nOne iteration's block work alone (one block, one BLAS thread):")
        print("| k | plain ms | exact masked ms | ÷ plain | imputed (EM) ms | ÷ plain |")
        print("|---|---|---|---|---|---|")
        for k, row in kernel_rows:
            plain, exact, imputed = (1e3 * row[name] for name in order)
            print(f"| {k} | {plain:.2f} | {exact:.2f} | {exact / plain:.2f} | {imputed:.2f} | {imputed / plain:.2f} |")
    if target_rows:
        print(f"\nSeconds to a masked loss both kinds reach in {args.to_target} iterations (+{TARGET_SLACK:g}):")
        print("| k | exact masked s | imputed (EM) s | EM ÷ exact |")
        print("|---|---|---|---|")
        for k, row in target_rows:
            print(f"| {k} | {row['exact']:.3f} | {row['impute']:.3f} | {row['impute'] / row['exact']:.2f} |")


if __name__ == "__main__":
    main()
