"""A stateless holdout for cross-validation: which entries of a matrix are held out, computed, never stored.

Entry ``(i, j)`` of an ``m × n`` matrix is held out iff ``u(i·n + j, seed) < test_fraction``, where ``u`` is a
splitmix64 mix of the entry's linear index and the seed mapped to ``[0, 1)``. The mask is therefore the same on
every block grid and chunking, in every process, and costs nothing to ship: any block computes its own part from
its offsets alone. Each entry is held out independently, so the held-out count is binomial around
``test_fraction · m · n``.

**Sparse input.** Every entry can be held out, implicit zeros included, exactly as for dense input. A sparse count
matrix's zeros are data (a word absent from a document, a gene not detected in a cell), and the factorization
predicts them too; holding out only stored entries would test the model on the positive entries alone, where a
higher rank always fits better, and the test error of the two choices is not comparable (RcppML warns of the
same). Holding out everything makes the test error an unbiased estimate of the per-entry loss over the whole
matrix, which is what the fit minimises.

Everything here is pure NumPy/SciPy on one block at a time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from dnmf.core.divergence import divergence

__all__ = ["held_out", "held_out_block", "held_out_loss", "holdout_seeds", "training_block"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
#: Entries hashed at once, to bound temporaries.
_BATCH = 1 << 22


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _MUL1
    z = (z ^ (z >> np.uint64(27))) * _MUL2
    return z ^ (z >> np.uint64(31))


def _check(test_fraction: float, seed: int) -> None:
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}.")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"The holdout seed must be an integer in [0, 2**64), got {seed!r}.")


def held_out(rows: Any, cols: Any, n_cols: int, *, seed: int, test_fraction: float) -> np.ndarray:
    """Whether each entry ``(rows[t], cols[t])`` of a matrix with ``n_cols`` columns is held out.

    Parameters
    ----------
    rows, cols : array-like of int
        Global row and column indices (broadcast against each other).
    n_cols : int
        Columns of the whole matrix.
    seed : int
        The holdout's seed, in ``[0, 2**64)``; different seeds give independent holdouts.
    test_fraction : float
        Probability that an entry is held out, in ``(0, 1)``.

    Returns
    -------
    ndarray of bool
    """
    _check(test_fraction, seed)
    rows, cols = np.broadcast_arrays(np.asarray(rows, dtype=np.uint64), np.asarray(cols, dtype=np.uint64))
    salt = _mix(np.asarray([int(seed)], dtype=np.uint64) + _GOLDEN)
    threshold = np.uint64(min(int(test_fraction * 2.0**64), 2**64 - 1))
    with np.errstate(over="ignore"):
        keys = rows * np.uint64(n_cols) + cols
        return _mix((keys ^ salt) + _GOLDEN) < threshold


def held_out_block(rows: slice, cols: slice, n_cols: int, *, seed: int, test_fraction: float) -> np.ndarray:
    """The boolean holdout of the block ``[rows, cols]`` (slices with explicit ``start`` and ``stop``)."""
    r = np.arange(rows.start, rows.stop, dtype=np.uint64)
    c = np.arange(cols.start, cols.stop, dtype=np.uint64)
    out = np.empty((r.size, c.size), dtype=bool)
    step = max(1, _BATCH // max(1, c.size))
    for start in range(0, r.size, step):
        out[start:start + step] = held_out(r[start:start + step, None], c[None, :], n_cols, seed=seed,
                                           test_fraction=test_fraction)
    return out


def training_block(block: Any, rows: slice, cols: slice, n_cols: int, *, seed: int,
                   test_fraction: float) -> np.ndarray:
    """A dense copy of ``block`` (dense or sparse) with NaN at its held-out entries: the input of a masked fit.

    A sparse block becomes dense here: with every entry a candidate for the holdout, the observed set is
    ``1 − test_fraction`` of the block, which a dense block with NaN holds in 8 bytes an entry and a CSR pattern
    in 12.
    """
    dense = block.toarray() if sp.issparse(block) else np.array(block, dtype=np.result_type(block, np.float32))
    dense[held_out_block(rows, cols, n_cols, seed=seed, test_fraction=test_fraction)] = np.nan
    return dense


def held_out_loss(block: Any, w: np.ndarray, h: np.ndarray, rows: slice, cols: slice, n_cols: int, *, seed: int,
               test_fraction: float, beta: float) -> tuple[float, int]:
    """The held-out part of the block ``[rows, cols]``: ``(D_β(A | WH) summed over its held-out entries, count)``.

    ``w`` holds the block's rows of ``W`` and ``h`` its columns of ``H``; ``WH`` is formed at the held-out
    positions only (O(held-out · k)), as scikit-learn's ``_beta_divergence`` would evaluate it.
    """
    mask = held_out_block(rows, cols, n_cols, seed=seed, test_fraction=test_fraction)
    r, c = np.nonzero(mask)
    if sp.issparse(block):
        values = np.asarray(sp.csr_matrix(block)[r, c], dtype=np.float64).ravel()
    else:
        values = np.asarray(block, dtype=np.float64)[r, c]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=mask.shape[0]))])
    sampled = sp.csr_matrix((values, c, indptr), shape=mask.shape)
    return divergence(sampled, np.asarray(w), np.asarray(h), beta=beta, masked=True) / 2.0, int(r.size)


def holdout_seeds(random_state: int | None, replicates: int) -> list[int]:
    """One independent holdout seed per replicate, drawn from ``random_state`` (fresh entropy when ``None``)."""
    return [int(s) for s in np.random.SeedSequence(random_state).generate_state(replicates, dtype=np.uint64)]
