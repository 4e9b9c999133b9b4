"""Local update rules: pure array code that never sees Dask.

A rule updates one block of a factor from products the engine has already formed. Every rule is written for the
H-side layout, a ``(k, n_b)`` block of columns::

    new_block = rule(block, cross, gram, l1=..., l2=...)

where, for the H-step, ``block = H_j``, ``cross = (WᵀA)_j`` and ``gram = WᵀW``. The W-step is the same rule on the
transposed problem: ``block = W_iᵀ``, ``cross = (AHᵀ)_iᵀ`` and ``gram = HHᵀ``. ``l1`` and ``l2`` are the already
scaled regularisation strengths of that factor, exactly as scikit-learn computes them.

Rules must not modify their arguments (the blocks belong to persisted Dask collections), must keep the factor
non-negative, and must never increase the regularised objective
``½‖A − WH‖² + l1·Σ|F| + ½·l2·‖F‖²`` in the factor they update.

Registered rules: ``"mu"`` (Lee–Seung multiplicative update), ``"hals"`` (fast HALS, alias ``"cd"``) and ``"bpp"``
(the exact non-negative least-squares solve by block principal pivoting, i.e. ANLS-BPP).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from dnmf.core.rules import bpp, hals, mu

__all__ = ["UpdateRule", "RULES", "ALIASES", "get_rule", "solver_names"]


class UpdateRule(Protocol):
    def __call__(
        self, block: np.ndarray, cross: np.ndarray, gram: np.ndarray, *, l1: float = 0.0, l2: float = 0.0
    ) -> np.ndarray: ...


RULES: dict[str, UpdateRule] = {"mu": mu.update, "hals": hals.update, "bpp": bpp.update}
ALIASES: dict[str, str] = {"cd": "hals"}


def solver_names() -> list[str]:
    """All accepted solver names, aliases included."""
    return sorted([*RULES, *ALIASES])


def canonical_solver(name: str) -> str:
    """Map an alias such as ``"cd"`` to the rule's registry name."""
    if not isinstance(name, str) or (name not in RULES and name not in ALIASES):
        raise ValueError(f"Unknown solver {name!r}. Valid solvers are: {', '.join(map(repr, solver_names()))}.")
    return ALIASES.get(name, name)


def get_rule(name: str) -> UpdateRule:
    """Return the update rule registered under ``name`` (aliases accepted)."""
    return RULES[canonical_solver(name)]
