"""The ``dnmf`` command (also ``python -m dnmf``): batch factorizations from a shell, a cron or a workflow task.

Subcommands: ``ingest``, ``fit``, ``rank``, ``transform``, ``inspect``, ``cluster`` and ``demo``. ``fit``, ``rank``
and ``transform`` log to stderr and end with a JSON summary on stdout (or ``--summary FILE``). Exit status: 0
success, 2 usage or bad input, 3 a failure that rerunning the same command recovers from (lost or unreachable
scheduler, killed job: a ``fit`` resumes from its checkpoint), 4 not converged with ``--require-convergence``, 1 an
unexpected error (a bug: the traceback is logged).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dnmf.cli.exits import (
    EXIT_BAD_INPUT,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_RESUMABLE,
    Outcome,
    ResumableError,
)
from dnmf.cli.options import (
    CLUSTER_OPTIONS,
    FIT_OPTIONS,
    OUTPUT_OPTIONS,
    SOLVERS,
    UsageError,
    add_options,
    resolve,
)
from dnmf.cli.rank import add_rank
from dnmf.cli.writable import check_writable

__all__ = ["EXIT_BAD_INPUT", "EXIT_RESUMABLE", "build_parser", "main"]

logger = logging.getLogger("dnmf")

EXIT_STATUS_HELP = """exit status:
  0  success (also: the result already exists for this job and nothing was done)
  1  unexpected error (a bug; the traceback is logged)
  2  usage error or bad input (missing or negative matrix, bad flag, job file or cluster configuration)
  3  resumable failure (scheduler lost or unreachable, job killed): rerun the same command to resume
  4  not converged at --max-iter, with --require-convergence"""


class Terminated(BaseException):
    """SIGTERM arrived (a workflow or batch system stopping the job)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


#: The demo perturbs each entry of its planted matrix by up to this share, so that the loss falls to a visible floor.
DEMO_NOISE = 0.2


def _demo(args: argparse.Namespace) -> int:
    import numpy as np
    import scipy.sparse.linalg

    from dnmf import NMF, IterationRecord
    from dnmf.datasets import make_sparse_low_rank
    from dnmf.runtime import cluster
    from dnmf.view.display import format_loss

    A, _, _ = make_sparse_low_rank(args.rows, args.cols, args.rank, column_density=args.density,
                                   random_state=args.seed, dtype=np.float32)
    A.data *= np.random.default_rng(args.seed).uniform(1 - DEMO_NOISE, 1 + DEMO_NOISE, A.nnz).astype(np.float32)
    norm = float(scipy.sparse.linalg.norm(A))
    print(f"Synthetic sparse matrix: {A.shape[0]:,} × {A.shape[1]:,}, {A.nnz:,} non-zeros, planted rank {args.rank}, "
          f"entries perturbed by up to ±{DEMO_NOISE:.0%}")
    config = cluster.local_config(n_workers=args.workers, dashboard_address="127.0.0.1:0")
    with cluster.connect(config) as client:
        print(f"LocalCluster: {args.workers} worker processes. Dashboard: {client.dashboard_link}")
        started = time.perf_counter()

        def report(record: IterationRecord) -> None:
            print(f"  iteration {record.iteration:4d}  relative error ‖A − WH‖ / ‖A‖ = "
                  f"{format_loss(record.loss / norm, record.loss_resolution / norm)}", flush=True)

        model = NMF(args.rank, solver=args.solver, max_iter=args.max_iter, tol=args.tol, random_state=args.seed,
                    callback=report)
        model.fit(A)
        elapsed = time.perf_counter() - started
    relative = model.reconstruction_err_ / norm
    print(f"Done: {model.n_iter_} iterations in {elapsed:.1f} s, converged={model.converged_}")
    print(f"Final relative error ‖A − WH‖ / ‖A‖ = {relative:.3e}")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from dnmf import ingest, open_matrix

    columns = tuple(args.row_col_value.split(",")) if args.row_col_value else None
    if columns is not None and len(columns) != 3:
        raise UsageError("--row-col-value needs three comma-separated column names, e.g. doc,word,count")
    chunks = tuple(int(x) for x in args.chunks.split(",")) if args.chunks else "auto"
    ingest(args.source, args.out, format=args.format, chunks=chunks, row_col_value=columns,
           overwrite=args.overwrite)
    matrix = open_matrix(args.out)
    print(f"Wrote {args.out}: {matrix.shape[0]:,} × {matrix.shape[1]:,}, {matrix.numblocks[0]}×{matrix.numblocks[1]} "
          "blocks")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from dnmf.cli.inspect import describe, render

    print(render(describe(args.path, top=args.top), as_json=args.json))
    return 0


