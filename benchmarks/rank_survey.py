"""What a rank survey costs on a cluster: ``select_rank`` with its fits whole on the workers (one task each), and
with each fit's iterations across the cluster one, two and four at a time, against plain fits of the same ranks.

Dense planted data of rank 6 plus 0.01, ``hals``, ``--iterations`` iterations per fit with ``tol=0``, two replicates,
on a LocalCluster of two single-threaded worker processes. Rounds are interleaved (workers, 1, 2, 4, workers, 1,
...); the figure is each setting's median wall seconds. The plain fits (one ``NMF(k).fit(X)`` per rank, one at a
time) are timed once after them, on the cluster and, without the client, in this process. The settings of one
placement give bitwise the same survey, which the script checks; the two placements block the input differently
and agree to rounding.

Run from the repository root::

    python -m benchmarks.rank_survey --rows 300 --cols 200 --repeats 2
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings


def _plain_fits(X, ranks: list[int], iterations: int) -> float:
    from dnmf import NMF

    began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in ranks:
            NMF(k, solver="hals", max_iter=iterations, tol=0, random_state=0).fit(X)
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--cols", type=int, default=200)
    parser.add_argument("--ranks", type=int, nargs=2, default=[2, 11], metavar=("FIRST", "LAST"))
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--at-once", type=int, nargs="*", default=[1, 2, 4])
    args = parser.parse_args(argv)
    import dask
    from distributed import Client, LocalCluster

    from dnmf import select_rank
    from dnmf.datasets import make_low_rank

    X = make_low_rank(args.rows, args.cols, 6, random_state=0)[0] + 0.01
    ranks = list(range(args.ranks[0], args.ranks[1] + 1))
    settings = ["on workers", *(f"across the cluster, {n} at a time" for n in args.at_once)]
    seconds: dict[str, list[float]] = {name: [] for name in settings}
    surveys: dict[bool, list] = {True: [], False: []}
    common = {"replicates": 2, "solver": "hals", "max_iter": args.iterations, "tol": 0, "random_state": 0}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster, Client(cluster):
        for _ in range(args.repeats):
            for name, at_once in zip(settings, [None, *args.at_once]):
                began = time.perf_counter()
                on_workers = at_once is None
                surveys[on_workers].append(select_rank(X, ranks, **common, fits_on_workers=on_workers,
                                                       concurrent_fits=at_once))
                seconds[name].append(time.perf_counter() - began)
        plain = _plain_fits(X, ranks, args.iterations)
    with dask.config.set(scheduler="sync"):
        plain_here = _plain_fits(X, ranks, args.iterations)
    for placement, runs in surveys.items():
        if any(s.test_errors != runs[0].test_errors for s in runs):
            raise AssertionError(f"surveys with fits_on_workers={placement} differ between settings or rounds")
    report = {f"survey, {name}": statistics.median(v) for name, v in seconds.items()}
    report[f"{len(ranks)} plain fits on the cluster"] = plain
    report[f"{len(ranks)} plain fits in this process, no cluster"] = plain_here
    print(f"{args.rows} × {args.cols}, ranks {ranks[0]}–{ranks[-1]} × 2 replicates, {args.iterations} iterations, "
          "2 workers")
    print("| run | wall s | ÷ plain fits on the cluster |")
    print("|---|---|---|")
    for name, value in report.items():
        print(f"| {name} | {value:.2f} | {value / plain:.3f} |")
    return report


if __name__ == "__main__":
    main()
