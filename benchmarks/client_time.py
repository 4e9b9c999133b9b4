"""The client's time per iteration on a cluster: an iteration's graph resubmitted against one built anew.

A dense 2,000 × 1,000 matrix in 10 × 10 = 100 blocks, rank 8, 30 iterations of ``mu`` on a ``LocalCluster`` of 2
worker processes. The figure is the median over iterations 3–30 of ``timings_["phase_seconds"][i]["graph"]``:
the client's seconds to have an iteration's graph ready and submitted. Candidates: the default (the graph built
once and resubmitted under new keys, :mod:`dnmf.runtime.templates`) and ``dnmf.resubmit-graphs: false`` (every
iteration built and optimised anew), interleaved, their order alternating; medians over rounds. The factors of
both must be bitwise equal, and the script says so.

Run from the repository root::

    python -m benchmarks.client_time --repeats 3
"""

from __future__ import annotations

import argparse
import statistics

import dask
import numpy as np


def client_seconds(A: np.ndarray, resubmit: bool) -> tuple[float, int, np.ndarray]:
    from dnmf import NMF

    with dask.config.set({"dnmf.resubmit-graphs": resubmit}):
        model = NMF(8, init="random", max_iter=30, tol=0, random_state=0, chunks=(200, 100)).fit(A)
    graph = [phase["graph"] for phase in model.timings_["phase_seconds"][2:]]
    return statistics.median(graph), model.timings_["tasks_per_iteration"][-1], model.components_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    A = np.random.default_rng(0).random((2000, 1000))
    seconds: dict[bool, list[float]] = {True: [], False: []}
    components: dict[bool, np.ndarray] = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0") as cluster, \
            Client(cluster):
        for round_ in range(args.repeats):
            for resubmit in ((True, False) if round_ % 2 == 0 else (False, True)):
                value, tasks, components[resubmit] = client_seconds(A, resubmit)
                seconds[resubmit].append(value)
    ratios = [new / old for new, old in zip(seconds[True], seconds[False])]
    for resubmit, label in ((True, "resubmitted (default)"), (False, "built anew")):
        print(f"{label:24s} client ms/iteration: median {1000 * statistics.median(seconds[resubmit]):.1f} "
              f"(min {1000 * min(seconds[resubmit]):.1f}, max {1000 * max(seconds[resubmit]):.1f})")
    print(f"ratio resubmitted ÷ built anew: median {statistics.median(ratios):.3f}; tasks per iteration {tasks}; "
          f"target ≤ 5 ms: {'met' if statistics.median(seconds[True]) <= 0.005 else 'missed'}")
    print("factors bitwise equal:", bool(np.array_equal(components[True], components[False])))


if __name__ == "__main__":
    main()
