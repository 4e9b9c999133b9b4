"""One table of what each solver supports: the estimator, the CLI and the README agree with the registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dnmf import NMF
from dnmf.cli.main import build_parser
from dnmf.core.rules import (
    ALIASES,
    BETA_RULES,
    MASKED_RULES,
    RULES,
    SOLVERS,
    capability_table,
    rule_for,
    solver_names,
)

README = Path(__file__).resolve().parents[3] / "README.md"
X = np.random.default_rng(0).random((12, 10)) + 0.1


def test_every_solver_names_registered_rules():
    for spec in SOLVERS.values():
        assert spec.rule in RULES
        assert spec.beta_rule is None or spec.beta_rule in BETA_RULES
        assert spec.masked_rule is None or spec.masked_rule in MASKED_RULES
        assert spec.masks == (spec.beta_rule is not None or spec.masked_rule is not None)


def test_readme_shows_the_registry_table():
    assert capability_table() in README.read_text()


def test_cli_offers_exactly_the_registered_solvers():
    fit = build_parser()._subparsers._group_actions[0].choices["fit"]
    solver = next(action for action in fit._actions if action.dest == "solver")
    assert sorted(solver.choices) == solver_names() == sorted([*SOLVERS, *ALIASES])


@pytest.mark.parametrize("solver", solver_names())
@pytest.mark.parametrize("loss", ["frobenius", "kullback-leibler", "itakura-saito", 1.5])
def test_estimator_accepts_what_the_registry_declares(solver, loss):
    spec = SOLVERS[ALIASES.get(solver, solver)]
    declared = (loss if isinstance(loss, str) else "beta") in spec.losses
    model = NMF(2, solver=solver, beta_loss=loss, max_iter=2, tol=0)
    if declared:
        model.fit(X)
        assert np.isfinite(model.reconstruction_err_)
    else:
        with pytest.raises(ValueError, match="does not handle beta_loss"):
            model.fit(X)


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_masked_fits_use_the_rule_the_registry_names(solver):
    mask = np.ones_like(X)
    mask[0, 0] = 0
    spec = SOLVERS[solver]
    assert spec.masks  # every solver fits masks now; rule_for refuses one that does not
    NMF(2, solver=solver, max_iter=2, tol=0).fit(X, mask=mask)
    expected = MASKED_RULES[spec.masked_rule] if spec.masked_rule else BETA_RULES[spec.beta_rule]
    assert rule_for(solver, "frobenius", masked=True) is expected
