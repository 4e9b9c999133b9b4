"""Lee–Seung multiplicative update for the Frobenius loss, with scikit-learn's regularisation."""

from __future__ import annotations

from typing import Any

import numpy as np

from dnmf.core.rules.penalties import regularized_gram

#: Guard for zero denominators, the value scikit-learn uses.
EPSILON = float(np.finfo(np.float32).eps)


def update(block: Any, cross: Any, gram: Any, *, l1: float = 0.0, l2: float = 0.0) -> Any:
    """One multiplicative update of ``block``, in the array namespace of the block (NumPy, CuPy, ...).

    Parameters
    ----------
    block : ndarray of shape (k, n_b)
        Current factor block, non-negative.
    cross : ndarray of shape (k, n_b)
        The data cross product for this block, e.g. ``(WᵀA)_j``.
    gram : ndarray of shape (k, k)
        The Gram matrix of the other factor, e.g. ``WᵀW``.
    l1, l2 : float
        Scaled L1 and L2 penalties on this factor.

    Returns
    -------
    ndarray of shape (k, n_b)
        ``block * cross / ((gram + l2·I) @ block + l1)``, zeros in the denominator replaced by ``EPSILON``.
    """
    denominator = regularized_gram(gram, l2) @ block
    if l1 > 0:
        denominator += l1
    denominator[denominator == 0] = EPSILON
    return block * (cross / denominator)
