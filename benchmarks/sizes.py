"""dnmf against scikit-learn's ``NMF(solver="cd")`` at every size that fits one machine, no cluster.

Cases (data shipped by packages, or synthetic):

* ``tiny``: 50 × 40 uniform random, rank 5, 100 iterations;
* ``digits``: scikit-learn's digits (1797 × 64), rank 16, 200 iterations;
* ``faces``: scikit-image's ``lfw_subset`` faces (the 100 face images, 25 × 25), upsampled to 100 × 100 pixels and
  stacked with their mirror images: 200 × 10,000, rank 49, 200 iterations.

Each case runs twice: from the same custom initial factors (scikit-learn's NNDSVDA, handed to both), which times
the iterations plus each library's fixed cost, and end to end with ``init="nndsvda"``, each library drawing its
own. ``tol=0``, so both run exactly the same number of iterations; dnmf's ``cd`` is its HALS, the same update as
scikit-learn's. Candidates are interleaved within every round, their order alternating, and the figures are
medians over rounds; the ratio is the median of the per-round ratios. dnmf runs on its default executor for
NumPy input (the in-process executor). The fixed cost per iteration is dnmf's median seconds per iteration on
``tiny``, where the arithmetic is negligible.

Run from the repository root::

    python -m benchmarks.sizes                 # about two minutes here
    python -m benchmarks.sizes --repeats 3 --cases tiny digits
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"tiny": 10.0, "digits": 1.5, "faces": 1.0}
CASES = ("tiny", "digits", "faces")


def load(case: str) -> tuple[np.ndarray, int, int]:
    """The matrix, rank and iteration count of a case."""
    if case == "tiny":
        return np.random.default_rng(0).random((50, 40)), 5, 100
    if case == "digits":
        from sklearn.datasets import load_digits

        return load_digits().data.astype(np.float64), 16, 200
    if case == "faces":
        from skimage import data
        from skimage.transform import resize

        faces = np.stack([resize(image, (100, 100), anti_aliasing=False) for image in data.lfw_subset()[:100]])
        images = np.concatenate([faces, faces[:, :, ::-1]])
        return images.reshape(len(images), -1).astype(np.float64), 49, 200
    raise ValueError(f"unknown case {case!r}; cases are {CASES}")


def initial_factors(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.decomposition._nmf import _initialize_nmf

    return _initialize_nmf(X, k, init="nndsvda", random_state=0)


def run(library: str, X: np.ndarray, k: int, iterations: int,
        start: tuple[np.ndarray, np.ndarray] | None) -> dict[str, Any]:
    """One fit by ``library`` (``"dnmf"`` or ``"sklearn"``), timed, with its exact final error."""
    if library == "dnmf":
        from dnmf import NMF
    else:
        from sklearn.decomposition import NMF
    model = NMF(k, solver="cd", init="custom" if start else "nndsvda", max_iter=iterations, tol=0, random_state=0)
    began = time.perf_counter()
    W = model.fit_transform(X, W=start[0].copy(), H=start[1].copy()) if start else model.fit_transform(X)
    seconds = time.perf_counter() - began
    out = {"seconds": seconds, "error": float(np.linalg.norm(X - W @ model.components_))}
    if library == "dnmf":
        out.update(executor=model.timings_["executor"],
                   seconds_per_iteration=statistics.median(model.timings_["seconds_per_iteration"]))
    return out


def measure(case: str, repeats: int) -> dict[str, Any]:
    X, k, iterations = load(case)
    start = initial_factors(X, k)
    out: dict[str, Any] = {"case": case, "shape": list(X.shape), "rank": k, "iterations": iterations}
    for mode, factors in (("custom", start), ("nndsvda", None)):
        runs: dict[str, list[dict[str, Any]]] = {"dnmf": [], "sklearn": []}
        for library in runs:  # warm-up: imports, thread pools, caches
            run(library, X, k, 2, factors)
        for round_ in range(repeats):
            order = ("dnmf", "sklearn") if round_ % 2 == 0 else ("sklearn", "dnmf")
            for library in order:
                runs[library].append(run(library, X, k, iterations, factors))
        ratios = [d["seconds"] / s["seconds"] for d, s in zip(runs["dnmf"], runs["sklearn"])]
        out[mode] = {
            "dnmf_seconds": statistics.median(r["seconds"] for r in runs["dnmf"]),
            "sklearn_seconds": statistics.median(r["seconds"] for r in runs["sklearn"]),
            "ratio": statistics.median(ratios),
            "ratio_range": [min(ratios), max(ratios)],
            "dnmf_error": runs["dnmf"][-1]["error"],
            "sklearn_error": runs["sklearn"][-1]["error"],
            "dnmf_seconds_per_iteration": statistics.median(r["seconds_per_iteration"] for r in runs["dnmf"]),
            "executor": runs["dnmf"][-1]["executor"],
        }
    return out


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| case | start | dnmf s | scikit-learn cd s | ratio (median, min–max) | target | errors dnmf / sklearn |",
             "|---|---|---|---|---|---|---|"]
    for result in results:
        for mode in ("custom", "nndsvda"):
            r = result[mode]
            goal = TARGETS[result["case"]]
            verdict = "met" if r["ratio"] <= goal else f"missed by {r['ratio'] / goal:.2f}×"
            lines.append(f"| {result['case']} {result['shape'][0]}×{result['shape'][1]} k={result['rank']}, "
                         f"{result['iterations']} it. | {mode} | {r['dnmf_seconds']:.4f} | {r['sklearn_seconds']:.4f}"
                         f" | {r['ratio']:.2f} ({r['ratio_range'][0]:.2f}–{r['ratio_range'][1]:.2f}) | ≤ {goal} "
                         f"{verdict} | {r['dnmf_error']:.6g} / {r['sklearn_error']:.6g} |")
    tiny = next((r for r in results if r["case"] == "tiny"), None)
    if tiny is not None:
        fixed = tiny["custom"]["dnmf_seconds_per_iteration"] * 1e3
        lines.append(f"\nFixed cost per iteration in process (dnmf's median seconds per iteration on tiny): "
                     f"{fixed:.3f} ms (target ≤ 1 ms: {'met' if fixed <= 1 else 'missed'}).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    results = [measure(case, args.repeats) for case in args.cases]
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "repeats": args.repeats, "results": results,
              "table": table(results)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sizes.json").write_text(json.dumps(report, indent=2))
    print(report["table"])
    return report


if __name__ == "__main__":
    main()
