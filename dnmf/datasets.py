"""Synthetic non-negative matrices with planted low-rank structure, for the demo, tests and benchmarks."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["make_low_rank", "make_sparse_low_rank", "make_sampled_low_rank"]


def make_low_rank(n_rows: int, n_cols: int, rank: int, *, dtype: Any = np.float64,
                  random_state: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A dense ``A = W H`` of exact non-negative rank ``rank``.

    Returns
    -------
    A : ndarray of shape (n_rows, n_cols)
    W : ndarray of shape (n_rows, rank)
    H : ndarray of shape (rank, n_cols)
    """
    rng = np.random.default_rng(random_state)
    W = rng.exponential(size=(n_rows, rank)).astype(dtype)
    H = rng.exponential(size=(rank, n_cols)).astype(dtype)
    return W @ H, W, H


def make_sparse_low_rank(n_rows: int, n_cols: int, rank: int, *, topics_per_row: int = 2,
                         column_density: float = 0.05, dtype: Any = np.float64,
                         random_state: int | None = None) -> tuple[sp.csr_matrix, np.ndarray, sp.csr_matrix]:
    """A sparse ``A = W H`` of exact non-negative rank ``rank``, like a corpus of documents mixing a few topics.

    Each row of ``W`` uses ``topics_per_row`` components; each row of ``H`` (a topic) uses ``column_density`` of
    the columns. Columns no topic uses stay empty.

    Returns
    -------
    A : csr_matrix of shape (n_rows, n_cols)
    W : ndarray of shape (n_rows, rank)
    H : csr_matrix of shape (rank, n_cols)
    """
    rng = np.random.default_rng(random_state)
    W = np.zeros((n_rows, rank), dtype=dtype)
    topics = np.argsort(rng.random((n_rows, rank)), axis=1)[:, :topics_per_row]
    W[np.arange(n_rows)[:, None], topics] = rng.uniform(0.5, 2.0, size=topics.shape)
    H = sp.random(rank, n_cols, density=column_density, random_state=rng, format="csr",
                  data_rvs=lambda size: rng.uniform(0.5, 2.0, size)).astype(dtype)
    return sp.csr_matrix(sp.csr_matrix(W) @ H), W, H


def make_sampled_low_rank(n_rows: int, n_cols: int, rank: int, nnz: int, *, dtype: Any = np.float32,
                          random_state: int | None = None, chunk_rows: int = 50_000) -> sp.csr_matrix:
    """A sparse matrix whose ``nnz`` stored entries are those of a non-negative rank-``rank`` product ``W H``.

    Entries are sampled uniformly at random (duplicates merged), the way ratings or counts observe a latent
    low-rank matrix, so NMF's loss falls steadily without reaching zero. Built in row strips in O(nnz · rank).
    """
    rng = np.random.default_rng(random_state)
    W = rng.exponential(size=(n_rows, rank)).astype(dtype)
    H = rng.exponential(size=(rank, n_cols)).astype(dtype)
    strips = []
    for start in range(0, n_rows, chunk_rows):
        stop = min(start + chunk_rows, n_rows)
        count = int(round(nnz * (stop - start) / n_rows))
        rows = rng.integers(start, stop, size=count)
        cols = rng.integers(0, n_cols, size=count)
        values = np.einsum("ij,ji->i", W[rows], H[:, cols])
        strip = sp.coo_matrix((values, (rows - start, cols)), shape=(stop - start, n_cols)).tocsr()
        strip.sum_duplicates()
        strips.append(strip)
    return sp.csr_matrix(sp.vstack(strips, format="csr"), dtype=dtype)
