"""Fixtures of the ``dnmf`` command's tests: a real cluster of separate processes, and a small labelled store."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from cli_helpers import dask_processes, make_counts


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """``dask scheduler`` and two ``dask worker`` processes, shared by the tests that ask for them."""
    with dask_processes() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def scheduler(dask_cluster) -> str:
    return dask_cluster[0]


@pytest.fixture(scope="session")
def counts_store(tmp_path_factory) -> str:
    """A labelled sparse matrix store, 600 × 200, on a 2 × 2 grid."""
    from dnmf import save_matrix

    A, rows, cols = make_counts()
    url = tmp_path_factory.mktemp("counts") / "counts.zarr"
    save_matrix(A, url, chunks=(300, 100), labels=(rows, cols))
    return str(url)
