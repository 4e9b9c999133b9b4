"""The options of ``dnmf fit`` and ``dnmf transform``, declared once: flags and job-file keys come from this table.

A job file is TOML with the same options as the flags. Its keys are the flag names without the leading dashes;
``max-iter`` and ``max_iter`` name the same option. Relative paths in a job file are taken relative to the
file's folder. Flags given on the command line override the job file, which overrides the defaults.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnmf.core.rules import ALIASES, BETA_LOSSES, solver_names
from dnmf.core.rules import SOLVERS as SOLVERS_TABLE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["CLUSTER_OPTIONS", "FIT_OPTIONS", "OUTPUT_OPTIONS", "Option", "UsageError", "add_options",
           "load_job_file", "resolve"]


class UsageError(ValueError):
    """A command line or job file that cannot run: exit status 2."""


@dataclass(frozen=True)
class Option:
    """One option: its name (the job-file key, with underscores), its type, default and help."""

    name: str
    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    is_path: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def accepts(self, value: Any) -> bool:
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "int":
            return isinstance(value, int) and not isinstance(value, bool)
        if self.kind == "float":
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        return isinstance(value, str) and (self.choices is None or value in self.choices)


SOLVERS = tuple(solver_names())
BETA_LOSS_NAMES = tuple(BETA_LOSSES)
INITS = ("random", "nndsvd", "nndsvda", "nndsvdar")


def _solver_help() -> str:
    lines = "; ".join(f"{name}: {spec.summary}" for name, spec in SOLVERS_TABLE.items())
    aliases = ", ".join(f"{alias} = {name}" for alias, name in ALIASES.items())
    return f"update rule (default: %(default)s). {lines} ({aliases})"


def _beta_loss_help() -> str:
    able = ", ".join(name for name, spec in SOLVERS_TABLE.items() if "beta" in spec.losses)
    return (f"loss: {', '.join(BETA_LOSS_NAMES)}, or a number beta for the beta-divergence (other than "
            f"frobenius: solver {able}; default: %(default)s)")

FIT_OPTIONS: tuple[Option, ...] = (
    Option("input", "str", None, "matrix store to factorize (path or URL), when not given as INPUT", is_path=True),
    Option("rank", "int", None, "number of components k (required)", metavar="K"),
    Option("out", "str", None, "result store to write (required)", metavar="RESULT", is_path=True),
    Option("solver", "str", "hals", _solver_help(), choices=SOLVERS),
    Option("beta_loss", "str", "frobenius", _beta_loss_help(), metavar="LOSS"),
    Option("init", "str", None, "initialisation (default: nndsvda when k <= min(m, n), else random)",
           choices=INITS),
    Option("max_iter", "int", 200, "most iterations (default: %(default)s)", metavar="N"),
    Option("tol", "float", 1e-4, "stopping tolerance, relative to the initial error (default: %(default)s)"),
    Option("alpha_w", "float", 0.0, "regularisation of W, as scikit-learn's alpha_W (default: %(default)s)"),
    Option("alpha_h", "float", None, "regularisation of H (default: the value of --alpha-w)"),
    Option("l1_ratio", "float", 0.0, "share of L1 in the regularisation, in [0, 1] (default: %(default)s)"),
    Option("seed", "int", 0, "random seed; with the same seed and chunks runs are reproducible (default: %(default)s)"),
    Option("chunks", "str", "auto", "block grid as ROWS,COLS (default: chosen from the data and the workers)",
           metavar="ROWS,COLS"),
    Option("checkpoint", "str", None, "checkpoint folder (default: RESULT.checkpoint beside --out)", metavar="DIR",
           is_path=True),
    Option("checkpoint_every", "int", 10, "checkpoint every N iterations (default: %(default)s)", metavar="N"),
    Option("no_checkpoint", "bool", False, "do not checkpoint: a rerun after a crash starts afresh"),
    Option("force", "bool", False, "replace an existing result and start afresh, discarding the checkpoint"),
    Option("require_convergence", "bool", False, "exit with status 4 when max_iter is reached before tol"),
)

CLUSTER_OPTIONS: tuple[Option, ...] = (
    Option("cluster", "str", None, "cluster configuration YAML (see cluster_configs/); default: a LocalCluster "
           "on 127.0.0.1 with one worker process per CPU", metavar="CONFIG.yaml", is_path=True),
    Option("scheduler", "str", None, "address of a running scheduler, e.g. tcp://10.0.0.5:8786", metavar="ADDRESS"),
    Option("connect_timeout", "float", 20.0, "seconds to wait for the scheduler (default: %(default)s)",
           metavar="SECONDS"),
)

OUTPUT_OPTIONS: tuple[Option, ...] = (
    Option("log_format", "str", "human", "log lines on stderr: human or json (one JSON object per line)",
           choices=("human", "json")),
    Option("log_level", "str", "INFO", "least severe level logged (default: %(default)s)",
           choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    Option("summary", "str", None, "write the JSON summary to FILE instead of stdout", metavar="FILE",
           is_path=True),
)


def add_options(parser: argparse.ArgumentParser | Any, options: tuple[Option, ...], *,
                skip: tuple[str, ...] = ()) -> None:
    """Add ``options`` as flags whose default is "not given", so that a job file can fill them."""
    for option in options:
        if option.name in skip:
            continue
        if option.kind == "bool":
            parser.add_argument(option.flag, dest=option.name, action="store_true", default=argparse.SUPPRESS,
                                help=option.help)
            continue
        converter = {"int": int, "float": float, "str": str}[option.kind]
        parser.add_argument(option.flag, dest=option.name, type=converter, choices=option.choices,
                            metavar=option.metavar, default=argparse.SUPPRESS,
                            help=option.help.replace("%(default)s", str(option.default)))


def _absolute(value: str, folder: Path) -> str:
    if "://" in value or os.path.isabs(os.path.expanduser(value)):
        return os.path.expanduser(value)
    return str(folder / value)


def load_job_file(path: str | os.PathLike[str], options: tuple[Option, ...]) -> dict[str, Any]:
    """The options of a TOML job file, checked against ``options``.

    Raises
    ------
    UsageError
        If the file is missing or not TOML, or has an unknown key or a value of the wrong type; the message names
        the file and the key.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as error:
        raise UsageError(f"No job file at {str(path)!r}.") from error
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{path}: not valid TOML ({error}).") from error
    table = {option.name: option for option in options}
    values = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in table:
            raise UsageError(f"{path}: unknown key {key!r}. Valid keys: {', '.join(sorted(table))}.")
        option = table[name]
        if not option.accepts(value):
            expected = (f"one of {', '.join(option.choices)}" if option.choices else
                        {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}[
                            option.kind])
            raise UsageError(f"{path}: the key {key!r} must be {expected}, got {value!r}.")
        values[name] = _absolute(value, path.resolve().parent) if option.is_path else value
    return values


def resolve(given: dict[str, Any], options: tuple[Option, ...], job_file: str | None) -> dict[str, Any]:
    """Defaults, overridden by the job file, overridden by the flags in ``given``.

    Local paths become absolute (relative to the job file's folder, or to the working directory for flags), since
    workers may run elsewhere.

    Raises
    ------
    UsageError
        For a bad job file, or a ``connect_timeout`` that is not a positive, finite number.
    """
    values = {option.name: option.default for option in options}
    if job_file:
        values.update(load_job_file(job_file, options))
    paths = {option.name for option in options if option.is_path}
    values.update({name: _absolute(value, Path.cwd()) if name in paths and value is not None else value
                   for name, value in given.items() if name in values})
    timeout = values.get("connect_timeout")
    if timeout is not None and not 0 < timeout < math.inf:
        raise UsageError(f"--connect-timeout must be a positive, finite number of seconds; got {timeout!r}.")
    return values
