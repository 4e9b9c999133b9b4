"""Block principal pivoting for masked fits: ``n`` NNLS problems, each with a Gram of its own.

Under an observation mask every row of W (column of H) has the Gram of the other factor over its own observed
entries, so the column grouping and shared factorisations of :mod:`dnmf.core.rules.bpp` do not apply. The pivoting
is the same (full exchanges, the backup rule, the same KKT tolerances), vectorised across the problems instead.
"""

from __future__ import annotations

import numpy as np

from dnmf.core.rules.bpp import FULL_EXCHANGE_CHANCES, NEGATIVE_TOLERANCE, _max_rounds

__all__ = ["update_each"]


def update_each(factor: np.ndarray, cross: np.ndarray, grams: np.ndarray, *, l1: float = 0.0,
                l2: float = 0.0) -> np.ndarray:
    """The exact non-negative least-squares solution of ``n`` independent problems, each with a Gram of its own
    (masked fits; see :func:`dnmf.core.rules.hals.update_each` for the layout).

    The same block principal pivoting as :func:`update` (full exchanges, the backup rule, the same KKT
    tolerances), vectorised across problems: each round solves every pending problem's system on its passive set
    at once, as one batched ``(n, k, k)`` solve in which the components off the passive set are decoupled
    (identity rows and columns, zero right-hand side). A component whose Gram diagonal is zero in a problem is
    zero there. Computed in float64, returned in ``factor``'s floating dtype.
    """
    dtype = factor.dtype if np.issubdtype(factor.dtype, np.floating) else np.dtype(np.float64)
    n, k = factor.shape
    gram = np.array(grams, dtype=np.float64)
    gram[:, np.arange(k), np.arange(k)] += l2
    target = np.asarray(cross, dtype=np.float64) - l1
    usable = np.diagonal(gram, axis1=1, axis2=2) > 0
    solution = np.zeros((n, k))
    cross_scale = np.abs(target).max(axis=1, initial=0.0)
    gram_scale = np.abs(gram).reshape(n, -1).max(axis=1, initial=0.0)
    best_count, chances = np.full(n, k + 1), np.full(n, FULL_EXCHANGE_CHANCES)
    rows, passive = np.arange(n), (np.asarray(factor) > 0) & usable
    for _ in range(_max_rounds(k)):
        x, y = _solve_each_for_passive(gram[rows], target[rows], passive)
        y[~usable[rows]] = 0.0
        magnitude = np.abs(x)
        infeasible = x < (-NEGATIVE_TOLERANCE * magnitude.max(axis=1, initial=0.0))[:, None]
        infeasible |= y < (-NEGATIVE_TOLERANCE
                           * (cross_scale[rows] + gram_scale[rows] * magnitude.sum(axis=1)))[:, None]
        count = infeasible.sum(axis=1)
        done = count == 0
        solution[rows[done]] = x[done]
        rows, passive, infeasible, count = rows[~done], passive[~done], infeasible[~done], count[~done]
        if rows.size == 0:
            break
        improved = count < best_count[rows]
        best_count[rows[improved]] = count[improved]
        chances[rows[improved]] = FULL_EXCHANGE_CHANCES
        backup = ~improved & (chances[rows] == 0)
        chances[rows[~improved & ~backup]] -= 1
        if backup.any():
            largest = k - 1 - np.argmax(infeasible[backup, ::-1], axis=1)
            infeasible[backup] = False
            infeasible[np.flatnonzero(backup), largest] = True
        passive = passive ^ infeasible
    else:
        solution[rows] = np.maximum(_solve_each_for_passive(gram[rows], target[rows], passive)[0], 0.0)
    return np.maximum(solution, 0.0).astype(dtype, copy=False)


def _solve_each_for_passive(gram: np.ndarray, target: np.ndarray,
                            passive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every problem ``r``: ``x`` with ``gram_r[F, F] x_F = target_r[F]`` and zeros off its passive set ``F``,
    and ``y = gram_r x − target_r`` with zeros on ``F``. A singular system gets its least-squares solution."""
    both = passive[:, :, None] & passive[:, None, :]
    system = np.where(both, gram, 0.0)
    idle = ~passive
    system[idle[:, :, None] & np.eye(passive.shape[1], dtype=bool)[None]] = 1.0
    rhs = np.where(passive, target, 0.0)
    try:
        x = np.linalg.solve(system, rhs[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        x = np.stack([np.linalg.lstsq(a, b, rcond=None)[0] for a, b in zip(system, rhs)])
    x[idle] = 0.0
    y = np.einsum("rij,rj->ri", gram, x) - target
    y[passive] = 0.0
    return x, y
