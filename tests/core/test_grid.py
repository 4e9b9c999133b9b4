"""The default block grid: block sizes, parallelism, strips that stream, and factor panels that fit a worker."""

from __future__ import annotations

import math

import pytest

from dnmf.core.grid import (PANEL_MEMORY_FRACTION, PANEL_OVERSAMPLES, PLANNING_RANK, STRIP_MEMORY_FRACTION,
                            TARGET_BLOCK_BYTES, default_grid, planning_rank)

MiB = 2**20


def panel_bytes(length: int, blocks: int, rank: int) -> float:
    return math.ceil(length / blocks) * (rank + PANEL_OVERSAMPLES) * 8


def test_blocks_aim_at_the_target_size_with_a_block_per_worker_along_each_axis():
    assert default_grid((100, 100), 1000, 1) == (1, 1)
    assert default_grid((100, 100), 1000, 4) == (4, 4)
    rows, cols = default_grid((40_000, 40_000), 100 * TARGET_BLOCK_BYTES, 2)
    assert rows * cols >= 100 and rows == 10


def test_strips_stay_within_their_share_of_a_worker():
    nbytes, memory = 4 * 2**30, 512 * MiB
    rows, _ = default_grid((1_000_000, 20_000), nbytes, 2, memory)
    assert nbytes / rows <= memory * STRIP_MEMORY_FRACTION


@pytest.mark.parametrize("rank", [None, 4, 16, 64])
@pytest.mark.parametrize("shape", [(60_000, 600_000), (600_000, 60_000), (864_552, 509_625)])
def test_factor_panels_stay_within_their_share_of_a_worker(shape, rank):
    memory = 300 * MiB
    with planning_rank(rank):
        rows, cols = default_grid(shape, 120 * 10**6, 2, memory)
    planned = rank or PLANNING_RANK
    assert panel_bytes(shape[0], rows, planned) <= memory * PANEL_MEMORY_FRACTION
    assert panel_bytes(shape[1], cols, planned) <= memory * PANEL_MEMORY_FRACTION


def test_a_wide_matrix_on_small_workers_gets_more_column_blocks_the_higher_the_rank():
    grids = []
    for rank in (4, 16, 64):
        with planning_rank(rank):
            grids.append(default_grid((60_000, 600_000), 120 * 10**6, 2, 300 * MiB))
    assert [cols for _, cols in grids] == sorted({cols for _, cols in grids})
    with planning_rank(16):
        assert default_grid((60_000, 600_000), 120 * 10**6, 2, 300 * MiB) == (7, 7)


def test_large_workers_and_unknown_memory_leave_the_grid_as_the_target_size_sets_it():
    assert default_grid((1_000_000, 200_000), 1_200_000_000, 2, 6 * 2**30) == (5, 4)
    assert default_grid((60_000, 600_000), 120 * 10**6, 2) == (2, 2)


@pytest.mark.parametrize("rank", [None, "auto", 0, True, 2.5])
def test_a_rank_that_is_not_a_positive_int_plans_for_the_default(rank):
    with planning_rank(PLANNING_RANK):
        expected = default_grid((60_000, 600_000), 120 * 10**6, 2, 300 * MiB)
    with planning_rank(rank):
        assert default_grid((60_000, 600_000), 120 * 10**6, 2, 300 * MiB) == expected


def test_the_planned_rank_is_restored_after_the_block():
    with planning_rank(PLANNING_RANK):
        planned_default = default_grid((60_000, 600_000), 120 * 10**6, 2, 300 * MiB)
    with planning_rank(64):
        assert default_grid((60_000, 600_000), 120 * 10**6, 2, 300 * MiB) != planned_default
    assert default_grid((60_000, 600_000), 120 * 10**6, 2, 300 * MiB) == planned_default
