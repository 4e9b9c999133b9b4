"""The Dask dashboard during a fit: the status page answers, the task stream reads like the algorithm, and every
key dnmf puts on the cluster (tasks, scattered blocks, persisted inputs) carries a ``dnmf-`` prefix."""

from __future__ import annotations

import logging
import urllib.request
from collections import Counter

import pytest
import scipy.sparse as sp
from dask.utils import key_split
from distributed import get_task_stream

import dnmf
from dnmf.datasets import make_low_rank

pytestmark = pytest.mark.cluster

#: Dask's own client-side step that assembles a computed collection's chunks into one result; it runs no dnmf
#: code, and ``dask.compute`` offers no way to name it.
DASK_FINALIZE = "finalize-"

#: The layers of one iteration (DESIGN.md §3). Blockwise fusion may join names (``dnmf-update-h-dnmf-gram-h``).
ITERATION_LAYERS = ("dnmf-aht", "dnmf-wta", "dnmf-gram-w", "dnmf-gram-h", "dnmf-update-w", "dnmf-update-h",
                    "dnmf-loss")


def _numpy_input(tmp_path):
    X, _, _ = make_low_rank(240, 180, 4, random_state=0)
    return X


def _scipy_input(tmp_path):
    return sp.random(300, 200, density=0.05, random_state=0, format="csr")


def _sparse_store_input(tmp_path):
    url = str(tmp_path / "sparse.zarr")
    dnmf.save_matrix(sp.random(300, 200, density=0.05, random_state=1, format="csr"), url,
                     labels=([f"r{i}" for i in range(300)], [f"c{j}" for j in range(200)]))
    return url


def _dense_store_input(tmp_path):
    import zarr

    X, _, _ = make_low_rank(240, 180, 4, random_state=2)
    array = zarr.create_array(str(tmp_path / "dense.zarr"), shape=X.shape, dtype=X.dtype, chunks=(80, 60))
    array[:] = X
    return array


INPUTS = {"numpy": _numpy_input, "scipy": _scipy_input, "sparse-store": _sparse_store_input,
          "dense-zarr": _dense_store_input}


@pytest.mark.parametrize("kind", list(INPUTS))
def test_task_stream_and_cluster_memory_hold_only_dnmf_keys(client, tmp_path, kind):
    X = INPUTS[kind](tmp_path)
    keys_held_during_fit: set[str] = set()
    held_before = set(client.who_has())  # other tests' data on the shared cluster

    def record_cluster_keys(record):
        keys_held_during_fit.update(key_split(key) for key in client.who_has() if key not in held_before)

    model = dnmf.NMF(4, max_iter=6, tol=0, init="nndsvdar", random_state=0, chunks=(100, 60),
                     callback=record_cluster_keys, checkpoint=str(tmp_path / "ckpt"), checkpoint_every=3)
    with get_task_stream(client) as stream:
        model.fit(X, out=str(tmp_path / "result.zarr"))
        model.transform(X)
    prefixes = Counter(key_split(task["key"]) for task in stream.data)
    foreign = {prefix: n for prefix, n in prefixes.items()
               if not prefix.startswith(("dnmf-", DASK_FINALIZE))}
    assert not foreign, f"tasks without a dnmf- prefix: {foreign}"
    for layer in ITERATION_LAYERS:
        assert any(layer in prefix for prefix in prefixes), f"no {layer} task in {sorted(prefixes)}"
    assert any(prefix.startswith("dnmf-checkpoint") for prefix in prefixes)
    assert keys_held_during_fit, "the callback saw no keys in cluster memory"
    # A loss's ``finalize-`` result can still be held for a moment when the callback looks.
    assert all(prefix.startswith(("dnmf-", DASK_FINALIZE)) for prefix in keys_held_during_fit), \
        sorted(keys_held_during_fit)


def test_dashboard_answers_and_fit_logs_its_link(client, caplog):
    link = client.dashboard_link
    with urllib.request.urlopen(link, timeout=30) as response:
        assert response.status == 200
        assert b"Dask" in response.read()
    X, _, _ = make_low_rank(120, 90, 3, random_state=0)
    with caplog.at_level(logging.INFO, logger="dnmf"):
        dnmf.NMF(3, max_iter=3, tol=0, random_state=0).fit(X)
    assert any(link in message for message in caplog.messages), caplog.messages
    base = link.rsplit("/", 1)[0]
    with urllib.request.urlopen(f"{base}/info/main/workers.html", timeout=30) as response:
        assert response.status == 200
