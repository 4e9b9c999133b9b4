"""Starting and connecting: a validated :class:`~dnmf.runtime.config.ClusterConfig` becomes a connected
``distributed.Client``.

:func:`connect` starts what the configuration describes (a ``LocalCluster``, batch jobs, a Kubernetes
``DaskCluster``, a Dask Gateway cluster) or connects to an existing scheduler, yields a ``Client``, and closes
whatever it started. A LocalCluster without a ``tls`` section still speaks TLS, with credentials made for the run
and held in memory only, so that no other user of the machine can connect to it.

Optional backends are imported only when their kind is used; a missing one is a :class:`MissingExtraError` that
names the extra to install.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import dask

from dnmf.runtime.config import (
    DEFAULT_CONNECT_TIMEOUT,
    EXTRAS,
    PACKAGES,
    ClusterConfig,
    MissingExtraError,
)

__all__ = ["connect", "jobqueue_cluster", "kubernetes_cluster_spec", "run_security", "security"]


def _require(kind: str) -> Any:
    import importlib

    module, extra = EXTRAS[kind]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(f"cluster kind {kind!r} needs {PACKAGES[module]}: pip install 'dnmf[{extra}]'"
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


def run_security(config: ClusterConfig) -> Any:
    """The ``distributed.Security`` of a LocalCluster started for ``config``: its ``tls`` section if it has one,
    else a CA, certificate and key made for this run, held in memory and handed to the worker processes through
    their start-up pipe (never a file, a command line or an environment variable).

    Every connection to such a cluster needs that certificate: another user of the machine who finds the port
    can open a TCP connection but not a Dask one, so cannot run code in the workers or the scheduler.

    Raises
    ------
    MissingExtraError
        If ``cryptography``, which makes the credentials, is not installed.
    """
    configured = security(config)
    if configured is not None:
        return configured
    from distributed.security import Security

    try:
        return Security.temporary()
    except ImportError as error:
        raise MissingExtraError("The local cluster is secured with TLS credentials made for each run, which needs "
                                "the cryptography package: pip install cryptography") from error


def _no_dashboard(config: ClusterConfig) -> bool:
    return config.kind == "local" and config.options["dashboard_address"].lower() == "none"


#: How long a local cluster waits for a Nanny to bring back a worker that died before it closes the Nanny for good
#: (``distributed.deploy.lost-worker-timeout``, 15 s by default). On a loaded machine a worker takes longer than
#: that to start again, and a fit that lost its input blocks with the worker then finds no worker to place them on.
LOST_WORKER_TIMEOUT = "5 minutes"


def _local_cluster(config: ClusterConfig) -> Any:
    from distributed import LocalCluster

    options = config.options
    dashboard = options["dashboard_address"]
    extra = {"local_directory": config.path(options["local_directory"])} if options["local_directory"] else {}
    if _no_dashboard(config):  # the scheduler's HTTP server (metrics) still runs: on host, at a free port
        dashboard, extra["scheduler_kwargs"] = f"{options['host']}:0", {"dashboard": False}
    return LocalCluster(
        n_workers=options["n_workers"] or os.cpu_count() or 1, threads_per_worker=options["threads_per_worker"],
        memory_limit=options["memory_limit"], processes=options["processes"], host=options["host"],
        scheduler_port=options["scheduler_port"], dashboard_address=dashboard,
        security=run_security(config), protocol="tls://", **extra,
    )


def _local_cuda_cluster(config: ClusterConfig) -> Any:
    dask_cuda = _require("local-cuda")
    options = config.options
    dashboard = options["dashboard_address"]
    extra = {name: options[name] for name in ("n_workers", "device_memory_limit", "rmm_pool_size")
             if options[name] is not None}
    if options["devices"] is not None:
        extra["CUDA_VISIBLE_DEVICES"] = ",".join(options["devices"])
    if options["local_directory"]:
        extra["local_directory"] = config.path(options["local_directory"])
    return dask_cuda.LocalCUDACluster(
        threads_per_worker=options["threads_per_worker"], memory_limit=options["memory_limit"],
        host=options["host"], dashboard_address=None if dashboard.lower() == "none" else dashboard,
        security=run_security(config), protocol="tls://", **extra,
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
    if config.kind == "local-cuda":
        return _local_cuda_cluster(config)
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
    secure = security(config) if isinstance(target, str) else getattr(target, "security", None)
    try:
        return Client(target, security=secure, timeout=connect_timeout)
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
            if config.kind == "local":
                stack.enter_context(dask.config.set({"distributed.deploy.lost-worker-timeout": LOST_WORKER_TIMEOUT}))
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
