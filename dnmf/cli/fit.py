"""``dnmf fit``: a factorization as a batch job that can be rerun safely.

* A rerun after a crash resumes from the checkpoint (by default ``RESULT.checkpoint`` beside ``--out``).
* A rerun after success finds the result, checks it was made from the same parameters and input, and does
  nothing; ``--force`` recomputes it and swaps it in only once complete.
* A result made from other parameters or another input is never overwritten without ``--force``.
* Only what dnmf wrote is ever replaced or deleted: ``--force`` replaces a dnmf result store and deletes a
  checkpoint's own files, never a folder holding other files; ``INPUT``, ``--out`` and ``--checkpoint`` must be
  three separate places. A result or checkpoint folder of another user, or that others may write to, is refused.
* One fit per ``--out`` at a time: a second one exits 2 naming the job that holds the lock.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any

import dask

from dnmf.cli.exits import EXIT_NOT_CONVERGED, EXIT_OK, Outcome
from dnmf.cli.options import UsageError
from dnmf.cli.session import cluster_config, connected
from dnmf.cli.writable import check_writable
from dnmf.estimator.parameters import JOB_PARAMETERS, LATER_PARAMETERS, validate_parameters

__all__ = ["default_checkpoint", "run_fit"]

logger = logging.getLogger("dnmf")



def parse_chunks(text: str) -> Any:
    """``"auto"`` or ``"ROWS,COLS"`` as ``NMF(chunks=...)`` takes it."""
    if text == "auto":
        return "auto"
    message = f"--chunks must be ROWS,COLS of positive integers such as 10000,5000, or auto; got {text!r}."
    try:
        rows, cols = (int(part) for part in text.split(","))
    except ValueError as error:
        raise UsageError(message) from error
    if rows < 1 or cols < 1:
        raise UsageError(message)
    return (rows, cols)


def beta_loss(text: str) -> str | float:
    """``--beta-loss``: a loss name, or a number β."""
    from dnmf.core.rules import BETA_LOSSES

    if text in BETA_LOSSES:
        return text
    try:
        return float(text)
    except ValueError as error:
        raise UsageError(f"--beta-loss must be one of {', '.join(BETA_LOSSES)} or a number; got {text!r}.") from error


def default_checkpoint(out: str) -> str:
    """The checkpoint folder of a job whose result goes to ``out``: ``out`` + ``.checkpoint``."""
    return out.rstrip("/") + ".checkpoint"


def _model(values: dict[str, Any]) -> Any:
    from dnmf import NMF

    if values["rank"] is None:
        raise UsageError("--rank is required (the flag, or 'rank' in the job file).")
    model = NMF(
        values["rank"], solver=values["solver"], beta_loss=beta_loss(values.get("beta_loss", "frobenius")),
        init=values["init"], max_iter=values["max_iter"],
        tol=values["tol"], random_state=values["seed"], alpha_W=values["alpha_w"],
        alpha_H="same" if values["alpha_h"] is None else values["alpha_h"], l1_ratio=values["l1_ratio"],
        chunks=parse_chunks(values["chunks"]), checkpoint=values["checkpoint"],
        checkpoint_every=values["checkpoint_every"], verbose=values.get("verbose", 0),
    )
    validate_parameters(model.get_params())
    return model


def _check_input(url: str) -> None:
    from dnmf import open_matrix

    with dask.config.set(scheduler="sync"):
        open_matrix(url)


def _check_paths(values: dict[str, Any]) -> None:
    """Refuse an ``--out`` or ``--checkpoint`` that is the input, holds it or lies inside it, and a checkpoint
    that is the result or lies inside it (or holds it)."""
    from dnmf.data.safety import overlapping

    pairs = [("--out", values["out"], "INPUT", values["input"])]
    if values["checkpoint"]:
        pairs += [("--checkpoint", values["checkpoint"], "INPUT", values["input"]),
                  ("--checkpoint", values["checkpoint"], "--out", values["out"])]
    for name, path, other_name, other in pairs:
        if overlapping(path, other):
            raise UsageError(f"{name} {path!r} and {other_name} {other!r} are the same place or one lies inside the "
                             f"other; a fit writes (and may later delete) {name}. Choose a separate {name}.")


def _previous_result(out: str) -> Any:
    from dnmf import load_result
    from dnmf.data.safety import check_private
    from dnmf.data.store import Location, StoreError

    location = Location.parse(out, None)
    if not location.exists():
        return None
    if location.is_local:
        check_private(location.url, "result store")
    try:
        return load_result(out)
    except StoreError as error:
        raise UsageError(f"{out!r} exists and is not a dnmf result store ({error}); choose another --out.") from error


def _parameter_differences(stored: dict[str, Any], model: Any) -> list[str]:
    from dnmf.data.results import jsonable

    current = jsonable(model.get_params())
    return [f"{name}: the result has {stored.get(name)!r}, this run has {current[name]!r}"
            for name in JOB_PARAMETERS if stored.get(name, LATER_PARAMETERS.get(name)) != current[name]]


def _input_differences(url: str, stored: dict[str, Any]) -> list[str]:
    """How ``url`` differs from the input a result was made from: shape, dtype, and the SHA-256 of its first and
    last blocks on the result's grid (two blocks are read, on this machine)."""
    from dnmf import open_matrix
    from dnmf.data.fingerprint import fingerprint
    from dnmf.data.matrix import MatrixStats, as_input_matrix

    with dask.config.set(scheduler="sync"):
        shape = list(open_matrix(url).shape)
        if shape != stored["shape"]:
            return [f"input shape: the result was made from {stored['shape']}, the input is {shape}"]
        chunks = tuple(tuple(c) for c in stored["chunks"])
        A = as_input_matrix(open_matrix(url, chunks=chunks), chunks=chunks).array
        if str(A.dtype) != stored["dtype"]:
            return [f"input dtype: the result was made from {stored['dtype']}, the input is {A.dtype}"]
        known = MatrixStats(stored["sum"], stored["norm_squared"], stored["nnz"], tuple(stored["shape"]))
        if fingerprint(A, known)["sample_sha256"] != stored["sample_sha256"]:
            return ["input content: its first or last block differs from the input the result was made from"]
    return []


