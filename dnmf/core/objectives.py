"""What an iteration minimises, and the graph that does it: the engine's one solver-specific seam.

An objective builds, from the products of :mod:`dnmf.core.products`, the graph of one iteration: the W-step, then the
H-step, then the loss ``‖A − WH‖²`` or its analogue, whose square root the engine reports and tests for
convergence. The engine persists that graph at once and keeps the collections the objective :meth:`carries
<Objective.carried>` between iterations; it knows nothing else of the maths.

* :class:`Frobenius`: ``½‖A − WH‖²`` with any rule of :data:`dnmf.core.rules.RULES`, from ``AHᵀ``, ``HHᵀ``, ``WᵀA`` and
  ``WᵀW``; the loss by the trace identity, at no extra pass over A.
* :class:`MaskedFrobenius`: ``½‖M ⊙ (A − WH)‖²`` with the rules of :data:`dnmf.core.rules.MASKED_RULES` (HALS, BPP),
  each row and column with the Gram of the other factor over its observed entries; one pass over A per
  half-step, and the loss from the H-step's products.
* :class:`BetaDivergence`: scikit-learn's ``D_β(A | WH)`` with the β multiplicative update
  (:mod:`dnmf.core.rules.beta_mu`), optionally over the observed entries of a masked A only. Each step reads A once
  for its numerator and denominator (unmasked KL: the numerator only; its denominator is a sum of the other
  factor), and the loss reads A once more.

:class:`dnmf.core.imputation.ImputedFrobenius` is a fourth: the masked Frobenius loss by EM steps of any plain rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import scipy.sparse as sp

from dnmf.core import products, strip_pass
from dnmf.core.kernels import ROUNDING_UNITS, aligned
from dnmf.core.records import Penalties
from dnmf.core.rules import BetaRule, MaskedRule, UpdateRule

__all__ = ["BetaDivergence", "Frobenius", "MaskedFrobenius", "Objective", "read_in_place", "update_cols",
           "update_rows"]


#: ``read_again(A, after)``: A for one more pass over it (see :meth:`Objective.iteration`).
ReadAgain = Callable[[Any, Any], Any]


def read_in_place(A: Any, after: Any) -> Any:
    """``read_again`` for an A held in memory: the same blocks serve every pass."""
    return A


class Objective(Protocol):
    #: Whether :meth:`iteration` reports the loss of the W and H it starts from (``"loss_before"``), not of those
    #: it ends with (``"loss"``): the engine then reads an iteration's loss from the next one, and evaluates
    #: :meth:`exact_loss` for the last.
    loss_lags: ClassVar[bool]

    def prepare(self, A: Any) -> dict[str, Any]:
        """Collections of A alone that every iteration reads besides A; the engine persists them once per fit and
        hands them to :meth:`iteration` with what it carries."""

    def carried(self, A: Any, W: Any, H: Any, *, update_h: bool) -> dict[str, Any]:
        """Collections the first iteration needs besides W and H, built from them; the engine persists them."""

    def exact_loss(self, A: Any, W: Any, H: Any) -> Any:
        """The loss of W and H (the square of what the engine reports) accurate to float64 rounding, at one pass
        over A: what the engine evaluates where an iteration's ``"loss_rounding"`` says its loss is noise."""

    def iteration(self, A: Any, W: Any, H: Any, carried: dict[str, Any], *, rule: UpdateRule,
                  penalties: Penalties, update_h: bool, with_initial_loss: bool,
                  read_again: ReadAgain = read_in_place) -> dict[str, Any]:
        """The graph of one iteration: ``"W"``, ``"H"`` (if ``update_h``), ``"loss"`` (a squared error, a float64
        scalar), optionally ``"loss_rounding"`` (an estimate of the rounding error of ``"loss"``; absent means
        exact), ``"initial_loss"`` (the loss at the incoming W and H, if asked) and new values of ``carried``; if
        :attr:`loss_lags`, ``"loss_before"`` (exact, at the incoming W and H) instead of the three losses.

        Every pass over A after the first uses ``read_again(A, after=X)``, X being a one-chunk product the pass
        needs anyway: A itself when A is held in memory; when it streams from its store, a copy under keys of its
        own whose reads wait for X (:func:`dnmf.core.products.reread`).
        """


