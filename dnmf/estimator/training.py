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

from dnmf.core.holdout import held_out_loss, sampled_loss, sampled_training_block, training_block
from dnmf.core.kernels import aligned

__all__ = ["SAMPLED_ZEROS_FROM_BYTES", "held_out_loss_of", "samples_zeros", "training_input", "training_nbytes",
           "zeros_per_row"]

#: Entries of one row strip handled at once when X is in memory.
_STRIP_ELEMENTS = 1 << 22


def _strips(X: Any, zeros_per_row: int | None = None) -> list[slice]:
    """Row strips of X: its row chunks for a Dask array, else strips of about ``_STRIP_ELEMENTS`` entries (with
    ``zeros_per_row``, of a sparse X's stored entries and zero candidates)."""
    if isinstance(X, da.Array):
        bounds = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(int)
    elif zeros_per_row is not None and sp.issparse(X):
        entries = sp.csr_matrix(X).indptr + np.arange(X.shape[0] + 1) * int(zeros_per_row)
        cuts = np.searchsorted(entries, np.arange(_STRIP_ELEMENTS, int(entries[-1]), _STRIP_ELEMENTS))
        bounds = np.unique(np.concatenate([[0], cuts, [X.shape[0]]]))
    else:
        step = max(1, _STRIP_ELEMENTS // max(1, X.shape[1]))
        bounds = np.append(np.arange(0, X.shape[0], step), X.shape[0])
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]


def training_input(X: Any, *, seed: int, test_fraction: float, zeros_per_row: int | None = None) -> Any:
    """X with NaN at the held-out entries, computed block by block (a Dask array stays lazy): dense, or with
    ``zeros_per_row`` (sparse X, the sampled-zeros design of :mod:`dnmf.core.holdout`) a holed CSR matrix."""
    n = X.shape[1]
    dtype = np.result_type(X.dtype, np.float32)

    def training(b: Any, rows: slice, cols: slice) -> Any:
        if zeros_per_row is None:
            return training_block(b, rows, cols, n, seed=seed, test_fraction=test_fraction)
        return sampled_training_block(b, rows, cols, n, seed=seed, test_fraction=test_fraction,
                                      zeros_per_row=zeros_per_row)

    if isinstance(X, da.Array):
        def block(b: Any, block_info: Any = None) -> Any:
            (r0, r1), (c0, c1) = block_info[0]["array-location"]
            return training(b, slice(r0, r1), slice(c0, c1))

        meta = np.empty((0, 0), dtype=dtype) if zeros_per_row is None else sp.csr_matrix((0, 0), dtype=dtype)
        return X.map_blocks(block, dtype=dtype, meta=meta)
    X = sp.csr_matrix(X) if sp.issparse(X) else np.asarray(X)
    if zeros_per_row is None:
        _check_room(X)
    values = X.data if sp.issparse(X) else X
    if np.issubdtype(values.dtype, np.floating) and np.isnan(values).any():
        raise ValueError("X has NaN entries: select_rank needs a matrix with no missing values, since it makes "
                         "its own (the held-out entries). Impute or drop the missing entries first.")
    strips = [training(X[s], s, slice(0, n)) for s in _strips(X, zeros_per_row)]
    return np.concatenate(strips) if zeros_per_row is None else sp.vstack(strips, format="csr")


def training_nbytes(X: Any, *, zeros_per_row: int | None = None, **holdout: Any) -> int:
    """About the bytes of :func:`training_input`'s result: 8 (float64) or 4 an entry of X when dense; with
    ``zeros_per_row``, 12 an entry (value and column) of X's non-zeros and its held-out zeros, where X's non-zeros
    are known without a pass (in memory), else as if dense."""
    itemsize = np.result_type(X.dtype, np.float32).itemsize
    m, n = (int(s) for s in X.shape)
    if zeros_per_row is None or not sp.issparse(X):
        return m * n * itemsize
    return (int(X.nnz) + m * int(zeros_per_row)) * (itemsize + 4)


#: ``held_out_zeros='auto'`` samples the zeros of a sparse X whose dense training input would take more than this
#: many bytes, and holds out a share of every entry otherwise.
SAMPLED_ZEROS_FROM_BYTES = 1 << 30


