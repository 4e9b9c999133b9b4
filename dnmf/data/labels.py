"""Row and column labels of a matrix store: the index of AnnData's ``obs``/``var`` data frames."""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from dnmf.data.sparse import SPARSE_ARRAY_CHUNK

__all__ = ["check_labels", "read_index", "write_index"]


def read_index(root: zarr.Group, name: str) -> np.ndarray | None:
    """The index of the data frame ``name`` (``obs`` or ``var``) of an AnnData root, as strings, or None."""
    if name not in root:
        return None
    frame = root[name]
    index = frame.attrs.get("_index", "_index")
    return np.asarray(frame[index][:], dtype=object).astype(str) if index in frame else None


def check_labels(labels: Any, shape: tuple[int, int]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(row_labels, column_labels)`` as string arrays of the matrix's lengths; either may be None."""
    if labels is None:
        return None, None
    if not isinstance(labels, (tuple, list)) or len(labels) != 2:
        raise ValueError("labels must be a (row_labels, column_labels) pair; either may be None.")
    checked = []
    for axis, (values, size) in enumerate(zip(labels, shape)):
        if values is None:
            checked.append(None)
            continue
        values = np.asarray(values, dtype=object).astype(str)
        if values.shape != (size,):
            what = "row" if axis == 0 else "column"
            raise ValueError(f"Got {values.size} {what} labels for a matrix with {size} {what}s.")
        checked.append(values)
    return checked[0], checked[1]


def write_index(root: zarr.Group, name: str, size: int, values: np.ndarray | None) -> None:
    """An AnnData data frame with only an index: the labels, or ``"0" … "size-1"`` (as AnnData's default)."""
    frame = root.create_group(name)
    frame.attrs.update({"_index": "_index", "column-order": [], "encoding-type": "dataframe",
                        "encoding-version": "0.2.0"})
    chunk = max(1, min(size, SPARSE_ARRAY_CHUNK))
    index = frame.create_array("_index", shape=(size,), dtype=str, chunks=(chunk,))
    for start in range(0, size, chunk):
        stop = min(start + chunk, size)
        index[start:stop] = values[start:stop] if values is not None else np.arange(start, stop).astype(str)
    index.attrs.update({"encoding-type": "string-array", "encoding-version": "0.2.0"})
