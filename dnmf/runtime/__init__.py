"""Ways of running a fit: the implementations of :class:`dnmf.core.seam.Runtime`, cluster configurations, TLS and
worker tuning.

:func:`current` picks the runtime for a fit from the Dask configuration value ``dnmf.executor``:

* ``"auto"`` (the default): a distributed client if one is active; else the in-process executor for input held in
  memory (NumPy, SciPy) and Dask's local schedulers for Dask arrays and stores;
* ``"in-process"``: the in-process executor whenever no distributed client is active, reading Dask and Zarr input
  into memory;
* ``"dask"``: always a Dask graph (a distributed client if active, else Dask's local schedulers).

``with dask.config.set({"dnmf.executor": "dask"}): model.fit(X)`` forces the graph path for one fit.
"""

from __future__ import annotations

from dnmf.core.seam import Runtime
from dnmf.runtime.client import active_client

__all__ = ["EXECUTORS", "Runtime", "current"]

EXECUTORS = ("auto", "in-process", "dask")


def current(*, in_memory_input: bool = False) -> Runtime:
    """The runtime a fit uses now (see the module's docstring).

    Parameters
    ----------
    in_memory_input : bool
        The input is a NumPy array or SciPy sparse matrix.

    Raises
    ------
    ValueError
        If ``dnmf.executor`` is not one of :data:`EXECUTORS`.
    """
    import dask

    executor = dask.config.get("dnmf.executor", "auto")
    if executor not in EXECUTORS:
        raise ValueError(f"Unknown dnmf.executor {executor!r} in the Dask configuration: use one of "
                         f"{', '.join(map(repr, EXECUTORS))}.")
    client = active_client()
    if client is not None:
        from dnmf.runtime.dask_graph import Distributed

        return Distributed(client)
    if executor == "in-process" or (executor == "auto" and in_memory_input):
        from dnmf.runtime.inprocess import InProcess

        return InProcess()
    from dnmf.runtime.dask_graph import DaskLocal

    return DaskLocal()
