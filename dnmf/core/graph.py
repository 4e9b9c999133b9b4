"""What the product modules share: tree sums of partial products, grid checks, and the count of passes over A."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import dask.array as da
import numpy as np

from dnmf.core import kernels

__all__ = ["SPLIT_EVERY", "check_cols_aligned", "check_rows_aligned", "count_pass", "counting_passes", "passes_counted",
           "result_dtype", "tree_sum"]

#: Fan-in of the tree sums that combine partial products.
SPLIT_EVERY = 8

_passes: ContextVar[list[int] | None] = ContextVar("dnmf_passes_over_a", default=None)


@contextmanager
def counting_passes() -> Iterator[list[int]]:
    """Count, while open, the products built that read every block of A (``[count]``, updated in place)."""
    count = [0]
    token = _passes.set(count)
    try:
        yield count
    finally:
        _passes.reset(token)


def count_pass(passes: int = 1) -> None:
    """``passes`` more passes over A, for :func:`counting_passes`."""
    count = _passes.get()
    if count is not None:
        count[0] += passes


def passes_counted() -> int:
    """The passes counted so far by the innermost :func:`counting_passes` (0 outside one)."""
    count = _passes.get()
    return 0 if count is None else count[0]


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
