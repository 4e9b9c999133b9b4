"""The result store: W and H as chunked Zarr arrays, labels, and the record of the fit as JSON attributes.

Layout of a result store (a Zarr v3 group)::

    result.zarr/
      zarr.json        attributes: {"dnmf": {"kind": "result", "version": 1}, "params": …, "n_iter": …,
                       "converged": …, "reconstruction_err": …, "loss_history": […], "timings": {…},
                       "fingerprint": {…}, "versions": {…}}
      W                (m, k), chunked by rows like the input
      H                (k, n)
      row_labels       (m,) strings, when the input had labels
      col_labels       (n,) strings

Everything is JSON or Zarr; nothing is pickled.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr
from dask.base import tokenize

from dnmf.data.store import Location, StoreError, open_node, staged_group, write_blocks

__all__ = ["Result", "load_result", "save_result"]

FORMAT = {"kind": "result", "version": 1}
#: Rows per Zarr chunk of W when it comes from NumPy (Dask input keeps its row blocks).
RESULT_ROW_CHUNK = 1 << 16


def package_versions() -> dict[str, str]:
    versions = {}
    for package in ("dnmf", "dask", "distributed", "numpy", "scipy", "zarr"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types; objects JSON cannot hold (callbacks, RNGs) become their ``repr``."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _labels_array(root: zarr.Group, name: str, values: np.ndarray) -> None:
    array = root.create_array(name, shape=values.shape, dtype=str, chunks=(max(1, min(len(values), 1 << 20)),))
    array[:] = values


def save_result(url: str | os.PathLike[str], W: Any, H: np.ndarray, record: dict[str, Any], *,
                row_labels: np.ndarray | None = None, col_labels: np.ndarray | None = None,
                overwrite: bool = False, storage_options: dict[str, Any] | None = None) -> None:
    """Write a result store; W (NumPy or Dask) is written block by block, on the cluster for Dask input.

    A failed write leaves no store under ``url``; an existing store is replaced only with ``overwrite=True``.
    """
    with staged_group(url, storage_options, overwrite) as root:
        if not isinstance(W, da.Array):
            W = np.asarray(W)
            W = da.from_array(W, chunks=(RESULT_ROW_CHUNK, -1), name=f"dnmf-result-w-{tokenize(W)}",
                              inline_array=True)
        W = W.rechunk((W.chunks[0][0], -1))
        target = root.create_array("W", shape=W.shape, dtype=W.dtype, chunks=(W.chunks[0][0], W.shape[1]))
        dask.compute(write_blocks(W, target, "dnmf-save-result-w"))
        root.create_array("H", data=np.asarray(H))
        for name, values in (("row_labels", row_labels), ("col_labels", col_labels)):
            if values is not None:
                _labels_array(root, name, np.asarray(values, dtype=object).astype(str))
        root.attrs.update({"dnmf": FORMAT, **jsonable(record), "versions": package_versions()})


@dataclass
class Result:
    """A fitted factorization read back from a result store.

    Attributes
    ----------
    W : dask.array.Array of shape (m, k)
        Read lazily from the store.
    H : ndarray of shape (k, n)
    row_labels, col_labels : ndarray of str or None
    info : dict
        The JSON record: ``params``, ``n_iter``, ``converged``, ``reconstruction_err``, ``loss_history``,
        ``timings``, ``fingerprint``, ``versions``.
    """

    W: da.Array
    H: np.ndarray
    row_labels: np.ndarray | None
    col_labels: np.ndarray | None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_components(self) -> int:
        return int(self.H.shape[0])

    def __repr__(self) -> str:
        from dnmf.view.display import summary_of_result, text_summary

        return f"Result({text_summary(summary_of_result(self))})"

    def _repr_html_(self) -> str:
        from dnmf.view.display import html_card, summary_of_result

        return html_card(summary_of_result(self))

    def top_features(self, n: int = 10) -> list[list[tuple[str, float]]]:
        """The ``n`` heaviest columns of every component, as ``(label, weight)`` pairs, heaviest first.

        Columns without labels are named by their index.
        """
        labels = self.col_labels if self.col_labels is not None else np.arange(self.H.shape[1]).astype(str)
        order = np.argsort(-self.H, axis=1, kind="stable")[:, :n]
        return [[(str(labels[j]), float(self.H[t, j])) for j in order[t]] for t in range(self.n_components)]


def _check_shapes(root: zarr.Group, info: dict[str, Any], url: str) -> None:
    """W, H and the labels must fit each other and the input the fit recorded, and H (read whole) must fit in
    memory: an edited shape must not make :func:`load_result` allocate for it."""
    from dnmf.runtime import current

    W, H = root["W"], root["H"]
    shape = (info.get("fingerprint") or {}).get("shape")
    problem = None
    if W.ndim != 2 or H.ndim != 2:
        problem = f"W has {W.ndim} and H {H.ndim} dimensions, not 2"
    elif H.shape[0] != W.shape[1]:
        problem = f"W of shape {W.shape} and H of shape {H.shape} disagree on the number of components"
    elif isinstance(shape, list) and len(shape) == 2 and (W.shape[0], H.shape[1]) != tuple(shape):
        problem = (f"W of shape {W.shape} and H of shape {H.shape}, but the input it records has {shape[0]} rows "
                   f"and {shape[1]} columns")
    else:
        for name, size in (("row_labels", W.shape[0]), ("col_labels", H.shape[1])):
            if name in root and root[name].shape != (size,):
                problem = f"{root[name].shape[0]} {name.replace('_', ' ')} for {size}"
    if problem:
        raise StoreError(f"The result store {url!r} is inconsistent: {problem}. It was damaged or edited; fit again.")
    nbytes = math.prod(H.shape) * np.dtype(H.dtype).itemsize
    if nbytes > current().total_memory:
        raise StoreError(f"The result store {url!r} has an H of {nbytes / 2**30:.3g} GiB, more than the memory "
                         "available to read it.")


def load_result(url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> Result:
    """Open a result store written by :meth:`dnmf.NMF.save` or ``fit(..., out=url)``."""
    location = Location.parse(url, storage_options)
    root = open_node(location)
    if not isinstance(root, zarr.Group) or root.attrs.get("dnmf", {}).get("kind") != "result":
        raise StoreError(f"{location.url!r} is not a dnmf result store (no dnmf result attributes).")
    missing = [name for name in ("W", "H") if name not in root]
    if missing:
        raise StoreError(f"The result store {location.url!r} lacks {', '.join(missing)}.")
    info = json.loads(json.dumps(dict(root.attrs)))
    info.pop("dnmf", None)
    _check_shapes(root, info, location.url)
    labels = [np.asarray(root[name][:], dtype=object).astype(str) if name in root else None
              for name in ("row_labels", "col_labels")]
    W = da.from_zarr(root["W"], name=f"dnmf-read-result-w-{tokenize(location.url, info)}", inline_array=True)
    return Result(W=W, H=np.asarray(root["H"][:]), row_labels=labels[0],
                  col_labels=labels[1], info=info)
