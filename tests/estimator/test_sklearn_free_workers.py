"""scikit-learn stays out of the workers: a fit's worker processes never import it, and their memory shows it.

Importing scikit-learn costs a process about 125 MB; ``dnmf.NMF`` and ``dnmf.ConvergenceWarning`` need it, so
``dnmf/__init__`` imports them on first use and the engine looks the warning up only when it warns (see
:mod:`dnmf.exceptions`). A worker imports ``dnmf`` when it unpickles its first task.
"""

from __future__ import annotations

import importlib
import sys

import cloudpickle
import psutil
import pytest
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning

from dnmf import NMF

pytestmark = pytest.mark.cluster

# The probes below travel by value: a worker must not import this module (and through it scikit-learn).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

MIB = 2**20


def _rss() -> int:
    return psutil.Process().memory_info().rss


def _imported() -> dict[str, bool]:
    return {"sklearn": "sklearn" in sys.modules, "dnmf": "dnmf.core.products" in sys.modules}


def _dnmf_modules() -> list[str]:
    return sorted(name for name in sys.modules if name.split(".")[0] == "dnmf")


def _import_all(names: list[str]) -> None:
    for name in names:
        importlib.import_module(name)


def test_fit_workers_never_import_sklearn(rng):
    X = rng.random((200, 150))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        with pytest.warns(ConvergenceWarning, match="Maximum number of iterations"):
            NMF(4, max_iter=10, chunks=(50, 50), random_state=0).fit(X)
        imported = client.run(_imported)
        assert len(imported) == 2
        assert all(state["dnmf"] for state in imported.values()), imported
        assert not any(state["sklearn"] for state in imported.values()), imported
        after_fit = client.run(_rss)
        modules = client.run(_dnmf_modules)

        fit_workers = set(after_fit)
        cluster.scale(3)
        client.wait_for_workers(3)
        (fresh,) = set(client.scheduler_info()["workers"]) - fit_workers
        client.run(_import_all, sorted(set().union(*modules.values())), workers=[fresh])
        baseline = client.run(_rss, workers=[fresh])[fresh]
        client.run(_import_all, ["sklearn.base", "sklearn.decomposition"], workers=[fresh])
        with_sklearn = client.run(_rss, workers=[fresh])[fresh]

    sklearn_cost = with_sklearn - baseline
    assert sklearn_cost > 40 * MIB, f"importing scikit-learn cost only {sklearn_cost / MIB:.0f} MiB"
    for address, rss in after_fit.items():
        assert rss - baseline < sklearn_cost / 2, (
            f"worker {address} holds {rss / MIB:.0f} MiB after the fit, a fresh worker with dnmf's modules "
            f"{baseline / MIB:.0f} MiB, scikit-learn's import {sklearn_cost / MIB:.0f} MiB")
