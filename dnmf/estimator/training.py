"""One replicate of a rank survey's data: X with its held-out entries marked missing, and the test error of a fit
at those entries, both a row strip of X at a time."""

from __future__ import annotations

import itertools
import math
from typing import Any

import dask.array as da
import numpy as np
import psutil
import scipy.sparse as sp

from dnmf.core.holdout import held_out_loss, training_block
from dnmf.core.kernels import aligned

__all__ = ["held_out_loss_of", "training_input"]

#: Entries of one row strip handled at once when X is in memory.
_STRIP_ELEMENTS = 1 << 22


def _strips(X: Any) -> list[slice]:
    """Row strips of X: its row chunks for a Dask array, else strips of about ``_STRIP_ELEMENTS`` entries."""
    if isinstance(X, da.Array):
        bounds = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(int)
    else:
        step = max(1, _STRIP_ELEMENTS // max(1, X.shape[1]))
        bounds = np.append(np.arange(0, X.shape[0], step), X.shape[0])
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]


def training_input(X: Any, *, seed: int, test_fraction: float) -> Any:
    """X with NaN at the held-out entries, dense, computed block by block (a Dask array stays lazy)."""
    n = X.shape[1]
    if isinstance(X, da.Array):
        def block(b: Any, block_info: Any = None) -> np.ndarray:
            (r0, r1), (c0, c1) = block_info[0]["array-location"]
            return training_block(b, slice(r0, r1), slice(c0, c1), n, seed=seed, test_fraction=test_fraction)

        dtype = np.result_type(X.dtype, np.float32)
        return X.map_blocks(block, dtype=dtype, meta=np.empty((0, 0), dtype=dtype))
    X = sp.csr_matrix(X) if sp.issparse(X) else np.asarray(X)
    _check_room(X)
    values = X.data if sp.issparse(X) else X
    if np.issubdtype(values.dtype, np.floating) and np.isnan(values).any():
        raise ValueError("X has NaN entries: select_rank needs a matrix with no missing values, since it makes "
                         "its own (the held-out entries). Impute or drop the missing entries first.")
    return np.concatenate([training_block(X[s], s, slice(0, n), n, seed=seed, test_fraction=test_fraction)
                           for s in _strips(X)])


def _check_room(X: Any) -> None:
    """Refuse, before any fit, an in-memory X whose dense training copy and a fit's copy of it would not fit in
    the memory this machine has free."""
    m, n = X.shape
    nbytes = m * n * np.result_type(X.dtype, np.float32).itemsize
    available = psutil.virtual_memory().available
    if 2 * nbytes > available:
        raise MemoryError(
            f"select_rank holds X densely with NaN at the held-out entries: {nbytes / 2**30:.1f} GiB for this "
            f"{m} × {n} matrix, and a fit needs about as much again, more than the {available / 2**30:.1f} GiB "
            "this machine has free. Pass X as a Dask array or a matrix store (dnmf.open_matrix), whose training "
            "input is built block by block where the fits run, or survey a sample of its rows.")


def held_out_loss_of(X: Any, W: np.ndarray, H: np.ndarray, *, seed: int, test_fraction: float,
                   beta: float) -> tuple[float, int]:
    """``(Σ D_β(A_ij | (WH)_ij), count)`` over the held-out entries, one row strip of X at a time. W and H are
    aligned first, so that the sums do not depend on where the factors happen to lie in memory (a fit's own, or
    read back from its checkpoint)."""
    W, H = aligned(np.ascontiguousarray(W)), aligned(np.ascontiguousarray(H))
    n = X.shape[1]
    total, count = 0.0, 0
    for s in _strips(X):
        strip = X[s]
        strip = strip.compute() if isinstance(strip, da.Array) else strip
        loss, c = held_out_loss(strip, W[s], H, s, slice(0, n), n, seed=seed, test_fraction=test_fraction,
                                beta=beta)
        if not math.isfinite(loss):
            raise ValueError(f"The held-out entries of rows {s.start}..{s.stop - 1} of X give a non-finite test "
                             "error: X must be finite, with no missing values, for select_rank.")
        total, count = total + loss, count + c
    return total, count
