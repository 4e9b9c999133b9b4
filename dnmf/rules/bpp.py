"""Alternating non-negative least squares by block principal pivoting (ANLS-BPP).

Each call solves the non-negative least-squares problem of one factor block exactly, from the normal equations alone:
for the H-step, ``min_{H_j ≥ 0} ½‖A_j − W H_j‖² + l1·ΣH_j + ½·l2·‖H_j‖²`` given only ``gram = WᵀW`` and
``cross = (WᵀA)_j``. The method is the block principal pivoting algorithm of J. Kim and H. Park, "Fast nonnegative
matrix factorization: an active-set-like method and comparisons", SIAM J. Sci. Comput. 33(6), 2011:

* every column keeps a passive set ``F`` (entries allowed to be positive); ``x_F`` solves ``gram[F, F] x_F =
  cross[F]``, ``x`` is zero elsewhere, and ``y = gram @ x − cross`` is the gradient, zero on ``F``;
* the column is optimal when ``x_F ≥ 0`` and ``y ≥ 0`` off ``F`` (the KKT conditions); otherwise all infeasible
  indices change sides at once (full exchange);
* the backup rule of Portugal, Júdice and Vicente (1994) guarantees finite termination: each column counts its
  infeasible indices, and once that count has not dropped for three rounds, only the infeasible index with the
  largest position changes sides until the count drops again;
* columns whose passive sets coincide share one Cholesky factorisation (Kim and Park's column grouping), so a
  block costs one factorisation per distinct passive set, not per column.

The passive sets start from the current block (``block > 0``), so in an alternating loop, where the support changes
little between iterations, most columns are optimal after the first solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

__all__ = ["update"]

#: Full exchanges a column may make without reducing its infeasibility count before the backup rule takes over.
FULL_EXCHANGE_CHANCES = 3
#: Groups with at least this many columns get their own Cholesky factorisation; smaller ones are solved together,
#: one small system per column, in batches.
MIN_GROUP_SIZE = 4
#: Columns per batch of small systems (bounds a batch's memory at ``BATCH_COLUMNS · k² · 8`` bytes).
BATCH_COLUMNS = 1024
#: Relative tolerance for calling an entry of ``x`` or ``y`` negative: rounding must not make a degenerate zero
#: change sides forever.
NEGATIVE_TOLERANCE = 64 * float(np.finfo(np.float64).eps)
#: A Cholesky factor whose squared pivots span more than this ratio is treated as singular.
SINGULAR_PIVOT_RATIO = float(np.finfo(np.float64).eps)


@dataclass
class SolveStats:
    """What one exact NNLS solve cost; for tests and benchmarks, not part of the rule's interface."""

    rounds: int = 0
    factorizations: int = 0
    backup_exchanges: int = 0
    least_squares_fallbacks: int = 0
    unfinished_columns: int = 0


def update(block: np.ndarray, cross: np.ndarray, gram: np.ndarray, *, l1: float = 0.0, l2: float = 0.0) -> np.ndarray:
    """Replace ``block`` by the exact minimiser of the regularised non-negative least-squares problem.

    Parameters
    ----------
    block : ndarray of shape (k, n_b)
        Current factor block, non-negative. Its support gives the starting passive sets.
    cross : ndarray of shape (k, n_b)
        The data cross product for this block, e.g. ``(WᵀA)_j``.
    gram : ndarray of shape (k, k)
        The Gram matrix of the other factor, e.g. ``WᵀW``.
    l1, l2 : float
        Scaled L1 and L2 penalties on this factor: the problem solved has Gram ``gram + l2·I`` and cross product
        ``cross − l1``, as in scikit-learn's coordinate descent.

    Returns
    -------
    ndarray of shape (k, n_b)
        The minimiser of ``½·tr(XᵀGX) − tr(CᵀX)`` over ``X ≥ 0``, computed in float64 and returned in ``block``'s
        floating dtype. A component whose (regularised) Gram diagonal is zero is set to zero. Where a singular
        subproblem has many minimisers, the minimum-norm least-squares one is taken.
    """
    dtype = block.dtype if np.issubdtype(block.dtype, np.floating) else np.dtype(np.float64)
    solution, _ = solve_nnls(gram, cross, l1=l1, l2=l2, start=block)
    return solution.astype(dtype, copy=False)


