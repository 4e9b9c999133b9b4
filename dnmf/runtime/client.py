"""The Dask scheduler in scope: a distributed ``Client`` if one is active, else Dask's default scheduler."""

from __future__ import annotations

import os

import dask
import psutil


def active_client():  # -> distributed.Client | None
    """The default ``distributed.Client``, unless none exists or a local scheduler was chosen explicitly."""
    if dask.config.get("scheduler", None) in ("sync", "synchronous", "single-threaded", "threads", "threading",
                                               "processes", "multiprocessing"):
        return None
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def n_workers() -> int:
    """How many blocks per axis keep every worker busy: the client's workers, else the CPU count."""
    client = active_client()
    if client is not None:
        workers = client.scheduler_info().get("workers", {})
        return max(1, len(workers))
    return os.cpu_count() or 1


def _memory_limits(client) -> list[int]:
    workers = client.scheduler_info().get("workers", {}).values()
    return [limit for limit in (w.get("memory_limit") or 0 for w in workers) if limit > 0]


def worker_memory() -> int | None:
    """The smallest ``memory_limit`` among the client's workers; this machine's available memory per CPU when no
    client is active; None when unknown."""
    client = active_client()
    if client is not None:
        limits = _memory_limits(client)
        return min(limits) if limits else None
    return int(psutil.virtual_memory().available / (os.cpu_count() or 1))


def cluster_memory() -> int:
    """The workers' ``memory_limit`` added up; this machine's available memory when no client is active."""
    client = active_client()
    if client is not None:
        return sum(_memory_limits(client))
    return int(psutil.virtual_memory().available)


def dashboard_link() -> str | None:
    client = active_client()
    return None if client is None else client.dashboard_link
