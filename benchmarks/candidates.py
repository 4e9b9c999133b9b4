"""One benchmark run of one candidate, in a process of its own.

``python -m benchmarks.candidates SPEC_JSON`` loads the case that :mod:`benchmarks.cases` wrote, runs the
candidate, and prints one line ``RESULT {json}``: seconds per iteration, the loss after each iteration where the
candidate reports it, the time from the start of the fit to each iteration, the final relative error
``‖A − WH‖ / ‖A‖`` (exact, not the trace identity), and the peak resident memory of this process and of any
worker processes it started.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from benchmarks.cases import Case, load

#: Relative slack when comparing a loss with a target loss, so that equal iterates count as reaching it.
TARGET_RTOL = 1e-6
#: Relative slack of the exact final errors when a race is judged. The per-iteration loss comes from the trace
#: identity over float32 products; at ‖A − WH‖/‖A‖ ≈ 0.08 it is off by up to 4e-5 relative (S1), while the exact
#: errors of dnmf ``hals`` and scikit-learn ``cd`` after the same iterations agree to 1e-10.
EXACT_RTOL = 1e-5

__all__ = ["CANDIDATES", "run_candidate"]


def _peak_rss_mib() -> float:
    """Peak resident memory of this process's own address space: Linux's ``VmHWM``. ``ru_maxrss`` would do
    elsewhere, but on Linux a child inherits its parent's figure through fork and exec."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def exact_residual(A: Any, W: np.ndarray, H: np.ndarray, batch: int = 1 << 16) -> float:
    """``‖A − WH‖_F`` in float64, independent of dnmf's code: densely for an ndarray, from the stored entries and
    the trace identity off them for a sparse matrix."""
    W64, H64 = W.astype(np.float64), H.astype(np.float64)
    if not sp.issparse(A):
        return float(np.sqrt(sum(np.sum((A[i:i + 4096] - W64[i:i + 4096] @ H64) ** 2)
                                 for i in range(0, A.shape[0], 4096))))
    A = sp.csr_matrix(A)
    rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
    on_support = 0.0
    for start in range(0, A.nnz, batch):
        stop = min(start + batch, A.nnz)
        approx = np.einsum("ij,ji->i", W64[rows[start:stop]], H64[:, A.indices[start:stop]])
        on_support += float(np.sum((A.data[start:stop].astype(np.float64) - approx) ** 2) - np.sum(approx**2))
    return float(np.sqrt(max(on_support + float(np.sum((W64.T @ W64) * (H64 @ H64.T))), 0.0)))


def _reached(losses: list[float], target: float | None) -> bool:
    return target is not None and bool(losses) and losses[-1] <= target * (1 + TARGET_RTOL)


def _inmemory(spec: dict[str, Any], A: Any, W0: np.ndarray, H0: np.ndarray, norm_squared: float) -> dict[str, Any]:
    from benchmarks.inmemory import iterate
    from dnmf.core.rules import get_rule

    seconds, losses, elapsed = [], [], []
    started = time.perf_counter()
    for W, H, loss, spent in iterate(A, W0.copy(), H0.copy(), get_rule(spec["solver"]), norm_squared):
        seconds.append(spent)
        losses.append(loss)
        elapsed.append(time.perf_counter() - started)
        if len(seconds) == spec["iterations"] or _reached(losses, spec.get("target_loss")):
            break
    return {"seconds_per_iteration": seconds, "loss_history": losses, "elapsed_at_iteration": elapsed,
            "fit_seconds": elapsed[-1], "final_error": exact_residual(A, W, H)}


class _ClusterWatch:
    """Polls the scheduler's view of its workers (memory, spilled bytes) while a fit runs."""

    def __init__(self, client: Any, every: float = 0.5) -> None:
        self.client, self.every = client, every
        self.max_memory: dict[str, int] = {}
        self.max_spilled_disk = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(self.every):
            for address, info in self.client.scheduler_info(n_workers=-1)["workers"].items():
                metrics = info.get("metrics", {})
                self.max_memory[address] = max(self.max_memory.get(address, 0), metrics.get("memory", 0))
                disk = metrics.get("spilled_bytes", {}).get("disk", 0)
                self.max_spilled_disk = max(self.max_spilled_disk, disk)

    def __enter__(self) -> _ClusterWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _dnmf_fit(spec: dict[str, Any], A: Any, W0: np.ndarray, H0: np.ndarray) -> dict[str, Any]:
    from dnmf import NMF

    elapsed: list[float] = []
    target = spec.get("target_loss")

    def record(step: Any) -> None:
        elapsed.append(time.perf_counter() - started)
        if target is not None and step.loss <= target * (1 + TARGET_RTOL):
            raise StopIteration

    import dask

    model = NMF(W0.shape[1], solver=spec["solver"], init="custom", max_iter=spec["iterations"], tol=0,
                callback=record)
    started = time.perf_counter()
    with dask.config.set({"dnmf.local-cache": spec.get("local_cache", True)}):
        model.fit(A, W=W0, H=H0)
    fit_seconds = time.perf_counter() - started
    return {"seconds_per_iteration": model.timings_["seconds_per_iteration"], "loss_history": model.loss_history_,
            "elapsed_at_iteration": elapsed, "fit_seconds": fit_seconds,
            "final_error": model.reconstruction_err_, "tasks_per_iteration": model.timings_["tasks_per_iteration"],
            "phase_seconds": model.timings_["phase_seconds"]}


