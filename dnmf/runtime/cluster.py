"""Cluster configurations, starting and connecting clusters, and TLS certificates, in one namespace.

The code lives in :mod:`dnmf.runtime.config` (schemas, validation, loading), :mod:`dnmf.runtime.launch`
(starting clusters, :func:`connect`, per-run TLS credentials) and :mod:`dnmf.runtime.certs`
(:func:`make_certificates`); this module gathers their public names for ``from dnmf.runtime import cluster``.
"""

from __future__ import annotations

from dnmf.runtime.certs import make_certificates
from dnmf.runtime.config import (
    DEFAULT_CONNECT_TIMEOUT,
    KINDS,
    SCHEMAS,
    TLS_KEYS,
    ClusterConfig,
    ClusterConfigError,
    MissingExtraError,
    address_config,
    load_cluster_config,
    local_config,
    validate,
)
from dnmf.runtime.launch import (
    connect,
    jobqueue_cluster,
    kubernetes_cluster_spec,
    run_security,
    security,
)

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "KINDS",
    "SCHEMAS",
    "TLS_KEYS",
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
    "run_security",
    "security",
    "validate",
]
