"""The store the checkpoint tests fit: a small sparse matrix with planted rank 3, on a 3 × 3 grid."""

from __future__ import annotations

import pytest

from dnmf import save_matrix
from dnmf.datasets import make_sparse_low_rank


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    A, _, _ = make_sparse_low_rank(300, 120, 3, column_density=0.2, random_state=0)
    url = tmp_path_factory.mktemp("data") / "a.zarr"
    save_matrix(A, url, chunks=(100, 40))
    return str(url)