def _dnmf_cluster(spec: dict[str, Any], A: Any, W0: np.ndarray, H0: np.ndarray, norm_squared: float) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=spec.get("workers", 2), threads_per_worker=1, processes=True,
                      memory_limit=spec.get("memory_limit", "auto"), host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        with _ClusterWatch(client) as watch:
            result = _dnmf_fit(spec, A, W0, H0)
        peaks = client.run(_peak_rss_mib)
        limits = {address: info["memory_limit"] for address, info in client.scheduler_info()["workers"].items()}
    result["workers"] = {
        address: {"peak_rss_mib": peaks[address], "memory_limit_mib": limits[address] / 2**20,
                  "max_heartbeat_memory_mib": watch.max_memory.get(address, 0) / 2**20}
        for address in peaks
    }
    result["max_spilled_to_disk_bytes"] = watch.max_spilled_disk
    return result


def _dnmf_threads(spec: dict[str, Any], A: Any, W0: np.ndarray, H0: np.ndarray, norm_squared: float) -> dict[str, Any]:
    import dask

    with dask.config.set({"scheduler": "threads", "num_workers": spec.get("workers", 2), "dnmf.executor": "dask"}):
        return _dnmf_fit(spec, A, W0, H0)


def _dnmf_in_process(spec: dict[str, Any], A: Any, W0: np.ndarray, H0: np.ndarray,
                     norm_squared: float) -> dict[str, Any]:
    """dnmf with no cluster on in-memory input: the in-process executor (no Dask graph per iteration)."""
    import dask

    with dask.config.set({"dnmf.executor": "in-process"}):
        return _dnmf_fit(spec, A, W0, H0)


def _sklearn(estimator: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    def run(spec: dict[str, Any], A: Any, W0: np.ndarray, H0: np.ndarray, norm_squared: float) -> dict[str, Any]:
        model = estimator(spec)
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            W = model.fit_transform(A, W=W0.copy(), H=H0.copy())
        fit_seconds = time.perf_counter() - started
        return {"seconds_per_iteration": [fit_seconds / model.n_iter_], "loss_history": [],
                "elapsed_at_iteration": [], "fit_seconds": fit_seconds, "n_iter": int(model.n_iter_),
                "final_error": exact_residual(A, W, model.components_),
                "reported_error": float(model.reconstruction_err_)}

    return run


def _sklearn_nmf(spec: dict[str, Any]) -> Any:
    from sklearn.decomposition import NMF

    solver = spec["candidate"].removeprefix("sklearn-")
    return NMF(spec["rank"], solver=solver, init="custom", max_iter=spec["iterations"], tol=0)


def _sklearn_minibatch(spec: dict[str, Any]) -> Any:
    from sklearn.decomposition import MiniBatchNMF

    return MiniBatchNMF(spec["rank"], init="custom", max_iter=spec["iterations"], tol=0, max_no_improvement=None,
                        batch_size=spec.get("batch_size", 4096), random_state=0)


#: Candidate name → runner. ``solver`` applies to the dnmf and in-memory candidates.
CANDIDATES: dict[str, Callable[..., dict[str, Any]]] = {
    "dnmf-cluster": _dnmf_cluster,
    "dnmf-threads": _dnmf_threads,
    "dnmf-inprocess": _dnmf_in_process,
    "inmemory": _inmemory,
    "sklearn-cd": _sklearn(_sklearn_nmf),
    "sklearn-mu": _sklearn(_sklearn_nmf),
    "sklearn-minibatch": _sklearn(_sklearn_minibatch),
}


def run_candidate(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one candidate on one case as ``spec`` says, and return its figures."""
    directory = Path(spec["directory"])
    manifest = json.loads((directory / spec["case"] / "case.json").read_text())
    case = Case(**manifest["case"])
    A, W0, H0 = load(case, directory)
    spec = {**spec, "rank": case.rank}
    result = CANDIDATES[spec["candidate"]](spec, A, W0, H0, manifest["norm_squared"])
    result["relative_error"] = result.pop("final_error") / float(np.sqrt(manifest["norm_squared"]))
    result["peak_rss_mib"] = _peak_rss_mib()
    return result


if __name__ == "__main__":
    print("RESULT " + json.dumps(run_candidate(json.loads(sys.argv[1])), default=float), flush=True)
