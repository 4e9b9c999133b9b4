"""Missing entries by expectation–maximisation: every half-step fits A with its unobserved entries filled by the
current ``WH``, with any rule of :data:`dnmf.core.rules.RULES`.

Write ``Ā = M ⊙ A + (1 − M) ⊙ W₀H₀`` for A completed by the factors a half-step starts from. Then

    ``‖Ā − WH‖² = ‖M ⊙ (A − WH)‖² + ‖(1 − M) ⊙ (W₀H₀ − WH)‖²  ≥  ‖M ⊙ (A − WH)‖²``,

with equality at ``(W₀, H₀)``: the plain loss of ``Ā`` majorises the masked loss and touches it where the step
starts, so a step of a plain rule that does not increase ``‖Ā − WH‖²`` does not increase the masked loss either
(generalised EM, an MM algorithm), and the fixed points are the masked loss's. Each half-step fills with the
factors it starts from: the H-step with the W the W-step found.

A half-step costs a plain one, ``Ā_ij H_jᵀ`` per block from a filled copy of the block, plus ``WH`` at the
unobserved entries (O(unobserved · k)); :class:`~dnmf.core.objectives.MaskedFrobenius`, which solves each row
exactly on its observed entries, forms a Gram per row and column instead, O(unobserved · k²). The two reach the
same fixed points by different iterates; per iteration the exact step descends a little further, this one costs
a fraction of it at larger k (``benchmarks/cv_cost.py``).

Only dense blocks with NaN at their unobserved entries are filled: a masked CSR block's unobserved entries are
all those it does not store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from dnmf.core import products
from dnmf.core.objectives import ReadAgain, read_in_place, update_cols, update_rows
from dnmf.core.records import Penalties
from dnmf.core.rules import UpdateRule

__all__ = ["ImputedFrobenius"]


@dataclass(frozen=True)
class ImputedFrobenius:
    """``½‖M ⊙ (A − WH)‖²`` by EM steps of a plain Frobenius rule (see the module's notes); ``norm_squared_a`` is
    ``‖M ⊙ A‖²``.

    Each half-step reads A once (:func:`dnmf.core.products.imputed_aht`, ``imputed_wta``). The loss comes by the
    trace identity from the H-step's cross product, corrected at the unobserved entries by one pass over their
    pattern (:func:`dnmf.core.products.imputed_inner`), not over A.
    """

    norm_squared_a: float
    loss_lags: ClassVar[bool] = False

    def prepare(self, A: Any) -> dict[str, Any]:
        """The pattern of A's unobserved entries (its NaN), found once per fit."""
        return {"unobserved": products.unobserved(A)}

    def carried(self, A: Any, W: Any, H: Any, *, update_h: bool) -> dict[str, Any]:
        return {"gram_h": products.gram_cols(H)}

    def exact_loss(self, A: Any, W: Any, H: Any) -> Any:
        """``‖M ⊙ (A − WH)‖²`` entry by entry in float64, at one pass over A."""
        return products.beta_divergence(A, W, H, beta=2.0, masked=True)

    def iteration(self, A: Any, W: Any, H: Any, carried: dict[str, Any], *, rule: UpdateRule,
                  penalties: Penalties, update_h: bool, with_initial_loss: bool,
                  read_again: ReadAgain = read_in_place) -> dict[str, Any]:
        unobserved = carried["unobserved"]
        aht = products.imputed_aht(A, W, H, unobserved)
        W_new = products.map_rows(update_rows, W, aht, small=(products.regularized(carried["gram_h"], penalties.l2_w),),
                                  name="dnmf-update-w", rule=rule, l1=penalties.l1_w, l2=0.0)
        gram_w = products.gram_rows(W_new)
        out: dict[str, Any] = {"W": W_new}
        if update_h:
            wta = products.imputed_wta(read_again(A, gram_w), W_new, H, unobserved)
            out["H"] = H_new = products.map_cols(
                update_cols, H, wta, small=(products.regularized(gram_w, penalties.l2_h),), name="dnmf-update-h",
                rule=rule, l1=penalties.l1_h, l2=0.0)
            out["gram_h"] = gram_h = products.gram_cols(H_new)
            cross_inner = products.imputed_inner(products.inner(wta, H_new, name="dnmf-loss-inner"), unobserved,
                                                 filled_with=(W_new, H), at=(W_new, H_new))
        else:
            gram_h = carried["gram_h"]
            cross_inner = products.imputed_inner(products.inner(aht, W_new, name="dnmf-loss-inner"), unobserved,
                                                 filled_with=(W, H), at=(W_new, H))
        out["loss"] = products.frobenius_loss_squared(self.norm_squared_a, cross_inner, gram_w, gram_h)
        out["loss_rounding"] = products.frobenius_rounding(self.norm_squared_a, cross_inner, gram_w, gram_h)
        if with_initial_loss:
            initial_inner = products.imputed_inner(products.inner(aht, W, name="dnmf-loss-inner"), unobserved,
                                                   filled_with=(W, H), at=(W, H))
            out["initial_loss"] = products.frobenius_loss_squared(self.norm_squared_a, initial_inner,
                                                                  products.gram_rows(W), carried["gram_h"])
        return out
