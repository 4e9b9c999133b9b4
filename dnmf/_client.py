"""The Dask scheduler in scope: a distributed ``Client`` if one is active, else Dask's default scheduler."""

from __future__ import annotations

import os

import dask


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


def worker_memory() -> int | None:
    """The smallest ``memory_limit`` among the client's workers; this machine's available memory per CPU when no
    client is active; None when unknown."""
    client = active_client()
    if client is not None:
        limits = [w.get("memory_limit") or 0 for w in client.scheduler_info().get("workers", {}).values()]
        limits = [limit for limit in limits if limit > 0]
        return min(limits) if limits else None
    import psutil

    return int(psutil.virtual_memory().available / (os.cpu_count() or 1))


def dashboard_link() -> str | None:
    client = active_client()
    return None if client is None else client.dashboard_link
