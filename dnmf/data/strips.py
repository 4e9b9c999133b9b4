"""Row strips: what every ingest reader builds, and how they become one Dask array.

A reader (see :mod:`dnmf.data.formats`) produces one raw strip per row block: a NumPy array, a SciPy sparse
matrix, or COO pieces from the partitions of a triplet table. :func:`assemble` turns them into a Dask array whose
tasks check the values (finite, non-negative) and build CSR with duplicates summed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dask
import dask.array as da
import numpy as np
import scipy.sparse as sp

from dnmf.core.grid import Chunks, float_dtype, resolve_chunks
from dnmf.runtime import current

if TYPE_CHECKING:
    from dask.delayed import Delayed

__all__ = ["Converted", "Coo", "Plan", "SourceError", "assemble", "check_fits", "describe", "finish", "out_dtype",
           "split_rows", "triplet_strips", "unreadable"]

#: Triplets: row positions, column positions, values.
Coo = tuple[np.ndarray, np.ndarray, np.ndarray]


class SourceError(ValueError):
    """A problem with the source's content, found by a task while it reads the source."""


@dataclass(frozen=True)
class Plan:
    """What every reader needs besides the path."""

    source: str
    chunks: Chunks
    block_rows: int | None
    row_col_value: tuple[str, str, str] | None

    def grid(self, shape: tuple[int, int], nbytes: int, sparse: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Row strips and column blocks: from ``chunks`` (``"auto"``: :func:`dnmf.core.grid.default_grid`), rows
        overridden by ``block_rows``. Sparse strips stay whole: a CSR store has no column blocks. Sparse strips
        are sized for the row pointers too (8 bytes a row), so that a source of many rows streams.

        Raises
        ------
        ValueError
            If the shape the source declares is too large for any fit here (see :func:`check_fits`).
        """
        m, n = shape
        check_fits(shape, self.source)
        if sparse:
            nbytes += 8 * (m + 1)
        rows, cols = resolve_chunks(self.chunks, shape, current().grid(shape, nbytes))
        if self.block_rows is not None:
            rows = da.core.normalize_chunks(self.block_rows, (m,))[0]
        return tuple(int(r) for r in rows), (n,) if sparse else tuple(int(c) for c in cols)


def check_fits(shape: tuple[int, int], source: str) -> None:
    """Refuse a declared shape whose factors could not be held even at rank 1 in float32 (4 bytes a row and a
    column) in the cluster's memory (this machine's when no cluster is active): a crafted or mistyped header
    must not make dnmf allocate for it.

    Raises
    ------
    ValueError
        Naming the source, the shape and both sizes.
    """
    need, have = 4 * (shape[0] + shape[1]), current().total_memory
    if need > have:
        raise ValueError(f"{source!r} declares a {shape[0]:,} × {shape[1]:,} matrix: its factors alone would need "
                         f"{need / 2**30:.3g} GiB even at rank 1, more than the {have / 2**30:.3g} GiB of memory "
                         "available. Check the file's header (size line or shape).")


@dataclass(frozen=True)
class Converted:
    array: da.Array
    labels: tuple[np.ndarray | None, np.ndarray | None] | None = None



def out_dtype(dtype: Any, source: str) -> np.dtype:
    """The dtype the store gets (:func:`dnmf.core.grid.float_dtype`); a ValueError naming ``source`` otherwise."""
    try:
        return float_dtype(dtype)
    except TypeError as error:
        raise ValueError(f"{source!r} holds {np.dtype(dtype)} values; a matrix for NMF needs real numbers.") from error


def describe(error: BaseException) -> str:
    """The root cause of an error (Dask wraps a reader's error in its own), as 'Type: message'."""
    while error.__cause__ is not None:
        error = error.__cause__
    return f"{type(error).__name__}: {error}"


def unreadable(source: str, fmt: str, error: Exception) -> ValueError:
    return ValueError(f"Could not read {source!r} as {fmt}: {describe(error)}")


def finish(raw: Any, r0: int, shape: tuple[int, int], height: int, dtype: np.dtype, source: str,
           what: str, entries: int | None = None) -> np.ndarray | sp.csr_matrix:
    """One row strip, rows ``r0:r0+height``, from a NumPy array, a SciPy sparse matrix, or a list of COO pieces
    ``(rows, cols, values, lines)`` (CSR with duplicates summed); its values checked.

    ``entries``: the number of entries the source declares. Every strip receives one piece from each partition,
    and each piece carries its partition's number of lines, so every strip can check the total.
    """
    span = f"rows {r0}–{r0 + height - 1}"
    if isinstance(raw, np.ndarray):
        block = np.asarray(raw, dtype=dtype)
    elif sp.issparse(raw):
        block = sp.csr_matrix(raw, dtype=dtype)
    else:
        *arrays, lines = zip(*raw)
        if entries is not None and sum(lines) != entries:
            raise SourceError(f"{source!r} declares {entries} entries on its size line but holds {sum(lines)}: it "
                              "is truncated, or its size line is wrong.")
        rows, cols, values = (np.concatenate(column) for column in arrays)
        rows = rows - r0
        if len(rows) and (rows.min() < 0 or rows.max() >= height or cols.min() < 0 or cols.max() >= shape[1]):
            raise SourceError(f"Entries of {source!r} ({span}) lie outside the {shape[0]} × {shape[1]} matrix it "
                              "declares.")
        block = sp.csr_matrix((values.astype(dtype, copy=False), (rows, cols)), shape=(height, shape[1]))
    values = block.data if sp.issparse(block) else block
    if values.size and not np.isfinite(values).all():
        raise SourceError(f"NaN or infinite values in {source!r} ({what}{span}). NMF needs finite values: impute "
                          "or drop missing entries first.")
    if values.size and values.min() < 0:
        raise SourceError(f"Negative values in {source!r} ({what}smallest {values.min():g}, {span}). NMF needs "
                          "non-negative data: shift or clip it first.")
    if sp.issparse(block):
        block.sum_duplicates()
        block.eliminate_zeros()
    return block


def _columns(strip: Any, start: int, stop: int) -> Any:
    return strip[:, start:stop]


def assemble(raws: list[Any], shape: tuple[int, int], grid: tuple[tuple[int, ...], tuple[int, ...]],
             dtype: np.dtype, sparse: bool, source: str, what: str = "", entries: int | None = None) -> da.Array:
    """A Dask array from one raw row strip per row block of ``grid`` (values or Delayed), cut into its columns;
    ``entries`` is checked by :func:`finish`."""
    rows, cols = grid
    meta = sp.csr_matrix((0, 0), dtype=dtype) if sparse else np.empty((0, 0), dtype=dtype)
    starts, col_edges = np.cumsum((0, *rows)), np.cumsum((0, *cols))
    blocks = []
    for raw, r0, height in zip(raws, starts, rows):
        strip = dask.delayed(finish, pure=True)(raw, int(r0), shape, height, dtype, source, what, entries)
        pieces = [strip] if len(cols) == 1 else [dask.delayed(_columns, pure=True)(strip, int(c0), int(c1))
                                                 for c0, c1 in zip(col_edges[:-1], col_edges[1:])]
        blocks.append([da.from_delayed(piece, shape=(height, width), dtype=dtype, meta=meta)
                       for piece, width in zip(pieces, cols)])
    return da.block(blocks)


def split_rows(part: Any, to_coo: Callable[..., Coo], args: tuple[Any, ...],
               starts: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """One partition of a triplet table as COO pieces, one per row strip, each with the partition's number of
    lines (rows outside the matrix go to the first or last piece, where :func:`finish` reports them)."""
    lines = len(part)
    rows, cols, values = to_coo(part, *args)
    if len(starts) == 1:
        return [(rows, cols, values, lines)]
    strip = np.clip(np.searchsorted(starts, rows, side="right") - 1, 0, len(starts) - 1)
    order = np.argsort(strip, kind="stable")
    bounds = np.searchsorted(strip[order], np.arange(len(starts) + 1))
    rows, cols, values = rows[order], cols[order], values[order]
    return [(rows[a:b], cols[a:b], values[a:b], lines) for a, b in zip(bounds[:-1], bounds[1:])]


def triplet_strips(parts: list[Delayed], to_coo: Callable[..., Coo], args: tuple[Any, ...],
                   rows: tuple[int, ...]) -> list[list[Delayed]]:
    """For each row strip, its COO pieces: one from each partition of a triplet table.

    Each partition is read, converted and split once; a strip's task receives only its pieces. This is a task
    shuffle of (partitions × strips) small tasks, with no sort and no task holding more than a partition or a strip.
    """
    starts = np.cumsum((0, *rows))[:-1]
    splits = [dask.delayed(split_rows, nout=len(rows), pure=True)(part, to_coo, args, starts) for part in parts]
    return [[split[s] for split in splits] for s in range(len(rows))]

