"""Local update rules, pure array code that never sees Dask, and the registry of what each solver supports.

A Frobenius rule updates one block of a factor from products the engine has already formed. Every rule is written
for the H-side layout, a ``(k, n_b)`` block of columns::

    new_block = rule(block, cross, gram, l1=..., l2=...)

where, for the H-step, ``block = H_j``, ``cross = (WᵀA)_j`` and ``gram = WᵀW``. The W-step is the same rule on the
transposed problem: ``block = W_iᵀ``, ``cross = (AHᵀ)_iᵀ`` and ``gram = HHᵀ``. ``l1`` and ``l2`` are the already
scaled regularisation strengths of that factor, exactly as scikit-learn computes them. The loop adds the L2
penalty to the Gram once (``gram + l2·I``, as PLANC's ``applyReg`` does) and calls rules with ``l2=0``; a rule
called directly with ``l2`` does the same through :func:`regularized_gram`.

A β rule (:class:`BetaRule`) takes the two halves of the β-divergence gradient instead (see :mod:`beta_mu`).

Rules must not modify their arguments (the blocks belong to persisted collections), must keep the factor
non-negative, and must never increase the regularised objective in the factor they update.

:data:`SOLVERS` declares, once, what each solver supports; the estimator's checks, the CLI's choices and help,
and the README's table come from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from dnmf.core.rules import beta_mu, bpp, bpp_masked, hals, mu
from dnmf.core.rules.penalties import regularized_gram

__all__ = ["ALIASES", "BETA_LOSSES", "BETA_RULES", "MASKED_RULES", "RULES", "MaskedRule", "SOLVERS", "BetaRule",
           "Solver", "UpdateRule", "beta_value", "canonical_solver", "capability_table", "get_rule", "loss_name",
           "regularized_gram",
           "rule_for", "solver_names", "supported_losses_text"]


class UpdateRule(Protocol):
    def __call__(
        self, block: np.ndarray, cross: np.ndarray, gram: np.ndarray, *, l1: float = 0.0, l2: float = 0.0
    ) -> np.ndarray: ...


class BetaRule(Protocol):
    def __call__(
        self, block: np.ndarray, numerator: np.ndarray, denominator: np.ndarray, *, beta: float, side: str,
        l1: float = 0.0, l2: float = 0.0
    ) -> np.ndarray: ...


#: scikit-learn's named β-divergences and their β.
BETA_LOSSES = {"frobenius": 2.0, "kullback-leibler": 1.0, "itakura-saito": 0.0}

#: Registered Frobenius rules by name (every one passes the rule conformance suite of ``tests/core/rules``).
RULES: dict[str, UpdateRule] = {"mu": mu.update, "hals": hals.update, "bpp": bpp.update}
#: Registered β-divergence rules by name.
BETA_RULES: dict[str, BetaRule] = {"beta_mu": beta_mu.step}


class MaskedRule(Protocol):
    def __call__(
        self, factor: np.ndarray, cross: np.ndarray, grams: np.ndarray, *, l1: float = 0.0, l2: float = 0.0
    ) -> np.ndarray: ...


#: Registered rules of the masked Frobenius loss by name: ``n`` problems (rows of W, or columns of H, in an
#: ``(n, k)`` layout), each with the Gram of its observed entries (``(n, k, k)``; see :mod:`dnmf.core.masked`).
MASKED_RULES: dict[str, MaskedRule] = {"hals": hals.update_each, "bpp": bpp_masked.update_each}


@dataclass(frozen=True)
class Solver:
    """What one solver is and supports.

    Attributes
    ----------
    name : str
        The registry name, as ``NMF(solver=...)`` and ``dnmf fit --solver`` take it.
    rule : str
        The Frobenius rule in :data:`RULES`.
    beta_rule : str or None
        The rule in :data:`BETA_RULES` for other β-divergences (and masked losses), if the solver has one.
    losses : tuple of str
        ``beta_loss`` values it supports: names of :data:`BETA_LOSSES`, and ``"beta"`` for any float.
    masks : bool
        Whether it fits observed entries only (``missing='nan'``, ``fit(X, mask=...)``).
    masked_rule : str or None
        The rule in :data:`MASKED_RULES` for the masked Frobenius loss; without one, a masked fit uses
        ``beta_rule``.
    penalties : tuple of str
        ``"l1"`` and ``"l2"``, on W and H alike.
    aliases : tuple of str
        Other names for it (``"cd"`` is scikit-learn's name for HALS).
    summary : str
        One line for the CLI's help and the README.
    """

    name: str
    rule: str
    beta_rule: str | None
    losses: tuple[str, ...]
    masks: bool
    masked_rule: str | None
    penalties: tuple[str, ...]
    aliases: tuple[str, ...]
    summary: str


SOLVERS: dict[str, Solver] = {
    "hals": Solver("hals", "hals", None, ("frobenius",), True, "hals", ("l1", "l2"), ("cd",),
                   "fast HALS, exact coordinate descent (scikit-learn's 'cd')"),
    "mu": Solver("mu", "mu", "beta_mu", ("frobenius", "kullback-leibler", "itakura-saito", "beta"), True, None,
                 ("l1", "l2"), (), "multiplicative updates, any beta-divergence"),
    "bpp": Solver("bpp", "bpp", None, ("frobenius",), True, "bpp", ("l1", "l2"), (),
                  "ANLS by block principal pivoting: an exact NNLS solve per half-step"),
}

#: Other names for solvers, from :data:`SOLVERS`.
ALIASES: dict[str, str] = {alias: solver.name for solver in SOLVERS.values() for alias in solver.aliases}


def solver_names() -> list[str]:
    """All accepted solver names, aliases included."""
    return sorted([*SOLVERS, *ALIASES])


def canonical_solver(name: str) -> str:
    """Map an alias such as ``"cd"`` to the solver's registry name."""
    if not isinstance(name, str) or (name not in SOLVERS and name not in ALIASES):
        raise ValueError(f"Unknown solver {name!r}. Valid solvers are: {', '.join(map(repr, solver_names()))}.")
    return ALIASES.get(name, name)


def loss_name(beta_loss: str | float) -> str:
    """The capability a ``beta_loss`` needs: a name of :data:`BETA_LOSSES` (2 is ``"frobenius"``), else
    ``"beta"``."""
    if isinstance(beta_loss, str):
        return beta_loss
    for name, beta in BETA_LOSSES.items():
        if float(beta_loss) == beta:
            return name
    return "beta"


def beta_value(beta_loss: str | float) -> float:
    """The β of a ``beta_loss``: a name of :data:`BETA_LOSSES`, or the number itself."""
    return BETA_LOSSES[beta_loss] if isinstance(beta_loss, str) else float(beta_loss)


def supported_losses_text() -> str:
    """Which solver supports which loss, for error messages."""
    return "; ".join(f"solver={name!r} with beta_loss in {solver.losses!r}" for name, solver in SOLVERS.items())


def capability_table() -> str:
    """The Markdown table of :data:`SOLVERS` that the README shows (a test keeps the two equal)."""
    rows = ["| solver | aliases | losses (`beta_loss`) | missing values | penalties | what it is |",
            "|---|---|---|---|---|---|"]
    for name, spec in SOLVERS.items():
        losses = ", ".join("any float β" if loss == "beta" else f"`{loss}`" for loss in spec.losses)
        aliases = ", ".join(f"`{alias}`" for alias in spec.aliases) or "–"
        rows.append(f"| `{name}` | {aliases} | {losses} | {'yes' if spec.masks else 'no'} | "
                    f"{', '.join(spec.penalties)} on W and H | {spec.summary} |")
    return "\n".join(rows)


def rule_for(solver: str, beta_loss: str | float = "frobenius",
             masked: bool = False) -> UpdateRule | BetaRule | MaskedRule:
    """The rule that fits ``beta_loss`` (with an observation mask if ``masked``) for ``solver``.

    Raises
    ------
    ValueError
        If the solver does not support that loss or masks; the message names the solvers that do.
    """
    spec = SOLVERS[canonical_solver(solver)]
    loss = loss_name(beta_loss)
    if loss not in spec.losses:
        raise ValueError(f"Invalid beta_loss parameter: solver {solver!r} does not handle beta_loss = "
                         f"{beta_loss!r}. Supported: {supported_losses_text()}.")
    if masked and not spec.masks:
        able = ", ".join(repr(name) for name, s in SOLVERS.items() if s.masks)
        raise ValueError(f"solver={solver!r} does not handle missing values: use solver={able}, or impute the "
                         "missing entries first.")
    if loss == "frobenius" and not masked:
        return RULES[spec.rule]
    if loss == "frobenius" and spec.masked_rule is not None:
        return MASKED_RULES[spec.masked_rule]
    return BETA_RULES[spec.beta_rule]


def get_rule(name: str) -> UpdateRule:
    """The Frobenius rule of a solver (aliases accepted)."""
    return RULES[SOLVERS[canonical_solver(name)].rule]
