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
  largest position changes sides until the count drops again.

The subproblems are solved in one of three ways, all exact:

* columns whose passive sets coincide, in groups of at least ``MIN_GROUP_SIZE``, share one Cholesky factorisation
  (Kim and Park's column grouping), so a block costs one factorisation per distinct passive set;
* every other column gets a Cholesky factorisation of its own, but the factorisations of equally large systems run
  together, vectorised across columns (:func:`systems.batched_cholesky_solve`), which is several times faster than one
  LAPACK call per column at these sizes;
* when ``gram`` is well conditioned and a column's passive set holds more than half the components, the column
  solves the smaller system on its active set ``Z`` instead: with ``u = gram⁻¹ cross`` and ``M = gram⁻¹``, the
  constraint ``x_Z = 0`` gives ``M[Z, Z] λ = −u[Z]``, ``x = u + M[:, Z] λ`` and ``y_Z = λ``. A system then never has
  more than ``k/2`` unknowns.

The passive sets start from the current block (``block > 0``), so in an alternating loop, where the support changes
little between iterations, most columns are optimal after one or two solves.

Internally every ``(k, r)`` array is held transposed, one row per column of the problem, so that selecting the
columns still pending is a contiguous copy.

BPP is NumPy/SciPy only, unlike MU and HALS: its per-column pivoting, grouping by passive set and LAPACK calls
are branchy host work that would sync a GPU on every round. A CuPy block must be brought to the host
(``cupy.asnumpy``) before this rule runs; whether a batched GPU version pays is still to be measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from dnmf.core.rules import bpp_systems as systems
from dnmf.core.rules.bpp_systems import group_columns

__all__ = ["group_columns", "solve_nnls", "update"]

#: Full exchanges a column may make without reducing its infeasibility count before the backup rule takes over.
FULL_EXCHANGE_CHANCES = 3
#: Groups with at least this many columns get their own Cholesky factorisation; smaller ones are solved together,
#: one small system per column, vectorised across columns.
MIN_GROUP_SIZE = 4
#: Columns per vectorised batch of small systems: a batch holds ``BATCH_COLUMNS · s²`` floats for systems of size
#: ``s``, which stays in cache.
BATCH_COLUMNS = 2048
#: Rows per tile when the row-layout solution is transposed back.
TRANSPOSE_TILE = 1024
#: Relative tolerance for calling an entry of ``x`` or ``y`` negative: rounding must not make a degenerate zero
#: change sides forever.
NEGATIVE_TOLERANCE = 64 * float(np.finfo(np.float64).eps)
#: Largest condition number of ``gram`` for which columns may solve on their active set through ``gram⁻¹``; that
#: route loses about this factor times the machine epsilon, the direct one only the condition of ``gram[F, F]``.
COMPLEMENT_MAX_CONDITION = 1e4


@dataclass
class SolveStats:
    """What one exact NNLS solve cost; for tests and benchmarks, not part of the rule's interface."""

    rounds: int = 0
    factorizations: int = 0
    backup_exchanges: int = 0
    least_squares_fallbacks: int = 0
    unfinished_columns: int = 0


@dataclass
class _Problem:
    """One NNLS problem in row layout: row ``j`` of ``cross`` is column ``j`` of the caller's cross product.

    ``inverse`` and ``unconstrained`` (``gram⁻¹`` and ``cross @ gram⁻¹``) are set only when ``gram`` is well enough
    conditioned for the active-set route.
    """

    gram: np.ndarray
    cross: np.ndarray
    inverse: np.ndarray | None = None
    unconstrained: np.ndarray | None = None
    full_factorization_counted: bool = False


@dataclass
class _Iterate:
    """The pending columns of one round, in the order the solve sorted them: the problem rows, their passive sets,
    the solutions ``x`` (zero off the passive sets) and gradients ``y`` (zero on them)."""

    rows: np.ndarray
    passive: np.ndarray
    x: np.ndarray
    y: np.ndarray


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
    if l2:
        gram[np.diag_indices_from(gram)] += l2
    cross = np.asarray(cross, dtype=np.float64)
    k, r = cross.shape
    start = np.zeros((k, r)) if start is None else np.asarray(start, dtype=np.float64)
    live = np.flatnonzero(np.diagonal(gram) > 0)
    solution = np.zeros((k, r))
    stats = SolveStats()
    if live.size and r:
        live_gram = gram[np.ix_(live, live)]
        live_cross = np.ascontiguousarray(cross[live].T)
        if l1:
            live_cross -= l1
        live_start = np.ascontiguousarray(start[live].T)
        _transpose_into(solution, live, _solve_rows(_prepare(live_gram, live_cross), live_start, stats))
    return solution, stats


def _transpose_into(target: np.ndarray, rows: np.ndarray, source: np.ndarray) -> None:
    """``target[rows] = source.T``, a tile of ``source`` at a time: NumPy transposes a tall array into a wide one
    several times slower in one piece."""
    everything = rows.size == target.shape[0]
    for first in range(0, source.shape[0], TRANSPOSE_TILE):
        tile = source[first:first + TRANSPOSE_TILE].T
        if everything:
            target[:, first:first + TRANSPOSE_TILE] = tile
        else:
            target[rows, first:first + TRANSPOSE_TILE] = tile




def _prepare(gram: np.ndarray, cross: np.ndarray) -> _Problem:
    """The problem, with ``gram⁻¹`` and the unconstrained solutions when ``gram`` is well conditioned."""
    problem = _Problem(gram=gram, cross=cross)
    eigenvalues = np.linalg.eigvalsh(gram)
    if eigenvalues[0] > eigenvalues[-1] / COMPLEMENT_MAX_CONDITION:
        factor = scipy.linalg.cho_factor(gram, lower=True, check_finite=False)
        inverse = scipy.linalg.cho_solve(factor, np.eye(gram.shape[0]), check_finite=False)
        problem.inverse = 0.5 * (inverse + inverse.T)
        problem.unconstrained = cross @ problem.inverse
    return problem


def _solve_rows(problem: _Problem, start: np.ndarray, stats: SolveStats) -> np.ndarray:
    """Block principal pivoting on a problem whose Gram diagonal is positive; returns the solution in row layout."""
    gram, cross = problem.gram, problem.cross
    r, k = cross.shape
    solution = np.zeros((r, k))
    cross_scale = np.abs(cross).max(axis=1, initial=0.0)
    gram_scale = float(np.abs(gram).max(initial=0.0))
    best_count = np.full(r, k + 1)
    chances = np.full(r, FULL_EXCHANGE_CHANCES)
    current = _solve_for_passive(problem, np.arange(r), start > 0, stats)
    for _ in range(_max_rounds(k)):
        infeasible = _infeasible(current.x, current.y, cross_scale[current.rows], gram_scale)
        count = infeasible.sum(axis=1)
        unsolved = count > 0
        if not unsolved.all():
            solution[current.rows[~unsolved]] = current.x[~unsolved]
            current = _Iterate(current.rows[unsolved], current.passive[unsolved], current.x[unsolved],
                               current.y[unsolved])
            infeasible, count = infeasible[unsolved], count[unsolved]
        pending = current.rows
        if pending.size == 0:
            break
        stats.rounds += 1
        improved = count < best_count[pending]
        best_count[pending[improved]] = count[improved]
        chances[pending[improved]] = FULL_EXCHANGE_CHANCES
        backup = ~improved & (chances[pending] == 0)
        chances[pending[~improved & ~backup]] -= 1
        if backup.any():
            backup_rows = np.flatnonzero(backup)
            stats.backup_exchanges += backup_rows.size
            largest = k - 1 - np.argmax(infeasible[backup_rows, ::-1], axis=1)
            infeasible[backup_rows] = False
            infeasible[backup_rows, largest] = True
        current = _solve_for_passive(problem, pending, current.passive ^ infeasible, stats)
    else:
        solution[current.rows] = current.x
        infeasible = _infeasible(current.x, current.y, cross_scale[current.rows], gram_scale)
        pending = current.rows[infeasible.any(axis=1)]
        stats.unfinished_columns = pending.size
    np.maximum(solution, 0.0, out=solution)
    if stats.unfinished_columns:
        _keep_better_of(solution, start, pending, gram, cross)
    return solution








def _max_rounds(k: int) -> int:
    """A cap that the backup rule does not reach in practice; it only bounds a pathological, rounding-driven cycle."""
    return 100 + 10 * k


def _infeasible(x: np.ndarray, y: np.ndarray, cross_scale: np.ndarray, gram_scale: float) -> np.ndarray:
    """Entries that violate the KKT conditions: negative ``x`` on the passive set, negative ``y`` off it.

    ``x`` is exactly zero off the passive set and ``y`` exactly zero on it, so neither needs the set itself.
    """
    magnitude = np.abs(x)
    x_threshold = -NEGATIVE_TOLERANCE * magnitude.max(axis=1, initial=0.0)
    y_threshold = -NEGATIVE_TOLERANCE * (cross_scale + gram_scale * magnitude.sum(axis=1))
    infeasible = x < x_threshold[:, None]
    infeasible |= y < y_threshold[:, None]
    return infeasible


def _solve_for_passive(problem: _Problem, rows: np.ndarray, passive: np.ndarray, stats: SolveStats) -> _Iterate:
    """``x`` with ``gram[F, F] x_F = cross[F]`` and zeros off ``F``, and ``y = gram x − cross`` with zeros on ``F``,
    for the problem rows ``rows`` whose passive sets are the rows of ``passive``.

    The rows are sorted by route (passive set first, then active set), system size and passive set, so that each
    route is one contiguous slice, each group of equal passive sets one contiguous run, and equally large systems
    are adjacent; the result comes back in that order.
    """
    gram, k = problem.gram, problem.gram.shape[0]
    passive_size = np.count_nonzero(passive, axis=1)
    through_active = np.zeros(rows.size, dtype=bool)
    if problem.inverse is not None:
        through_active = 2 * passive_size > k
    system_size = np.where(through_active, k - passive_size, passive_size)
    words = systems.pattern_words(passive)
    order = np.lexsort((*words.T[::-1], system_size, through_active))
    rows, passive, words = rows[order], passive[order], words[order]
    system_size, through_active = system_size[order], through_active[order]
    cross = problem.cross[rows]
    first_active = int(np.searchsorted(through_active, True))
    rhs = cross
    if first_active < rows.size:
        rhs = cross.copy()
        rhs[first_active:] = -problem.unconstrained[rows[first_active:]]

    unknowns = np.zeros_like(cross)
    group_starts = systems.run_starts(words)
    group_sizes = np.diff(np.append(group_starts, rows.size))
    for first, size in zip(group_starts[group_sizes >= MIN_GROUP_SIZE], group_sizes[group_sizes >= MIN_GROUP_SIZE]):
        members = slice(first, first + size)
        matrix = problem.inverse if through_active[first] else gram
        indices = np.flatnonzero(passive[first] != through_active[first])
        if indices.size:
            unknowns[members, indices] = systems.solve_symmetric(matrix[np.ix_(indices, indices)],
                                                                 rhs[members, indices].T, stats).T
        elif through_active[first]:
            _count_full_factorization(problem, stats)

    single = np.flatnonzero(np.repeat(group_sizes < MIN_GROUP_SIZE, group_sizes))
    failed = []
    for run in np.split(single, systems.run_starts(system_size[single], through_active[single])[1:]):
        if run.size == 0:
            continue
        size, active_route = int(system_size[run[0]]), bool(through_active[run[0]])
        if size == 0:
            if active_route:
                _count_full_factorization(problem, stats)
            continue
        matrix = problem.inverse if active_route else gram
        for first in range(0, run.size, BATCH_COLUMNS):
            members = run[first:first + BATCH_COLUMNS]
            mask = passive[members] != active_route
            indices = np.ascontiguousarray((np.flatnonzero(mask) % k).reshape(members.size, size).T)
            solution, solved = systems.batched_cholesky_solve(matrix, indices,
                                                              np.take_along_axis(rhs[members].T, indices, axis=0))
            stats.factorizations += members.size
            np.put(unknowns, members * k + indices, solution)
            if not solved.all():
                failed.append(members[~solved])

    x, y = unknowns, np.empty_like(unknowns)
    by_passive, by_active = slice(0, first_active), slice(first_active, rows.size)
    np.matmul(x[by_passive], gram, out=y[by_passive])
    y[by_passive] -= cross[by_passive]
    if first_active < rows.size:
        y[by_active] = unknowns[by_active]
        x[by_active] = problem.unconstrained[rows[by_active]] + y[by_active] @ problem.inverse
    x *= passive
    y *= ~passive
    for position in np.concatenate(failed) if failed else ():
        indices = np.flatnonzero(passive[position])
        x[position] = 0.0
        x[position, indices] = systems.solve_symmetric(gram[np.ix_(indices, indices)], cross[position, indices], stats)
        y[position] = (x[position] @ gram - cross[position]) * ~passive[position]
    return _Iterate(rows, passive, x, y)


def _count_full_factorization(problem: _Problem, stats: SolveStats) -> None:
    """Charge the factorisation of the whole Gram matrix, which the active-set route shares, once it is first used
    by itself (for columns whose passive set is everything)."""
    if not problem.full_factorization_counted:
        problem.full_factorization_counted = True
        stats.factorizations += 1






def _objective(x: np.ndarray, gram: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """``½·xᵀGx − cᵀx`` for every row."""
    return np.einsum("ri,ri->r", x, 0.5 * (x @ gram) - cross)


def _keep_better_of(x: np.ndarray, start: np.ndarray, rows: np.ndarray, gram: np.ndarray,
                    cross: np.ndarray) -> None:
    """Where ``start`` beats ``x`` on ``rows``, copy it into ``x``."""
    worse = _objective(x[rows], gram, cross[rows]) > _objective(start[rows], gram, cross[rows])
    x[rows[worse]] = start[rows[worse]]
