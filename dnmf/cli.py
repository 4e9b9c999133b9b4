"""The ``dnmf`` command."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    import numpy as np
    import scipy.sparse.linalg
    from distributed import Client, LocalCluster

    from dnmf import NMF
    from dnmf.datasets import make_sparse_low_rank

    A, _, _ = make_sparse_low_rank(args.rows, args.cols, args.rank, column_density=args.density,
                                   random_state=args.seed, dtype=np.float32)
    print(f"Synthetic sparse matrix: {A.shape[0]:,} × {A.shape[1]:,}, {A.nnz:,} non-zeros, planted rank {args.rank}")
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        print(f"LocalCluster: {args.workers} worker processes. Dashboard: {client.dashboard_link}")
        started = time.perf_counter()

        def report(iteration: int, loss: float) -> None:
            print(f"  iteration {iteration:4d}  loss ‖A − WH‖ = {loss:.6g}", flush=True)

        model = NMF(args.rank, solver=args.solver, max_iter=args.max_iter, tol=args.tol, random_state=args.seed,
                    callback=report)
        model.fit(A)
        elapsed = time.perf_counter() - started
    relative = model.reconstruction_err_ / scipy.sparse.linalg.norm(A)
    print(f"Done: {model.n_iter_} iterations in {elapsed:.1f} s, converged={model.converged_}")
    print(f"Final relative error ‖A − WH‖ / ‖A‖ = {relative:.3e}")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from dnmf import ingest, open_matrix

    columns = tuple(args.row_col_value.split(",")) if args.row_col_value else None
    if columns is not None and len(columns) != 3:
        raise SystemExit("dnmf ingest: --row-col-value needs three comma-separated column names, e.g. doc,word,count")
    chunks = tuple(int(x) for x in args.chunks.split(",")) if args.chunks else "auto"
    ingest(args.source, args.out, format=args.format, chunks=chunks, row_col_value=columns,
           overwrite=args.overwrite)
    matrix = open_matrix(args.out)
    print(f"Wrote {args.out}: {matrix.shape[0]:,} × {matrix.shape[1]:,}, {matrix.numblocks[0]}×{matrix.numblocks[1]} "
          "blocks")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dnmf", description="Distributed non-negative matrix factorization on Dask.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="factorize a synthetic sparse matrix on a LocalCluster started for the purpose",
        description="Start a LocalCluster of worker processes, factorize a synthetic sparse matrix with planted "
                    "low-rank structure, and print the loss per iteration and the final relative error.",
    )
    demo.add_argument("--rows", type=int, default=50_000, help="rows of the matrix (default: %(default)s)")
    demo.add_argument("--cols", type=int, default=10_000, help="columns of the matrix (default: %(default)s)")
    demo.add_argument("--rank", type=int, default=10, help="planted rank and n_components (default: %(default)s)")
    demo.add_argument("--density", type=float, default=0.02,
                      help="share of columns each planted topic uses (default: %(default)s)")
    demo.add_argument("--solver", default="hals", help="update rule: hals, cd or mu (default: %(default)s)")
    demo.add_argument("--max-iter", type=int, default=100, help="most iterations (default: %(default)s)")
    demo.add_argument("--tol", type=float, default=1e-6, help="stopping tolerance (default: %(default)s)")
    demo.add_argument("--workers", type=int, default=2, help="worker processes (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.set_defaults(handler=_demo)
    ingest = commands.add_parser(
        "ingest", help="convert a matrix file into a dnmf/AnnData Zarr store",
        description="Convert .mtx/.mtx.gz, .npz, .npy, .h5ad or a Parquet/CSV triplet table into a Zarr store "
                    "that dnmf fit reads. Triplet tables stream through dask.dataframe.",
    )
    ingest.add_argument("source", help="input file or folder (Parquet dataset)")
    ingest.add_argument("out", help="path or URL of the store to create")
    ingest.add_argument("--format", choices=("mtx", "npz", "npy", "h5ad", "parquet", "csv"),
                        help="input format (default: from the file name)")
    ingest.add_argument("--chunks", help="block size as ROWS,COLS (default: chosen from the data)")
    ingest.add_argument("--row-col-value", metavar="COLS",
                        help="the row id, column id and value columns of a triplet table, e.g. doc,word,count")
    ingest.add_argument("--overwrite", action="store_true", help="replace an existing store")
    ingest.set_defaults(handler=_ingest)
    return parser


#: Exit status for usage errors and bad input, as argparse uses.
EXIT_BAD_INPUT = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as error:
        print(f"dnmf {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
