"""A sparse store larger than the workers' memory, factorized by streaming it from disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from distributed import Client, LocalCluster

from dnmf import NMF, open_matrix, save_matrix
from dnmf.core.products import sampled_product
from dnmf.datasets import make_sampled_low_rank

pytestmark = pytest.mark.cluster

WORKER_MEMORY = 300 * 2**20
NNZ = 80_000_000  # about 640 MB of float32 data and int32 indices: more than both workers' memory_limit together


def _blocks_spilled_to_disk(dask_worker) -> int:
    metrics = getattr(dask_worker.data, "cumulative_metrics", {})
    return int(sum(value for (label, unit), value in metrics.items() if label == "disk-write" and unit == "count"))


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    import dask

    A = make_sampled_low_rank(400_000, 20_000, 4, NNZ, dtype=np.float32, random_state=0)
    url = tmp_path_factory.mktemp("ooc") / "big.zarr"
    with dask.config.set(scheduler="threads"):
        save_matrix(A, url, chunks=(25_000, 20_000))
    return url, A


def test_store_larger_than_worker_memory_streams_through(big_store):
    url, A = big_store
    assert A.data.nbytes + A.indices.nbytes > 2 * WORKER_MEMORY
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=WORKER_MEMORY,
                      host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        workers_before = set(client.scheduler_info()["workers"])
        lazy = open_matrix(url)
        strip_bytes = (A.data.nbytes + A.indices.nbytes) / lazy.numblocks[0]
        assert strip_bytes <= WORKER_MEMORY / 8
        model = NMF(4, init="random", max_iter=4, tol=0, random_state=0)
        W = model.fit_transform(str(url))
        assert set(client.scheduler_info()["workers"]) == workers_before, "a worker died or was restarted"
        W = W.compute()
    assert np.all(np.diff(model.loss_history_) < 0)
    assert model.reconstruction_err_ == pytest.approx(exact_error(A, W, model.components_), rel=1e-6)
    assert model.reconstruction_err_ < sp.linalg.norm(A)


def exact_error(A: sp.csr_matrix, W: np.ndarray, H: np.ndarray) -> float:
    """‖A − WH‖_F from A's stored entries and the factors' Grams, without forming WH."""
    approx = sampled_product(A, W, H)
    residual = (np.sum((A.data - approx) ** 2) - np.sum(approx**2)
                + np.sum((W.T.astype(float) @ W) * (H.astype(float) @ H.T)))
    return float(np.sqrt(residual))


def test_a_wide_store_on_small_workers_gets_factor_panels_that_fit_them(tmp_path):
    """400,000 columns at rank 16 on workers of 250 MiB: with one column block per worker, NNDSVD's float64 sketch
    panels (26 × 200,000) and their copies in a product task killed every worker (``KilledWorker``); the default
    grid now sizes column blocks for the fit's rank (:data:`dnmf.core.grid.PANEL_MEMORY_FRACTION`)."""
    import dask

    A = make_sampled_low_rank(20_000, 400_000, 8, 3_000_000, dtype=np.float32, random_state=0)
    url = tmp_path / "wide.zarr"
    with dask.config.set(scheduler="threads"):
        save_matrix(A, url)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=250 * 2**20,
                      host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        workers_before = set(client.scheduler_info()["workers"])
        model = NMF(16, solver="hals", init="nndsvda", max_iter=3, tol=0, random_state=0)
        W = model.fit_transform(str(url))
        assert set(client.scheduler_info()["workers"]) == workers_before, "a worker died or was restarted"
        W = W.compute()
    assert np.all(np.diff(model.loss_history_) < 0)
    assert model.reconstruction_err_ == pytest.approx(exact_error(A, W, model.components_), rel=1e-6)
    assert model.reconstruction_err_ < sp.linalg.norm(A)


def test_streamed_input_is_read_once_per_iteration_and_never_spilled(big_store):
    """Both steps of an iteration need A; a streamed A is read once, each row strip serving the W-step and its share
    of the H-step's ``WᵀA`` while it is in memory (:mod:`dnmf.core.strip_pass`), and is never held from one pass
    to the next (which, for an input larger than half the workers' memory, means spilling)."""
    url, _ = big_store
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=640 * 2**20,
                      host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        model = NMF(4, init="random", max_iter=2, tol=0, random_state=0).fit(str(url))
        assert sum(client.run(_blocks_spilled_to_disk).values()) == 0
        assert not any(client.run(lambda dask_worker: "dnmf-malloc-tuning" in dask_worker.plugins).values()), \
            "an out-of-core fit keeps glibc's memory trimming as the Nanny set it"
    assert model.n_iter_ == 2
    assert model.timings_["passes_over_a"]["loop"] == model.n_iter_


