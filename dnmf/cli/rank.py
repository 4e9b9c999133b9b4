"""``dnmf rank``: choose the number of components of a matrix store by cross-validation (:func:`dnmf.select_rank`).

It writes its JSON summary (stdout or ``--summary FILE``), which holds ``best_rank`` and the per-rank table, and
with ``--out DIR`` each rank's best fit as a result store ``DIR/rank-K``; with ``--checkpoint DIR`` a rerun resumes
the survey. Its exit statuses are those of ``dnmf fit``.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import Any

from dnmf.cli.exits import EXIT_OK, Outcome
from dnmf.cli.writable import check_writable
from dnmf.estimator.rank import IMPUTE_FROM_K_TIMES_FRACTION
from dnmf.cli.options import (
    CLUSTER_OPTIONS,
    INITS,
    OUTPUT_OPTIONS,
    SOLVERS,
    Option,
    UsageError,
    add_options,
)

__all__ = ["RANK_OPTIONS", "add_rank", "parse_ranks", "run_rank"]

logger = logging.getLogger("dnmf")

RANK_OPTIONS: tuple[Option, ...] = (
    Option("input", "str", None, "matrix store (path or URL), when not given as INPUT", is_path=True),
    Option("ranks", "str", None, "candidate ranks: FIRST:LAST (inclusive) or a comma list such as 2,4,8 "
           "(required)", metavar="RANKS"),
    Option("replicates", "int", 3, "holdouts, each fitted at every rank; at least 2 (default: %(default)s)",
           metavar="N"),
    Option("test_fraction", "float", 0.1, "share of the entries held out, in (0, 1) (default: %(default)s)",
           metavar="F"),
    Option("solver", "str", "mu", "update rule; one that handles masks (default: %(default)s)", choices=SOLVERS),
    Option("beta_loss", "str", "frobenius", "loss fitted and scored (default: %(default)s)", metavar="LOSS"),
    Option("init", "str", None, "initialisation (default: as dnmf fit)", choices=INITS),
    Option("max_iter", "int", 500, "most iterations of each fit (default: %(default)s)", metavar="N"),
    Option("tol", "float", 1e-5, "stopping tolerance of each fit (default: %(default)s)"),
    Option("seed", "int", 0, "seed of the holdouts and the fits (default: %(default)s)"),
    Option("chunks", "str", "auto", "block grid as ROWS,COLS (default: chosen from the data and the workers)",
           metavar="ROWS,COLS"),
    Option("out", "str", None, "folder that keeps each rank's best fit as a result store rank-K, to use without "
           "refitting (dnmf transform DIR/rank-K INPUT --out W); none is replaced (default: keep none)",
           metavar="DIR", is_path=True),
    Option("checkpoint", "str", None, "folder in which every fit checkpoints, so that running the same command "
           "again resumes the survey: finished fits are read back, an interrupted one continues (default: none)",
           metavar="DIR", is_path=True),
    Option("concurrent_fits", "int", None, "fits of a replicate run at once on the cluster, each with the result "
           "it has alone (default: two per worker, while their copies of the training input take at most a "
           "quarter of the workers' memory)", metavar="N"),
    Option("fits", "str", "auto", "where each fit runs: whole on a worker as one task ('workers'), or with its "
           "blocks across the cluster ('cluster'); 'auto' fits on workers while the training input is small "
           "against a worker's memory (default: %(default)s)", choices=("auto", "workers", "cluster")),
    Option("mask_updates", "str", "auto", "how each fit steps over the held-out entries: 'exact' (each row and "
           "column on its observed entries) or 'impute' (EM: filled with the current WH); 'auto' takes the one "
           f"that reaches a given loss sooner: EM for mu, and for hals/bpp from k * test fraction >= "
           f"{IMPUTE_FROM_K_TIMES_FRACTION:g} (default: %(default)s)", choices=("auto", "exact", "impute")),
    Option("held_out_zeros", "str", "auto", "which zeros of a sparse input are held out: 'all' (the test fraction "
           "of every entry; dense training input) or 'sampled' (the test fraction of the stored entries and as "
           "many zeros; sparse training input, beta > 0); 'auto' samples them where the dense training "
           "input would pass 1 GiB (default: %(default)s)", choices=("auto", "all", "sampled")),
)


#: ``--fits`` as ``select_rank``'s ``fits_on_workers``.
FITS_ON_WORKERS = {"auto": None, "workers": True, "cluster": False}


def parse_ranks(text: str | None) -> list[int]:
    """``--ranks``: ``"2:20"`` (both ends included) or ``"2,4,8"``."""
    if not text:
        raise UsageError("--ranks is required, e.g. --ranks 2:20 or --ranks 2,4,8.")
    try:
        if ":" in text:
            first, last = (int(part) for part in text.split(":"))
            ranks = list(range(first, last + 1))
        else:
            ranks = [int(part) for part in text.split(",")]
    except ValueError as error:
        raise UsageError(f"--ranks must be FIRST:LAST such as 2:20, or a comma list such as 2,4,8; got "
                         f"{text!r}.") from error
    if not ranks or min(ranks) < 1:
        raise UsageError(f"--ranks must name at least one rank, each at least 1; got {text!r}.")
    return ranks


def run_rank(values: dict[str, Any]) -> Outcome:
    """Run ``dnmf rank`` with resolved options; its summary holds ``best_rank`` and ``table``."""
    from dnmf import open_matrix, select_rank
    from dnmf.cli.fit import beta_loss, parse_chunks
    from dnmf.cli.session import cluster_config, connected
    from dnmf.core.rules import beta_value
    from dnmf.estimator.training import samples_zeros

    started = time.perf_counter()
    if not values.get("input"):
        raise UsageError("INPUT is required: the matrix store to survey.")
    ranks = parse_ranks(values["ranks"])
    if values.get("out"):
        check_writable(values["out"], "--out")
        taken = [k for k in ranks if os.path.exists(os.path.join(values["out"], f"rank-{k}"))]
        if taken:
            raise UsageError(f"--out {values['out']!r} already holds rank-{taken[0]}: dnmf rank replaces no result "
                             "store. Choose another --out, or remove those stores first.")
    if values.get("checkpoint"):
        check_writable(values["checkpoint"], "--checkpoint")
    if values.get("concurrent_fits") is not None and values["concurrent_fits"] < 1:
        raise UsageError(f"--concurrent-fits must be at least 1, got {values['concurrent_fits']}.")
    config = cluster_config(values)
    X = open_matrix(values["input"])
    samples_zeros(X, values.get("held_out_zeros") or "auto", beta=beta_value(beta_loss(values["beta_loss"])))
    cluster: dict[str, Any] = {}
    with connected(config, values["connect_timeout"], cluster):
        result = select_rank(X, ranks, test_fraction=values["test_fraction"], replicates=values["replicates"],
                             solver=values["solver"], beta_loss=beta_loss(values["beta_loss"]),
                             init=values["init"], max_iter=values["max_iter"], tol=values["tol"],
                             chunks=parse_chunks(values["chunks"]), random_state=values["seed"],
                             out=values.get("out"), checkpoint=values.get("checkpoint"),
                             concurrent_fits=values.get("concurrent_fits"),
                             fits_on_workers=FITS_ON_WORKERS[values.get("fits") or "auto"],
                             mask_updates=values.get("mask_updates") or "auto",
                             held_out_zeros=values.get("held_out_zeros") or "auto")
    logger.info("Best rank of %s: %d (%s)", values["input"], result.best_rank, result.rule)
    summary = {"command": "rank", "status": "completed", "input": values["input"], "best_rank": result.best_rank,
               "rule": result.rule, "table": result.table, "test_errors": result.test_errors,
               "n_iter": result.n_iter, "replicates": values["replicates"], "test_fraction": result.test_fraction,
               "seeds": result.seeds, "solver": result.solver, "beta_loss": result.beta_loss, "cluster": cluster,
               "results": ({k: os.path.join(values["out"], f"rank-{k}") for k in ranks} if values.get("out")
                           else None),
               "timings": {"total_seconds": time.perf_counter() - started}}
    return Outcome(EXIT_OK, summary)


def add_rank(commands: Any, handler: Any, exit_status_help: str) -> None:
    """The ``rank`` subcommand; ``handler`` makes the batch handler from its options (``main._batch``)."""
    rank = commands.add_parser(
        "rank", help="choose the number of components by cross-validation on held-out entries",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Hold out a random share of INPUT's entries (zeros included), fit every rank of --ranks on "
                    "the rest, and score each fit on the held-out entries, for --replicates holdouts. The best "
                    "rank is the smallest whose mean test error is within one standard deviation of the "
                    "minimum. Logs go to stderr; a JSON summary with best_rank and the table goes to stdout or "
                    "--summary FILE.",
        epilog=exit_status_help + "\n\nexample:\n  dnmf rank counts.zarr --ranks 2:20 --beta-loss kullback-leibler "
               "--summary ranks.json",
    )
    rank.add_argument("input", nargs="?", default=argparse.SUPPRESS, metavar="INPUT",
                      help="matrix store to survey (path or URL)")
    rank.add_argument("--config", metavar="JOB.toml", help="job file with the same options as the flags")
    add_options(rank.add_argument_group("cross-validation"), RANK_OPTIONS, skip=("input",))
    add_options(rank.add_argument_group("cluster"), CLUSTER_OPTIONS)
    add_options(rank.add_argument_group("output"), OUTPUT_OPTIONS)
    rank.set_defaults(handler=handler("rank", RANK_OPTIONS + CLUSTER_OPTIONS + OUTPUT_OPTIONS))
