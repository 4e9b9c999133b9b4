"""What cross-validation costs per iteration: a masked fit on a holdout against a plain fit of the same matrix.

``select_rank`` fits X with NaN at the held-out entries. The masked W- and H-steps need, per row (column), the Gram
of H (W) over its observed entries: ``HHᵀ`` less the outer products of the held-out columns, O(held-out · k²) on
top of a plain step's O(m · n · k). At a holdout fraction f the masked iteration therefore costs about
``1 + f·k/2`` plain ones at best, whatever the implementation: the issue's ≤ 1.3× holds only for small ``k·f``.
The table sets dnmf's measured ratio beside that bound (on 2026-12-01, 4000 × 1000, 10 iterations, 3 rounds:
9.1× at k = 4 and 22.5× at k = 32; on 2026-12-02, after the triangle-only pattern Grams and the position-built
holdout patterns, 5.45× and 11.5×; with the pattern found once per fit, 2.8–2.9× and 9.9–10.5×; against bounds
of 1.2 and 2.6).

Dense planted data, HALS, no cluster (the in-process executor), ``--iterations`` iterations from the same random
start; the figure is the median seconds per iteration over iterations 3 onwards, medians over ``--repeats``
interleaved rounds, in alternating order.

Run from the repository root::

    python -m benchmarks.cv_cost --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import warnings

import numpy as np


def seconds_per_iteration(X: np.ndarray, k: int, iterations: int, how: str) -> float:
    """Median seconds per iteration of a HALS fit: ``how`` is ``"plain"`` (X whole), or the ``mask_updates`` of a
    fit with NaN at the held-out entries (``"exact"``, ``"impute"``)."""
    from dnmf import NMF

    masked = {} if how == "plain" else {"missing": "nan", "mask_updates": how}
    model = NMF(k, solver="hals", init="random", max_iter=iterations, tol=0, random_state=0, **masked)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    return statistics.median(model.timings_["seconds_per_iteration"][2:])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--cols", type=int, default=2000)
    parser.add_argument("--ranks", type=int, nargs="+", default=[4, 8, 32])
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from dnmf.core.holdout import holdout_seeds
    from dnmf.datasets import make_low_rank
    from dnmf.estimator.training import training_input

    print(f"{args.rows} × {args.cols} dense, HALS, holdout {args.test_fraction}, in process")
    print("| k | plain s/it | exact masked s/it | ÷ plain | imputed (EM) s/it | ÷ plain | 1 + f·k/2 |")
    print("|---|---|---|---|---|---|---|")
    order = ("plain", "exact", "impute")
    for k in args.ranks:
        X = make_low_rank(args.rows, args.cols, k, random_state=0)[0] + 0.01
        training = training_input(X, seed=holdout_seeds(0, 1)[0], test_fraction=args.test_fraction)
        runs: dict[str, list[float]] = {name: [] for name in order}
        for round_ in range(args.repeats):
            for name in (order if round_ % 2 == 0 else order[::-1]):
                runs[name].append(seconds_per_iteration(X if name == "plain" else training, k, args.iterations,
                                                        name))
        plain, exact, imputed = (statistics.median(runs[name]) for name in order)
        print(f"| {k} | {plain:.4f} | {exact:.4f} | {exact / plain:.2f} | {imputed:.4f} | {imputed / plain:.2f} | "
              f"{1 + args.test_fraction * k / 2:.2f} |")

if __name__ == "__main__":
    main()
