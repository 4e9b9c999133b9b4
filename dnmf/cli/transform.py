"""``dnmf transform``: project new rows onto the fixed H of a result, on the cluster, into a new matrix store."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import dask

from dnmf.cli.exits import EXIT_OK, Outcome
from dnmf.cli.options import UsageError
from dnmf.cli.session import cluster_config, connected
from dnmf.cli.writable import check_writable

__all__ = ["run_transform"]

logger = logging.getLogger("dnmf")



def run_transform(values: dict[str, Any]) -> Outcome:
    """Run ``dnmf transform`` with resolved option ``values``."""
    from dnmf import NMF, load_result, open_matrix, read_labels, save_matrix
    from dnmf.data.safety import overlapping
    from dnmf.data.store import Location

    started = time.perf_counter()
    if not values["out"]:
        raise UsageError("--out W_NEW is required: the matrix store to write the new rows' W to.")
    if "://" not in values["result"]:
        values["result"] = os.path.abspath(values["result"])
    for name in ("input", "result"):
        if values.get("out") and overlapping(values["out"], values[name]):
            raise UsageError(f"--out {values['out']!r} and {name.upper()} {values[name]!r} are the same place or "
                             "one lies inside the other; choose a separate --out.")
    result = load_result(values["result"])
    check_writable(values["out"], "--out")
    if Location.parse(values["out"], None).exists() and not values["overwrite"]:
        raise UsageError(f"A store already exists at {values['out']!r}; pass --overwrite to replace it.")
    with dask.config.set(scheduler="sync"):
        n_features = open_matrix(values["input"]).shape[1]
        row_labels, _ = read_labels(values["input"])
    if n_features != result.H.shape[1]:
        raise UsageError(f"{values['input']!r} has {n_features} columns, but the result's H has "
                         f"{result.H.shape[1]}: transform needs the columns (features) the result was fitted on.")
    overrides = {name: values[name] for name in ("max_iter", "tol") if values.get(name) is not None}
    model = NMF.from_result(result, chunks="auto", checkpoint=None, verbose=0, **overrides)
    cluster: dict[str, Any] = {}
    with connected(cluster_config(values), values["connect_timeout"], cluster):
        W = model.transform(values["input"])
        save_matrix(W, values["out"], labels=(row_labels, None), overwrite=values["overwrite"])
    logger.info("Wrote %s: W of shape %s", values["out"], tuple(W.shape))
    out = values["out"]
    summary = {"command": "transform", "status": "completed", "result": values["result"], "input": values["input"],
               "out": out if "://" in out else os.path.abspath(out), "shape": list(W.shape), "cluster": cluster,
               "timings": {"total_seconds": time.perf_counter() - started}}
    return Outcome(EXIT_OK, summary)
