"""S1 end to end: ``fit`` from ``init="nndsvda"`` to the fitted attributes, dnmf on 2 workers against scikit-learn.

The S1 case of :mod:`benchmarks.cases` (200,000 × 50,000 float32 sparse, 1e7 non-zeros, planted rank 32 plus
noise), 30 iterations (``tol=0``) from each library's own NNDSVDA: dnmf on a ``LocalCluster`` of 2 worker
processes × 1 thread (the input scattered from this process), scikit-learn's ``NMF(solver="cd")`` in this process.
Both run interleaved, in alternating order; the figures are medians, with dnmf's passes over A before the loop,
in it, and after it (``timings_["passes_over_a"]``) and both relative errors ``‖A − WH‖ / ‖A‖``.

Run from the repository root (about 5 minutes here; the S1 matrix is built once into ``--work``)::

    python -m benchmarks.end_to_end --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ITERATIONS = 30


def dnmf_fit(A: Any) -> dict[str, Any]:
    from dnmf import NMF

    model = NMF(32, init="nndsvda", solver="hals", max_iter=ITERATIONS, tol=0, random_state=0)
    started = time.perf_counter()
    model.fit(A)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "error": model.reconstruction_err_, "passes": model.timings_["passes_over_a"],
            "seconds_per_iteration": statistics.median(model.timings_["seconds_per_iteration"][2:])}


def sklearn_fit(A: Any) -> dict[str, Any]:
    from sklearn.decomposition import NMF

    model = NMF(32, init="nndsvda", solver="cd", max_iter=ITERATIONS, tol=0, random_state=0)
    started = time.perf_counter()
    model.fit(A)
    return {"seconds": time.perf_counter() - started, "error": float(model.reconstruction_err_)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "dnmf-benchmarks"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "end_to_end.json"))
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    from benchmarks.cases import CASES, load, prepare

    warnings.simplefilter("ignore")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    prepare(CASES["S1"], work)
    A, _, _ = load(CASES["S1"], work)
    norm = float(np.sqrt(np.sum(A.data.astype(np.float64) ** 2)))
    runs: dict[str, list[dict[str, Any]]] = {"dnmf": [], "sklearn": []}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster):
        for round_ in range(args.repeats):
            for name in (("dnmf", "sklearn") if round_ % 2 == 0 else ("sklearn", "dnmf")):
                runs[name].append(dnmf_fit(A) if name == "dnmf" else sklearn_fit(A))
                print(name, runs[name][-1], flush=True)
    result = {
        "date": time.strftime("%Y-%m-%d"), "case": CASES["S1"].describe(), "iterations": ITERATIONS,
        "dnmf_seconds": statistics.median(r["seconds"] for r in runs["dnmf"]),
        "sklearn_seconds": statistics.median(r["seconds"] for r in runs["sklearn"]),
        "dnmf_relative_error": runs["dnmf"][0]["error"] / norm,
        "sklearn_relative_error": runs["sklearn"][0]["error"] / norm,
        "dnmf_passes_over_a": runs["dnmf"][0]["passes"], "runs": runs,
    }
    result["ratio"] = result["dnmf_seconds"] / result["sklearn_seconds"]
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
