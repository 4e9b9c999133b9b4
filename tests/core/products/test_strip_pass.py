"""The one-pass Frobenius W-step and ``WᵀA`` of a streamed A, against NumPy and bitwise against the two-pass graph."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from dnmf.core import products, strip_pass
from dnmf.core.objectives import update_rows
from dnmf.core.rules import RULES
from dnmf.data.matrix import as_input_matrix

GRIDS = [(13, 40), ((10, 25, 5), (3, 17, 9, 11)), (7, 20)]
#: Row strips for the tree sum after the pass: more than one first-level group, more than one level, a last group
#: of one strip, and a level of exactly ``SPLIT_EVERY`` groups.
MANY_STRIPS = [(80, 9), (80, 16), (400, 65), (400, 64)]


def operands(rng, sparse: bool, chunks, rows: int = 40):
    dense = rng.random((rows, 40)) * (rng.random((rows, 40)) < 0.3)
    A = as_input_matrix(sp.csr_matrix(dense) if sparse else dense, chunks=chunks).array
    W, H = rng.random((rows, 4)), rng.random((4, 40))
    return dense, A, W, H, da.from_array(W, chunks=(A.chunks[0], 4)), da.from_array(H, chunks=(4, A.chunks[1]))


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("chunks", GRIDS, ids=["one-column-block", "uneven", "two-column-blocks"])
@pytest.mark.parametrize("solver", ["mu", "hals"])
def test_one_pass_matches_numpy_and_the_two_pass_graph_bitwise(rng, sparse, chunks, solver):
    dense, A, W, H, W_d, H_d = operands(rng, sparse, chunks)
    gram = products.gram_cols(H_d)
    kwargs = {"rule": RULES[solver], "l1": 0.1, "l2": 0.0}
    W_new, wta, inner = strip_pass.w_step_and_wta(A, W_d, H_d, update_rows, (gram,), **kwargs)
    assert W_new.chunks == W_d.chunks and wta.chunks == H_d.chunks

    two_pass_W = products.map_rows(update_rows, W_d, products.aht(A, H_d), small=(gram,), name="dnmf-update-w",
                                   **kwargs)
    two_pass = (two_pass_W, products.wta(A, two_pass_W), products.inner(products.aht(A, H_d), W_d))
    with dask.config.set(scheduler="sync"):
        fused, unfused = dask.compute((W_new, wta, inner), two_pass)
    for one, other in zip(fused, unfused):
        assert np.array_equal(one, other)

    expected_W = update_rows(W, dense @ H.T, H @ H.T, **kwargs)
    np.testing.assert_allclose(fused[0], expected_W, rtol=1e-12)
    np.testing.assert_allclose(fused[1], fused[0].T @ dense, rtol=1e-12)
    np.testing.assert_allclose(fused[2], np.sum((dense @ H.T) * W), rtol=1e-12)


@pytest.mark.parametrize(("rows", "strips"), MANY_STRIPS)
def test_many_independent_strips_give_the_two_pass_sums_bitwise(rng, rows, strips):
    """Each strip's task depends on no other strip's: a chain of them would run on one worker while the other
    workers read its strips ahead of it (the reason is in :mod:`dnmf.core.strip_pass`)."""
    chunks = (tuple(np.diff(np.linspace(0, rows, strips + 1).astype(int))), (25, 15))
    _, A, W, H, W_d, H_d = operands(rng, True, chunks, rows=rows)
    assert A.numblocks[0] == strips
    gram = products.gram_cols(H_d)
    kwargs = {"rule": RULES["hals"], "l1": 0.0, "l2": 0.0}
    W_new, wta, _ = strip_pass.w_step_and_wta(A, W_d, H_d, update_rows, (gram,), **kwargs)
    layer = next(name for name in wta.__dask_graph__().layers if name.startswith("dnmf-aht-strip-pass-"))
    tasks = wta.__dask_graph__().layers[layer]
    assert len(tasks) == strips
    assert not any(dependency[0] == layer for task in tasks.values() for dependency in task.dependencies)
    two_pass_W = products.map_rows(update_rows, W_d, products.aht(A, H_d), small=(gram,), name="dnmf-update-w",
                                   **kwargs)
    with dask.config.set(scheduler="sync"):
        (fused_W, fused), (unfused_W, unfused) = dask.compute((W_new, wta), (two_pass_W, products.wta(A, two_pass_W)))
    assert np.array_equal(fused_W, unfused_W) and np.array_equal(fused, unfused)


def test_only_narrow_dask_arrays_are_fused():
    narrow = da.zeros((10, 10), chunks=(5, 5))
    wide = da.zeros((10, 10), chunks=(5, 1))
    assert narrow.numblocks[1] <= strip_pass.MAX_COLUMN_BLOCKS < wide.numblocks[1]
    assert strip_pass.fuses(narrow) and not strip_pass.fuses(wide) and not strip_pass.fuses(np.zeros((10, 10)))
