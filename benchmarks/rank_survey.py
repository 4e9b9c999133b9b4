"""What a rank survey costs on a cluster: ``select_rank`` with one, two and four fits at a time, against plain fits
of the same ranks.

Dense planted data of rank 6 plus 0.01, ``hals``, ``--iterations`` iterations per fit with ``tol=0``, two replicates,
on a LocalCluster of two single-threaded worker processes. Rounds are interleaved (1, 2, 4, 1, 2, 4, ...); the
figure is each setting's median wall seconds, with the plain fits (one ``NMF(k).fit(X)`` per rank, one at a time)
timed once after them. All settings give bitwise the same survey, which the script checks.

Run from the repository root::

    python -m benchmarks.rank_survey --rows 300 --cols 200 --repeats 2
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--cols", type=int, default=200)
    parser.add_argument("--ranks", type=int, nargs=2, default=[2, 11], metavar=("FIRST", "LAST"))
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--at-once", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster

    from dnmf import NMF, select_rank
    from dnmf.datasets import make_low_rank

    X = make_low_rank(args.rows, args.cols, 6, random_state=0)[0] + 0.01
    ranks = list(range(args.ranks[0], args.ranks[1] + 1))
    seconds: dict[int, list[float]] = {n: [] for n in args.at_once}
    surveys = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster, Client(cluster):
        for _ in range(args.repeats):
            for at_once in args.at_once:
                began = time.perf_counter()
                surveys.append(select_rank(X, ranks, replicates=2, solver="hals", max_iter=args.iterations, tol=0,
                                           random_state=0, concurrent_fits=at_once))
                seconds[at_once].append(time.perf_counter() - began)
        began = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for k in ranks:
                NMF(k, solver="hals", max_iter=args.iterations, tol=0, random_state=0).fit(X)
        plain = time.perf_counter() - began
    if any(s.test_errors != surveys[0].test_errors for s in surveys):
        raise AssertionError("surveys with different numbers of fits at once differ")
    report = {f"survey, {n} at a time": statistics.median(v) for n, v in seconds.items()}
    report[f"{len(ranks)} plain fits"] = plain
    print(f"{args.rows} × {args.cols}, ranks {ranks[0]}–{ranks[-1]} × 2 replicates, {args.iterations} iterations, "
          "2 workers")
    print("| run | wall s | ÷ plain fits |")
    print("|---|---|---|")
    for name, value in report.items():
        print(f"| {name} | {value:.1f} | {value / plain:.2f} |")
    return report


if __name__ == "__main__":
    main()
