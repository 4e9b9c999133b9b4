"""The linear algebra of block principal pivoting (:mod:`dnmf.core.rules.bpp`): grouping columns by passive set,
and the exact symmetric solves, vectorised across columns where the systems are small."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

__all__ = ["SINGULAR_PIVOT_RATIO", "batched_cholesky_solve", "group_columns", "solve_symmetric", "sorted_groups"]

#: A Cholesky factor whose squared pivots span more than this ratio is treated as singular.
SINGULAR_PIVOT_RATIO = float(np.finfo(np.float64).eps)


def pattern_words(passive: np.ndarray) -> np.ndarray:
    """Each row of ``passive`` packed into ``⌈k/64⌉`` 64-bit words, so that equal rows have equal words."""
    packed = np.packbits(passive, axis=1, bitorder="little")
    padded = np.zeros((passive.shape[0], -(-packed.shape[1] // 8) * 8), dtype=np.uint8)
    padded[:, :packed.shape[1]] = packed
    return padded.view(np.uint64)


def run_starts(*keys: np.ndarray) -> np.ndarray:
    """Where a run of equal rows of the sorted ``keys`` (each 1-d or 2-d) starts."""
    length = keys[0].shape[0]
    starts = np.zeros(length, dtype=bool)
    starts[:1] = True
    for key in keys:
        changed = key[1:] != key[:-1]
        starts[1:] |= changed.any(axis=1) if changed.ndim > 1 else changed
    return np.flatnonzero(starts)


def sorted_groups(passive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``passive`` (one passive set per row) sorted so that equal sets are adjacent, and where each run of
    equal sets starts."""
    words = pattern_words(passive)
    order = np.lexsort(words.T[::-1]) if words.shape[1] > 1 else np.argsort(words[:, 0], kind="stable")
    return order, run_starts(words[order])


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
    order, starts = sorted_groups(np.ascontiguousarray(passive.T))
    return [(np.flatnonzero(passive[:, columns[0]]), columns) for columns in np.split(order, starts[1:])]


def batched_cholesky_solve(matrix: np.ndarray, indices: np.ndarray,
                            rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``matrix[I_j, I_j] s_j = rhs_j`` for many index sets ``I_j`` of one size, by Cholesky factorisations
    vectorised across ``j``.

    The factorisation is left-looking (one column of the factor per step, from the columns before it), with the
    systems along the last axis of every array, so that each step is a handful of NumPy operations over all systems.

    Parameters
    ----------
    matrix : ndarray of shape (k, k)
        Symmetric; only the entries ``matrix[I_j[a], I_j[b]]`` with ``a ≤ b`` are read.
    indices : ndarray of int of shape (s, n)
        Column ``j`` holds ``I_j``.
    rhs : ndarray of shape (s, n)

    Returns
    -------
    solution : ndarray of shape (s, n)
    solved : ndarray of bool of shape (n,)
        False where the system is singular to working precision (the same test as :func:`solve_symmetric`'s);
        that column of ``solution`` is meaningless.
    """
    size, n = indices.shape
    flat_matrix = matrix.ravel()
    offsets = indices * matrix.shape[0]
    factor_t = np.empty((size, size, n))
    solution = np.empty((size, n))
    smallest_pivot = np.full(n, np.inf)
    largest_pivot = np.zeros(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        for step in range(size):
            column = np.take(flat_matrix, offsets[step] + indices[step:])
            forward = rhs[step].copy()
            if step:
                factor_row = factor_t[:step, step]
                column -= np.einsum("lin,ln->in", factor_t[:step, step:], factor_row)
                forward -= np.einsum("ln,ln->n", factor_row, solution[:step])
            pivot = column[0]
            np.minimum(smallest_pivot, pivot, out=smallest_pivot)
            np.maximum(largest_pivot, pivot, out=largest_pivot)
            column /= np.sqrt(pivot)
            factor_t[step, step:] = column
            solution[step] = forward / column[0]
        for step in range(size - 1, -1, -1):
            if step + 1 < size:
                solution[step] -= np.einsum("in,in->n", factor_t[step, step + 1:], solution[step + 1:])
            solution[step] /= factor_t[step, step]
        solved = smallest_pivot > SINGULAR_PIVOT_RATIO * largest_pivot
        solved &= np.isfinite(solution).all(axis=0)
    return solution, solved


def solve_symmetric(matrix: np.ndarray, rhs: np.ndarray, stats: Any) -> np.ndarray:
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
