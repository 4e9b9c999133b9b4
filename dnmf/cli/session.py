"""What ``fit`` and ``transform`` share: choosing the cluster, and the record of the cluster for the summary."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dnmf.cli.options import UsageError
from dnmf.runtime import cluster as clusters
from dnmf.runtime import dashboard

__all__ = ["cluster_config", "connected"]

logger = logging.getLogger("dnmf")


def cluster_config(values: dict[str, Any]) -> clusters.ClusterConfig:
    """The configuration named by ``--cluster`` or ``--scheduler``, else the default LocalCluster."""
    if values.get("cluster") and values.get("scheduler"):
        raise UsageError("Give --cluster or --scheduler, not both.")
    if values.get("scheduler"):
        return clusters.address_config(values["scheduler"])
    if values.get("cluster"):
        return clusters.load_cluster_config(values["cluster"])
    return clusters.local_config()


@contextmanager
def connected(config: clusters.ClusterConfig, connect_timeout: float,
              record: dict[str, Any]) -> Iterator[Any]:
    """A client for ``config``; fills ``record`` with the cluster's kind, source, dashboard, dnmf page
    (:mod:`dnmf.runtime.dashboard`) and workers."""
    record.update({"kind": config.kind, "config": config.source})
    logger.info("Connecting to the cluster (kind %s, from %s)", config.kind, config.source)
    with clusters.connect(config, connect_timeout=connect_timeout) as client:
        record.update({"scheduler": client.scheduler.address, "dashboard": client.dashboard_link or None,
                       "workers": len(client.scheduler_info().get("workers", {})),
                       "dnmf_page": dashboard.install(client)})
        logger.info("Scheduler %s with %d workers; %s%s", record["scheduler"], record["workers"],
                    f"dashboard {record['dashboard']}" if record["dashboard"] else "no dashboard",
                    f"; dnmf page {record['dnmf_page']}" if record["dnmf_page"] else "")
        yield client
