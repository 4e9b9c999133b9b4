"""Checkpoint cost on the S1 case: seconds to write a checkpoint ÷ seconds per iteration (target ≤ 0.1).

    python -m benchmarks.checkpoint_cost [--iterations 6] [--repeats 3]

Runs dnmf on a LocalCluster of 2 worker processes × 1 thread, with ``checkpoint_every=1``, on a 200,000 × 50,000
float32 matrix with 1e7 non-zeros and planted rank-32 structure. The checkpoint time covers writing W and H on
the workers, the checksums, the manifest, pruning, and reading the factors back.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
from distributed import Client, LocalCluster

from dnmf import NMF
from dnmf.datasets import make_sampled_low_rank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--cols", type=int, default=50_000)
    parser.add_argument("--nnz", type=int, default=10_000_000)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "checkpoint_cost.json"))
    args = parser.parse_args()
    A = make_sampled_low_rank(args.rows, args.cols, args.rank, args.nnz, dtype=np.float32, random_state=0)
    rng = np.random.default_rng(0)
    W0 = rng.random((args.rows, args.rank), dtype=np.float32)
    H0 = rng.random((args.rank, args.cols), dtype=np.float32)
    runs = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster):
        for repeat in range(args.repeats):
            with tempfile.TemporaryDirectory() as folder:
                model = NMF(args.rank, solver="mu", init="custom", max_iter=args.iterations, tol=0,
                            checkpoint=f"{folder}/ckpt", checkpoint_every=1)
                model.fit(A, W=W0, H=H0)
            iteration = statistics.median(model.timings_["seconds_per_iteration"][1:])
            checkpoint = statistics.median(model.timings_["checkpoint_seconds"][1:])
            runs.append({"seconds_per_iteration": iteration, "checkpoint_seconds": checkpoint,
                         "ratio": checkpoint / iteration})
            print(f"repeat {repeat}: {iteration:.3f} s/iteration, {checkpoint:.3f} s/checkpoint, "
                  f"ratio {checkpoint / iteration:.3f}", flush=True)
    ratios = [run["ratio"] for run in runs]
    summary = {"median_ratio": statistics.median(ratios), "min_ratio": min(ratios), "max_ratio": max(ratios),
               "target": 0.1, "runs": runs, "shape": [args.rows, args.cols], "nnz": int(A.nnz), "rank": args.rank}
    print(f"\n| checkpoint s ÷ iteration s | median {summary['median_ratio']:.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}) | target ≤ 0.1 | "
          f"{'met' if summary['median_ratio'] <= 0.1 else 'missed'} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
