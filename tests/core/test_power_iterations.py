"""NNDSVD's power iterations: chosen by the input's size and whether it streams, settable, and counted as passes."""

from __future__ import annotations

import dask
import numpy as np
import pytest

from dnmf import NMF
from dnmf.core.initialization import SMALL_INPUT_BYTES, power_iterations


def test_small_inputs_keep_scikit_learns_count():
    assert power_iterations((1000, 500), 10, nbytes=SMALL_INPUT_BYTES - 1) == 7
    assert power_iterations((1000, 50), 10, nbytes=SMALL_INPUT_BYTES - 1) == 4


def test_larger_inputs_make_fewer_and_streamed_ones_fewest():
    assert power_iterations((10**6, 10**4), 10, nbytes=SMALL_INPUT_BYTES) == 2
    assert power_iterations((10**6, 10**4), 10, nbytes=10**12, streamed=True) == 1


def test_the_setting_overrides_the_rule_and_is_checked():
    with dask.config.set({"dnmf.nndsvd-power-iterations": 0}):
        assert power_iterations((1000, 500), 10, nbytes=10) == 0
    for bad in (-1, 1.5, True, "many"):
        with dask.config.set({"dnmf.nndsvd-power-iterations": bad}), pytest.raises(ValueError, match="non-negative"):
            power_iterations((1000, 500), 10)


@pytest.mark.parametrize("q", [0, 3])
def test_passes_before_the_loop_are_the_validating_one_and_the_svds(q):
    X = np.random.default_rng(0).random((120, 80))
    with dask.config.set({"dnmf.nndsvd-power-iterations": q}):
        model = NMF(5, init="nndsvda", max_iter=2, tol=0).fit(X)
    assert model.timings_["passes_over_a"]["before_loop"] == 1 + 2 * q + 2
