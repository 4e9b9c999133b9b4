"""Cluster configurations: a YAML file in ``cluster_configs/`` becomes a connected ``distributed.Client``.

A configuration is a mapping with a ``kind`` and the keys that kind declares in :data:`SCHEMAS`. Loading checks
every key and its type, and names the file and the key in any error. :func:`connect` starts what the
configuration describes (a ``LocalCluster``, batch jobs, a Kubernetes ``DaskCluster``, a Dask Gateway cluster) or
connects to an existing scheduler, yields a ``Client``, and closes whatever it started.

Optional backends are imported only when their kind is used; a missing one is a :class:`MissingExtraError` that
names the extra to install. Nothing here knows about factorizations.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask

from dnmf.runtime.cluster_values import VALUE_CHECKS

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "KINDS",
    "SCHEMAS",
    "ClusterConfig",
    "ClusterConfigError",
    "MissingExtraError",
    "address_config",
    "connect",
    "jobqueue_cluster",
    "kubernetes_cluster_spec",
    "load_cluster_config",
    "local_config",
    "make_certificates",
    "security",
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
}
KINDS = tuple(SCHEMAS)

#: Kinds that need an optional package: (module, pip extra).
EXTRAS: dict[str, tuple[str, str]] = {
    "slurm": ("dask_jobqueue", "slurm"),
    "pbs": ("dask_jobqueue", "pbs"),
    "kubernetes": ("dask_kubernetes", "kubernetes"),
    "gateway": ("dask_gateway", "gateway"),
}
_PACKAGES = {"dask_jobqueue": "dask-jobqueue", "dask_kubernetes": "dask-kubernetes", "dask_gateway": "dask-gateway"}


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
    return ClusterConfig(kind, options, source, base_dir)


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


def _require(kind: str) -> Any:
    import importlib

    module, extra = EXTRAS[kind]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(f"cluster kind {kind!r} needs {_PACKAGES[module]}: pip install 'dnmf[{extra}]'"
                                ) from error


def security(config: ClusterConfig) -> Any:
    """The ``distributed.Security`` of a configuration's ``tls`` section, or None without one.

    Raises
    ------
    FileNotFoundError
        If a certificate or key file named there does not exist.
    """
    tls = config.options.get("tls")
    if not tls:
        return None
    from distributed.security import Security

    files = {name: config.path(tls[name]) for name in ("ca_file", "cert", "key")}
    for name, path in files.items():
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{config.source}: tls.{name} names {path!r}, which does not exist. Create "
                                    "certificates with: dnmf cluster make-certs FOLDER")
    cert, key = files["cert"], files["key"]
    return Security(tls_ca_file=files["ca_file"], tls_client_cert=cert, tls_client_key=key,
                    tls_scheduler_cert=cert, tls_scheduler_key=key, tls_worker_cert=cert, tls_worker_key=key,
                    require_encryption=tls["require_encryption"])


def _no_dashboard(config: ClusterConfig) -> bool:
    return config.kind == "local" and config.options["dashboard_address"].lower() == "none"


def _local_cluster(config: ClusterConfig) -> Any:
    from distributed import LocalCluster

    options = config.options
    secure = security(config)
    dashboard = options["dashboard_address"]
    extra = {"local_directory": config.path(options["local_directory"])} if options["local_directory"] else {}
    if _no_dashboard(config):  # the scheduler's HTTP server (metrics) still runs: on host, at a free port
        dashboard, extra["scheduler_kwargs"] = f"{options['host']}:0", {"dashboard": False}
    return LocalCluster(
        n_workers=options["n_workers"] or os.cpu_count() or 1, threads_per_worker=options["threads_per_worker"],
        memory_limit=options["memory_limit"], processes=options["processes"], host=options["host"],
        scheduler_port=options["scheduler_port"],
        dashboard_address=dashboard,
        security=secure, protocol="tls://" if secure is not None else "tcp://", **extra,
    )


def jobqueue_cluster(config: ClusterConfig, *, render_only: bool = False) -> Any:
    """A dask-jobqueue ``SLURMCluster`` or ``PBSCluster`` for the configuration; no job is submitted until it is
    scaled, so ``job_script()`` shows what would be.

    With ``render_only``, its scheduler listens on 127.0.0.1, whatever ``interface`` says, so that the job script
    can be shown on a machine without that interface.

    Raises
    ------
    MissingExtraError
        If dask-jobqueue is not installed.
    """
    jobqueue = _require(config.kind)
    options = dict(config.options)
    for name in ("jobs", "wait_for_workers", "wait_timeout"):
        options.pop(name)
    for name in ("local_directory", "log_directory"):
        if options[name]:
            options[name] = config.path(options[name])
    if render_only:
        options["scheduler_options"] = {**options["scheduler_options"], "host": "127.0.0.1",
                                        "dashboard_address": "127.0.0.1:0"}
    cluster_class = jobqueue.SLURMCluster if config.kind == "slurm" else jobqueue.PBSCluster
    return cluster_class(**{name: value for name, value in options.items() if value not in (None, [], {})})


def kubernetes_cluster_spec(config: ClusterConfig) -> dict[str, Any]:
    """The ``DaskCluster`` custom resource the dask-kubernetes operator would create, without contacting any
    Kubernetes API.

    Raises
    ------
    MissingExtraError
        If dask-kubernetes is not installed.
    """
    _require("kubernetes")
    from dask_kubernetes.operator import make_cluster_spec

    options = config.options
    spec = make_cluster_spec(
        name=options["name"], image=options["image"], n_workers=options["n_workers"],
        resources=options["resources"] or None, env=options["env"] or None, worker_command=options["worker_command"],
        scheduler_service_type=options["scheduler_service_type"], idle_timeout=options["idle_timeout"],
    )
    if options["namespace"]:
        spec["metadata"]["namespace"] = options["namespace"]
    return spec


def _kubernetes_cluster(config: ClusterConfig) -> Any:
    spec = kubernetes_cluster_spec(config)
    from dask_kubernetes.operator import KubeCluster

    return KubeCluster(custom_cluster_spec=spec, namespace=config.options["namespace"],
                       shutdown_on_close=config.options["shutdown_on_close"])


def _gateway_cluster(config: ClusterConfig) -> Any:
    gateway_module = _require("gateway")
    options = config.options
    gateway = gateway_module.Gateway(address=options["address"], proxy_address=options["proxy_address"],
                                     public_address=options["public_address"], auth=options["auth"])
    cluster = gateway.new_cluster(cluster_options=options["cluster_options"] or None,
                                  shutdown_on_close=options["shutdown_on_close"])
    cluster.scale(options["workers"])
    return cluster


def _start_cluster(config: ClusterConfig) -> Any:
    if config.kind == "local":
        return _local_cluster(config)
    if config.kind in ("slurm", "pbs"):
        cluster = jobqueue_cluster(config)
        cluster.scale(jobs=config.options["jobs"])
        return cluster
    if config.kind == "kubernetes":
        return _kubernetes_cluster(config)
    return _gateway_cluster(config)


def _open_client(target: Any, config: ClusterConfig, connect_timeout: float) -> Any:
    from distributed import Client

    where = target if isinstance(target, str) else getattr(target, "scheduler_address", target)
    try:
        return Client(target, security=security(config), timeout=connect_timeout)
    except (OSError, TimeoutError) as error:
        if isinstance(error, (FileNotFoundError, PermissionError)):
            raise
        raise ConnectionError(f"Could not reach the Dask scheduler at {where} within {connect_timeout:g} s "
                              f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). "
                              "Check the address and that the scheduler is running, then rerun.") from error


@contextmanager
def connect(config: ClusterConfig, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> Iterator[Any]:
    """A ``distributed.Client`` for ``config``; what this call started is closed on exit.

    Parameters
    ----------
    config : ClusterConfig
    connect_timeout : float
        Seconds to wait for the scheduler to answer.

    Yields
    ------
    distributed.Client

    Raises
    ------
    ConnectionError
        If the scheduler does not answer within ``connect_timeout``, or too few workers arrive in
        ``wait_timeout``.
    MissingExtraError
        If the kind's optional package is missing.
    """
    with ExitStack() as stack:
        if config.kind == "address":
            client = _open_client(config.options["address"], config, connect_timeout)
        else:
            if _no_dashboard(config):  # an empty link template: no dashboard link is shown anywhere
                stack.enter_context(dask.config.set({"distributed.dashboard.link": ""}))
            cluster = stack.enter_context(_start_cluster(config))
            client = _open_client(cluster, config, connect_timeout)
        stack.enter_context(client)
        wanted = config.options.get("wait_for_workers")
        if wanted:
            try:
                client.wait_for_workers(wanted, timeout=config.options["wait_timeout"])
            except TimeoutError as error:
                raise ConnectionError(f"Fewer than {wanted} workers joined the scheduler within "
                                      f"{config.options['wait_timeout']:g} s ({config.source}).") from error
        yield client


def make_certificates(folder: str | os.PathLike[str], *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                      days: int = 365) -> dict[str, str]:
    """Write a private CA and one certificate it signed, for TLS between client, scheduler and workers.

    Writes ``ca.pem``, ``cert.pem`` and ``key.pem`` (the key is readable by its owner only) into ``folder``, and
    returns their paths under the names ``tls`` uses (``ca_file``, ``cert``, ``key``).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dnmf cluster CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    names = [x509.IPAddress(ipaddress.ip_address(h)) if _is_ip(h) else x509.DNSName(h) for h in hosts]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca_file": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    paths["ca_file"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    descriptor = os.open(paths["key"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return {name: str(path) for name, path in paths.items()}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
