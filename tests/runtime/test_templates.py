"""An iteration's graph built once and resubmitted (dnmf.runtime.templates): the same factors, one build."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from dnmf.core import engine, objectives
from dnmf.core.graph import counting_passes
from dnmf.core.rules import RULES
from dnmf.data.matrix import as_input_matrix
from dnmf.runtime.dask_graph import DaskLocal
from dnmf.runtime.inprocess import InProcess
from dnmf.runtime.templates import StepTemplate, is_held, opaque


class CountingFrobenius(objectives.Frobenius):
    """The Frobenius objective, counting how often an iteration's graph is built."""

    builds = 0

    def iteration(self, *args, **kwargs):
        self.builds += 1
        return super().iteration(*args, **kwargs)


def fit(runtime, A, rule, n_iter=12, penalties=engine.Penalties()):
    dense = A.toarray() if hasattr(A, "toarray") else A
    matrix = as_input_matrix(A, chunks=(13, 9), runtime=runtime).array
    rng = np.random.default_rng(3)
    W0, H0 = rng.random((A.shape[0], 3)), rng.random((3, A.shape[1]))
    W = as_input_matrix(W0, chunks=(matrix.chunks[0], (3,)), runtime=runtime).array
    H = as_input_matrix(H0, chunks=((3,), matrix.chunks[1]), runtime=runtime).array
    objective = CountingFrobenius(float(np.sum(dense ** 2)))
    with counting_passes() as passes:
        result = engine.run(matrix, W, H, rule=RULES[rule], runtime=runtime, objective=objective,
                            penalties=penalties, max_iter=n_iter, tol=0)
    return result, objective.builds, passes[0]


@pytest.mark.parametrize("rule", sorted(RULES))
def test_graph_built_once_per_kind_of_step_gives_the_in_process_factors(rng, rule):
    A = rng.random((40, 30)) * (rng.random((40, 30)) < 0.6)
    penalties = engine.Penalties(l1_w=0.01, l2_w=0.1, l1_h=0.02, l2_h=0.05)
    graph, in_process = DaskLocal(), InProcess()
    result, builds, passes = fit(graph, A, rule, penalties=penalties)
    reference, _, reference_passes = fit(in_process, A, rule, penalties=penalties)
    assert builds == 2, "the first iteration (with the initial loss) and one template for the rest"
    assert passes == reference_passes >= 2 * 12, "a resubmitted step counts its passes over A too"
    for ours, theirs in zip(graph.compute(result.W, result.H), in_process.compute(reference.W, reference.H)):
        np.testing.assert_array_equal(ours, theirs)
    assert result.loss_history == reference.loss_history


def test_resubmitted_keys_are_fresh_and_keep_the_layer_names():
    x = da.ones((4, 4), chunks=2).persist()
    stand_in = opaque(x)
    assert not stand_in.__dask_graph__() and stand_in.name == x.name
    step = {"y": (stand_in * 2 + 1).sum(axis=0)}
    import dask

    (optimized,) = dask.optimize(step["y"])
    template = StepTemplate({"y": optimized}, dict(optimized.__dask_graph__()), {"x": stand_in})
    first = template.instantiate({"x": x}, ())["y"]
    second = template.instantiate({"x": (x * 3).persist()}, ())["y"]
    assert first.name != second.name and first.name.split("-")[0] == optimized.name.split("-")[0]
    np.testing.assert_array_equal(first.compute(), np.full(4, 12.0))
    np.testing.assert_array_equal(second.compute(), np.full(4, 28.0))
    assert is_held(x) and not is_held(x * 2)
    assert template.fits({"x": x}) and not template.fits({"x": x * 2}) and not template.fits({"z": x})
