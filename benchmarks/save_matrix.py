"""``save_matrix`` of a lazy sparse input: the one-pass writer against counting first, which computes the input twice.

The lazy input is a sparse store opened with ``open_matrix`` (every pass decodes it again), and the same store's
blocks after a costly map (``--work`` seconds of CPU per block, standing in for the parsing of an ingest). Each
candidate writes it to a fresh store: ``one pass`` is what ``save_matrix`` does (strips staged in the store being
written, then copied into place, :mod:`dnmf.data.sparse_write`); ``count first`` computes the strips once to count
their non-zeros and again to write them (``write_csr(..., held=True)``, the writer before this change). Interleaved,
alternating order, medians over ``--repeats`` rounds, on Dask's threaded scheduler; both outputs are checked equal.

Run from the repository root::

    python -m benchmarks.save_matrix --repeats 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import scipy.sparse as sp
import zarr


def _busy(block: sp.csr_matrix, seconds: float) -> sp.csr_matrix:
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        pass
    return block


def write(A, url: Path, held: bool) -> float:
    from dnmf.data.sparse_write import write_csr
    from dnmf.data.store import staged_group

    began = time.perf_counter()
    with staged_group(url, None, overwrite=False) as root:
        write_csr(root, A, held=held)
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--cols", type=int, default=20_000)
    parser.add_argument("--nnz", type=int, default=10_000_000)
    parser.add_argument("--work", type=float, default=0.2, help="CPU seconds per block of the costly input")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from dnmf import open_matrix, save_matrix
    from dnmf.datasets import make_sampled_low_rank

    folder = Path(tempfile.mkdtemp(prefix="dnmf-save-bench-"))
    try:
        X = make_sampled_low_rank(args.rows, args.cols, 8, args.nnz, dtype=np.float32, random_state=0)
        save_matrix(X, folder / "source.zarr", chunks=(args.rows // 8, args.cols))
        with dask.config.set(scheduler="threads"):
            stored = open_matrix(folder / "source.zarr")
            inputs = {"store": stored,
                      "store + work": stored.map_blocks(_busy, seconds=args.work, dtype=stored.dtype,
                                                        meta=stored._meta)}
            print(f"{args.rows} × {args.cols}, {X.nnz} non-zeros, {stored.numblocks} blocks; work "
                  f"{args.work} s per block")
            for name, A in inputs.items():
                seconds: dict[bool, list[float]] = {True: [], False: []}
                for round_ in range(args.repeats):
                    for held in ((False, True) if round_ % 2 == 0 else (True, False)):
                        url = folder / f"out-{held}.zarr"
                        shutil.rmtree(url, ignore_errors=True)
                        seconds[held].append(write(A, url, held))
                equal = all(np.array_equal(zarr.open_group(folder / "out-True.zarr")["X"][part][:],
                                           zarr.open_group(folder / "out-False.zarr")["X"][part][:])
                            for part in ("data", "indices", "indptr"))
                one, two = statistics.median(seconds[False]), statistics.median(seconds[True])
                print(f"{name:13s} one pass {one:6.2f} s   count first {two:6.2f} s   ratio {one / two:.2f}   "
                      f"outputs equal: {equal}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
