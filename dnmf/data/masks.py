"""Observation masks on input matrices: an explicit mask, NaN as missing (``missing='nan'``), and what a fit
derives from them (the observed count, a zero-filled copy for initialisation).

A masked block is a dense block with NaN at its unobserved entries, a CSR block whose stored pattern is the
observed set (a sparse mask), or a holed CSR block (stored NaN unobserved, unstored entries observed zeros); see
:mod:`dnmf.core.divergence`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import dask.array as da
import numpy as np
import scipy.sparse as sp

from dnmf.core.blocks import Blocks, is_blocks
from dnmf.data.matrix import InputMatrix, MatrixStats, as_input_matrix

__all__ = ["mask_input", "n_observed", "zero_filled"]


def _observed_values(a: Any, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    if sp.issparse(a):
        return np.asarray(sp.csr_matrix(a)[rows, cols]).ravel()
    return np.asarray(a)[rows, cols]


def _masked_block(a: Any, mask: Any, *, nan_is_missing: bool) -> Any:
    """One block of A with its mask applied: NaN at unobserved entries of a dense block, or, for a sparse mask, a
    CSR block storing A's values exactly at the observed entries (zeros included)."""
    if mask is None:
        return a
    if sp.issparse(mask):
        pattern = sp.csr_matrix(mask, copy=True)
        pattern.eliminate_zeros()
        rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
        values = _observed_values(a, rows, pattern.indices)
        missing = np.isnan(values)
        if missing.any():
            if not nan_is_missing:
                raise ValueError(_NAN_AT_OBSERVED)
            keep = ~missing
            return sp.coo_matrix((values[keep], (rows[keep], pattern.indices[keep])), shape=a.shape).tocsr()
        return sp.csr_matrix((values, pattern.indices, pattern.indptr), shape=a.shape)
    observed = np.asarray(mask) != 0
    dense = a.toarray() if sp.issparse(a) else np.array(a, copy=True)
    if not nan_is_missing and np.isnan(dense[observed]).any():
        raise ValueError(_NAN_AT_OBSERVED)
    dense[~observed] = np.nan
    return dense


_NAN_AT_OBSERVED = ("X holds NaN at entries the mask declares observed: pass missing='nan' to treat them as missing "
                    "too, or fix X.")


def mask_input(matrix: InputMatrix, mask: Any = None, *, nan_is_missing: bool = False) -> InputMatrix:
    """Attach an observation mask to an input matrix (see :attr:`InputMatrix.masked`).

    Parameters
    ----------
    matrix : InputMatrix
        The data, from :func:`as_input_matrix`.
    mask : array-like, sparse matrix or dask.array.Array of shape (m, n), optional
        Non-zero (True) where an entry is observed. A sparse mask gives CSR blocks with the mask's pattern, so
        every product costs O(nnz(mask) · k); a dense mask gives dense blocks with NaN at unobserved entries.
    nan_is_missing : bool
        Treat NaN in X as unobserved too (``missing='nan'``). Without a mask, a sparse X's stored NaN are its
        unobserved entries and its unstored entries observed zeros: its blocks are holed.

    Returns
    -------
    InputMatrix
        ``masked=True`` unless there is neither a mask nor ``nan_is_missing``; ``holes=True`` for a sparse X with
        ``nan_is_missing`` and no mask.
    """
    A = matrix.array
    if mask is None:
        sparse = sp.issparse(getattr(A, "_meta", None))
        return replace(matrix, masked=nan_is_missing, holes=nan_is_missing and sparse)
    if np.shape(mask) != A.shape:
        raise ValueError(f"The mask has shape {tuple(np.shape(mask))}, but X has shape {A.shape}: pass a mask of "
                         "the same shape, non-zero (True) where an entry is observed.")
    if is_blocks(A):
        M = Blocks.from_array(mask if sp.issparse(mask) else np.asarray(mask), A.chunks)
        return InputMatrix(A.like([[_masked_block(A.block(i, j), M.block(i, j), nan_is_missing=nan_is_missing)
                                    for j in range(A.numblocks[1])] for i in range(A.numblocks[0])], A.chunks),
                           matrix.kind, masked=True)
    M = as_input_matrix(mask, chunks=A.chunks).array
    if M.chunks != A.chunks:
        M = M.rechunk(A.chunks)
    sparse_mask = sp.issparse(getattr(M, "_meta", None))
    meta = sp.csr_matrix((0, 0), dtype=A.dtype) if sparse_mask else np.empty((0, 0), dtype=A.dtype)
    masked = da.blockwise(_masked_block, "ij", A, "ij", M, "ij", nan_is_missing=nan_is_missing, dtype=A.dtype,
                          token="dnmf-input-mask", meta=meta)
    return InputMatrix(masked, matrix.kind, masked=True)


def _zero_missing(block: Any) -> Any:
    if not sp.issparse(block):
        return np.nan_to_num(block, nan=0.0)
    if not np.isnan(block.data).any():
        return block
    block = sp.csr_matrix(block, copy=True)
    block.data[np.isnan(block.data)] = 0.0
    return block


def zero_filled(matrix: InputMatrix) -> Any:
    """A masked matrix with its unobserved entries read as zeros (for initialisation); other matrices as they are."""
    A = matrix.array
    if not matrix.masked:
        return A
    if is_blocks(A):
        return A.like([[_zero_missing(block) for block in row] for row in A.grid], A.chunks)
    return A.map_blocks(_zero_missing, dtype=A.dtype, token="dnmf-input-zero-filled")


def n_observed(matrix: InputMatrix, stats: MatrixStats) -> int:
    """Entries observed: all of them, unless masked (stored entries of CSR blocks, non-NaN of dense and holed
    ones)."""
    if not matrix.masked or matrix.holes:
        return stats.shape[0] * stats.shape[1] - (stats.n_nan if matrix.masked else 0)
    return stats.n_stored - stats.n_nan