def solve_nnls(gram: np.ndarray, cross: np.ndarray, *, l1: float = 0.0, l2: float = 0.0,
               start: np.ndarray | None = None) -> tuple[np.ndarray, SolveStats]:
    """Solve ``min_{X ≥ 0} ½·tr(Xᵀ(G + l2·I)X) − tr((C − l1)ᵀX)`` column by column, by block principal pivoting.

    Parameters
    ----------
    gram : ndarray of shape (k, k)
        ``G = AᵀA``, symmetric positive semi-definite.
    cross : ndarray of shape (k, r)
        ``C = AᵀB``, one column per right-hand side.
    l1, l2 : float
        L1 and L2 penalties.
    start : ndarray of shape (k, r), optional
        A non-negative starting point; its support gives the starting passive sets (all empty when omitted). Should
        the pivoting not finish a column (a rounding-driven cycle, never seen in practice), that column keeps
        whichever of ``start`` and the clipped last iterate has the lower objective, so the result is never worse
        than ``start``.

    Returns
    -------
    solution : ndarray of float64 of shape (k, r)
    stats : SolveStats
    """
    gram = np.array(gram, dtype=np.float64, order="C")
    cross = np.array(cross, dtype=np.float64, order="C")
    if l2:
        gram[np.diag_indices_from(gram)] += l2
    if l1:
        cross -= l1
    k, r = cross.shape
    live = np.diagonal(gram) > 0
    start = np.zeros((k, r)) if start is None else np.asarray(start, dtype=np.float64)
    passive = start > 0
    passive &= live[:, None]
    stats = SolveStats()
    x, y = _solve_for_passive(gram, cross, passive, stats)

    best_count = np.full(r, k + 1)
    chances = np.full(r, FULL_EXCHANGE_CHANCES)
    pending = np.arange(r)
    for _ in range(_max_rounds(k)):
        infeasible = _infeasible(gram, cross[:, pending], x[:, pending], y[:, pending], passive[:, pending], live)
        count = infeasible.sum(axis=0)
        unsolved = count > 0
        pending, infeasible, count = pending[unsolved], infeasible[:, unsolved], count[unsolved]
        if pending.size == 0:
            break
        stats.rounds += 1
        improved = count < best_count[pending]
        best_count[pending[improved]] = count[improved]
        chances[pending[improved]] = FULL_EXCHANGE_CHANCES
        backup = ~improved & (chances[pending] == 0)
        chances[pending[~improved & ~backup]] -= 1
        if backup.any():
            backup_columns = np.flatnonzero(backup)
            stats.backup_exchanges += backup_columns.size
            largest = k - 1 - np.argmax(infeasible[::-1, backup_columns], axis=0)
            infeasible[:, backup_columns] = False
            infeasible[largest, backup_columns] = True
        passive[:, pending] ^= infeasible
        x[:, pending], y[:, pending] = _solve_for_passive(gram, cross[:, pending], passive[:, pending], stats)
    else:
        infeasible = _infeasible(gram, cross[:, pending], x[:, pending], y[:, pending], passive[:, pending], live)
        pending = pending[infeasible.any(axis=0)]
        stats.unfinished_columns = pending.size
    np.maximum(x, 0.0, out=x)
    if pending.size:
        _keep_better_of(x, start, pending, gram, cross)
    return x, stats


