"""Shared fixtures: the synchronous scheduler for unit tests, a real LocalCluster for integration tests."""

from __future__ import annotations

import dask
import numpy as np
import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: runs on a real distributed LocalCluster with worker processes")
    # Tests kill workers on purpose. A LocalCluster closes a killed worker's Nanny for good when the worker has not
    # come back within this timeout, which under the full suite's load it sometimes has not after 15 s.
    dask.config.set({"distributed.deploy.lost-worker-timeout": "5 minutes"})


@pytest.fixture(autouse=True)
def _synchronous_scheduler(request: pytest.FixtureRequest):
    """Unit tests run on the synchronous scheduler: deterministic and cheap. Cluster tests use their Client."""
    if request.node.get_closest_marker("cluster"):
        yield
        return
    with dask.config.set(scheduler="sync"):
        yield


@pytest.fixture(scope="session")
def local_cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:
        yield cluster


@pytest.fixture
def client(local_cluster):
    from distributed import Client

    with Client(local_cluster) as client:
        yield client


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def planted(m: int, n: int, k: int, seed: int = 0, dtype=np.float64):
    """A dense exact rank-k non-negative matrix and its factors."""
    from dnmf.datasets import make_low_rank

    return make_low_rank(m, n, k, random_state=seed, dtype=dtype)
