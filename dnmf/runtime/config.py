"""Cluster configurations: what a YAML file in ``cluster_configs/`` may say, checked key by key.

A configuration is a mapping with a ``kind`` and the keys that kind declares in :data:`SCHEMAS`. Loading checks
every key and its type, and names the file and the key in any error. Starting what a configuration describes is
:mod:`dnmf.runtime.launch`; nothing here starts anything or knows about factorizations.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnmf.runtime.cluster_values import VALUE_CHECKS

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "EXTRAS",
    "KINDS",
    "PACKAGES",
    "SCHEMAS",
    "TLS_KEYS",
    "ClusterConfig",
    "ClusterConfigError",
    "MissingExtraError",
    "address_config",
    "load_cluster_config",
    "local_config",
    "validate",
]

#: Seconds to wait for a scheduler to answer before giving up.
DEFAULT_CONNECT_TIMEOUT = 20.0


class ClusterConfigError(ValueError):
    """A cluster configuration that cannot be used: unknown kind or key, wrong type, missing required key."""


class MissingExtraError(ImportError):
    """The optional package a cluster kind needs is not installed."""


@dataclass(frozen=True)
class Key:
    """One key of a configuration: the types it accepts, its default, what it means, and the values it accepts
    beyond its type (``valid``: a name from :data:`dnmf.runtime.cluster_values.VALUE_CHECKS`)."""

    kind: str
    default: Any = None
    help: str = ""
    required: bool = False
    valid: str | None = None


#: Type names a :class:`Key` may declare, with their checks.
TYPE_CHECKS: dict[str, Any] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "int or str": lambda v: isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)),
    "list of str": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "mapping": lambda v: isinstance(v, dict),
}

TLS_KEYS: dict[str, Key] = {
    "ca_file": Key("str", help="CA certificate (PEM) that signed every party's certificate", required=True),
    "cert": Key("str", help="certificate (PEM) of this party (scheduler, workers and client)", required=True),
    "key": Key("str", help="private key (PEM) of the certificate", required=True),
    "require_encryption": Key("bool", True, "refuse connections without TLS"),
}

_WAITING: dict[str, Key] = {
    "wait_for_workers": Key("int", 1, "workers to wait for before the fit starts (chunking follows their count)",
                            valid="non-negative"),
    "wait_timeout": Key("number", 600.0, "seconds to wait for them", valid="seconds"),
}

_JOBQUEUE: dict[str, Key] = {
    "cores": Key("int", help="cores per job", required=True, valid="positive"),
    "memory": Key("str", help="memory per job, e.g. '16GB'", required=True),
    "processes": Key("int", 1, "worker processes per job (threads per worker = cores / processes)",
                     valid="positive"),
    "jobs": Key("int", 1, "jobs to submit", valid="positive"),
    "queue": Key("str", help="queue (SLURM partition)"),
    "account": Key("str", help="account charged for the jobs"),
    "walltime": Key("str", "01:00:00", "time limit of each job"),
    "job_name": Key("str", "dnmf-worker", "name of the jobs"),
    "job_extra_directives": Key("list of str", [], "extra scheduler directives, e.g. ['--exclusive']"),
    "job_script_prologue": Key("list of str", [], "shell lines run before the worker, e.g. 'module load ...'"),
    "worker_extra_args": Key("list of str", [], "extra arguments of the worker command"),
    "interface": Key("str", help="network interface of workers and scheduler, e.g. 'ib0'"),
    "local_directory": Key("str", help="scratch folder of the workers"),
    "log_directory": Key("str", help="folder for the jobs' output files"),
    "python": Key("str", help="Python executable on the compute nodes"),
    "scheduler_options": Key("mapping", {}, "options of the scheduler started in this process"),
    **_WAITING,
}

#: Every kind and the keys it accepts besides ``kind``.
SCHEMAS: dict[str, dict[str, Key]] = {
    "local": {
        "n_workers": Key("int", help="worker processes (default: the CPU count)", valid="positive"),
        "threads_per_worker": Key("int", 1, "threads per worker; 1 keeps BLAS single-threaded per block",
                                  valid="positive"),
        "memory_limit": Key("int or str", "auto", "memory per worker: bytes, '4GiB', or 'auto' (RAM / workers)",
                            valid="memory"),
        "processes": Key("bool", True, "workers in separate processes (false: threads of the dnmf process)"),
        "host": Key("str", "127.0.0.1", "interface the scheduler and workers bind to", valid="non-empty"),
        "scheduler_port": Key("int", 0, "scheduler port; 0 picks a free one", valid="port"),
        "dashboard_address": Key("str", "127.0.0.1:8787", "address of the dashboard; 'none' turns it off",
                                 valid="address"),
        "local_directory": Key("str", help="scratch folder of the workers"),
        "tls": Key("mapping", help="TLS between client, scheduler and workers: " + ", ".join(TLS_KEYS)),
    },
    "address": {
        "address": Key("str", help="scheduler address, e.g. 'tcp://10.0.0.5:8786' or 'tls://...'", required=True),
        "tls": Key("mapping", help="client certificate for a TLS scheduler: " + ", ".join(TLS_KEYS)),
        **_WAITING,
    },
    "slurm": {**_JOBQUEUE},
    "pbs": {**_JOBQUEUE, "resource_spec": Key("str", help="PBS resource request, e.g. 'select=1:ncpus=8:mem=32GB'")},
    "kubernetes": {
        "name": Key("str", "dnmf", "name of the DaskCluster resource"),
        "namespace": Key("str", help="Kubernetes namespace (default: the current context's)"),
        "image": Key("str", "ghcr.io/dask/dask:latest", "container image; it must have dnmf installed"),
        "n_workers": Key("int", 2, "worker pods", valid="positive"),
        "resources": Key("mapping", {}, "requests and limits of each worker container"),
        "env": Key("mapping", {}, "environment variables of scheduler and workers"),
        "worker_command": Key("str", "dask-worker", "command that starts a worker"),
        "scheduler_service_type": Key("str", "ClusterIP", "type of the scheduler's Service"),
        "idle_timeout": Key("int", 0, "seconds after which an idle cluster deletes itself (0: never)",
                            valid="non-negative"),
        "shutdown_on_close": Key("bool", True, "delete the cluster when the job ends"),
        **_WAITING,
    },
    "gateway": {
        "address": Key("str", help="Dask Gateway server address, e.g. 'https://gateway.example.org'", required=True),
        "proxy_address": Key("str", help="scheduler proxy address, if not the server's"),
        "public_address": Key("str", help="address for the dashboard link"),
        "auth": Key("str", help="authentication: 'kerberos', 'jupyterhub' or 'basic'"),
        "cluster_options": Key("mapping", {}, "options offered by the gateway, e.g. worker_cores, image"),
        "workers": Key("int", 2, "workers to scale to", valid="positive"),
        "shutdown_on_close": Key("bool", True, "stop the cluster when the job ends"),
        **_WAITING,
    },
    "local-cuda": {
        "devices": Key("list of str",
                       help="GPUs to use, by index or UUID, e.g. ['0', '1'] (default: every visible GPU)"),
        "n_workers": Key("int", help="worker processes, one per GPU (default: one per entry of devices)",
                         valid="positive"),
        "threads_per_worker": Key("int", 1, "threads per worker", valid="positive"),
        "memory_limit": Key("int or str", "auto", "host memory per worker: bytes, '16GiB', or 'auto'", valid="memory"),
        "device_memory_limit": Key("int or str", help="GPU memory per worker before spilling to host, e.g. '60GB'",
                                   valid="memory"),
        "rmm_pool_size": Key("str", help="RMM memory pool allocated on each GPU at start, e.g. '24GB'",
                             valid="memory"),
        "host": Key("str", "127.0.0.1", "interface the scheduler and workers bind to", valid="non-empty"),
        "dashboard_address": Key("str", "127.0.0.1:8787", "address of the dashboard; 'none' turns it off",
                                 valid="address"),
        "local_directory": Key("str", help="scratch folder of the workers"),
        "tls": Key("mapping", help="TLS between client, scheduler and workers: " + ", ".join(TLS_KEYS)),
    },
}
KINDS = tuple(SCHEMAS)

#: Kinds that need an optional package: (module, pip extra).
EXTRAS: dict[str, tuple[str, str]] = {
    "slurm": ("dask_jobqueue", "slurm"),
    "pbs": ("dask_jobqueue", "pbs"),
    "kubernetes": ("dask_kubernetes", "kubernetes"),
    "gateway": ("dask_gateway", "gateway"),
    "local-cuda": ("dask_cuda", "gpu"),
}
PACKAGES = {"dask_jobqueue": "dask-jobqueue", "dask_kubernetes": "dask-kubernetes", "dask_gateway": "dask-gateway",
            "dask_cuda": "dask-cuda"}


@dataclass(frozen=True)
class ClusterConfig:
    """A validated configuration: its kind, every key with defaults filled in, and where it came from.

    Relative file names in the configuration (TLS files, folders) are taken relative to ``base_dir``, the folder
    of the YAML file.
    """

    kind: str
    options: dict[str, Any]
    source: str = "defaults"
    base_dir: Path = field(default_factory=Path.cwd)

    def path(self, value: str) -> str:
        """``value`` as a path: absolute as given, or relative to the configuration's folder."""
        expanded = Path(os.path.expanduser(value))
        return str(expanded if expanded.is_absolute() else (self.base_dir / expanded))


