"""Seconds per iteration of ``solver="mu"`` with the KL divergence against the Frobenius loss, on the S1 case.

Same data, start and cluster as :mod:`benchmarks.core_s1` (200k × 50k, 1e7 non-zeros, k = 32, float32, a 2-worker
LocalCluster). The two losses are interleaved within each repeat; the first iteration of every run is dropped as
warm-up (it also computes the initial loss), a run's figure is the median of the rest, and the summary is the
median over repeats with the min–max of the per-run figures.

Run from the repository root::

    python -m benchmarks.beta_s1
    python -m benchmarks.beta_s1 --rows 20000 --cols 5000 --nnz 1000000 --iterations 3 --repeats 1   # smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

LOSSES = ("frobenius", "kullback-leibler")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--cols", type=int, default=50_000)
    parser.add_argument("--nnz", type=int, default=10_000_000)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=6, help="iterations per run (the first is dropped)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "beta_s1.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from distributed import Client, LocalCluster

    from dnmf import NMF
    from dnmf.datasets import make_sampled_low_rank

    A = sp.csr_matrix(make_sampled_low_rank(args.rows, args.cols, args.rank, args.nnz, dtype=np.float32,
                                            random_state=0), dtype=np.float32)
    m, n, k = A.shape[0], A.shape[1], args.rank
    scale = np.sqrt(float(A.sum(dtype=np.float64)) / (m * n) / k)
    rng = np.random.default_rng(0)
    W0 = (rng.uniform(0.0, 2.0, size=(m, k)) * scale).astype(np.float32)
    H0 = (rng.uniform(0.0, 2.0, size=(k, n)) * scale).astype(np.float32)
    runs = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster):
        for repeat in range(args.repeats):
            for loss in LOSSES:
                model = NMF(k, solver="mu", beta_loss=loss, init="custom", max_iter=args.iterations, tol=0)
                started = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(A, W=W0, H=H0)
                seconds = model.timings_["seconds_per_iteration"]
                figure = statistics.median(seconds[1:])
                runs.append({"repeat": repeat, "beta_loss": loss, "seconds_per_iteration": seconds,
                             "median": figure, "tasks_per_iteration": model.timings_["tasks_per_iteration"],
                             "phase_seconds": model.timings_.get("phase_seconds"),
                             "loss_history": model.loss_history_, "fit_seconds": time.perf_counter() - started})
                print(f"repeat {repeat} {loss:17s} median {figure:.3f} s/iter "
                      f"({' '.join(f'{s:.2f}' for s in seconds)}), "
                      f"tasks/iter {model.timings_['tasks_per_iteration'][-1]}",
                      flush=True)
    summary = {}
    for loss in LOSSES:
        figures = [r["median"] for r in runs if r["beta_loss"] == loss]
        summary[loss] = {"median": statistics.median(figures), "min": min(figures), "max": max(figures)}
        print(f"{loss:17s} {summary[loss]['median']:.3f} s/iter (runs {min(figures):.3f}–{max(figures):.3f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "beta_s1", "args": {k: str(v) for k, v in vars(args).items()},
                                    "summary": summary, "runs": runs}, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
