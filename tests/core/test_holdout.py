"""The stateless holdout: one mask whatever the block grid, the requested fraction, independent seeds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from dnmf.core.holdout import (
    held_out,
    held_out_block,
    held_out_loss,
    holdout_seeds,
    training_block,
)


def test_the_holdout_is_the_same_on_every_block_grid() -> None:
    m, n = 97, 61
    whole = held_out_block(slice(0, m), slice(0, n), n, seed=7, test_fraction=0.1)
    for rows, cols in [((0, 40, 97), (0, 30, 61)), ((0, 13, 50, 51, 97), (0, 1, 60, 61))]:
        pieces = np.block([[held_out_block(slice(r0, r1), slice(c0, c1), n, seed=7, test_fraction=0.1)
                            for c0, c1 in itertools.pairwise(cols)] for r0, r1 in itertools.pairwise(rows)])
        np.testing.assert_array_equal(pieces, whole)
    i, j = np.nonzero(whole)
    assert held_out(i, j, n, seed=7, test_fraction=0.1).all()


def test_the_fraction_is_met_and_seeds_give_independent_holdouts() -> None:
    a = held_out_block(slice(0, 400), slice(0, 500), 500, seed=1, test_fraction=0.1)
    b = held_out_block(slice(0, 400), slice(0, 500), 500, seed=2, test_fraction=0.1)
    assert abs(a.mean() - 0.1) < 0.005
    assert abs(b[a].mean() - 0.1) < 0.01
    assert abs(held_out_block(slice(0, 400), slice(0, 500), 500, seed=1, test_fraction=0.3).mean() - 0.3) < 0.01
    seeds = holdout_seeds(5, 3)
    assert seeds == holdout_seeds(5, 3) and len(set(seeds)) == 3


def test_sparse_blocks_hold_out_their_zeros_too_and_score_them() -> None:
    X = sp.random(60, 40, density=0.2, random_state=0, format="csr")
    train = training_block(X, slice(0, 60), slice(0, 40), 40, seed=3, test_fraction=0.2)
    mask = held_out_block(slice(0, 60), slice(0, 40), 40, seed=3, test_fraction=0.2)
    dense = X.toarray()
    np.testing.assert_array_equal(np.isnan(train), mask)
    np.testing.assert_array_equal(train[~mask], dense[~mask])
    assert (dense[mask] == 0).sum() > 0
    rng = np.random.default_rng(0)
    w, h = rng.random((60, 3)), rng.random((3, 40))
    loss, count = held_out_loss(X, w, h, slice(0, 60), slice(0, 40), 40, seed=3, test_fraction=0.2, beta=2.0)
    assert count == mask.sum()
    assert loss == pytest.approx(0.5 * np.sum((dense - w @ h)[mask] ** 2), rel=1e-12)
    kl, _ = held_out_loss(X, w, h, slice(0, 60), slice(0, 40), 40, seed=3, test_fraction=0.2, beta=1.0)
    x, y = dense[mask], (w @ h)[mask]
    pos = x > 0
    assert kl == pytest.approx(np.sum(x[pos] * np.log(x[pos] / y[pos])) - x.sum() + y.sum(), rel=1e-10)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_a_fraction_outside_the_open_interval_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="test_fraction must lie strictly between 0 and 1"):
        held_out([0], [0], 1, seed=0, test_fraction=fraction)
