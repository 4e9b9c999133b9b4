"""The estimator's parameters: what each accepts, declared once, and which of them identify a run."""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from dnmf.core import initialization, rules
from dnmf.core.records import Penalties
from dnmf.core.rules import solver_names

__all__ = ["BETA_LOSSES", "BETA_VALUES", "JOB_PARAMETERS", "LATER_PARAMETERS", "PARAMETER_CONSTRAINTS",
           "PARAMETER_ROLES", "RESULT_PARAMETERS", "parameters_with_role", "recorded_parameters",
           "validate_parameters", "entropy_of", "is_int", "is_real", "n_components_for", "penalties_for"]

#: beta_loss names, and as scikit-learn's β (from the solver registry, :data:`dnmf.core.rules.BETA_LOSSES`).
BETA_VALUES = dict(rules.BETA_LOSSES)
BETA_LOSSES = tuple(BETA_VALUES)


def is_int(value: Any, low: int) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low


def is_real(value: Any, low: float, high: float = np.inf) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and low <= value <= high


def _is_chunks(value: Any) -> bool:
    return value == "auto" or is_int(value, 1) or (isinstance(value, (tuple, list)) and len(value) == 2)


#: Every constructor parameter: a predicate and what it accepts, for the error message.
PARAMETER_CONSTRAINTS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n_components": (lambda v: v is None or v == "auto" or is_int(v, 1), "a positive integer, 'auto' or None"),
    "init": (lambda v: v is None or v in initialization.INIT_METHODS,
             "None or one of " + ", ".join(map(repr, initialization.INIT_METHODS))),
    "solver": (lambda v: isinstance(v, str) and v in solver_names(), "one of " + ", ".join(map(repr, solver_names()))),
    "beta_loss": (lambda v: v in BETA_LOSSES or (is_real(v, -np.inf) and not isinstance(v, str)),
                  "one of " + ", ".join(map(repr, BETA_LOSSES)) + " or a float"),
    "missing": (lambda v: v is None or v == "nan", "None or 'nan'"),
    "mask_updates": (lambda v: v in ("exact", "impute"), "'exact' or 'impute'"),
    "tol": (lambda v: is_real(v, 0.0) and np.isfinite(v), "a finite non-negative number"),
    "max_iter": (lambda v: is_int(v, 1), "a positive integer"),
    "random_state": (lambda v: v is None or is_int(v, 0)
                     or isinstance(v, (np.random.RandomState, np.random.Generator)),
                     "None, a non-negative integer, a numpy.random.RandomState or a numpy.random.Generator"),
    "alpha_W": (lambda v: is_real(v, 0.0) and np.isfinite(v), "a finite non-negative number"),
    "alpha_H": (lambda v: v == "same" or (is_real(v, 0.0) and np.isfinite(v)),
                "a finite non-negative number or 'same'"),
    "l1_ratio": (lambda v: is_real(v, 0.0, 1.0), "a number in [0, 1]"),
    "verbose": (lambda v: isinstance(v, (bool, numbers.Integral)) and v >= 0, "a non-negative integer or bool"),
    "callback": (lambda v: v is None or callable(v), "None or a callable(record)"),
    "chunks": (_is_chunks, "'auto', a block size such as 10_000, or a (rows, columns) pair"),
    "checkpoint": (lambda v: v is None or isinstance(v, (str, os.PathLike)), "None or a path or URL"),
    "checkpoint_every": (lambda v: v is None or is_int(v, 1), "None or a positive integer"),
    "checkpoint_seconds": (lambda v: v is None or is_real(v, 0.0), "None or a non-negative number of seconds"),
}

#: What each parameter that matters to a run's identity is part of: ``"factors"``, it changes the factors a fit
#: produces (a checkpoint resumes only under equal values); ``"job"``, it decides which result a batch job
#: produces (a finished result counts as the job's only under equal values).
PARAMETER_ROLES: dict[str, tuple[str, ...]] = {
    "n_components": ("factors", "job"),
    "init": ("factors", "job"),
    "solver": ("factors", "job"),
    "beta_loss": ("factors", "job"),
    "missing": ("factors", "job"),
    "mask_updates": ("factors", "job"),
    "tol": ("factors", "job"),
    "random_state": ("factors", "job"),
    "alpha_W": ("factors", "job"),
    "alpha_H": ("factors", "job"),
    "l1_ratio": ("factors", "job"),
    "max_iter": ("job",),
    "chunks": ("job",),
}


def parameters_with_role(role: str) -> tuple[str, ...]:
    """The parameters of :data:`PARAMETER_ROLES` that play ``role``, in table order."""
    return tuple(name for name, roles in PARAMETER_ROLES.items() if role in roles)


RESULT_PARAMETERS = parameters_with_role("factors")
JOB_PARAMETERS = parameters_with_role("job")

#: Parameters added after the first release, with the value that runs recorded without them had: a checkpoint or
#: result records such a parameter only at another value, so that those written before it still match.
LATER_PARAMETERS: dict[str, Any] = {"mask_updates": "exact"}


def recorded_parameters(values: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """``values`` of ``names`` as a run records them (see :data:`LATER_PARAMETERS`)."""
    return {name: values[name] for name in names
            if not (name in LATER_PARAMETERS and values[name] == LATER_PARAMETERS[name])}


def entropy_of(random_state: Any) -> int:
    """A seed for the per-block random streams, from anything ``random_state`` accepts."""
    if random_state is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(np.iinfo(np.int64).max))
    return int(random_state)


def validate_parameters(params: dict[str, Any]) -> None:
    """Check every parameter against :data:`PARAMETER_CONSTRAINTS`, and the solver against the loss, before any
    pass over the data.

    Raises
    ------
    ValueError
        Naming the parameter, what it accepts and what it got.
    """
    for name, (accepts, description) in PARAMETER_CONSTRAINTS.items():
        value = params[name]
        if not accepts(value):
            raise ValueError(f"The {name!r} parameter of NMF must be {description}. Got {value!r} instead.")
    rules.rule_for(params["solver"], params["beta_loss"])


def n_components_for(model: Any, n_features: int, W: Any, H: Any) -> int:
    """``k``: ``n_components``, or for ``None`` the number of features, or for ``'auto'`` the custom factors' rank
    when given."""
    if model.n_components is None:
        return n_features
    if model.n_components == "auto":
        if W is not None:
            return int(np.shape(W)[1])
        if H is not None:
            return int(np.shape(H)[0])
        return n_features
    return int(model.n_components)


def penalties_for(model: Any, shape: tuple[int, int]) -> Penalties:
    """The scaled L1 and L2 penalties of ``model``'s ``alpha_W``, ``alpha_H`` and ``l1_ratio`` for an input of
    ``shape``."""
    alpha_h = model.alpha_W if model.alpha_H == "same" else model.alpha_H
    return Penalties.from_alphas(shape, model.alpha_W, alpha_h, model.l1_ratio)
