"""The graph-building helpers the product modules share: tree sums of partial products and grid checks."""

from __future__ import annotations

import dask.array as da
import numpy as np

from dnmf.core import kernels

__all__ = ["SPLIT_EVERY", "check_cols_aligned", "check_rows_aligned", "result_dtype", "tree_sum"]

#: Fan-in of the tree sums that combine partial products.
SPLIT_EVERY = 8


def tree_sum(stack: da.Array, axis: int, name: str) -> da.Array:
    return da.reduction(
        stack,
        chunk=kernels.sum_blocks,
        combine=kernels.sum_blocks,
        aggregate=kernels.sum_blocks,
        axis=axis,
        dtype=stack.dtype,
        split_every=SPLIT_EVERY,
        concatenate=False,
        name=name,
        meta=np.empty((0,) * (stack.ndim - 1), dtype=stack.dtype),
    )


def check_rows_aligned(A: da.Array, W: da.Array) -> None:
    if W.chunks[0] != A.chunks[0] or W.numblocks[1] != 1:
        raise ValueError(
            f"W's chunks {W.chunks} are not row-aligned with A's chunks {A.chunks}: "
            f"rechunk W with W.rechunk(({A.chunks[0]}, -1))."
        )


def check_cols_aligned(A: da.Array, H: da.Array) -> None:
    if H.chunks[1] != A.chunks[1] or H.numblocks[0] != 1:
        raise ValueError(
            f"H's chunks {H.chunks} are not column-aligned with A's chunks {A.chunks}: "
            f"rechunk H with H.rechunk((-1, {A.chunks[1]}))."
        )


def result_dtype(*arrays: da.Array) -> np.dtype:
    return np.result_type(*(x.dtype for x in arrays))
