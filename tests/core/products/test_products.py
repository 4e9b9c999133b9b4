"""Distributed products against NumPy, on dense and sparse blocks and uneven grids (synchronous scheduler)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from dnmf.core import products
from dnmf.data.matrix import as_input_matrix

GRIDS = [(13, 7), ((10, 25, 5), (3, 17, 9, 11)), (40, 40)]


def operands(rng, sparse: bool, chunks, dtype=np.float64):
    dense = rng.random((40, 40)) * (rng.random((40, 40)) < 0.3)
    A_in = sp.csr_matrix(dense) if sparse else dense
    A = as_input_matrix(A_in.astype(dtype), chunks=chunks).array
    W = rng.random((40, 4)).astype(dtype)
    H = rng.random((4, 40)).astype(dtype)
    W_d = da.from_array(W, chunks=(A.chunks[0], 4))
    H_d = da.from_array(H, chunks=(4, A.chunks[1]))
    return dense.astype(dtype), A, W, H, W_d, H_d


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("chunks", GRIDS, ids=["even", "uneven", "single"])
class TestProductsAgainstNumPy:
    def test_wta(self, rng, sparse, chunks):
        dense, A, W, _, W_d, _ = operands(rng, sparse, chunks)
        result = products.wta(A, W_d)
        assert result.chunks == ((4,), A.chunks[1])
        np.testing.assert_allclose(result.compute(), W.T @ dense, rtol=1e-12)

    def test_aht(self, rng, sparse, chunks):
        dense, A, _, H, _, H_d = operands(rng, sparse, chunks)
        result = products.aht(A, H_d)
        assert result.chunks == (A.chunks[0], (4,))
        np.testing.assert_allclose(result.compute(), dense @ H.T, rtol=1e-12)

    def test_grams(self, rng, sparse, chunks):
        _, _, W, H, W_d, H_d = operands(rng, sparse, chunks)
        np.testing.assert_allclose(products.gram_rows(W_d).compute(), W.T @ W, rtol=1e-12)
        np.testing.assert_allclose(products.gram_cols(H_d).compute(), H @ H.T, rtol=1e-12)

    def test_frobenius_loss_by_trace_identity(self, rng, sparse, chunks):
        dense, A, W, H, W_d, H_d = operands(rng, sparse, chunks)
        cross = products.inner(products.wta(A, W_d), H_d)
        loss = products.frobenius_loss_squared(float(np.sum(dense**2)), cross, products.gram_rows(W_d),
                                               products.gram_cols(H_d))
        np.testing.assert_allclose(loss.compute(), np.sum((dense - W @ H) ** 2), rtol=1e-10)

    def test_residual_norm_squared(self, rng, sparse, chunks):
        dense, A, W, H, W_d, H_d = operands(rng, sparse, chunks)
        np.testing.assert_allclose(products.residual_norm_squared(A, W_d, H_d).compute(),
                                   np.sum((dense - W @ H) ** 2), rtol=1e-10)

    def test_float32_stays_float32(self, rng, sparse, chunks):
        _, A, _, _, W_d, H_d = operands(rng, sparse, chunks, dtype=np.float32)
        assert products.wta(A, W_d).compute().dtype == np.float32
        assert products.aht(A, H_d).compute().dtype == np.float32


def test_sampled_product_matches_dense_product_at_nonzeros(rng):
    a = sp.random(300, 200, density=0.05, format="csr", random_state=1)
    w, h = rng.random((300, 6)), rng.random((6, 200))
    rows, cols = a.nonzero()
    np.testing.assert_allclose(products.sampled_product(a, w, h), (w @ h)[rows, cols], rtol=1e-12)


def held_blocks(dense, chunks, sparse: bool, name: str) -> da.Array:
    """``dense`` as a held Dask array of NumPy or CSR blocks called ``name``, the way a runtime holds an input."""
    from dask.highlevelgraph import HighLevelGraph

    grid = da.from_array(dense, chunks=chunks)
    blocks = {(name, i, j): (sp.csr_matrix if sparse else np.asarray)(grid.blocks[i, j].compute())
              for i in range(grid.numblocks[0]) for j in range(grid.numblocks[1])}
    meta = sp.csr_matrix((0, 0)) if sparse else np.empty((0, 0))
    return da.Array(HighLevelGraph.from_collections(name, blocks, dependencies=()), name, chunks=grid.chunks,
                    dtype=dense.dtype, meta=meta)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("shape, chunks", [((120, 50), (12, 5)), ((50, 120), (5, 12)), ((700, 60), (10, 6)),
                                           ((40, 650), (5, 10)), ((30, 20), (30, 20))],
                         ids=["tall-10x10", "wide-10x10", "70-row-strips", "65-column-blocks", "one-block"])
def test_a_placed_input_gets_one_task_per_strip_and_the_per_block_sums_bit_for_bit(rng, sparse, shape, chunks):
    """Grids with more than 8 (one partial level) and more than 64 (two) blocks along the summed axis."""
    from dask.core import get_dependencies

    from dnmf.core.grid import PLACED_INPUT, strip_axis

    dense = rng.random(shape) * (rng.random(shape) < 0.4)
    placed = held_blocks(dense, chunks, sparse, f"{PLACED_INPUT}-t")
    other = held_blocks(dense, chunks, sparse, "someone-elses")
    W = da.from_array(rng.random((shape[0], 4)), chunks=(placed.chunks[0], 4))
    H = da.from_array(rng.random((4, shape[1])), chunks=(4, placed.chunks[1]))
    strips = placed.numblocks[strip_axis(shape)]
    for product, factor in ((products.wta, W), (products.aht, H)):
        fused, per_block = product(placed, factor), product(other, factor)
        assert fused.chunks == per_block.chunks
        np.testing.assert_array_equal(fused.compute(), per_block.compute())
        a_keys = {key for row in placed.__dask_keys__() for key in row}
        graph = dict(fused.__dask_graph__())
        reads = [set(get_dependencies(graph, key)) & a_keys for key in graph if key not in a_keys]
        reads = [keys for keys in reads if keys]
        assert len(reads) == strips
        for keys in reads:
            assert len({key[1 + strip_axis(shape)] for key in keys}) == 1


def test_layers_are_named_after_the_algorithm(rng):
    dense, *_ = operands(rng, True, (13, 7))
    A = held_blocks(dense, (13, 7), True, "user-array")
    W_d = da.from_array(rng.random((40, 4)), chunks=(A.chunks[0], 4))
    H_d = da.from_array(rng.random((4, 40)), chunks=(4, A.chunks[1]))
    layers = " ".join(products.wta(A, W_d).dask.layers) + " ".join(products.aht(A, H_d).dask.layers)
    for prefix in ("dnmf-wta-block", "dnmf-wta-aggregate", "dnmf-aht-block", "dnmf-aht-aggregate"):
        assert prefix in layers


def test_partial_products_never_concatenate_a(rng):
    """Every partial-product task reads exactly one block of an A that was not placed by strips."""
    dense, *_ = operands(rng, True, (13, 7))
    A = held_blocks(dense, (13, 7), True, "user-array")
    W_d = da.from_array(rng.random((40, 4)), chunks=(A.chunks[0], 4))
    graph = dict(products.wta(A, W_d).__dask_graph__())
    block_tasks = [task for key, task in graph.items() if key[0].startswith("dnmf-wta-block")]
    assert len(block_tasks) == A.numblocks[0] * A.numblocks[1]
    a_keys = set(A.__dask_keys__()[0][0]) | {k for row in A.__dask_keys__() for k in row}
    for task in block_tasks:
        assert len(set(task.dependencies) & a_keys) == 1


def test_misaligned_factor_is_a_clear_error(rng):
    _, A, W, H, _, _ = operands(rng, False, (13, 7))
    with pytest.raises(ValueError, match="not row-aligned"):
        products.wta(A, da.from_array(W, chunks=(20, 4)))
    with pytest.raises(ValueError, match="not column-aligned"):
        products.aht(A, da.from_array(H, chunks=(4, 20)))


def test_block_stats(rng):
    dense = rng.random((30, 20)) * (rng.random((30, 20)) < 0.4)
    dense[3, 4] = -2.0
    for X in (dense, sp.csr_matrix(dense)):
        stats = products.block_stats(as_input_matrix(X, chunks=(10, 10)).array).compute()
        fields = dict(zip(products.STAT_FIELDS, np.moveaxis(stats, -1, 0)))
        assert fields["sum"].sum() == pytest.approx(dense.sum())
        assert fields["sum_squares"].sum() == pytest.approx(np.sum(dense**2))
        assert fields["min"][0, 0] == -2.0
        assert fields["nnz"].sum() == np.count_nonzero(dense)


def test_a_strip_sum_holds_a_few_partial_products_at_a_time():
    """A strip of a hundred blocks must not hold a hundred partial products (each as large as the result)."""
    import weakref

    from dnmf.core import kernels

    alive, most = set(), [0]

    def part(index):
        block = np.full((5, 1, 3), float(index))
        alive.add(index)
        weakref.finalize(block, alive.discard, index)
        most[0] = max(most[0], len(alive))
        return block

    total = kernels.tree_sum_parts(part, 100, 1, 8)
    np.testing.assert_array_equal(total, np.full((5, 3), float(sum(range(100)))))
    assert most[0] <= 8 * 3


@pytest.mark.parametrize("k", [1, 5, 32])
def test_pattern_grams_are_the_per_row_grams_over_the_stored_columns_bit_for_bit(rng, k):
    from dnmf.core import kernels

    f = rng.random((k, 300))
    pattern = sp.random(40, 300, density=0.2, format="csr", random_state=3)
    pattern.data[:] = 1
    grams = kernels.pattern_grams(pattern, f).reshape(40, k, k)
    full = np.asarray(pattern @ (f[:, None, :] * f[None, :, :]).reshape(k * k, -1).T).reshape(40, k, k)
    np.testing.assert_array_equal(grams, full)
    row = pattern[7].indices
    np.testing.assert_allclose(grams[7], f[:, row] @ f[:, row].T, rtol=1e-12)


def test_the_held_copies_of_a_placed_input_keep_its_strip_products(rng):
    """Dense input is held as aligned copies; those of a placed input must still get one task per strip."""
    from dnmf.core.grid import PLACED_INPUT
    from dnmf.data.matrix import as_held

    dense = rng.random((120, 50))
    for name, strips in ((f"{PLACED_INPUT}-t", True), ("someone-elses", False)):
        held = as_held(held_blocks(dense, (12, 5), False, name))
        H = da.from_array(rng.random((4, 50)), chunks=(4, held.chunks[1]))
        layers = " ".join(products.aht(held, H).dask.layers)
        assert ("dnmf-aht-block" not in layers) is strips