def test_the_one_pass_iteration_gives_the_two_pass_factors_bitwise(tmp_path, monkeypatch):
    """A streamed store fitted with the W-step and ``WᵀA`` sharing each strip's read, and with them as two passes
    (:data:`dnmf.core.strip_pass.MAX_COLUMN_BLOCKS` set to 0): the same W, H and losses, at half the reads."""
    from dnmf.core import strip_pass
    from dnmf.data import matrix

    A = make_sampled_low_rank(3_000, 1_200, 4, 60_000, dtype=np.float32, random_state=1)
    save_matrix(A, tmp_path / "a.zarr", chunks=(500, 600))
    monkeypatch.setattr(matrix, "PERSIST_MEMORY_FRACTION", 1e-12)  # stream even this small store
    fits = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster):
        for limit in (strip_pass.MAX_COLUMN_BLOCKS, 0):
            monkeypatch.setattr(strip_pass, "MAX_COLUMN_BLOCKS", limit)
            model = NMF(4, solver="hals", init="nndsvda", max_iter=8, tol=0, random_state=0, alpha_W=0.01)
            W = model.fit_transform(open_matrix(tmp_path / "a.zarr", chunks=(500, 600))).compute()
            fits[limit] = (W, model.components_, model.loss_history_, model.timings_["passes_over_a"]["loop"])
    (W1, H1, losses1, passes1), (W2, H2, losses2, passes2) = fits.values()
    assert np.array_equal(W1, W2) and np.array_equal(H1, H2) and losses1 == losses2
    assert (passes1, passes2) == (8, 16)


def _cached_files(dask_worker) -> int:
    from dnmf.runtime.local_cache import FOLDER

    return sum(1 for _ in (Path(dask_worker.local_directory) / FOLDER).glob("*/*.npy"))


@pytest.mark.parametrize(("kind", "files"), [("sparse", 6), ("dense", 12)])
def test_a_streamed_store_is_read_once_then_from_the_workers_disks(tmp_path, monkeypatch, kind, files):
    """A store too large to hold is read from its store in the first pass only: the workers keep its blocks on
    their local disks (:mod:`dnmf.runtime.local_cache`; a file per row strip of a sparse store, per block of a
    dense one), so the fit goes on, with the same bits, after the store is moved away at the end of its first
    iteration; the cache is gone when the fit ends."""
    import dask

    from dnmf.data import matrix

    from dnmf.runtime.local_cache import in_memory_filesystem

    if in_memory_filesystem(tmp_path):
        pytest.skip(f"{tmp_path} is on a file system in memory, where workers cache nothing")
    A = make_sampled_low_rank(3_000, 1_200, 4, 60_000, dtype=np.float32, random_state=2)
    url, moved = tmp_path / "a.zarr", tmp_path / "moved.zarr"
    save_matrix(A if kind == "sparse" else A.toarray(), url, chunks=(500, 600))
    monkeypatch.setattr(matrix, "PERSIST_MEMORY_FRACTION", 1e-12)  # stream even this small store
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", local_directory=tmp_path / "scratch") as cluster, \
            Client(cluster) as client:
        cached = []

        def move_the_store_away(record) -> None:
            cached.append(sum(client.run(_cached_files).values()))
            if record.iteration == 1:
                url.rename(moved)

        fits = []
        for keep, callback in ((False, None), (True, move_the_store_away)):
            with dask.config.set({"dnmf.local-cache": keep}):
                model = NMF(4, solver="hals", init="nndsvda", max_iter=6, tol=0, random_state=0, callback=callback,
                            chunks=(500, 600))
                W = model.fit_transform(str(url)).compute()
            fits.append((W, model.components_, model.loss_history_, model.reconstruction_err_))
            assert sum(client.run(_cached_files).values()) == 0
    assert not url.exists() and cached == [files] * 6, "each strip (sparse) or block (dense) is kept once"
    (W1, H1, losses1, error1), (W2, H2, losses2, error2) = fits
    assert np.array_equal(W1, W2) and np.array_equal(H1, H2) and losses1 == losses2 and error1 == error2
    assert error2 == pytest.approx(exact_error(A, W2, H2), rel=1e-5)
