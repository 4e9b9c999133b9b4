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

**Sampled zeros.** Holding out a fraction of every entry makes the training input dense: ``test_fraction · m · n``
held-out entries, which for a large sparse matrix is more than its non-zeros many times over. The other design
(``zeros_per_row``) keeps the training input sparse: a *stored* entry ``(i, j)`` is held out by the hash above;
an *unstored* one is held out iff it is one of ``zeros_per_row`` candidate columns of its row, ``c_t =
⌊u'(i, t, seed) · n⌋`` for ``t < zeros_per_row`` (another splitmix64 stream: stateless and the same on every grid
as well). Every unstored entry then has the same chance ``1 − (1 − 1/n)^zeros_per_row`` of being held out, so the
held-out zeros are a uniform sample of the zeros, and the held-out stored entries one of the stored entries. The
test error is the stratified estimate of the per-entry loss over the whole matrix, ``ρ · (mean over held-out
stored entries) + (1 − ρ) · (mean over held-out zeros)`` with ``ρ`` the stored share of the matrix: the same
quantity the dense design estimates, with more variance in its zero stratum and a training input (a holed CSR
matrix, :mod:`dnmf.core.divergence`) of ``(nnz + m · zeros_per_row)`` entries.

Everything here is pure NumPy/SciPy on one block at a time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from dnmf.core.divergence import divergence

__all__ = ["held_out", "held_out_block", "held_out_loss", "held_out_zeros", "holdout_seeds", "sampled_loss",
           "sampled_training_block", "training_block"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
#: Separates the stream of zero candidates from the stream of the stored entries' hash.
_ZERO_STREAM = np.uint64(0xD1B54A32D192ED03)
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
    _check_seed(seed)


def _check_seed(seed: int) -> None:
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


def _canonical(block: Any) -> sp.csr_matrix:
    a = sp.csr_matrix(block, copy=True)
    a.sum_duplicates()
    return a


def _stored_positions(a: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    return np.repeat(np.arange(a.shape[0], dtype=np.int64), np.diff(a.indptr)), a.indices.astype(np.int64)


def held_out_zeros(block: sp.csr_matrix, rows: slice, cols: slice, n_cols: int, *, seed: int,
                   zeros_per_row: int) -> tuple[np.ndarray, np.ndarray]:
    """The held-out unstored entries of the canonical CSR ``block`` at ``[rows, cols]`` under the sampled-zeros
    design (see the module's notes): their (row, column) positions within the block, row-major and distinct."""
    _check_seed(seed)
    if int(zeros_per_row) < 1:
        raise ValueError(f"zeros_per_row must be a positive integer, got {zeros_per_row!r}.")
    r = np.arange(rows.start, rows.stop, dtype=np.uint64)
    t = np.arange(int(zeros_per_row), dtype=np.uint64)
    salt = _mix(np.asarray([int(seed)], dtype=np.uint64) ^ _ZERO_STREAM)
    with np.errstate(over="ignore"):
        u = _mix(((r[:, None] * np.uint64(zeros_per_row) + t[None, :]) ^ salt) + _GOLDEN)
    candidates = ((u >> np.uint64(32)) * np.uint64(n_cols)) >> np.uint64(32)
    local_rows = np.repeat(np.arange(r.size, dtype=np.int64), t.size)
    local_cols = candidates.ravel().astype(np.int64) - cols.start
    inside = (local_cols >= 0) & (local_cols < cols.stop - cols.start)
    width = block.shape[1]
    keys = np.unique(local_rows[inside] * width + local_cols[inside])
    stored_rows, stored_cols = _stored_positions(block)
    keys = keys[~np.isin(keys, stored_rows * width + stored_cols, assume_unique=True)]
    return keys // width, keys % width


def sampled_training_block(block: Any, rows: slice, cols: slice, n_cols: int, *, seed: int, test_fraction: float,
                           zeros_per_row: int) -> sp.csr_matrix:
    """The holed CSR training block of the sampled-zeros design: ``block``'s stored entries with NaN at the held-out
    ones, and NaN stored at its held-out zeros (see :mod:`dnmf.core.divergence` for holed blocks)."""
    a = _canonical(block)
    dtype = np.result_type(a.dtype, np.float32)
    stored_rows, stored_cols = _stored_positions(a)
    data = a.data.astype(dtype, copy=True)
    data[held_out(stored_rows + rows.start, stored_cols + cols.start, n_cols, seed=seed,
                  test_fraction=test_fraction)] = np.nan
    zero_rows, zero_cols = held_out_zeros(a, rows, cols, n_cols, seed=seed, zeros_per_row=zeros_per_row)
    holed = sp.coo_matrix((np.concatenate([data, np.full(zero_rows.size, np.nan, dtype=dtype)]),
                           (np.concatenate([stored_rows, zero_rows]), np.concatenate([stored_cols, zero_cols]))),
                          shape=a.shape).tocsr()
    holed.sort_indices()
    return holed


def sampled_loss(block: Any, w: np.ndarray, h: np.ndarray, rows: slice, cols: slice, n_cols: int, *, seed: int,
                 test_fraction: float, zeros_per_row: int, beta: float) -> np.ndarray:
    """The held-out parts of the block ``[rows, cols]`` under the sampled-zeros design, by stratum: ``[loss at
    held-out stored entries, their count, loss at held-out zeros, their count, stored entries]`` (losses are
    ``D_β`` sums; float64), from which :func:`dnmf.estimator.training.held_out_loss_of` forms the stratified
    estimate."""
    a = _canonical(block)
    stored_rows, stored_cols = _stored_positions(a)
    held = held_out(stored_rows + rows.start, stored_cols + cols.start, n_cols, seed=seed,
                    test_fraction=test_fraction)
    zero_rows, zero_cols = held_out_zeros(a, rows, cols, n_cols, seed=seed, zeros_per_row=zeros_per_row)

    def loss(r: np.ndarray, c: np.ndarray, values: np.ndarray) -> float:
        indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=a.shape[0]))])
        order = np.lexsort((c, r))
        sampled = sp.csr_matrix((values[order].astype(np.float64), c[order], indptr), shape=a.shape)
        return divergence(sampled, np.asarray(w), np.asarray(h), beta=beta, masked=True) / 2.0

    return np.array([loss(stored_rows[held], stored_cols[held], a.data[held]), np.count_nonzero(held),
                     loss(zero_rows, zero_cols, np.zeros(zero_rows.size)), zero_rows.size, a.nnz], dtype=np.float64)


def holdout_seeds(random_state: int | None, replicates: int) -> list[int]:
    """One independent holdout seed per replicate, drawn from ``random_state`` (fresh entropy when ``None``)."""
    return [int(s) for s in np.random.SeedSequence(random_state).generate_state(replicates, dtype=np.uint64)]
