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
    sampled_loss,
    sampled_training_block,
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


def _sampled_block(X: sp.csr_matrix, rows: tuple[int, int], cols: tuple[int, int], **design) -> sp.csr_matrix:
    return sampled_training_block(X[rows[0]:rows[1], cols[0]:cols[1]], slice(*rows), slice(*cols), X.shape[1],
                                  **design)


def test_sampled_zeros_give_one_sparse_training_input_on_every_grid() -> None:
    X = sp.random(90, 70, density=0.2, random_state=4, format="csr")
    design = {"seed": 11, "test_fraction": 0.1, "zeros_per_row": 3}
    whole = _sampled_block(X, (0, 90), (0, 70), **design)
    for rows, cols in [((0, 40, 90), (0, 30, 70)), ((0, 1, 89, 90), (0, 69, 70))]:
        pieces = sp.bmat([[_sampled_block(X, (r0, r1), (c0, c1), **design) for c0, c1 in itertools.pairwise(cols)]
                          for r0, r1 in itertools.pairwise(rows)], format="csr")
        np.testing.assert_array_equal(pieces.toarray(), whole.toarray())
    dense, holes = X.toarray(), np.isnan(whole.toarray())
    stored = dense != 0
    i, j = np.nonzero(stored)
    np.testing.assert_array_equal(holes[stored], held_out(i, j, 70, seed=11, test_fraction=0.1))
    np.testing.assert_array_equal(np.nan_to_num(whole.toarray(), nan=0.0)[~holes], dense[~holes])
    zeros_held = holes & ~stored
    assert 1 <= zeros_held.sum(axis=1).max() <= 3
    assert whole.nnz == X.nnz + zeros_held.sum()


def test_sampled_zeros_are_a_uniform_sample_of_the_zeros_of_each_row() -> None:
    X = sp.csr_matrix((2000, 50))
    zeros_held = np.isnan(_sampled_block(X, (0, 2000), (0, 50), seed=5, test_fraction=0.1,
                                         zeros_per_row=5).toarray())
    chance = 1 - (1 - 1 / 50) ** 5
    assert abs(zeros_held.mean() - chance) < 0.01
    per_column = zeros_held.mean(axis=0)
    assert per_column.min() > chance - 0.05 and per_column.max() < chance + 0.05


def test_sampled_loss_scores_each_stratum_at_its_held_out_entries() -> None:
    X = sp.random(60, 40, density=0.25, random_state=2, format="csr")
    rng = np.random.default_rng(1)
    w, h = rng.random((60, 3)), rng.random((3, 40))
    design = {"seed": 8, "test_fraction": 0.2, "zeros_per_row": 4}
    holes = np.isnan(_sampled_block(X, (0, 60), (0, 40), **design).toarray())
    dense, wh = X.toarray(), w @ h
    stored = dense != 0
    parts = sampled_loss(X, w, h, slice(0, 60), slice(0, 40), 40, beta=2.0, **design)
    np.testing.assert_allclose(parts, [0.5 * np.sum((dense - wh)[holes & stored] ** 2), (holes & stored).sum(),
                                       0.5 * np.sum(wh[holes & ~stored] ** 2), (holes & ~stored).sum(), X.nnz],
                               rtol=1e-12)