def _check_keys(data: Mapping[str, Any], schema: dict[str, Key], where: str, prefix: str = "") -> dict[str, Any]:
    unknown = sorted(set(data) - set(schema))
    if unknown:
        raise ClusterConfigError(f"{where}: unknown key {prefix + unknown[0]!r}. Valid keys here: "
                                 f"{', '.join(schema)}. See cluster_configs/README.md.")
    options = {}
    for name, key in schema.items():
        if name not in data or data[name] is None:
            if key.required:
                raise ClusterConfigError(f"{where}: the key {prefix + name!r} is required ({key.help}).")
            options[name] = key.default
            continue
        value = data[name]
        if not TYPE_CHECKS[key.kind](value):
            raise ClusterConfigError(f"{where}: the key {prefix + name!r} must be of type {key.kind}, got "
                                     f"{type(value).__name__} {value!r}.")
        if key.valid and not VALUE_CHECKS[key.valid][0](value):
            raise ClusterConfigError(f"{where}: the key {prefix + name!r} must be {VALUE_CHECKS[key.valid][1]}, got "
                                     f"{value!r}.")
        options[name] = float(value) if key.kind == "number" else value
    return options


def validate(data: Any, source: str, base_dir: Path) -> ClusterConfig:
    """Check a parsed configuration against :data:`SCHEMAS`.

    Raises
    ------
    ClusterConfigError
        Naming ``source`` and the offending key.
    """
    if not isinstance(data, dict):
        raise ClusterConfigError(f"{source}: a cluster configuration must be a mapping with a 'kind' key, got "
                                 f"{type(data).__name__}.")
    kind = data.get("kind")
    if kind not in SCHEMAS:
        raise ClusterConfigError(f"{source}: the key 'kind' must be one of {', '.join(KINDS)}; got {kind!r}.")
    options = _check_keys({k: v for k, v in data.items() if k != "kind"}, SCHEMAS[kind], source)
    if options.get("tls") is not None:
        options["tls"] = _check_keys(options["tls"], TLS_KEYS, source, prefix="tls.")
    if kind == "local-cuda":
        _check_devices(options, source)
    return ClusterConfig(kind, options, source, base_dir)


