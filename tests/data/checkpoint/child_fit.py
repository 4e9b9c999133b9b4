"""A batch fit run as a separate process by the checkpoint tests, so that it can be killed with real signals.

Usage: python child_fit.py STORE CHECKPOINT OUT MAX_ITER [resume] [pause-before-commit]
"""

from __future__ import annotations

import sys
import time

from dnmf import NMF
from dnmf.data.checkpoint import CheckpointStore

if __name__ == "__main__":
    store, checkpoint, out, max_iter = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    flags = set(sys.argv[5:])
    if "pause-before-commit" in flags:
        commit = CheckpointStore._commit

        def slow_commit(self, version):
            if version == "v00000003":
                open(f"{checkpoint}.writing", "w").close()
                time.sleep(600)
            commit(self, version)

        CheckpointStore._commit = slow_commit
    model = NMF(3, solver="hals", max_iter=max_iter, tol=0, random_state=0, chunks=(100, 40), checkpoint=checkpoint)
    model.fit(store, resume="resume" in flags, out=out)
    print(f"done n_iter={model.n_iter_} resumed_from={model.resumed_from_}")
