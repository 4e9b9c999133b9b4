"""The one pass over A before the loop: validation, statistics, the fingerprint's sample, and holding A in memory.

A fit needs A validated (finite, non-negative), its sum and ``‖A‖²``, a digest of its corner blocks for the
fingerprint, and, where A fits in memory, A held there. Read naively that is three reads of a lazy input (the
statistics, the fingerprint's blocks, the hold). :func:`first_pass` makes it one:

* A lazy input whose held size is known before reading it (dense, or sparse with a known number of non-zeros,
  which a sparse store states) is held and validated in one graph: the statistics and digests are computed from
  the very blocks being kept.
* Otherwise (a sparse Dask array of unknown size, an input too large to hold) the statistics and digests share
  one pass, and A is held after it if it turns out to fit: two reads, as before.
* In-memory input (NumPy, SciPy) is read once, in memory. The in-process runtime reads a lazy input into its
  blocks first and validates them there.
"""

from __future__ import annotations

from dataclasses import replace

import dask.array as da

from dnmf.core import graph, products
from dnmf.core.blocks import is_blocks
from dnmf.core.seam import Runtime
from dnmf.data.fingerprint import corner_digests
from dnmf.data.matrix import (
    InputMatrix,
    MatrixStats,
    as_held,
    fits_in_memory,
    needs_holding,
    persist_input,
    stats_of_blocks,
)

__all__ = ["first_pass"]


def _held_in_one_pass(matrix: InputMatrix, nnz: int | None, runtime: Runtime) -> bool:
    """Whether A can be held by the same graph that validates it: a lazy array (not blocks this process holds, which
    the in-process runtime computes on directly) whose held size is known before it is read."""
    return (isinstance(matrix.array, da.Array) and runtime.name != "in-process" and needs_holding(matrix, runtime)
            and fits_in_memory(matrix.array, nnz, runtime))


def first_pass(matrix: InputMatrix, runtime: Runtime, *, what: str, with_digests: bool,
               nnz: int | None = None) -> tuple[InputMatrix, MatrixStats, list[str] | None]:
    """Validate A, learn its statistics and its corner blocks' digests, and hold it where it fits, in one pass.

    Parameters
    ----------
    matrix : InputMatrix
        The chunked input, from :func:`dnmf.data.matrix.as_input_matrix` (and :func:`~dnmf.data.masks.mask_input`).
    runtime : Runtime
        Where the fit runs, and where A is held.
    what : str
        How error messages name the input.
    with_digests : bool
        Also return the SHA-256 digests of A's first and last blocks (for :func:`dnmf.data.fingerprint.fingerprint`).
    nnz : int, optional
        The number of non-zeros of a sparse A, when known without reading it (a sparse store states it): A is then
        held in the validating pass.

    Returns
    -------
    matrix : InputMatrix
        Held in memory if it fits (see :func:`dnmf.data.matrix.persist_input`), else marked as streamed.
    stats : MatrixStats
    digests : list of str or None

    Raises
    ------
    ValueError
        If A holds NaN (outside a mask), infinity or a negative value (see :func:`dnmf.data.matrix.matrix_stats`).
    """
    A = matrix.array
    if _held_in_one_pass(matrix, nnz, runtime):
        source = as_held(A)
        wanted = {"A": source, "stats": products.block_stats(source)}
        if with_digests:
            wanted["digests"] = corner_digests(source)
        held, _ = runtime.persist(wanted)
        values = runtime.compute(*(held[name] for name in wanted if name != "A"))
        stats = stats_of_blocks(values[0], A.shape, A.chunks, what=what, allow_nan=matrix.masked)
        digests = [str(d) for d in values[1]] if with_digests else None
        return replace(matrix, array=held["A"]), stats, digests
    if isinstance(A, da.Array) and runtime.name == "in-process" and fits_in_memory(A, nnz, runtime):
        graph.count_pass()  # read from its source into this process's blocks, then validated there
        A = runtime.hold(A)
        matrix = replace(matrix, array=A)
    per_block = products.block_stats(A)
    if is_blocks(A):
        stats = stats_of_blocks(per_block, A.shape, A.chunks, what=what, allow_nan=matrix.masked)
        return matrix, stats, corner_digests(A) if with_digests else None
    values = runtime.compute(per_block, *([corner_digests(A)] if with_digests else []))
    stats = stats_of_blocks(values[0], A.shape, A.chunks, what=what, allow_nan=matrix.masked)
    return persist_input(matrix, stats, runtime), stats, [str(d) for d in values[1]] if with_digests else None
