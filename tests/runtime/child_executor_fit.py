"""A fit on one executor, run as its own process so that the determinism tests can kill it with SIGKILL.

Usage: python child_executor_fit.py EXECUTOR CHECKPOINT OUT.npz MAX_ITER [resume]

EXECUTOR is ``in-process``, ``threads`` (Dask's threaded scheduler) or ``processes`` (a LocalCluster with two
worker processes). The input is synthetic and the same in every run; W and H go to OUT.npz.
"""

from __future__ import annotations

import sys

import dask
import numpy as np


def data() -> np.ndarray:
    from dnmf.datasets import make_low_rank

    X, _, _ = make_low_rank(120, 90, 4, random_state=3)
    return X + 0.05 * np.random.default_rng(4).random(X.shape)


def fit(executor: str, checkpoint: str | None, max_iter: int, resume: bool) -> dict[str, np.ndarray]:
    from dnmf import NMF

    model = NMF(4, solver="hals", init="nndsvda", max_iter=max_iter, tol=0, random_state=0, chunks=(30, 45),
                checkpoint=checkpoint, checkpoint_every=1)
    if executor == "processes":
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster):
            W = model.fit_transform(data(), resume=resume)
    else:
        settings = {"dnmf.executor": "in-process"} if executor == "in-process" else {
            "dnmf.executor": "dask", "scheduler": "threads"}
        with dask.config.set(settings):
            W = model.fit_transform(data(), resume=resume)
    resumed_from = -1 if model.resumed_from_ is None else model.resumed_from_
    return {"W": W, "H": model.components_, "resumed_from": np.array(resumed_from),
            "executor": np.array(model.timings_["executor"])}


if __name__ == "__main__":
    executor, checkpoint, out, max_iter = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    np.savez(out, **fit(executor, None if checkpoint == "-" else checkpoint, max_iter, "resume" in sys.argv[5:]))