def _cluster_show(args: argparse.Namespace) -> int:
    from dnmf.runtime import cluster

    config = cluster.load_cluster_config(args.config)
    print(f"# {config.source}: kind {config.kind}")
    print(json.dumps(config.options, indent=2))
    if config.kind in ("slurm", "pbs"):
        with cluster.jobqueue_cluster(config, render_only=True) as jobs:
            print(f"# job script for each of the {config.options['jobs']} job(s) "
                  "(the scheduler address is a placeholder):")
            print(jobs.job_script())
    elif config.kind == "kubernetes":
        print("# DaskCluster resource:")
        print(json.dumps(cluster.kubernetes_cluster_spec(config), indent=2))
    return 0


def _cluster_make_certs(args: argparse.Namespace) -> int:
    from dnmf.runtime.cluster import make_certificates

    paths = make_certificates(args.folder, hosts=tuple(args.host or ("127.0.0.1", "localhost")))
    print("\n".join(f"{name}: {path}" for name, path in paths.items()))
    return 0


def _batch(runner_name: str, options: tuple[Any, ...]) -> Any:
    """A handler for a batch subcommand: resolves options, sets up logging, runs, and writes the summary."""

    def handler(args: argparse.Namespace) -> int:
        given = {name: value for name, value in vars(args).items() if name not in ("handler", "command")}
        try:
            values = resolve(given, options, given.get("config"))
            check_writable(values.get("summary"), "--summary", folder_ok=False)
        except UsageError as error:
            print(f"dnmf {args.command}: error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        values.update({name: given[name] for name in ("result", "overwrite") if name in given})
        return _run_batch(args.command, runner_name, values)

    return handler


def _run_batch(command: str, runner_name: str, values: dict[str, Any]) -> int:
    from dnmf.cli.logs import progress_bar_available, setup_logging

    bar = sys.stderr.isatty() and values["log_format"] == "human" and progress_bar_available()
    values["verbose"] = 1 if bar else 0
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.perf_counter()
    with setup_logging(values["log_format"], values["log_level"], progress_bar=bar):
        try:
            outcome = _dispatch(runner_name, values)
        finally:
            signal.signal(signal.SIGTERM, previous)
        if outcome.exit_code not in (EXIT_OK,) and "error" not in outcome.summary:
            logger.warning("Exiting with status %d (converged=%s)", outcome.exit_code,
                           outcome.summary.get("converged"))
    outcome.summary.setdefault("command", command)
    outcome.summary.setdefault("timings", {"total_seconds": time.perf_counter() - started})
    outcome.summary["exit_code"] = outcome.exit_code
    _write_summary(outcome.summary, values.get("summary"))
    return outcome.exit_code


def _describe(error: BaseException) -> str:
    return str(error) if isinstance(error, UsageError) else f"{type(error).__name__}: {error}"


def _failure(code: int, message: str, values: dict[str, Any]) -> Outcome:
    logger.error(message)
    keys = ("input", "out", "result", "checkpoint")
    return Outcome(code, {"status": "failed", "error": message, "resumable": code == EXIT_RESUMABLE,
                          **{key: values[key] for key in keys if values.get(key) is not None}})


def _dispatch(runner_name: str, values: dict[str, Any]) -> Outcome:
    """Run a batch subcommand and turn its failures into exit statuses."""
    from distributed.comm.core import CommClosedError

    from dnmf.exceptions import ClusterLostError

    def resume() -> str:
        checkpoint = values.get("checkpoint")
        return (f" Rerun the same command to resume from the last checkpoint in {checkpoint}." if checkpoint
                else " Rerun the same command.")

    try:
        runner = getattr(importlib.import_module(f"dnmf.cli.{runner_name}"), f"run_{runner_name}")
        return runner(values)
    except (ClusterLostError, CommClosedError, ResumableError, ConnectionError, TimeoutError) as error:
        advice = "" if "rerun" in str(error).lower() else resume()
        return _failure(EXIT_RESUMABLE, _describe(error) + advice, values)
    except (Terminated, KeyboardInterrupt):
        return _failure(EXIT_RESUMABLE, "Stopped by a signal." + resume(), values)
    except (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError) as error:
        return _failure(EXIT_BAD_INPUT, _describe(error), values)
    except ImportError as error:
        return _failure(EXIT_BAD_INPUT, _describe(error), values)
    except OSError as error:
        return _failure(EXIT_RESUMABLE, _describe(error) + "." + resume(), values)
    except (ValueError, TypeError) as error:
        return _failure(EXIT_BAD_INPUT, _describe(error), values)
    except Exception as error:  # a bug: keep the traceback for the report
        logger.exception("Unexpected error")
        return _failure(EXIT_ERROR, f"{type(error).__name__}: {error}", values)


def _write_summary(summary: dict[str, Any], path: str | None) -> None:
    clean = {key: (None if isinstance(value, float) and math.isnan(value) else value)
             for key, value in summary.items()}
    text = json.dumps(clean, indent=2, default=str)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
    else:
        print(text, flush=True)


def _add_fit(commands: Any) -> None:
    fit = commands.add_parser(
        "fit", help="factorize a matrix store into a result store, as a rerunnable batch job",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Factorize INPUT (a matrix store written by `dnmf ingest` or dnmf.save_matrix) into RESULT "
                    "(W, H, labels and the record of the fit).\n\nRerunning the same command after a crash resumes "
                    "from the checkpoint (RESULT.checkpoint unless --checkpoint or --no-checkpoint); rerunning "
                    "after success does nothing and says so, unless --force. Logs go to stderr; a JSON summary "
                    "goes to stdout or --summary FILE. Options may come from a TOML job file (--config): its keys "
                    "are the flag names without dashes (max_iter = 50), and flags override it.",
        epilog=EXIT_STATUS_HELP + "\n\nexample:\n  dnmf fit counts.zarr --rank 20 --out topics.zarr "
                                  "--cluster cluster_configs/local.yaml --summary topics.json",
    )
    fit.add_argument("input", nargs="?", default=argparse.SUPPRESS, metavar="INPUT",
                     help="matrix store to factorize (path or URL)")
    fit.add_argument("--config", metavar="JOB.toml", help="job file with the same options as the flags")
    reruns = ("checkpoint", "checkpoint_every", "no_checkpoint", "force", "require_convergence")
    add_options(fit.add_argument_group("factorization"), FIT_OPTIONS, skip=("input",) + reruns)
    add_options(fit.add_argument_group("checkpoints and reruns"), FIT_OPTIONS,
                skip=tuple(option.name for option in FIT_OPTIONS if option.name not in reruns))
    add_options(fit.add_argument_group("cluster"), CLUSTER_OPTIONS)
    add_options(fit.add_argument_group("output"), OUTPUT_OPTIONS)
    fit.set_defaults(handler=_batch("fit", FIT_OPTIONS + CLUSTER_OPTIONS + OUTPUT_OPTIONS))


def _add_transform(commands: Any) -> None:
    from dnmf.cli.options import Option

    transform = commands.add_parser(
        "transform", help="project new rows onto the fixed H of a result, on the cluster",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Solve for W_NEW with H fixed to RESULT's, using the fit's update rule and regularisation, "
                    "for the rows of INPUT (same columns as the fit's input), and write W_NEW as a matrix store "
                    "(row labels from INPUT).",
        epilog=EXIT_STATUS_HELP,
    )
    transform.add_argument("result", metavar="RESULT", help="result store written by dnmf fit")
    transform.add_argument("input", metavar="INPUT", help="matrix store with the new rows")
    options = (Option("out", "str", None, "matrix store to write W_NEW to (required)", metavar="W_NEW",
                      is_path=True),
               Option("max_iter", "int", None, "most iterations (default: the fit's)", metavar="N"),
               Option("tol", "float", None, "stopping tolerance (default: the fit's)"))
    add_options(transform, options)
    transform.add_argument("--overwrite", action="store_true", help="replace an existing W_NEW store")
    add_options(transform.add_argument_group("cluster"), CLUSTER_OPTIONS)
    add_options(transform.add_argument_group("output"), OUTPUT_OPTIONS)
    transform.set_defaults(handler=_batch("transform", (FIT_OPTIONS[0],) + options + CLUSTER_OPTIONS
                                          + OUTPUT_OPTIONS))


def _add_inspect(commands: Any) -> None:
    inspect = commands.add_parser(
        "inspect", help="summarise a matrix store, a result store or a checkpoint folder",
        description="Print what PATH holds. A matrix: shape, dtype, nnz, the block grid. A result: shapes, "
                    "parameters, iterations, loss history and the top features of every component. A checkpoint: "
                    "its newest complete iteration, parameters and loss history. Reads on this machine, without "
                    "a cluster (counting a dense matrix's non-zeros reads it once).",
    )
    inspect.add_argument("path", metavar="PATH", help="store or checkpoint folder (path or URL)")
    inspect.add_argument("--top", type=int, default=10, metavar="N",
                         help="top features shown per component (default: %(default)s)")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    inspect.set_defaults(handler=_inspect)


def _add_cluster(commands: Any) -> None:
    cluster = commands.add_parser(
        "cluster", help="check a cluster configuration, or make TLS certificates",
        description="Tools for the cluster configurations that --cluster takes (see cluster_configs/README.md).",
    )
    actions = cluster.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show", help="validate a configuration and print it with defaults; for slurm and pbs also the job "
                     "script, for kubernetes the DaskCluster resource (nothing is submitted)",
        description="Validate CONFIG.yaml and print every key with its default. Nothing is started or submitted.")
    show.add_argument("config", metavar="CONFIG.yaml")
    show.set_defaults(handler=_cluster_show)
    certs = actions.add_parser(
        "make-certs", help="write a private CA and a certificate for TLS (ca.pem, cert.pem, key.pem)",
        description="Write a private certificate authority and a certificate it signed into FOLDER, for the "
                    "tls section of a cluster configuration (see cluster_configs/tls-local.yaml).")
    certs.add_argument("folder", metavar="FOLDER")
    certs.add_argument("--host", action="append", default=None,
                       help="host name or IP address the certificate is valid for (repeatable; default: 127.0.0.1 "
                            "and localhost)")
    certs.set_defaults(handler=_cluster_make_certs)


