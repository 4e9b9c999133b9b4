"""A fit whose factors overflow stops with a clear error; it never reports NaN factors as a result."""

from __future__ import annotations

import numpy as np
import pytest

from dnmf import NMF
from dnmf.exceptions import DivergenceError


@pytest.mark.parametrize("name", ["alpha_W", "alpha_H", "tol"])
def test_infinite_penalties_and_tolerance_are_refused_before_any_pass(name):
    with pytest.raises(ValueError, match=f"'{name}' parameter of NMF must be a finite"):
        NMF(2, **{name: float("inf")}).fit(np.ones((4, 3)))


def test_overflowing_float32_input_stops_with_a_clear_error(tmp_path):
    X = np.full((30, 20), 1e38, dtype=np.float32)
    X[::3] = 3e38
    model = NMF(2, init="random", max_iter=5, tol=0, random_state=0)
    with pytest.raises(DivergenceError, match="no longer finite.*Scale the data down"):
        model.fit(X, out=str(tmp_path / "result"))
    assert not (tmp_path / "result").exists()
    assert not hasattr(model, "components_")
