"""The in-memory limit: dnmf's alternating loop on whole arrays in one process, with the same update rules.

W-step from ``A Hᵀ`` and ``H Hᵀ`` (by dnmf's own row-tiled kernel), H-step from ``WᵀA`` and ``WᵀW``, and the loss by
the trace identity ``‖A‖² − 2⟨WᵀA, H⟩ + ⟨WᵀW, HHᵀ⟩``: exactly the work of one dnmf iteration, with no scheduler in
between.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np

from dnmf.core.objectives import update_rows


def iterate(A, W: np.ndarray, H: np.ndarray, rule: Callable[..., np.ndarray],
            norm_squared_a: float) -> Iterator[tuple[np.ndarray, np.ndarray, float, float]]:
    """Yield ``(W, H, loss, seconds)`` after every iteration, without end."""
    At = A.T
    HHt = H @ H.T
    while True:
        started = time.perf_counter()
        W = update_rows(W, A @ H.T, HHt, rule=rule, l1=0.0, l2=0.0)
        WtW = W.T @ W
        WtA = (At @ W).T
        H = rule(H, WtA, WtW)
        HHt = H @ H.T
        cross = float(np.sum(WtA * H, dtype=np.float64))
        gram = float(np.sum(WtW.astype(np.float64) * HHt.astype(np.float64)))
        loss = float(np.sqrt(max(norm_squared_a - 2.0 * cross + gram, 0.0)))
        yield W, H, loss, time.perf_counter() - started