def _add_demo(commands: Any) -> None:
    demo = commands.add_parser(
        "demo", help="factorize a synthetic sparse matrix on a LocalCluster started for the purpose",
        description="Start a LocalCluster of worker processes, factorize a synthetic sparse matrix with planted "
                    "low-rank structure and perturbed entries, and print the relative error per iteration and at "
                    "the end.",
    )
    demo.add_argument("--rows", type=int, default=50_000, help="rows of the matrix (default: %(default)s)")
    demo.add_argument("--cols", type=int, default=10_000, help="columns of the matrix (default: %(default)s)")
    demo.add_argument("--rank", type=int, default=10, help="planted rank and n_components (default: %(default)s)")
    demo.add_argument("--density", type=float, default=0.02,
                      help="share of columns each planted topic uses (default: %(default)s)")
    demo.add_argument("--solver", default="hals", choices=SOLVERS, help="update rule (default: %(default)s)")
    demo.add_argument("--max-iter", type=int, default=100, help="most iterations (default: %(default)s)")
    demo.add_argument("--tol", type=float, default=1e-6, help="stopping tolerance (default: %(default)s)")
    demo.add_argument("--workers", type=int, default=2, help="worker processes (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.set_defaults(handler=_demo)


def _add_ingest(commands: Any) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dnmf", description="Distributed non-negative matrix factorization on Dask, for batch jobs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="typical job:\n  dnmf ingest counts.mtx counts.zarr\n  dnmf fit counts.zarr --rank 20 --out "
               "topics.zarr\n  dnmf inspect topics.zarr\n  dnmf transform topics.zarr new.zarr --out new-w.zarr\n\n"
               + EXIT_STATUS_HELP + "\n\nRun `dnmf COMMAND --help` for the options of each command.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_ingest(commands)
    _add_fit(commands)
    add_rank(commands, _batch, EXIT_STATUS_HELP)
    _add_transform(commands)
    _add_inspect(commands)
    _add_cluster(commands)
    _add_demo(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dnmf`` command; returns its exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (UsageError, ValueError, TypeError, FileNotFoundError, FileExistsError, PermissionError,
            ImportError) as error:
        print(f"dnmf {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
