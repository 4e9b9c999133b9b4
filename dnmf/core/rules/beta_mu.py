"""Multiplicative update for the β-divergence (Févotte & Idier, 2011), as scikit-learn's ``solver="mu"`` does it.

The rule takes the two halves of the gradient that the products layer formed, for the H-side layout of a
``(k, n_b)`` block of columns::

    new_block = update(block, numerator, denominator, l1=..., l2=..., gamma=..., flush_below=...)

For the H-step of ``D_β(A | WH)``, ``numerator = Wᵀ(A ⊙ (WH)^(β−2))`` and ``denominator = Wᵀ(WH)^(β−1)``; for
β = 1 the denominator is the column sums of W, a ``(k, 1)`` column broadcast over the block. With an observation
mask ``M``, both are taken over the observed entries only (``A ⊙ M``, ``(WH)^(β−1) ⊙ M``). The W-step is the same
rule on the transposed problem.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dnmf.core.rules.mu import EPSILON
from dnmf.core.rules.namespace import array_namespace

__all__ = ["EPSILON", "FLUSH_BELOW", "gamma", "update"]

#: Entries of an updated factor below this are set to zero for β < 1 (W and H) and β = 1 (H), as in scikit-learn.
FLUSH_BELOW = float(np.finfo(np.float64).eps)


def gamma(beta: float) -> float:
    """The exponent of the majorisation–minimisation update, ``1/(2 − β)`` for β < 1, ``1/(β − 1)`` for β > 2,
    else 1."""
    if beta < 1:
        return 1.0 / (2.0 - beta)
    if beta > 2:
        return 1.0 / (beta - 1.0)
    return 1.0


def update(block: Any, numerator: Any, denominator: Any, *, l1: float = 0.0, l2: float = 0.0,
           gamma: float = 1.0, flush_below: float = 0.0) -> Any:
    """One multiplicative update of ``block``: ``block · (numerator / (denominator + l1 + l2 · block))^gamma``,
    in the array namespace of the block.

    Parameters
    ----------
    block : ndarray of shape (k, n_b)
        Current factor block, non-negative.
    numerator : ndarray of shape (k, n_b)
        The data half of the gradient, e.g. ``Wᵀ(A ⊙ (WH)^(β−2))`` for the H-step.
    denominator : ndarray of shape (k, n_b) or (k, 1)
        The model half of the gradient, e.g. ``Wᵀ(WH)^(β−1)``, or a column broadcast over the block.
    l1, l2 : float
        Scaled L1 and L2 penalties on this factor.
    gamma : float
        Exponent of the update, see :func:`gamma`.
    flush_below : float
        Entries of the result below this are set to zero (0 leaves them).

    Returns
    -------
    ndarray of shape (k, n_b)
        A new array; zeros of the regularised denominator are replaced by ``EPSILON`` first.
    """
    xp = array_namespace(block, numerator, denominator)
    denominator = xp.asarray(denominator, copy=True)
    if l1 > 0:
        denominator += l1
    if l2 > 0:
        denominator = denominator + l2 * block
    denominator[denominator == 0] = EPSILON
    delta = numerator / denominator
    if gamma != 1:
        delta **= gamma
    updated = block * delta
    if flush_below > 0:
        updated[updated < flush_below] = 0.0
    return updated


def step(block: Any, numerator: Any, denominator: Any, *, beta: float, side: str,
         l1: float = 0.0, l2: float = 0.0) -> Any:
    """The registered β rule (a :class:`dnmf.core.rules.BetaRule`): :func:`update` with scikit-learn's exponent
    for ``beta`` and its flushing of tiny entries (W for β < 1, H for β ≤ 1); ``side`` is ``"W"`` or ``"H"``."""
    flush = beta < 1 or (side == "H" and beta <= 1)
    return update(block, numerator, denominator, l1=l1, l2=l2, gamma=gamma(beta),
                  flush_below=FLUSH_BELOW if flush else 0.0)
