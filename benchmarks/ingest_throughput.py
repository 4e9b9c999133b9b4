"""Throughput of ``dnmf.data.ingest.ingest``: a triplet Parquet file and a Matrix Market file of the same matrix.

Generates a random sparse matrix with ``--nnz`` distinct entries, writes it as a Parquet triplet table (integer
ids, float64 values) and as a ``.mtx`` coordinate file in a temporary directory, then times ``ingest`` of each
into a fresh store ``--repeats`` times on Dask's default (threaded) scheduler. Reports the median seconds and MB/s
(input file size / seconds). As a reference, it also times the in-memory route for the ``.mtx`` file:
``scipy.io.mmread`` then ``save_matrix`` of the whole CSR matrix.

Run from the repository root::

    python -m benchmarks.ingest_throughput                  # 1e7 non-zeros, 200k × 50k
    python -m benchmarks.ingest_throughput --nnz 1000000    # quicker
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse as sp


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--cols", type=int, default=50_000)
    parser.add_argument("--nnz", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def make_matrix(rows: int, cols: int, nnz: int, seed: int) -> sp.coo_matrix:
    """``nnz`` distinct positions drawn uniformly, values in (0, 100]."""
    rng = np.random.default_rng(seed)
    flat = rng.choice(rows * cols, size=nnz, replace=False) if rows * cols < 4 * nnz else np.unique(
        rng.integers(0, rows * cols, size=int(nnz * 1.01)))[:nnz]
    flat = rng.permutation(flat)  # file order unrelated to rows: the shuffle into row strips has work to do
    values = np.round(rng.uniform(0.01, 100.0, size=len(flat)), 2)
    return sp.coo_matrix((values, (flat // cols, flat % cols)), shape=(rows, cols))


def timed(run: Callable[[int], None], repeats: int) -> list[float]:
    seconds = []
    for attempt in range(repeats):
        start = time.perf_counter()
        run(attempt)
        seconds.append(time.perf_counter() - start)
    return seconds


def main(argv: list[str] | None = None) -> None:
    import pandas as pd

    from dnmf.data.ingest import ingest
    from dnmf.data.store import open_matrix, save_matrix

    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dnmf-ingest-bench-") as tmp:
        work = Path(tmp)
        matrix = make_matrix(args.rows, args.cols, args.nnz, args.seed)
        pd.DataFrame({"row": matrix.row.astype(np.int64), "col": matrix.col.astype(np.int64),
                      "value": matrix.data}).to_parquet(work / "m.parquet", row_group_size=1_000_000)
        scipy.io.mmwrite(work / "m.mtx", matrix)
        print(f"matrix {args.rows} × {args.cols}, {matrix.nnz} non-zeros; {os.cpu_count()} CPUs; "
              f"median of {args.repeats}")

        candidates = {
            "ingest parquet": (work / "m.parquet", lambda i: ingest(work / "m.parquet", work / f"p{i}.zarr")),
            "ingest mtx": (work / "m.mtx", lambda i: ingest(work / "m.mtx", work / f"x{i}.zarr")),
            "reference: mmread + save_matrix": (
                work / "m.mtx", lambda i: save_matrix(scipy.io.mmread(work / "m.mtx").tocsr(), work / f"r{i}.zarr")),
        }
        for name, (source, run) in candidates.items():
            seconds = timed(run, args.repeats)
            median = statistics.median(seconds)
            size = source.stat().st_size / 1e6
            print(f"{name:34s} {source.name:10s} {size:8.1f} MB  {median:7.2f} s  {size / median:7.1f} MB/s  "
                  f"{matrix.nnz / median / 1e6:5.2f} M nnz/s  (runs: {', '.join(f'{s:.2f}' for s in seconds)})")

        stored = open_matrix(work / "x0.zarr").compute()
        assert stored.nnz == matrix.nnz and np.isclose(stored.sum(), matrix.sum()), "the mtx store is wrong"


if __name__ == "__main__":
    main()
