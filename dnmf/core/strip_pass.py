"""A Frobenius iteration that reads a streamed A once instead of twice.

The W-step is separable by rows: row strip i of the new W needs only ``A_i· Hᵀ`` and ``HHᵀ``. So a task that
holds strip i of A can form ``A_i· Hᵀ``, update ``W_i`` and form that strip's partials of ``W_newᵀ A`` before the
strip leaves memory (:func:`dnmf.core.kernels.w_step_strip`). For an A read from its store (or recomputed) at
every pass, that halves the reading per iteration. The sums are those of the per-block graphs of
:func:`dnmf.core.products.aht` and :func:`~dnmf.core.products.wta` (the tree inside the task, the same tree sum
across strips after it), so the W and H it gives are bitwise those of the two-pass iteration.

A fused task holds all of H and a full-width row of partials besides its strip; under the default grid each
column block of them is a factor panel of at most :data:`dnmf.core.grid.PANEL_MEMORY_FRACTION` of a worker, so
the pass is fused only over at most :data:`MAX_COLUMN_BLOCKS` column blocks.

The strip tasks are independent of one another on purpose. Chaining the strips of a group, each adding its
partials to those of the strip above, made fewer partials, but a chain runs on one worker at a time while the
reads of all its strips are ready at once: the other workers read the chain's strips ahead of it and hold them,
and a store larger than the workers' memory spilled (`tests/integration/test_out_of_core.py`).

The strip task is named ``dnmf-aht-strip-pass-…``: the phase clock counts its update and ``WᵀA`` as ``aht``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np
from dask._task_spec import List, Task, TaskRef
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from dnmf.core import graph, kernels
from dnmf.core.graph import SPLIT_EVERY

__all__ = ["MAX_COLUMN_BLOCKS", "fuses", "w_step_and_wta"]

#: The widest A, in column blocks, whose W-step and ``WᵀA`` share one pass.
MAX_COLUMN_BLOCKS = 4


def fuses(A: Any) -> bool:
    """Whether :func:`w_step_and_wta` takes A: a Dask array of at most :data:`MAX_COLUMN_BLOCKS` column blocks."""
    return isinstance(A, da.Array) and A.numblocks[1] <= MAX_COLUMN_BLOCKS


def w_step_and_wta(A: da.Array, W: da.Array, H: da.Array, update: Callable[..., Any], small: tuple[da.Array, ...],
                   **kwargs: Any) -> tuple[da.Array, da.Array, da.Array]:
    """The new W, ``W_newᵀ A`` and ``⟨AHᵀ, W⟩``, at one pass over A.

    ``update(W_i, (AHᵀ)_i, *small, **kwargs)`` makes row block i of the new W, as for
    :func:`dnmf.core.products.map_rows`; ``small`` are one-chunk Dask arrays. ``⟨AHᵀ, W⟩`` (of the incoming W)
    is what the loss of the incoming factors needs, summed as :func:`dnmf.core.products.inner` sums it.
    """
    graph.count_pass()
    graph.check_rows_aligned(A, W)
    graph.check_cols_aligned(A, H)
    p, q = A.numblocks
    dtype = graph.result_dtype(A, W)  # of W_newᵀA's partials, as products.wta gives them
    token = tokenize(A.name, W.name, H.name, *(x.name for x in small), update, kwargs)
    step, rows, parts, inners = (f"dnmf-aht-strip-pass-{token}", f"dnmf-update-w-{token}",
                                 f"dnmf-wta-strip-pass-{token}", f"dnmf-loss-inner-strip-pass-{token}")
    kernel = functools.partial(kernels.w_step_strip, update=functools.partial(update, **kwargs),
                               split_every=SPLIT_EVERY)
    small_refs = List(*(TaskRef((x.name, *(0,) * x.ndim)) for x in small))
    layers = {
        step: {(step, i): Task((step, i), kernel, List(*(TaskRef((A.name, i, j)) for j in range(q))),
                               List(*(TaskRef((H.name, 0, j)) for j in range(q))), TaskRef((W.name, i, 0)),
                               small_refs)
               for i in range(p)},
        rows: {(rows, i, 0): Task((rows, i, 0), kernels.part_of, TaskRef((step, i)), 0) for i in range(p)},
        parts: {(parts, i, 0, j): Task((parts, i, 0, j), kernels.part_of, TaskRef((step, i)), 1, j)
                for i in range(p) for j in range(q)},
        inners: {(inners, i, 0): Task((inners, i, 0), kernels.part_of, TaskRef((step, i)), 2) for i in range(p)},
    }
    inputs = [A, W, H, *small]
    hlg = HighLevelGraph.merge(*(x.__dask_graph__() for x in inputs))
    all_layers = {**hlg.layers, **layers}
    dependencies = {**hlg.dependencies, step: {name for x in inputs for name in x.__dask_layers__()},
                    rows: {step}, parts: {step}, inners: {step}}
    full = HighLevelGraph(all_layers, dependencies)
    W_new = da.Array(full, rows, chunks=W.chunks, dtype=W.dtype, meta=np.empty((0, 0), dtype=W.dtype))
    partials = da.Array(full, parts, chunks=((1,) * p, (H.shape[0],), A.chunks[1]), dtype=dtype,
                        meta=np.empty((0, 0, 0), dtype=dtype))
    inner_parts = da.Array(full, inners, chunks=((1,) * p, (1,)), dtype=np.float64,
                           meta=np.empty((0, 0), dtype=np.float64))
    wta = graph.tree_sum(partials, axis=0, name="dnmf-wta")
    inner = graph.tree_sum(graph.tree_sum(inner_parts, axis=0, name="dnmf-loss-inner-rows"), axis=0,
                           name="dnmf-loss-inner")
    return W_new, wta, inner
