"""The one pass over A before the loop (:mod:`dnmf.data.first_pass`): validation, statistics, the fingerprint's
digests and holding A, on real Zarr stores, counted by ``timings_["passes_over_a"]``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from dnmf import NMF, open_matrix, save_matrix
from dnmf.core.graph import counting_passes
from dnmf.data.first_pass import first_pass
from dnmf.data.fingerprint import fingerprint
from dnmf.data.matrix import as_input_matrix, matrix_stats
from dnmf.data.store import stored_nnz
from dnmf.runtime import current


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("first-pass")
    dense = rng.random((300, 80))
    sparse = sp.random(300, 80, density=0.1, random_state=0, format="csr")
    save_matrix(dense, root / "dense", chunks=(100, 40))
    save_matrix(sparse, root / "sparse", chunks=(100, 40))
    return {"dense": (root / "dense", dense), "sparse": (root / "sparse", sparse)}


def _before_loop(X) -> int:
    model = NMF(4, init="random", max_iter=3, tol=0, random_state=0).fit(X)
    return model.timings_["passes_over_a"]["before_loop"]


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_a_store_is_validated_and_held_in_one_pass(stores, kind):
    path, _ = stores[kind]
    assert _before_loop(str(path)) == 1


def test_a_dense_dask_array_is_held_in_one_pass(stores):
    assert _before_loop(open_matrix(stores["dense"][0])) == 1


def test_a_sparse_dask_array_of_unknown_size_takes_a_second_read(stores):
    """Its size is only known after the validating pass, which must come before it is held."""
    assert _before_loop(open_matrix(stores["sparse"][0])) == 2


def test_stored_nnz_comes_from_the_metadata(stores):
    assert stored_nnz(stores["sparse"][0]) == stores["sparse"][1].nnz
    assert stored_nnz(stores["dense"][0]) is None


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_statistics_and_fingerprint_equal_separate_passes(stores, kind):
    path, X = stores[kind]
    runtime = current()
    separate = as_input_matrix(open_matrix(path), runtime=runtime)
    stats = matrix_stats(separate.array)
    expected = fingerprint(separate.array, stats)
    with counting_passes() as passes:
        held, one_pass_stats, digests = first_pass(as_input_matrix(open_matrix(path), runtime=runtime), runtime,
                                                   what="X", with_digests=True, nnz=stored_nnz(path))
    assert passes[0] == 1
    assert one_pass_stats == stats
    assert fingerprint(held.array, one_pass_stats, digests) == expected
    assert not held.streamed
    assert np.isclose(stats.norm_squared, float((X.multiply(X) if sp.issparse(X) else X**2).sum()))


def test_bad_values_in_a_held_store_name_their_block(tmp_path):
    X = np.random.default_rng(1).random((200, 60))
    X[150, 50] = -1.0
    save_matrix(X, tmp_path / "negative", chunks=(100, 30))
    with pytest.raises(ValueError, match=r"Negative values in data passed to NMF \(input X\).*block \(1, 1\)"):
        NMF(2, max_iter=2).fit(str(tmp_path / "negative"))
