"""Seconds per iteration and passes over A of a KL fit (``solver="mu"``): dense and sparse in process, sparse on
two workers.

Since the β loss rides on the next iteration's first pass, a fit of n iterations reads A 2n + 1 times (3n + 1
before). To compare two commits, run this script from each one's checkout, interleaved, and compare the medians;
the final errors must agree to the last bit.

Run from the repository root::

    python -m benchmarks.beta_passes
"""

from __future__ import annotations

import json
import statistics
import warnings


def per_iteration(X, **kwargs) -> dict[str, float]:
    from dnmf import NMF

    model = NMF(8, solver="mu", beta_loss="kullback-leibler", init="random", max_iter=25, tol=0, random_state=0,
                **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    return {"seconds_per_iteration": statistics.median(model.timings_["seconds_per_iteration"][2:]),
            "passes_in_loop": model.timings_["passes_over_a"]["loop"], "error": model.reconstruction_err_}


def main() -> dict[str, dict[str, float]]:
    from distributed import Client, LocalCluster

    from dnmf.datasets import make_low_rank, make_sparse_low_rank

    dense = make_low_rank(4000, 1000, 8, random_state=0)[0] + 0.01
    sparse = make_sparse_low_rank(40000, 5000, 8, column_density=0.02, random_state=0)[0]
    report = {"dense 4000 × 1000 in process": per_iteration(dense),
              "sparse 40000 × 5000 in process": per_iteration(sparse)}
    with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster):
        report["sparse 40000 × 5000 on 2 workers"] = per_iteration(sparse)
    print(json.dumps(report, indent=1, ensure_ascii=False))
    return report


if __name__ == "__main__":
    main()