def _summary(values: dict[str, Any], status: str, record: dict[str, Any], started: float,
             cluster: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    loss_history = record.get("loss_history") or [math.nan]
    norm = math.sqrt((record.get("fingerprint") or {}).get("norm_squared") or math.nan)
    return {
        "command": "fit", "status": status, "result": _display_url(values["out"]), "input": values["input"],
        "n_components": record.get("n_components"), "iterations": record.get("n_iter"),
        "resumed_from": extra.pop("resumed_from", None), "converged": record.get("converged"),
        "loss": loss_history[-1], "loss_resolution": (record.get("loss_resolution") or [math.nan])[-1],
        "reconstruction_err": record.get("reconstruction_err"),
        "relative_error": (record.get("reconstruction_err") or math.nan) / norm,
        "checkpoint": values["checkpoint"], "cluster": cluster,
        "timings": {"total_seconds": time.perf_counter() - started, **extra.pop("timings", {})},
        **extra,
    }


def _display_url(url: str) -> str:
    return url if "://" in url else os.path.abspath(url)


def _exit_code(values: dict[str, Any], converged: bool) -> int:
    return EXIT_NOT_CONVERGED if values["require_convergence"] and not converged else EXIT_OK


def run_fit(values: dict[str, Any]) -> Outcome:
    """Run ``dnmf fit`` with resolved option ``values`` (see :data:`dnmf.cli.options.FIT_OPTIONS`)."""
    from dnmf.cli.lock import output_lock

    started = time.perf_counter()
    for name in ("input", "out"):
        if not values[name]:
            raise UsageError(f"{'INPUT' if name == 'input' else '--out'} is required (on the command line, or "
                             f"'{name}' in the job file).")
    if values["no_checkpoint"]:
        values["checkpoint"] = None
    elif not values["checkpoint"]:
        values["checkpoint"] = default_checkpoint(values["out"])
    _check_paths(values)
    check_writable(values["out"], "--out")  # before the lock, which is written beside --out
    with output_lock(values["out"]):
        return _locked_fit(values, started)


def _locked_fit(values: dict[str, Any], started: float) -> Outcome:
    from dnmf.data.checkpoint import CheckpointError, CheckpointStore

    model = _model(values)
    config = cluster_config(values)
    _check_input(values["input"])
    previous = _previous_result(values["out"])
    if previous is not None and not values["force"]:
        differences = (_parameter_differences(previous.info.get("params", {}), model)
                       or _input_differences(values["input"], previous.info["fingerprint"]))
        if differences:
            raise UsageError(f"A result made from another job already exists at {values['out']!r}: "
                             + "; ".join(differences) + ". Pass --force to replace it, or choose another --out.")
        logger.info("The result at %s is already complete for this job; nothing to do (pass --force to "
                    "recompute it).", values["out"])
        summary = _summary(values, "already-done", previous.info, started)
        return Outcome(_exit_code(values, bool(previous.info.get("converged"))), summary)
    if values["checkpoint"]:
        CheckpointStore(values["checkpoint"]).check()
    if values["force"] and values["checkpoint"] and CheckpointStore(values["checkpoint"]).exists():
        logger.info("--force: discarding the checkpoint at %s", values["checkpoint"])
        CheckpointStore(values["checkpoint"]).discard()
    cluster: dict[str, Any] = {}
    with connected(config, values["connect_timeout"], cluster):
        connected_at = time.perf_counter()
        try:
            model.fit(values["input"], resume=values["checkpoint"] is not None)
        except CheckpointError as error:
            raise UsageError(f"{error} Or pass --force to discard it and start afresh.") from error
        fitted_at = time.perf_counter()
        model.save(values["out"], overwrite=values["force"])
    saved_at = time.perf_counter()
    logger.info("Wrote %s: %d iterations, converged=%s, loss %.6g", values["out"], model.n_iter_, model.converged_,
                model.loss_history_[-1] if model.loss_history_ else math.nan)
    if values["checkpoint"] == default_checkpoint(values["out"]):
        CheckpointStore(values["checkpoint"]).discard()
    resumed_from = model.resumed_from_
    record = {"n_components": model.n_components_, "n_iter": model.n_iter_, "converged": model.converged_,
              "loss_history": model.loss_history_, "reconstruction_err": model.reconstruction_err_,
              "fingerprint": model.fingerprint_}
    seconds = model.timings_["seconds_per_iteration"]
    timings = {"connect_seconds": connected_at - started, "fit_seconds": fitted_at - connected_at,
               "save_seconds": saved_at - fitted_at,
               "mean_seconds_per_iteration": sum(seconds) / len(seconds) if seconds else None}
    summary = _summary(values, "resumed" if resumed_from is not None else "completed", record, started,
                       cluster, resumed_from=resumed_from, timings=timings)
    return Outcome(_exit_code(values, model.converged_), summary)
