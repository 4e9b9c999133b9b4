"""Missing entries by expectation–maximisation: every half-step fits A with its unobserved entries filled by the
current ``WH``, with any rule of :data:`dnmf.core.rules.RULES`.

Write ``Ā = M ⊙ A + (1 − M) ⊙ W₀H₀`` for A completed by the factors a half-step starts from. Then

    ``‖Ā − WH‖² = ‖M ⊙ (A − WH)‖² + ‖(1 − M) ⊙ (W₀H₀ − WH)‖²  ≥  ‖M ⊙ (A − WH)‖²``,

with equality at ``(W₀, H₀)``: the plain loss of ``Ā`` majorises the masked loss and touches it where the step
starts, so a step of a plain rule that does not increase ``‖Ā − WH‖²`` does not increase the masked loss either
(generalised EM, an MM algorithm), and the fixed points are the masked loss's. Each half-step fills with the
factors it starts from: the H-step with the W the W-step found.

A half-step costs a plain one, ``Ā_ij H_jᵀ`` per block filled one cached row tile at a time, plus ``WH`` at the
unobserved entries (O(unobserved · k)); :class:`~dnmf.core.objectives.MaskedFrobenius`, which solves each row
exactly on its observed entries, forms a Gram per row and column instead, O(unobserved · k²). The two reach the
same fixed points by different iterates; per iteration the exact step descends a little further, this one costs
a fraction of it at larger k (``benchmarks/cv_cost.py``).

Only blocks with NaN at their unobserved entries are filled: dense ones, and holed CSR blocks (whose unstored
entries are observed zeros, see :mod:`dnmf.core.divergence`); a CSR block whose stored pattern is the observed
set has no fill that would stay sparse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from dnmf.core import products
from dnmf.core.objectives import ReadAgain, read_in_place, update_cols, update_rows
from dnmf.core.records import Penalties
from dnmf.core.rules import UpdateRule

__all__ = ["ImputedFrobenius"]


def _update_rows_of_parts(block: np.ndarray, parts: np.ndarray, gram: np.ndarray, *, rule: UpdateRule,
                          l1: float, l2: float) -> np.ndarray:
    """The W-step on one row block from :func:`dnmf.core.products.imputed_aht`'s parts: their cross product."""
    return update_rows(block, parts[:, :block.shape[1]], gram, rule=rule, l1=l1, l2=l2)


@dataclass(frozen=True)
class ImputedFrobenius:
    """``½‖M ⊙ (A − WH)‖²`` by EM steps of a plain Frobenius rule (see the module's notes); ``norm_squared_a`` is
    ``‖M ⊙ A‖²``.

    Each half-step reads A once (:func:`dnmf.core.products.imputed_aht`, ``imputed_wta``). The loss lags: the
    W-step's pass fills A with the ``WH`` of the factors it starts from, where ``‖M ⊙ (A − WH)‖² = ‖Ā − WH‖²``, and
    the trace identity gives that from the W-step's own products and the squares of its fills
    (:func:`dnmf.core.products.imputed_cross_inner`), at no pass of its own. Its rounding is reported with it
    (``loss_rounding``), so that the engine evaluates the loss exactly where the identity cancels too far.
    """

    norm_squared_a: float
    #: A's CSR blocks are holed (see :mod:`dnmf.core.divergence`): filled at their stored NaN.
    holes: bool = False
    loss_lags: ClassVar[bool] = True

    def prepare(self, A: Any) -> dict[str, Any]:
        """The pattern of A's unobserved entries (its NaN), found once per fit."""
        return {"unobserved": products.unobserved(A)}

    def carried(self, A: Any, W: Any, H: Any, *, update_h: bool) -> dict[str, Any]:
        return {"gram_w": products.gram_rows(W), "gram_h": products.gram_cols(H)}

    def exact_loss(self, A: Any, W: Any, H: Any) -> Any:
        """``‖M ⊙ (A − WH)‖²`` entry by entry in float64, at one pass over A."""
        return products.beta_divergence(A, W, H, beta=2.0, masked=True, holes=self.holes)

    def iteration(self, A: Any, W: Any, H: Any, carried: dict[str, Any], *, rule: UpdateRule,
                  penalties: Penalties, update_h: bool, with_initial_loss: bool,
                  read_again: ReadAgain = read_in_place) -> dict[str, Any]:
        unobserved, gram_w_before, gram_h = carried["unobserved"], carried["gram_w"], carried["gram_h"]
        parts = products.imputed_aht(A, W, H, unobserved)
        cross_inner = products.imputed_cross_inner(parts, W)
        out: dict[str, Any] = {
            "loss_before": products.frobenius_loss_squared(self.norm_squared_a, cross_inner, gram_w_before, gram_h),
            "loss_rounding": products.frobenius_rounding(self.norm_squared_a, cross_inner, gram_w_before, gram_h)}
        out["W"] = W_new = products.map_rows(
            _update_rows_of_parts, W, parts, small=(products.regularized(gram_h, penalties.l2_w),),
            name="dnmf-update-w", rule=rule, l1=penalties.l1_w, l2=0.0)
        out["gram_w"] = gram_w = products.gram_rows(W_new)
        if update_h:
            wta = products.imputed_wta(read_again(A, gram_w), W_new, H, unobserved)
            out["H"] = H_new = products.map_cols(
                update_cols, H, wta, small=(products.regularized(gram_w, penalties.l2_h),), name="dnmf-update-h",
                rule=rule, l1=penalties.l1_h, l2=0.0)
            out["gram_h"] = products.gram_cols(H_new)
        return out
