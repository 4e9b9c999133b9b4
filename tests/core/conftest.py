"""Helpers shared by the masked and imputed tests, as fixtures (test modules are not importable as a package)."""

from __future__ import annotations

from collections.abc import Callable

import dask.array as da
import numpy as np
import pytest

from dnmf.core.blocks import Blocks


def _blocks_as_dask(blocks: Blocks) -> da.Array:
    """The same blocks as a Dask array (one graph key each), so that both paths see identical blocks."""
    from dnmf.runtime.dask_graph import _graph_array

    grid = {(i, j): blocks.block(i, j) for i in range(blocks.numblocks[0]) for j in range(blocks.numblocks[1])}
    return _graph_array(grid, blocks.chunks, blocks.dtype, blocks.sparse, f"test-masked-{id(blocks)}")


def _planted_with_holes(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Planted rank-4 data, the same with about a fifth of its entries NaN, and the observed pattern."""
    r = np.random.default_rng(seed)
    X = r.random((60, 4)) @ r.random((4, 30)) + 0.01 * r.random((60, 30))
    observed = r.random(X.shape) > 0.2
    holes = X.copy()
    holes[~observed] = np.nan
    return X, holes, observed


@pytest.fixture
def blocks_as_dask() -> Callable[[Blocks], da.Array]:
    return _blocks_as_dask


@pytest.fixture
def planted_with_holes() -> Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return _planted_with_holes
