"""Missing entries by EM (``mask_updates='impute'``): filled products against NumPy, monotone descent of the
masked loss, the exact masked fit's fixed points, and the same fit in process and on a Dask graph."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from dnmf import NMF
from dnmf.core import fills, kernels, products
from dnmf.core.blocks import Blocks
from dnmf.core.imputation import ImputedFrobenius
from dnmf.core.records import Penalties
from dnmf.core.rules import RULES

rng = np.random.default_rng(5)


@pytest.mark.parametrize("share", [0.3, 0.01], ids=["dense-predictions", "sampled-predictions"])
def test_a_filled_block_holds_wh_at_its_nan_and_the_data_elsewhere(share):
    a = rng.random((40, 50))
    holes = rng.random(a.shape) < share
    holes[0, 0] = True
    a[holes] = np.nan
    w, h = rng.random((40, 3)), rng.random((3, 50))
    filled = fills.imputed_block(a, kernels.unobserved_block(a), w, h)
    np.testing.assert_allclose(filled, np.where(holes, w @ h, a), rtol=1e-14)
    assert not np.shares_memory(filled, a) and np.isnan(a[0, 0])


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fill", ["zeros", "values"])
def test_products_of_a_filled_block_by_row_tiles_match_the_filled_block(monkeypatch, order, dtype, fill):
    a = np.asarray(rng.random((37, 23)), dtype=dtype, order=order)
    a[rng.random(a.shape) < 0.25] = np.nan
    a[5] = np.nan
    unobserved = kernels.unobserved_block(a)
    values = None if fill == "zeros" else rng.random(unobserved.nnz).astype(dtype)
    filled = fills.filled_block(a, unobserved, values)
    assert not np.isnan(filled).any() and np.isnan(a[5]).all()
    # Tiles of 4 rows: ten tiles, the last one short.
    monkeypatch.setattr(fills, "FILL_TILE_BYTES", 4 * a.shape[1] * a.itemsize)
    right, left = rng.random((23, 3)).astype(dtype), rng.random((3, 37)).astype(dtype)
    tolerance = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(fills.filled_times(a, unobserved, values, right), filled @ right, rtol=tolerance)
    np.testing.assert_allclose(fills.times_filled(left, a, unobserved, values), left @ filled, rtol=tolerance)


@pytest.mark.parametrize("on", ["dask", "blocks"])
def test_imputed_products_and_loss_match_numpy(on, blocks_as_dask):
    A = rng.random((24, 18))
    holes = rng.random(A.shape) < 0.3
    A[holes] = np.nan
    W0, H0, W1, H1 = rng.random((24, 3)), rng.random((3, 18)), rng.random((24, 3)), rng.random((3, 18))
    chunks = ((8, 8, 8), (6, 12))
    Ab = Blocks.from_array(A, chunks)
    factors = [Blocks.from_array(W, (chunks[0], (3,))) for W in (W0, W1)] + \
        [Blocks.from_array(H, ((3,), chunks[1])) for H in (H0, H1)]
    if on == "dask":
        Ab, *factors = (blocks_as_dask(x) for x in (Ab, *factors))
    W0b, W1b, H0b, H1b = factors
    unobserved = products.unobserved(Ab)
    filled_w0h0 = np.where(holes, W0 @ H0, A)
    filled_w1h0 = np.where(holes, W1 @ H0, A)
    parts = products.imputed_aht(Ab, W0b, H0b, unobserved)
    np.testing.assert_allclose(np.asarray(parts.compute())[:, :3], filled_w0h0 @ H0.T)
    np.testing.assert_allclose(np.asarray(parts.compute())[:, 3], np.sum(np.where(holes, W0 @ H0, 0) ** 2, axis=1))
    wta = products.imputed_wta(Ab, W1b, H0b, unobserved)
    np.testing.assert_allclose(np.asarray(wta.compute()), W1.T @ filled_w1h0)
    # The masked loss where the W-step starts, from its own parts: no pass over A or the pattern of its own.
    loss = products.value(products.frobenius_loss_squared(float(np.nansum(A ** 2)),
                                                          products.imputed_cross_inner(parts, W0b),
                                                          products.gram_rows(W0b), products.gram_cols(H0b)))
    observed = ~holes
    assert float(loss) == pytest.approx(np.sum(((A - W0 @ H0)[observed]) ** 2), rel=1e-12)


@pytest.mark.parametrize("solver", ["hals", "bpp", "mu"])
def test_imputed_fits_descend_and_report_the_exact_observed_error(solver, planted_with_holes):
    X, holes, observed = planted_with_holes()
    model = NMF(4, solver=solver, missing="nan", mask_updates="impute", max_iter=150, tol=0, random_state=0,
                init="random")
    W = model.fit_transform(holes)
    history, resolution = np.array(model.loss_history_), np.array(model.loss_resolution_)
    assert np.all(np.diff(history) <= resolution[1:] + resolution[:-1] + 1e-12 * history[1:])
    exact = np.sqrt(np.sum(((X - W @ model.components_)[observed]) ** 2))
    assert model.reconstruction_err_ == pytest.approx(exact, rel=1e-9)
    # Each half-step reads X once and the loss comes with the W-step's pass; one more pass finds the holes, and
    # one evaluates the last iteration's loss exactly.
    assert model.timings_["passes_over_a"]["loop"] == 2 * model.n_iter_ + 2


def test_imputed_and_exact_fits_reach_the_same_fit_of_planted_data(planted_with_holes):
    X, holes, observed = planted_with_holes(1)
    errors = {}
    for how in ("exact", "impute"):
        model = NMF(4, solver="hals", missing="nan", mask_updates=how, max_iter=400, tol=0, random_state=0,
                    init="random")
        W = model.fit_transform(holes)
        errors[how] = np.linalg.norm((X - W @ model.components_)[~observed]) / np.linalg.norm(X[~observed])
    assert errors["impute"] < 0.05
    assert errors["impute"] == pytest.approx(errors["exact"], rel=0.2, abs=2e-3)


def test_the_exact_masked_fits_end_is_a_fixed_point_of_the_imputed_step(planted_with_holes):
    _, holes, _ = planted_with_holes(3)
    exact = NMF(4, solver="bpp", missing="nan", max_iter=3000, tol=0, random_state=0, init="random")
    W = exact.fit_transform(holes)
    H = exact.components_
    A = da.from_array(holes, chunks=(20, 15))
    Wd, Hd = da.from_array(W, chunks=(20, 4)), da.from_array(H, chunks=(4, 15))
    objective = ImputedFrobenius(float(np.nansum(holes ** 2)))
    carried = {**objective.prepare(A), **objective.carried(A, Wd, Hd, update_h=True)}
    step = {"rule": RULES["bpp"], "penalties": Penalties(0, 0, 0, 0), "update_h": True, "with_initial_loss": False}
    out = objective.iteration(A, Wd, Hd, carried, **step)
    then = objective.iteration(A, out["W"], out["H"], {**carried, "gram_w": out["gram_w"], "gram_h": out["gram_h"]},
                               **step)
    W1, H1, before, after = dask.compute(out["W"], out["H"], out["loss_before"], then["loss_before"])
    np.testing.assert_allclose(W1 @ H1, W @ H, rtol=1e-3)
    assert float(before) * (1 - 1e-6) <= float(after) <= float(before) * (1 + 1e-9)
    assert float(before) == pytest.approx(exact.reconstruction_err_ ** 2, rel=1e-9)


@pytest.mark.parametrize("solver", ["hals", "mu"])
def test_imputed_fit_is_the_same_in_process_and_on_a_dask_graph(solver, planted_with_holes):
    _, holes, _ = planted_with_holes(2)
    fits = []
    for executor in ("in-process", "dask"):
        with dask.config.set({"dnmf.executor": executor}):
            model = NMF(4, solver=solver, missing="nan", mask_updates="impute", max_iter=20, tol=0, random_state=0,
                        init="random", chunks=(20, 10))
            fits.append((np.asarray(model.fit_transform(da.from_array(holes, chunks=(20, 10)))), model))
    (W1, m1), (W2, m2) = fits
    np.testing.assert_allclose(W1, W2, rtol=1e-10)
    np.testing.assert_allclose(m1.loss_history_, m2.loss_history_, rtol=1e-10)


def test_imputed_updates_refuse_other_losses_and_sparse_masks_by_name(planted_with_holes):
    X, holes, observed = planted_with_holes()
    with pytest.raises(ValueError, match="mask_updates='impute' fits the Frobenius loss"):
        NMF(4, solver="mu", beta_loss="kullback-leibler", missing="nan", mask_updates="impute").fit(holes)
    with pytest.raises(ValueError, match="this X is sparse"):
        NMF(4, mask_updates="impute").fit(sp.csr_matrix(X), mask=sp.csr_matrix(observed))
    with pytest.raises(ValueError, match="'mask_updates' parameter of NMF must be 'exact' or 'impute'"):
        NMF(4, missing="nan", mask_updates="em").fit(holes)


def test_transform_by_em_steps_reaches_the_exact_masked_transform(planted_with_holes):
    """With H fixed each row's masked problem is convex, so EM steps and exact steps end at the same W."""
    X, holes, observed = planted_with_holes(4)
    exact = NMF(4, solver="hals", missing="nan", max_iter=300, tol=0, random_state=0, init="random").fit(holes)
    imputing = NMF(4, solver="hals", missing="nan", mask_updates="impute", max_iter=300, tol=0, random_state=0,
                   init="random").fit(holes)
    imputing.components_ = exact.components_
    np.testing.assert_allclose(imputing.transform(holes), exact.transform(holes), rtol=1e-8, atol=1e-10)
