"""How many power iterations NNDSVD's randomized SVD should make: the loss reached in a fixed budget of time.

Each power iteration costs two passes over A (about one NMF iteration), and buys a better start. Whether it pays
is a question of time, not of iterations: for every candidate count ``q`` the fit runs with ``init="nndsvda"``,
``tol=0``, and a callback records the loss against the seconds since ``fit`` was called (initialisation
included). The figure is the loss each candidate has reached when the time budget runs out, the budgets being the
seconds scikit-learn's count (7, or 4 when ``k ≥ min(m, n)/10``) needs for 10, 30 and 100 iterations; ``auto`` is
dnmf's default (:func:`dnmf.core.initialization.power_iterations`).
Candidates run interleaved, in alternating order; losses at a budget are medians over rounds, and the table gives
them as relative errors ``‖A − WH‖ / ‖A‖``.

Cases: scikit-learn's digits, scikit-image's faces (``lfw_subset``), a dense float32 matrix with planted rank-20
structure plus noise, a sparse one with planted topics and noise on its stored entries, and entries sampled from a
rank-20 product (like the S1 benchmark); ``hals`` and ``mu``. In-process executor (no cluster).

Run from the repository root::

    python -m benchmarks.power_iterations --repeats 3

The README's "Passes over X" quotes what its last run found.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import dask
import numpy as np

CANDIDATES: tuple[int | str, ...] = (0, 1, 2, 4, "scikit-learn", "auto")
BUDGET_ITERATIONS = (10, 30, 100)


def _digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().data


def _faces() -> np.ndarray:
    from skimage.data import lfw_subset

    return lfw_subset().reshape(200, -1).astype(np.float64)


def _dense_planted() -> np.ndarray:
    from dnmf.datasets import make_low_rank

    A = make_low_rank(4000, 1500, 20, dtype=np.float32, random_state=0)[0]
    noise = np.random.default_rng(1).random(A.shape, dtype=np.float32) * 0.1 * float(A.mean())
    return A + noise


def _sparse_topics() -> Any:
    from dnmf.datasets import make_sparse_low_rank

    A = make_sparse_low_rank(4000, 1000, 20, random_state=0)[0]
    A.data *= 1 + 0.3 * np.random.default_rng(1).random(A.nnz)  # noise on the stored entries: no exact fit
    return A


def _sparse_sampled() -> Any:
    from dnmf.datasets import make_sampled_low_rank

    return make_sampled_low_rank(50000, 10000, 20, 2_000_000, random_state=0)


CASES: dict[str, tuple[Callable[[], Any], int]] = {
    "digits 1797×64, k=10": (_digits, 10),
    "faces 200×625, k=20": (_faces, 20),
    "dense planted 4000×1500, k=20": (_dense_planted, 20),
    "sparse topics 4000×1000, k=20": (_sparse_topics, 20),
    "sparse sampled 50000×10000, 2e6 non-zeros, k=20": (_sparse_sampled, 20),
}


def trace(A: Any, k: int, solver: str, q: int | str, max_iter: int) -> list[tuple[float, float]]:
    """``(seconds since fit was called, loss)`` after every iteration."""
    from dnmf import NMF

    points: list[tuple[float, float]] = []
    started = time.perf_counter()

    def record(iteration: Any) -> None:
        points.append((time.perf_counter() - started, iteration.loss))

    if q == "scikit-learn":
        q = 7 if k < 0.1 * min(A.shape) else 4
    with dask.config.set({"dnmf.nndsvd-power-iterations": q}):
        started = time.perf_counter()
        NMF(k, init="nndsvda", solver=solver, max_iter=max_iter, tol=0, random_state=0, callback=record).fit(A)
    return points


def loss_at(points: list[tuple[float, float]], budget: float) -> float:
    """The loss reached by ``budget`` seconds (infinite if the first iteration was not done by then)."""
    reached = [loss for seconds, loss in points if seconds <= budget]
    return reached[-1] if reached else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--solvers", default="hals,mu")
    parser.add_argument("--cases", default="", help="only the cases whose name contains this")
    args = parser.parse_args()
    import warnings

    warnings.simplefilter("ignore")
    max_iter = int(BUDGET_ITERATIONS[-1] * 1.5)
    for case, (load, k) in CASES.items():
        if args.cases not in case:
            continue
        A = load()
        for solver in args.solvers.split(","):
            traces: dict[Any, list[list[tuple[float, float]]]] = {q: [] for q in CANDIDATES}
            for round_ in range(args.repeats):
                order = CANDIDATES if round_ % 2 == 0 else CANDIDATES[::-1]
                for q in order:
                    traces[q].append(trace(A, k, solver, q, max_iter))
            budgets = [statistics.median(t[n - 1][0] for t in traces["scikit-learn"]) for n in BUDGET_ITERATIONS]
            losses = {q: [statistics.median(loss_at(t, b) for t in traces[q]) for b in budgets] for q in CANDIDATES}
            first = {q: statistics.median(t[0][0] for t in traces[q]) for q in CANDIDATES}
            print(f"\n{case}, {solver}: budgets {', '.join(f'{b:.3f} s' for b in budgets)} "
                  f"(scikit-learn's count's time for {', '.join(map(str, BUDGET_ITERATIONS))} iterations)")
            print(f"{'q':>12} {'1st iter s':>10} " + " ".join(f"{f'loss@{n}':>10}" for n in BUDGET_ITERATIONS))
            norm = float(np.sqrt(A.multiply(A).sum() if hasattr(A, "multiply") else np.sum(A.astype(np.float64)**2)))
            for q in CANDIDATES:
                print(f"{q!s:>12} {first[q]:>10.3f} " + " ".join(f"{loss / norm:>10.3e}" for loss in losses[q]))


if __name__ == "__main__":
    main()