def samples_zeros(X: Any, held_out_zeros: str, *, beta: float) -> bool:
    """Whether a survey of X holds out a sample of its zeros (``held_out_zeros``, see :func:`select_rank`), checked
    before any pass over X.

    Raises
    ------
    ValueError
        For another ``held_out_zeros``, and for ``'sampled'`` with a dense X or with β ≤ 0, whose divergence is not
        defined at the zeros the sample holds out.
    """
    if held_out_zeros not in ("auto", "all", "sampled"):
        raise ValueError(f"held_out_zeros must be 'auto', 'all' or 'sampled', got {held_out_zeros!r}.")
    sparse = sp.issparse(X) or sp.issparse(getattr(X, "_meta", None))
    if held_out_zeros == "auto":
        big = int(np.prod(X.shape)) * np.result_type(X.dtype, np.float32).itemsize > SAMPLED_ZEROS_FROM_BYTES
        return sparse and beta > 0 and big
    if held_out_zeros == "sampled" and (not sparse or beta <= 0):
        raise ValueError("held_out_zeros='sampled' keeps a sparse X sparse, and holds out some of its zeros, where "
                         f"the loss must be defined (beta > 0): got "
                         f"{'a dense X' if not sparse else f'beta_loss with beta={beta:g}'}. Use "
                         "held_out_zeros='all' (or 'auto'), or pass a sparse X with beta_loss='frobenius' or "
                         "'kullback-leibler'.")
    return held_out_zeros == "sampled"


def zeros_per_row(X: Any, held_out_zeros: str, *, test_fraction: float, beta: float) -> int | None:
    """The holdout design of a survey of X (:mod:`dnmf.core.holdout`): None to hold out ``test_fraction`` of every
    entry, or the zero candidates per row of the sampled-zeros design (:func:`samples_zeros`),
    ``⌈test_fraction · nnz / m⌉``: as many held-out zeros as held-out stored entries, in expectation. A lazy
    sparse X is counted in one pass."""
    if not samples_zeros(X, held_out_zeros, beta=beta):
        return None
    m = int(X.shape[0])
    nnz = X.nnz if sp.issparse(X) else int(X.map_blocks(
        _stored_count, chunks=tuple((1,) * b for b in X.numblocks), dtype=np.int64,
        meta=np.empty((0, 0), dtype=np.int64)).sum().compute())
    return max(1, math.ceil(test_fraction * nnz / max(m, 1)))


def _stored_count(block: Any) -> np.ndarray:
    return np.full((1, 1), block.nnz if sp.issparse(block) else np.count_nonzero(block), dtype=np.int64)


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


def held_out_loss_of(X: Any, W: np.ndarray, H: np.ndarray, *, seed: int, test_fraction: float, beta: float,
                     zeros_per_row: int | None = None) -> tuple[float, int]:
    """``(test error, count)``: the mean ``D_β(A_ij | (WH)_ij)`` per held-out entry (with ``zeros_per_row``, the
    stratified estimate of the per-entry loss of :mod:`dnmf.core.holdout`) and the number of held-out entries, one
    row strip of X at a time. W and H are aligned first, so that the sums do not depend on where the factors
    happen to lie in memory (a fit's own, or read back from its checkpoint)."""
    W, H = aligned(np.ascontiguousarray(W)), aligned(np.ascontiguousarray(H))
    n = X.shape[1]
    sums = np.zeros(5)
    for s in _strips(X, zeros_per_row):
        strip = X[s]
        strip = strip.compute() if isinstance(strip, da.Array) else strip
        if zeros_per_row is None:
            loss, c = held_out_loss(strip, W[s], H, s, slice(0, n), n, seed=seed, test_fraction=test_fraction,
                                    beta=beta)
            part = np.array([loss, c, 0.0, 0.0, 0.0])
        else:
            part = sampled_loss(strip, W[s], H, s, slice(0, n), n, seed=seed, test_fraction=test_fraction,
                                zeros_per_row=zeros_per_row, beta=beta)
        if not math.isfinite(part[0] + part[2]):
            raise ValueError(f"The held-out entries of rows {s.start}..{s.stop - 1} of X give a non-finite test "
                             "error: X must be finite, with no missing values, for select_rank.")
        sums += part
    stored_loss, stored_count, zero_loss, zero_count, stored = sums
    count = int(stored_count + zero_count)
    if zeros_per_row is None:
        return float(stored_loss / max(stored_count, 1.0)), count
    share = stored / (X.shape[0] * n)
    return (float(share * stored_loss / max(stored_count, 1.0) + (1.0 - share) * zero_loss / max(zero_count, 1.0)),
            count)
