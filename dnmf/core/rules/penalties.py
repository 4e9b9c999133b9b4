"""The L2 penalty as the rules take it: added to the Gram, once."""

from __future__ import annotations

from typing import Any

from dnmf.core.rules.namespace import array_namespace

__all__ = ["regularized_gram"]


def regularized_gram(gram: Any, l2: float) -> Any:
    """``gram + l2·I``, the Gram of the L2-regularised least-squares problem (``gram`` itself when ``l2 = 0``)."""
    if l2 <= 0:
        return gram
    xp = array_namespace(gram)
    return gram + l2 * xp.eye(gram.shape[0], dtype=gram.dtype)