def _check_devices(options: dict[str, Any], source: str) -> None:
    devices = options["devices"]
    if devices is None:
        return
    bad = [d for d in devices if not (d.isdigit() or d.startswith(("GPU-", "MIG-")))]
    if not devices or bad:
        raise ClusterConfigError(f"{source}: the key 'devices' must list GPUs by index ('0') or UUID ('GPU-...'), "
                                 f"got {bad[0] if bad else devices!r}. See `nvidia-smi -L`.")
    if options["n_workers"] is not None and options["n_workers"] != len(devices):
        raise ClusterConfigError(f"{source}: the key 'n_workers' ({options['n_workers']}) must equal the number of "
                                 f"devices ({len(devices)}): dask-cuda runs one worker per GPU. Drop one of them.")


def load_cluster_config(path: str | os.PathLike[str]) -> ClusterConfig:
    """Read and validate a cluster YAML file.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ClusterConfigError
        If it is not valid YAML, or has an unknown kind, an unknown key or a value of the wrong type.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No cluster configuration at {str(path)!r}; see cluster_configs/ for examples.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ClusterConfigError(f"{path}: not valid YAML ({error}).") from error
    return validate(data, str(path), path.resolve().parent)


def local_config(**options: Any) -> ClusterConfig:
    """The default configuration: a LocalCluster on 127.0.0.1 with one single-threaded worker process per CPU."""
    return validate({"kind": "local", **options}, "the default local cluster", Path.cwd())


def address_config(address: str) -> ClusterConfig:
    """A configuration for an existing scheduler given by ``--scheduler``."""
    return validate({"kind": "address", "address": address}, "--scheduler", Path.cwd())
