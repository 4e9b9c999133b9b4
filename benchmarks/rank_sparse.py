"""A rank survey of a large sparse matrix with a sample of its zeros held out (``held_out_zeros='sampled'``).

Planted data: Poisson counts around a sparse ``W H`` of exact rank ``--rank`` (``dnmf.datasets.make_sparse_low_rank``:
two components per row, each component on ``--column-density`` of the columns), surveyed over ``--ranks`` with two
replicates, ``hals`` and ``--iterations`` iterations per fit, on a LocalCluster of two single-threaded worker
processes. Holding out a share of every entry would make the training input dense (``m · n · 8`` bytes, reported
beside the sparse one); the sampled design keeps it at about ``(1 + test_fraction)`` times the non-zeros. Reports
the survey's wall seconds, the chosen rank against the planted one, the training input's bytes both ways and the
peak RSS of the workers and of this process.

Run from the repository root::

    python -m benchmarks.rank_sparse --rows 50000 --cols 20000 --out benchmarks/results/rank_sparse.json
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import warnings
from pathlib import Path
from typing import Any


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def planted_counts(rows: int, cols: int, rank: int, column_density: float, seed: int) -> Any:
    """Poisson counts around the sparse rank-``rank`` product, on its support (mean about 1 a stored entry)."""
    import numpy as np

    from dnmf.datasets import make_sparse_low_rank

    mean = make_sparse_low_rank(rows, cols, rank, column_density=column_density, random_state=seed)[0]
    counts = mean.copy()
    counts.data = np.random.default_rng(seed).poisson(mean.data / mean.data.mean()).astype(np.float64)
    counts.eliminate_zeros()
    return counts


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--cols", type=int, default=20_000)
    parser.add_argument("--rank", type=int, default=6)
    parser.add_argument("--column-density", type=float, default=0.004)
    parser.add_argument("--ranks", type=int, nargs=2, default=[3, 9], metavar=("FIRST", "LAST"))
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster

    from dnmf import select_rank
    from dnmf.estimator.training import training_input, training_nbytes, zeros_per_row

    X = planted_counts(args.rows, args.cols, args.rank, args.column_density, args.seed)
    per_row = zeros_per_row(X, "sampled", test_fraction=0.1, beta=2.0)
    training = training_input(X, seed=1, test_fraction=0.1, zeros_per_row=per_row)
    sparse_bytes = training.data.nbytes + training.indices.nbytes + training.indptr.nbytes
    del training
    ranks = list(range(args.ranks[0], args.ranks[1] + 1))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        began = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = select_rank(X, ranks, replicates=2, solver="hals", max_iter=args.iterations, tol=0,
                                 random_state=args.seed, held_out_zeros="sampled")
        seconds = time.perf_counter() - began
        worker_peak = max(client.run(_peak_rss_mib).values())
    report = {
        "case": f"{args.rows} x {args.cols}, nnz {X.nnz}, planted rank {args.rank}",
        "ranks": ranks, "iterations": args.iterations, "zeros_per_row": per_row,
        "survey_seconds": round(seconds, 1), "best_rank": result.best_rank, "planted_rank": args.rank,
        "test_error": [round(e, 6) for e in result.test_error],
        "training_input_bytes_sampled": int(sparse_bytes),
        "training_input_bytes_estimated": training_nbytes(X, zeros_per_row=per_row),
        "training_input_bytes_every_entry": args.rows * args.cols * 8,
        "peak_worker_rss_mib": round(worker_peak, 1), "peak_client_rss_mib": round(_peak_rss_mib(), 1),
    }
    print(json.dumps(report, indent=1))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