#: Rows of W per call of the rule in :func:`update_rows`: a tile and its transpose stay in cache.
ROW_TILE_BYTES = 512 * 1024


def update_rows(block: np.ndarray, cross: np.ndarray, gram: np.ndarray, *, rule: UpdateRule, l1: float,
                l2: float) -> np.ndarray:
    """The W-step on one row block ``(m_i, k)``: the rule on the transposed problem, a tile of rows at a time.

    Every rule solves each column of its ``(k, n)`` block independently, so the rows of W can be updated in tiles;
    transposing a cache-sized tile costs a fraction of transposing the whole block (3× the rule itself at
    ``k = 32``). Tiles are aligned copies (see :func:`dnmf.core.products.aligned`), so results do not depend on where
    the block happens to sit in memory. A block of another array library (CuPy, ...) is updated whole, in its own
    namespace: tiles only pay for CPU caches.
    """
    if not isinstance(block, np.ndarray):
        return rule(block.T, cross.T, gram, l1=l1, l2=l2).T
    updated = np.empty_like(block)
    rows = max(64, ROW_TILE_BYTES // max(1, block.shape[1] * block.itemsize))
    for start in range(0, block.shape[0], rows):
        stop = min(start + rows, block.shape[0])
        tile = aligned(np.ascontiguousarray(block[start:stop].T))
        tile_cross = aligned(np.ascontiguousarray(cross[start:stop].T))
        updated[start:stop] = rule(tile, tile_cross, gram, l1=l1, l2=l2).T
    return aligned(updated)


def update_cols(block: np.ndarray, cross: np.ndarray, gram: np.ndarray, *, rule: UpdateRule, l1: float,
                l2: float) -> np.ndarray:
    """The H-step on one column block ``(k, n_j)``: the rule as it is, its result aligned."""
    return aligned(rule(block, cross, gram, l1=l1, l2=l2))


@dataclass(frozen=True)
class Frobenius:
    """``½‖A − WH‖²``; ``norm_squared_a`` is ``‖A‖²``, from the one validating pass over A."""

    norm_squared_a: float
    loss_lags: ClassVar[bool] = False

    def exact_loss(self, A: Any, W: Any, H: Any) -> Any:
        """``‖A − WH‖²`` from A's stored entries, accurate to float64 rounding, at one pass over A."""
        return products.residual_norm_squared(A, W, H)

    def prepare(self, A: Any) -> dict[str, Any]:
        return {}

    def carried(self, A: Any, W: Any, H: Any, *, update_h: bool) -> dict[str, Any]:
        carried = {"gram_h": products.gram_cols(H)}
        if not update_h:
            carried["aht"] = products.aht(A, H)
        return carried

    def iteration(self, A: Any, W: Any, H: Any, carried: dict[str, Any], *, rule: UpdateRule,
                  penalties: Penalties, update_h: bool, with_initial_loss: bool,
                  read_again: ReadAgain = read_in_place) -> dict[str, Any]:
        gram = products.regularized(carried["gram_h"], penalties.l2_w)
        update_w = {"rule": rule, "l1": penalties.l1_w, "l2": 0.0}
        wta = inner_before = None
        if update_h and read_again is not read_in_place and strip_pass.fuses(A):
            W_new, wta, inner_before = strip_pass.w_step_and_wta(A, W, H, update_rows, (gram,), **update_w)
        else:
            aht = carried["aht"] if "aht" in carried else products.aht(A, H)
            W_new = products.map_rows(update_rows, W, aht, small=(gram,), name="dnmf-update-w", **update_w)
            if with_initial_loss:
                inner_before = products.inner(aht, W, name="dnmf-loss-inner")
        gram_w = products.gram_rows(W_new)
        out: dict[str, Any] = {"W": W_new}
        if update_h:
            if wta is None:
                wta = products.wta(read_again(A, gram_w), W_new)
            H_new = products.map_cols(update_cols, H, wta, small=(products.regularized(gram_w, penalties.l2_h),),
                                      name="dnmf-update-h", rule=rule, l1=penalties.l1_h, l2=0.0)
            out["H"] = H_new
            out["gram_h"] = gram_h = products.gram_cols(H_new)
            cross_inner = products.inner(wta, H_new, name="dnmf-loss-inner")
        else:
            gram_h = carried["gram_h"]
            cross_inner = products.inner(aht, W_new, name="dnmf-loss-inner")
        out["loss"] = products.frobenius_loss_squared(self.norm_squared_a, cross_inner, gram_w, gram_h)
        out["loss_rounding"] = products.frobenius_rounding(self.norm_squared_a, cross_inner, gram_w, gram_h)
        if with_initial_loss:
            out["initial_loss"] = products.frobenius_loss_squared(self.norm_squared_a, inner_before,
                                                                  products.gram_rows(W), carried["gram_h"])
        return out


def _masked_update_rows(block: np.ndarray, parts: np.ndarray, *, rule: MaskedRule, l1: float,
                        l2: float) -> np.ndarray:
    """The masked W-step on one row block: each row with its own cross product and Gram, from
    :func:`dnmf.core.products.masked_aht`."""
    k = block.shape[1]
    grams = parts[:, k:].reshape(len(block), k, k)
    return aligned(np.ascontiguousarray(rule(block, parts[:, :k], grams, l1=l1, l2=l2), dtype=block.dtype))


def _masked_update_cols(block: np.ndarray, parts: np.ndarray, *, rule: MaskedRule, l1: float,
                        l2: float) -> np.ndarray:
    """The masked H-step on one column block, each column with its own cross product and Gram."""
    k = block.shape[0]
    grams = parts[k:].T.reshape(block.shape[1], k, k)
    updated = rule(np.ascontiguousarray(block.T), np.ascontiguousarray(parts[:k].T), grams, l1=l1, l2=l2)
    return aligned(np.ascontiguousarray(updated.T, dtype=block.dtype))


def _loss_of_terms(terms: np.ndarray, *, norm_squared_a: float) -> np.ndarray:
    return np.asarray(max(norm_squared_a - 2.0 * float(terms[0]) + float(terms[1]), 0.0))


def _rounding_of_terms(terms: np.ndarray, *, norm_squared_a: float, eps: float) -> np.ndarray:
    return np.asarray(ROUNDING_UNITS * eps * (norm_squared_a + 2.0 * abs(float(terms[0])) + abs(float(terms[1]))))


def _masked_loss(norm_squared_a: float, terms: Any, eps: float) -> tuple[Any, Any]:
    """``‖M ⊙ (A − WH)‖²`` from ``[cross, quadratic]`` (see :func:`dnmf.core.products.masked_terms`) and an
    estimate of its rounding error, as the trace identity's (:func:`dnmf.core.kernels.frobenius_rounding_block`)."""
    if isinstance(terms, np.ndarray):
        return (_loss_of_terms(terms, norm_squared_a=norm_squared_a),
                _rounding_of_terms(terms, norm_squared_a=norm_squared_a, eps=eps))
    scalar = {"drop_axis": 0, "dtype": np.float64, "meta": np.empty((), dtype=np.float64)}
    return (terms.map_blocks(_loss_of_terms, norm_squared_a=norm_squared_a, token="dnmf-loss-masked-total",
                             **scalar),
            terms.map_blocks(_rounding_of_terms, norm_squared_a=norm_squared_a, eps=eps,
                             token="dnmf-loss-masked-rounding", **scalar))


@dataclass(frozen=True)
class MaskedFrobenius:
    """``½‖M ⊙ (A − WH)‖²``, the Frobenius loss over the observed entries, for the rules of
    :data:`dnmf.core.rules.MASKED_RULES` (HALS, BPP): every row of W is fitted to its row's observed entries, every
    column of H to its column's.

    Each half-step reads A once (:func:`dnmf.core.products.masked_aht`, ``masked_wta``) for the cross products and
    the per-row (per-column) Grams over the observed entries: for dense blocks with NaN, the full Gram less the
    outer products at the unobserved entries (O(unobserved · k²), the correction RcppML makes for its holdouts),
    whose pattern :meth:`prepare` finds once per fit;
    for CSR blocks, the outer products at the stored entries (O(nnz · k²)). The loss then comes from the H-step's
    products, ``‖M ⊙ A‖² − 2⟨C, H⟩ + Σ_j h_jᵀ G_j h_j``, at no further pass; ``norm_squared_a`` is ``‖M ⊙ A‖²``.
    ``holes``: A's CSR blocks are holed (NaN at the unobserved entries, unstored entries observed zeros; see
    :mod:`dnmf.core.divergence`), and are corrected at their NaN as dense blocks are.
    """

    norm_squared_a: float
    holes: bool = False
    loss_lags: ClassVar[bool] = False

    def _unobserved(self, A: Any) -> Any:
        return None if sp.issparse(A._meta) and not self.holes else products.unobserved(A)

    def prepare(self, A: Any) -> dict[str, Any]:
        """The pattern of the unobserved entries (NaN) of a dense or holed A, found once instead of in every product
        (:func:`dnmf.core.products.unobserved`); nothing for another sparse A, whose stored entries are the
        observed ones."""
        unobserved = self._unobserved(A)
        return {} if unobserved is None else {"unobserved": unobserved}

    def carried(self, A: Any, W: Any, H: Any, *, update_h: bool) -> dict[str, Any]:
        return {} if update_h else {"aht_masked": products.masked_aht(A, H, self._unobserved(A))}

    def exact_loss(self, A: Any, W: Any, H: Any) -> Any:
        """``‖M ⊙ (A − WH)‖²`` entry by entry in float64, at one pass over A."""
        return products.beta_divergence(A, W, H, beta=2.0, masked=True, holes=self.holes)

    def iteration(self, A: Any, W: Any, H: Any, carried: dict[str, Any], *, rule: MaskedRule,
                  penalties: Penalties, update_h: bool, with_initial_loss: bool,
                  read_again: ReadAgain = read_in_place) -> dict[str, Any]:
        unobserved = carried.get("unobserved")
        rows = carried["aht_masked"] if "aht_masked" in carried else products.masked_aht(A, H, unobserved)
        W_new = products.map_rows(_masked_update_rows, W, rows, name="dnmf-update-w", rule=rule,
                                  l1=penalties.l1_w, l2=penalties.l2_w)
        eps = float(np.finfo(W.dtype).eps)
        out: dict[str, Any] = {"W": W_new}
        if update_h:
            cols = products.masked_wta(read_again(A, products.sum_rows(W_new)), W_new, unobserved)
            out["H"] = H_new = products.map_cols(_masked_update_cols, H, cols, name="dnmf-update-h", rule=rule,
                                                 l1=penalties.l1_h, l2=penalties.l2_h)
            terms = products.masked_terms(cols, H_new, by_rows=False)
        else:
            terms = products.masked_terms(rows, W_new, by_rows=True)
        out["loss"], out["loss_rounding"] = _masked_loss(self.norm_squared_a, terms, eps)
        if with_initial_loss:
            out["initial_loss"], _ = _masked_loss(self.norm_squared_a, products.masked_terms(rows, W, by_rows=True),
                                                  eps)
        return out


def _split_gradient(parts: np.ndarray, k: int, axis: int, sums: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Numerator and denominator of one block from a product of
    :func:`dnmf.core.products.beta_aht_and_divergence`/``beta_wta``; with ``sums`` (unmasked KL), the denominator is
    that ``(k,)`` vector as a column."""
    numerator = parts[:, :k] if axis == 1 else parts[:k]
    if sums is not None:
        return numerator, sums
    return numerator, parts[:, k:] if axis == 1 else parts[k:]


def _beta_update_rows(block: np.ndarray, parts: np.ndarray, *sums: np.ndarray, rule: BetaRule, beta: float,
                      l1: float, l2: float) -> np.ndarray:
    """The β W-step on one row block (rows of W), in the rule's transposed layout."""
    k = block.shape[1]
    numerator, denominator = _split_gradient(parts, k, 1, sums[0] if sums else None)
    denominator = denominator[:, None] if sums else denominator.T
    updated = rule(np.ascontiguousarray(block.T), np.ascontiguousarray(numerator.T), denominator, beta=beta,
                   side="W", l1=l1, l2=l2)
    return aligned(np.ascontiguousarray(updated.T))


def _beta_update_cols(block: np.ndarray, parts: np.ndarray, *sums: np.ndarray, rule: BetaRule, beta: float,
                      l1: float, l2: float) -> np.ndarray:
    """The β H-step on one column block; a zero column sum of W counts as 1, as in scikit-learn."""
    k = block.shape[0]
    column_sums = None
    if sums:
        column_sums = np.where(sums[0] == 0, 1.0, sums[0]).astype(block.dtype)
    numerator, denominator = _split_gradient(parts, k, 0, column_sums)
    if sums:
        denominator = denominator[:, None]
    return rule(block, numerator, denominator, beta=beta, side="H", l1=l1, l2=l2)


@dataclass(frozen=True)
class BetaDivergence:
    """scikit-learn's ``D_β(A | WH)`` minimised by the β multiplicative update.

    Parameters
    ----------
    beta : float
        2 is the Frobenius norm, 1 the generalised Kullback–Leibler divergence, 0 Itakura–Saito.
    masked : bool
        A's blocks carry an observation mask (NaN in dense blocks, the stored pattern of CSR blocks; see
        :mod:`dnmf.core.divergence`) and the objective is over observed entries only.
    holes : bool
        A's masked CSR blocks are holed: NaN at the unobserved entries, unstored entries observed zeros.

    The engine's loss is ``2·D_β`` (``‖M ⊙ (A − WH)‖²`` for β = 2), so that its square root is scikit-learn's
    ``_beta_divergence(..., square_root=True)``. The update is the :class:`~dnmf.core.rules.BetaRule` the engine
    is given: the registry's ``"beta_mu"`` (:func:`dnmf.core.rules.beta_mu.step`) for ``solver="mu"``.
    """

    beta: float
    masked: bool = False
    holes: bool = False
    #: The loss of an iteration's W and H comes from the next iteration's first pass over A, which forms ``WH``
    #: for its gradient anyway (:func:`dnmf.core.products.beta_aht_and_divergence`): two passes per iteration,
    #: not three.
    loss_lags: ClassVar[bool] = True

    @property
    def _rank_one(self) -> bool:
        return self.beta == 1 and not self.masked

    def prepare(self, A: Any) -> dict[str, Any]:
        return {}

    def carried(self, A: Any, W: Any, H: Any, *, update_h: bool) -> dict[str, Any]:
        return {}

    def _loss(self, A: Any, W: Any, H: Any) -> Any:
        return products.beta_divergence(A, W, H, beta=self.beta, masked=self.masked, holes=self.holes)

    def exact_loss(self, A: Any, W: Any, H: Any) -> Any:
        """``2·D_β(A | WH)`` (over the observed entries if masked), entry by entry in float64: the same value as
        every iteration's loss, which is exact already."""
        return self._loss(A, W, H)

    def iteration(self, A: Any, W: Any, H: Any, carried: dict[str, Any], *, rule: BetaRule,
                  penalties: Penalties, update_h: bool, with_initial_loss: bool,
                  read_again: ReadAgain = read_in_place) -> dict[str, Any]:
        h_sums = products.sum_cols(H)
        rows, loss_before = products.beta_aht_and_divergence(read_again(A, h_sums), W, H, beta=self.beta,
                                                             masked=self.masked, holes=self.holes)
        W_new = products.map_rows(
            _beta_update_rows, W, rows, small=(h_sums,) if self._rank_one else (),
            name="dnmf-update-w", rule=rule, beta=float(self.beta), l1=penalties.l1_w, l2=penalties.l2_w)
        out: dict[str, Any] = {"W": W_new, "loss_before": loss_before}
        if update_h:
            w_sums = products.sum_rows(W_new)
            cols = products.beta_wta(read_again(A, w_sums), W_new, H, beta=self.beta, masked=self.masked,
                                     holes=self.holes)
            out["H"] = products.map_cols(
                _beta_update_cols, H, cols, small=(w_sums,) if self._rank_one else (),
                name="dnmf-update-h", rule=rule, beta=float(self.beta), l1=penalties.l1_h, l2=penalties.l2_h)
        return out
