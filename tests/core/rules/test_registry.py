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
        assert spec.masks == (spec.beta_rule is not None)


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
def test_masks_are_refused_before_any_pass_by_solvers_without_them(solver):
    mask = np.ones_like(X)
    mask[0, 0] = 0
    if SOLVERS[solver].masks:
        NMF(2, solver=solver, max_iter=2, tol=0).fit(X, mask=mask)
        assert rule_for(solver, "frobenius", masked=True) is BETA_RULES[SOLVERS[solver].beta_rule]
    else:
        with pytest.raises(ValueError, match="does not handle missing values"):
            NMF(2, solver=solver, max_iter=2, tol=0).fit(X, mask=mask)
