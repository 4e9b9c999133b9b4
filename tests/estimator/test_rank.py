"""select_rank recovers planted ranks by cross-validation; its holdout ignores the block grid; its result is JSON."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

import dnmf
from dnmf.datasets import make_low_rank
from dnmf.estimator.rank import RankSelection, _mask_updates_for, choose_rank
from dnmf.estimator.training import training_input, zeros_per_row


def noisy_low_rank(rank: int, seed: int) -> np.ndarray:
    """A planted rank-``rank`` matrix plus Gaussian noise of half its spread, clipped at zero."""
    A = make_low_rank(120, 80, rank, random_state=seed)[0]
    return np.maximum(A + np.random.default_rng(seed).normal(scale=0.5 * A.std(), size=A.shape), 0.0)


def poisson_counts(rank: int, seed: int) -> sp.csr_matrix:
    """Poisson counts around a planted rank-``rank`` mean of 3 per entry, as a sparse matrix."""
    mean = make_low_rank(200, 150, rank, random_state=seed)[0]
    counts = np.random.default_rng(seed).poisson(mean * (3.0 / mean.mean()))
    return sp.csr_matrix(counts.astype(np.float64))


@pytest.mark.parametrize(("rank", "seed"), [(3, 10), (5, 11)])
def test_the_planted_rank_of_noisy_dense_data_is_found(rank: int, seed: int) -> None:
    result = dnmf.select_rank(noisy_low_rank(rank, seed), range(rank - 2, rank + 3), max_iter=600, tol=1e-6,
                              random_state=seed)
    assert result.best_rank == rank, result.table
    assert result.ranks == list(range(rank - 2, rank + 3))
    assert all(t >= e for t, e in zip(result.test_error, result.train_error))


@pytest.mark.parametrize(("solver", "mask_updates"), [("hals", "exact"), ("bpp", "exact"), ("hals", "impute")])
def test_the_planted_rank_is_found_by_masked_hals_and_bpp(solver: str, mask_updates: str) -> None:
    result = dnmf.select_rank(noisy_low_rank(4, 12), range(2, 7), solver=solver, max_iter=300, tol=1e-6,
                              random_state=12, mask_updates=mask_updates)
    assert result.best_rank == 4, result.table
    assert result.solver == solver


@pytest.mark.parametrize(("solver", "k", "beta", "expected"), [
    ("mu", 2, 2.0, "impute"), ("hals", 4, 2.0, "exact"), ("cd", 8, 2.0, "impute"), ("bpp", 7, 2.0, "exact"),
    ("mu", 8, 1.0, "exact")])
def test_auto_mask_updates_take_em_steps_where_they_cost_less(solver: str, k: int, beta: float,
                                                               expected: str) -> None:
    assert _mask_updates_for(k, "auto", solver, beta, 0.1) == expected
    assert _mask_updates_for(k, "exact", solver, beta, 0.1) == "exact"


@pytest.mark.parametrize(("rank", "seed"), [(3, 20), (4, 21)])
def test_the_planted_rank_of_sparse_poisson_counts_is_found(rank: int, seed: int) -> None:
    X = poisson_counts(rank, seed)
    assert X.nnz < 0.96 * X.shape[0] * X.shape[1]
    result = dnmf.select_rank(X, range(rank - 2, rank + 3), beta_loss="kullback-leibler", max_iter=600, tol=1e-6,
                              random_state=seed)
    assert result.best_rank == rank, result.table
    assert result.beta_loss == "kullback-leibler"


def test_the_training_input_is_the_same_on_two_chunk_grids_and_in_memory() -> None:
    X = sp.random(90, 70, density=0.3, random_state=1, format="csr")
    in_memory = training_input(X, seed=9, test_fraction=0.1)
    grids = [da.from_array(X.toarray(), chunks=(30, 70)), da.from_array(X, chunks=(17, 23))]
    for lazy in grids:
        training = training_input(lazy, seed=9, test_fraction=0.1).compute()
        np.testing.assert_array_equal(np.isnan(training), np.isnan(in_memory))
        np.testing.assert_array_equal(np.nan_to_num(training, nan=-1), np.nan_to_num(in_memory, nan=-1))
    assert 0.05 < np.isnan(in_memory).mean() < 0.15


def test_a_dask_input_gives_the_same_test_errors_as_its_numpy_form() -> None:
    X = noisy_low_rank(2, 3)
    kwargs = {"replicates": 2, "max_iter": 30, "random_state": 4}
    eager = dnmf.select_rank(X, [1, 2], **kwargs)
    lazy = dnmf.select_rank(da.from_array(X, chunks=(40, 80)), [1, 2], chunks=(40, 80), **kwargs)
    np.testing.assert_allclose(lazy.test_errors, eager.test_errors, rtol=1e-6)


def test_the_json_form_round_trips() -> None:
    result = dnmf.select_rank(noisy_low_rank(2, 5), [1, 2, 3], replicates=2, max_iter=20, random_state=6)
    again = RankSelection.from_json(result.to_json())
    assert again == result
    assert [row["rank"] for row in again.table] == [1, 2, 3]
    assert again.rule.startswith("smallest rank")


def test_the_rule_takes_the_smallest_rank_within_one_spread_of_the_minimum() -> None:
    assert choose_rank([2, 3, 4, 5], [5.0, 1.05, 1.0, 1.2], [0.1, 0.1, 0.1, 0.1]) == 3
    assert choose_rank([2, 3, 4, 5], [5.0, 1.2, 1.0, 1.2], [0.1, 0.1, 0.1, 0.1]) == 4


def test_plot_draws_the_curves() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    result = RankSelection(best_rank=2, ranks=[1, 2, 3], test_error=[3.0, 1.0, 1.1], test_error_std=[0.1] * 3,
                           train_error=[2.9, 0.9, 0.8], test_errors=[[3.0] * 2, [1.0] * 2, [1.1] * 2],
                           n_iter=[[10] * 2] * 3, test_fraction=0.1, seeds=[1, 2], solver="mu",
                           beta_loss="frobenius")
    ax = result.plot()
    assert len(ax.lines) >= 3 and "best rank = 2" in [t.get_text() for t in ax.get_legend().get_texts()]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"ranks": []}, "ranks must be a non-empty collection of positive integers"),
    ({"ranks": [0, 1]}, "ranks must be a non-empty collection of positive integers"),
    ({"ranks": [2.5]}, "ranks must be a non-empty collection of positive integers"),
    ({"ranks": [2, 50]}, "at most 10 components"),
    ({"ranks": [2], "replicates": 1}, "replicates must be an integer of at least 2"),
    ({"ranks": [2], "test_fraction": 1.0}, "test_fraction must lie strictly between 0 and 1"),
    ({"ranks": [2], "method": "consensus"}, "method='consensus' is not supported"),
    ({"ranks": [2], "solver": "hals", "beta_loss": "kullback-leibler"}, "does not handle beta_loss"),
    ({"ranks": [2], "mask_updates": "em"}, "mask_updates must be 'auto', 'exact' or 'impute'"),
    ({"ranks": [2], "held_out_zeros": "some"}, "held_out_zeros must be 'auto', 'all' or 'sampled'"),
    ({"ranks": [2], "held_out_zeros": "sampled"}, "keeps a sparse X sparse.*got a dense X"),
])
def test_bad_arguments_are_refused_by_name(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dnmf.select_rank(np.ones((12, 10)), **kwargs)


def test_missing_values_in_x_are_refused() -> None:
    X = np.ones((12, 10))
    X[5, 5] = np.nan
    with pytest.raises(ValueError, match="X has NaN entries: select_rank needs a matrix with no missing values"):
        dnmf.select_rank(X, [1, 2], max_iter=5)


def test_stability_is_one_for_the_same_components_in_any_order_and_low_for_unrelated_ones() -> None:
    from dnmf.estimator.rank import stability

    H = np.random.default_rng(5).random((4, 30))
    assert stability([H, H[[2, 0, 3, 1]] * 3.0, H[::-1]]) == pytest.approx(1.0)
    unrelated = [np.random.default_rng(seed).random((4, 30)) for seed in range(3)]
    assert stability(unrelated) < 0.3
    assert stability([H[:1], H[:1] * 2]) is None


def test_the_planted_rank_has_stable_components_and_the_table_reports_them() -> None:
    result = dnmf.select_rank(noisy_low_rank(3, 10), [1, 3, 6], max_iter=400, tol=1e-6, random_state=10)
    by_rank = {row["rank"]: row["stability"] for row in result.table}
    assert by_rank[1] is None
    assert by_rank[3] > 0.9 and by_rank[3] > by_rank[6]
    assert dnmf.RankSelection.from_json(result.to_json()).stability == result.stability


def test_out_keeps_each_ranks_best_fit_and_replaces_none(tmp_path) -> None:
    X = noisy_low_rank(3, 10)
    result = dnmf.select_rank(X, [2, 3], max_iter=100, random_state=10, out=tmp_path / "fits")
    for q, k in enumerate(result.ranks):
        model = dnmf.NMF.from_result(tmp_path / "fits" / f"rank-{k}")
        assert model.n_components_ == k
        best = int(np.argmin(result.test_errors[q]))
        assert model.n_iter_ == result.n_iter[q][best]
    with pytest.raises(FileExistsError, match="rank-2"):
        dnmf.select_rank(X, [2, 3], max_iter=100, random_state=10, out=tmp_path / "fits")


def test_an_in_memory_matrix_whose_dense_training_copy_would_not_fit_is_refused_before_any_fit() -> None:
    X = sp.csr_matrix(([1.0, 2.0, 3.0], ([0, 5, 7], [1, 2, 3])), shape=(10**6, 10**6))
    with pytest.raises(MemoryError, match="Pass X as a Dask array or a matrix store"):
        dnmf.select_rank(X, [2, 3], replicates=2, held_out_zeros="all")


@pytest.mark.parametrize(("X", "rank", "seed"), [(poisson_counts(3, 20), 3, 20), (poisson_counts(4, 21), 4, 21),
                                                 (sp.csr_matrix(noisy_low_rank(3, 10)), 3, 10)],
                         ids=["poisson-3", "poisson-4", "noisy-3"])
def test_sampled_zeros_find_the_planted_rank_of_sparse_data(X: sp.csr_matrix, rank: int, seed: int) -> None:
    result = dnmf.select_rank(X, range(rank - 2, rank + 3), max_iter=600, tol=1e-6, random_state=seed,
                              held_out_zeros="sampled")
    assert result.best_rank == rank, result.table


@pytest.mark.parametrize("rank", [5])
def test_sampled_zeros_find_the_planted_rank_of_counts_by_kullback_leibler(rank: int) -> None:
    result = dnmf.select_rank(poisson_counts(rank, 20 + rank), range(rank - 2, rank + 3), beta_loss="kullback-leibler",
                              max_iter=300, tol=1e-5, random_state=rank, held_out_zeros="sampled")
    assert result.best_rank == rank, result.table


@pytest.mark.parametrize("beta_loss", ["frobenius", "kullback-leibler"])
def test_sampled_zeros_estimate_the_loss_that_holding_out_every_entry_measures(beta_loss: str) -> None:
    X = poisson_counts(3, 20)
    kwargs = {"replicates": 2, "max_iter": 200, "tol": 1e-6, "random_state": 3, "beta_loss": beta_loss}
    sampled = dnmf.select_rank(X, [2, 3, 4], held_out_zeros="sampled", **kwargs)
    every = dnmf.select_rank(X, [2, 3, 4], held_out_zeros="all", **kwargs)
    np.testing.assert_allclose(sampled.test_error, every.test_error, rtol=0.05)
    np.testing.assert_allclose(sampled.train_error, every.train_error, rtol=0.05)


def test_the_sampled_training_input_is_sparse_and_the_same_on_every_grid() -> None:
    X = sp.random(300, 200, density=0.05, random_state=6, format="csr")
    per_row = zeros_per_row(X, "sampled", test_fraction=0.1, beta=2.0)
    assert per_row == int(np.ceil(0.1 * X.nnz / 300))
    training = training_input(X, seed=4, test_fraction=0.1, zeros_per_row=per_row)
    assert sp.issparse(training) and X.nnz < training.nnz <= X.nnz + 300 * per_row
    assert 0.5 * 0.1 * X.nnz < np.isnan(training.data).sum() < 3 * 0.1 * X.nnz
    for lazy in (da.from_array(X, chunks=(70, 90), asarray=False), da.from_array(X, chunks=(300, 200), asarray=False)):
        assert zeros_per_row(lazy, "sampled", test_fraction=0.1, beta=2.0) == per_row
        blocks = training_input(lazy, seed=4, test_fraction=0.1, zeros_per_row=per_row)
        np.testing.assert_array_equal(np.isnan(sp.vstack([sp.hstack(list(row)) for row in _grid(blocks)]).toarray()),
                                      np.isnan(training.toarray()))


def _grid(blocks: da.Array) -> list[list[sp.csr_matrix]]:
    return [[blocks.blocks[i, j].compute() for j in range(blocks.numblocks[1])] for i in range(blocks.numblocks[0])]


def test_auto_samples_the_zeros_only_of_a_large_sparse_x_with_a_loss_defined_at_zero() -> None:
    cells = np.random.default_rng(0).integers(0, 100_000, size=(2, 400_000))
    large = sp.csr_matrix((np.ones(400_000), (cells[0] * 2, cells[1])), shape=(200_000, 100_000))
    assert zeros_per_row(large, "auto", test_fraction=0.1, beta=2.0) == 1
    assert zeros_per_row(large, "auto", test_fraction=0.1, beta=1.0) == 1
    assert zeros_per_row(large, "auto", test_fraction=0.1, beta=0.0) is None
    assert zeros_per_row(np.ones((100, 100)), "auto", test_fraction=0.1, beta=2.0) is None
    assert zeros_per_row(sp.random(300, 200, density=0.1, format="csr"), "auto", test_fraction=0.1, beta=2.0) is None
    with pytest.raises(ValueError, match="got beta_loss with beta=0"):
        dnmf.select_rank(large, [2], beta_loss="itakura-saito", held_out_zeros="sampled")
