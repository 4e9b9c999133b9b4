"""The L2 penalty as the rules take it: added to the Gram, once."""

from __future__ import annotations

import numpy as np

__all__ = ["regularized_gram"]


def regularized_gram(gram: np.ndarray, l2: float) -> np.ndarray:
    """``gram + l2·I``, the Gram of the L2-regularised least-squares problem (``gram`` itself when ``l2 = 0``)."""
    if l2 <= 0:
        return gram
    return gram + l2 * np.eye(gram.shape[0], dtype=gram.dtype)