def group_columns(passive: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Group the columns of ``passive`` that share a passive set.

    Parameters
    ----------
    passive : ndarray of bool of shape (k, r)

    Returns
    -------
    list of (rows, columns)
        One pair of index arrays per distinct passive set: the set's row indices and the columns having it.
    """
    order, starts = _sorted_groups(passive)
    return [(np.flatnonzero(passive[:, columns[0]]), columns) for columns in np.split(order, starts[1:])]


def _sorted_groups(passive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns sorted so that equal passive sets are adjacent, and where each run of equal sets starts.

    A passive set is packed into 64-bit words, so sorting ``r`` columns costs a lexicographic sort on
    ``⌈k/64⌉`` integer keys.
    """
    r = passive.shape[1]
    packed = np.packbits(passive, axis=0, bitorder="little")
    padded = np.zeros((-(-packed.shape[0] // 8) * 8, r), dtype=np.uint8)
    padded[:packed.shape[0]] = packed
    words = np.ascontiguousarray(padded.T).view(np.uint64)
    order = np.lexsort(words.T[::-1]) if words.shape[1] > 1 else np.argsort(words[:, 0], kind="stable")
    sorted_words = words[order]
    new_group = np.ones(r, dtype=bool)
    new_group[1:] = np.any(sorted_words[1:] != sorted_words[:-1], axis=1)
    return order, np.flatnonzero(new_group)


def _max_rounds(k: int) -> int:
    """A cap that the backup rule does not reach in practice; it only bounds a pathological, rounding-driven cycle."""
    return 100 + 10 * k


def _infeasible(gram: np.ndarray, cross: np.ndarray, x: np.ndarray, y: np.ndarray, passive: np.ndarray,
                live: np.ndarray) -> np.ndarray:
    """Entries that violate the KKT conditions: negative ``x`` on the passive set, negative ``y`` off it."""
    x_scale = np.abs(x).max(axis=0, initial=0.0)
    y_scale = np.abs(cross).max(axis=0, initial=0.0) + np.abs(gram).max(initial=0.0) * np.abs(x).sum(axis=0)
    negative_x = x < -NEGATIVE_TOLERANCE * x_scale
    negative_y = y < -NEGATIVE_TOLERANCE * y_scale
    return np.where(passive, negative_x, negative_y & live[:, None])


def _solve_for_passive(gram: np.ndarray, cross: np.ndarray, passive: np.ndarray,
                       stats: SolveStats) -> tuple[np.ndarray, np.ndarray]:
    """``x`` with ``gram[F, F] x_F = cross[F]`` and zeros off ``F``, and ``y = gram x − cross`` with zeros on ``F``."""
    x = np.zeros_like(cross)
    if cross.shape[1]:
        order, starts = _sorted_groups(passive)
        sizes = np.diff(np.append(starts, order.size))
        for start, size in zip(starts[sizes >= MIN_GROUP_SIZE], sizes[sizes >= MIN_GROUP_SIZE]):
            columns = order[start:start + size]
            rows = np.flatnonzero(passive[:, columns[0]])
            if rows.size:
                x[np.ix_(rows, columns)] = _solve_symmetric(gram[np.ix_(rows, rows)], cross[np.ix_(rows, columns)],
                                                            stats)
        in_small_group = np.repeat(sizes < MIN_GROUP_SIZE, sizes)
        small = np.sort(order[in_small_group])
        for first in range(0, small.size, BATCH_COLUMNS):
            chunk = small[first:first + BATCH_COLUMNS]
            x[:, chunk] = _solve_each_column(gram, cross[:, chunk], passive[:, chunk], stats)
    y = gram @ x - cross
    y[passive] = 0.0
    return x, y


def _solve_symmetric(matrix: np.ndarray, rhs: np.ndarray, stats: SolveStats) -> np.ndarray:
    """Solve ``matrix @ solution = rhs`` by Cholesky; a singular ``matrix`` gets the minimum-norm least-squares
    solution instead."""
    stats.factorizations += 1
    try:
        factor = scipy.linalg.cho_factor(matrix, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        pass
    else:
        pivots = np.diagonal(factor[0]) ** 2
        if pivots.min() > SINGULAR_PIVOT_RATIO * pivots.max():
            solution = scipy.linalg.cho_solve(factor, rhs, check_finite=False)
            if np.all(np.isfinite(solution)):
                return solution
    stats.least_squares_fallbacks += 1
    return scipy.linalg.lstsq(matrix, rhs, check_finite=False, lapack_driver="gelsd")[0]


def _solve_each_column(gram: np.ndarray, cross: np.ndarray, passive: np.ndarray, stats: SolveStats) -> np.ndarray:
    """One system per column, solved in stacks of columns with equally large passive sets, so a column costs
    ``|F|³`` rather than ``k³``; a stack with a singular system is redone column by column."""
    solution = np.zeros(cross.shape)
    sizes = passive.sum(axis=0)
    for size in np.unique(sizes[sizes > 0]):
        columns = np.flatnonzero(sizes == size)
        rows = np.nonzero(passive[:, columns].T)[1].reshape(columns.size, size)
        matrices = np.take(gram, rows[:, :, None] * gram.shape[0] + rows[:, None, :])
        rhs = np.take(cross, rows * cross.shape[1] + columns[:, None])
        try:
            stacked = np.linalg.solve(matrices, rhs[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            stacked = None
        if stacked is not None and np.all(np.isfinite(stacked)):
            stats.factorizations += columns.size
            np.put(solution, rows * cross.shape[1] + columns[:, None], stacked)
            continue
        for column, column_rows in zip(columns, rows):
            solution[column_rows, column] = _solve_symmetric(gram[np.ix_(column_rows, column_rows)],
                                                             cross[column_rows, column], stats)
    return solution


def _objective(x: np.ndarray, gram: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """``½·xᵀGx − cᵀx`` for every column."""
    return np.einsum("ir,ir->r", x, 0.5 * (gram @ x) - cross)


def _keep_better_of(x: np.ndarray, start: np.ndarray, columns: np.ndarray, gram: np.ndarray,
                    cross: np.ndarray) -> None:
    """Where ``start`` beats ``x`` on ``columns``, copy it into ``x``."""
    worse = _objective(x[:, columns], gram, cross[:, columns]) > _objective(start[:, columns], gram, cross[:, columns])
    x[:, columns[worse]] = start[:, columns[worse]]
