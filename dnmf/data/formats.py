"""The per-format readers of :func:`dnmf.data.ingest.ingest`: each turns a source into row strips (see
:mod:`dnmf.data.strips`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dask
import numpy as np
import scipy.sparse as sp

from dnmf.data.strips import (
    Converted,
    Coo,
    Plan,
    assemble,
    out_dtype,
    triplet_strips,
    unreadable,
)

if TYPE_CHECKING:  # pandas, pyarrow and anndata are needed only by the formats that use them
    import pandas as pd

__all__ = ["READERS", "READ_BLOCKSIZE"]

logger = logging.getLogger("dnmf")

#: Bytes per partition when reading Parquet (row groups are grouped up to it), CSV and Matrix Market files.
READ_BLOCKSIZE = 32 * 2**20
_COO = ("row", "col", "value")


def _npy_rows(path: str, start: int, stop: int) -> np.ndarray:
    return np.array(np.load(path, mmap_mode="r")[start:stop])


def _read_npy(plan: Plan) -> Converted:
    try:
        array = np.load(plan.source, mmap_mode="r")
    except (ValueError, OSError) as error:
        raise unreadable(plan.source, "a NumPy .npy file", error) from error
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{plan.source!r} holds an array of shape {array.shape}; a matrix must be 2-D and "
                         "non-empty.")
    dtype, shape = out_dtype(array.dtype, plan.source), tuple(array.shape)
    grid = plan.grid(shape, array.nbytes, sparse=False)
    edges = np.cumsum((0, *grid[0]))
    raws = [dask.delayed(_npy_rows, pure=True)(plan.source, int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
    return Converted(assemble(raws, shape, grid, dtype, False, plan.source))


def _in_memory(matrix: np.ndarray | sp.spmatrix, plan: Plan) -> Converted:
    """A matrix already read whole: cut into strips held in the task graph."""
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise ValueError(f"{plan.source!r} holds a matrix of shape {matrix.shape}; it must be non-empty.")
    sparse = sp.issparse(matrix)
    matrix = sp.csr_matrix(matrix) if sparse else np.asarray(matrix)
    dtype = out_dtype(matrix.dtype, plan.source)
    nbytes = matrix.nnz * (dtype.itemsize + 4) if sparse else matrix.nbytes
    grid = plan.grid(matrix.shape, nbytes, sparse)
    edges = np.cumsum((0, *grid[0]))
    raws = [matrix[a:b] for a, b in zip(edges[:-1], edges[1:])]
    return Converted(assemble(raws, matrix.shape, grid, dtype, sparse, plan.source))


def _read_npz(plan: Plan) -> Converted:
    try:
        matrix = sp.load_npz(plan.source)
    except (ValueError, OSError, KeyError) as error:
        raise unreadable(plan.source, "a SciPy sparse .npz file (scipy.sparse.save_npz)", error) from error
    return _in_memory(matrix, plan)


def _h5ad_rows(path: str, start: int, stop: int) -> np.ndarray | sp.spmatrix:
    import h5py
    from anndata.io import sparse_dataset

    with h5py.File(path, "r") as file:
        X = file["X"]
        return X[start:stop] if isinstance(X, h5py.Dataset) else sparse_dataset(X)[start:stop]


def _read_h5ad(plan: Plan) -> Converted:
    import anndata
    import h5py

    try:
        adata = anndata.read_h5ad(plan.source, backed="r")
    except Exception as error:  # h5py and anndata raise many types for unreadable files
        raise unreadable(plan.source, "an AnnData .h5ad file", error) from error
    try:
        X = adata.X
        if X is None:
            raise ValueError(f"The AnnData file {plan.source!r} has no X matrix.")
        sparse = not isinstance(X, h5py.Dataset)
        shape, dtype = tuple(X.shape), out_dtype(X.dtype, plan.source)
        if sparse and X.format != "csr":
            logger.warning("%r stores X as %s: every row strip reads all of it; convert X to CSR for speed.",
                           plan.source, X.format)
        nbytes = X.group["data"].shape[0] * (dtype.itemsize + 4) if sparse else int(np.prod(shape)) * dtype.itemsize
        labels = (np.asarray(adata.obs_names, dtype=str), np.asarray(adata.var_names, dtype=str))
    finally:
        adata.file.close()
    if 0 in shape:
        raise ValueError(f"The AnnData file {plan.source!r} has an empty X (shape {shape}).")
    grid = plan.grid(shape, nbytes, sparse)
    edges = np.cumsum((0, *grid[0]))
    raws = [dask.delayed(_h5ad_rows, pure=True)(plan.source, int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
    return Converted(assemble(raws, shape, grid, dtype, sparse, plan.source), labels)


def _text_blocks(source: str) -> dict[str, Any]:
    """``dask.dataframe.read_csv`` block options: compressed files cannot be split; a sample within one block."""
    if source.lower().endswith(".gz"):
        return {"blocksize": None}
    return {"blocksize": READ_BLOCKSIZE, "sample": min(READ_BLOCKSIZE, 256_000)}


def _mtx_header(source: str) -> tuple[list[str], tuple[int, int, int], int]:
    """The banner's words (lower case), the size line's numbers, and the number of lines up to the size line."""
    import fsspec

    with fsspec.open(source, "rt", compression="infer") as file:
        banner = file.readline()
        words = banner.lower().split()
        if len(words) != 5 or words[0] != "%%matrixmarket" or words[1] != "matrix":
            raise ValueError(f"{source!r} is not a Matrix Market file: its first line is {banner.strip()[:80]!r}, "
                             "not '%%MatrixMarket matrix <format> <field> <symmetry>'.")
        lines = 1
        for line in file:
            lines += 1
            if line.strip() and not line.startswith("%"):
                try:
                    return words, tuple(int(x) for x in line.split()), lines
                except ValueError:
                    break
    raise ValueError(f"{source!r} is not a Matrix Market file: it has no size line.")


def _mtx_positions(part: pd.DataFrame, symmetry: str) -> Coo:
    """1-based Matrix Market entries as 0-based triplets; the mirror image added for symmetric matrices."""
    rows, cols = part["row"].to_numpy(np.int64) - 1, part["col"].to_numpy(np.int64) - 1
    values = part["value"].to_numpy(np.float64) if "value" in part else np.ones(len(part))
    if symmetry == "general":
        return rows, cols, values
    off = rows != cols
    mirrored = -values[off] if symmetry == "skew-symmetric" else values[off]
    return np.concatenate([rows, cols[off]]), np.concatenate([cols, rows[off]]), np.concatenate([values, mirrored])


def _check_entry_count(source: str, entries: int, shortest_line: int) -> None:
    """Refuse a size line that declares more entries than the file's bytes can hold (``shortest_line`` bytes
    each, as in ``"1 1 1\n"``); a compressed file is checked by its entry count only, after reading."""
    import fsspec

    if source.lower().endswith(".gz"):
        return
    fs, path = fsspec.core.url_to_fs(source)
    size = int(fs.size(path))
    if entries * shortest_line > size:
        raise ValueError(f"{source!r} declares {entries:,} entries on its size line, but its {size:,} bytes hold "
                         f"at most {size // shortest_line:,}: the file is truncated, or its size line is wrong.")


def _read_mtx(plan: Plan) -> Converted:
    import dask.dataframe as dd

    words, size, header_lines = _mtx_header(plan.source)
    layout, field, symmetry = words[2:]
    if field not in ("real", "double", "integer", "pattern") or symmetry not in (
            "general", "symmetric", "skew-symmetric"):
        raise ValueError(f"{plan.source!r} is a {field} {symmetry} Matrix Market file; NMF needs real "
                         "(real, integer or pattern) general, symmetric or skew-symmetric matrices.")
    if layout == "array":
        import scipy.io

        try:
            dense = scipy.io.mmread(plan.source)
        except (ValueError, OSError) as error:
            raise unreadable(plan.source, "a Matrix Market array file", error) from error
        return _in_memory(dense, plan)
    if layout != "coordinate" or len(size) != 3:
        raise ValueError(f"{plan.source!r}: unknown Matrix Market layout {layout!r} or size line {size}.")
    m, n, nnz = size
    if m < 1 or n < 1 or nnz < 0:
        raise ValueError(f"{plan.source!r} declares an empty {m} × {n} matrix, or {nnz} entries.")
    _check_entry_count(plan.source, nnz, 4 if field == "pattern" else 6)
    names = ["row", "col"] if field == "pattern" else list(_COO)
    try:
        frame = dd.read_csv(plan.source, sep=r"\s+", header=None, names=names, usecols=range(len(names)),
                            skiprows=header_lines, dtype={"row": np.int64, "col": np.int64, "value": np.float64},
                            **_text_blocks(plan.source))
    except (ValueError, OSError) as error:
        raise unreadable(plan.source, "a Matrix Market coordinate file", error) from error
    dtype = np.dtype(np.float64)
    grid = plan.grid((m, n), nnz * (dtype.itemsize + 4), sparse=True)
    strips = triplet_strips(frame.to_delayed(), _mtx_positions, (symmetry,), grid[0])
    return Converted(assemble(strips, (m, n), grid, dtype, True, plan.source, entries=nnz))


# ---- Triplet tables --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Summary:
    """What the first pass over a triplet table learns."""

    rows: np.ndarray
    cols: np.ndarray
    min: float
    nonfinite: int
    missing_ids: int
    entries: int


def _summarize(part: pd.DataFrame) -> _Summary:
    values = part["value"].to_numpy(np.float64, na_value=np.nan)
    finite = values[np.isfinite(values)]
    return _Summary(rows=np.asarray(part["row"].dropna().unique()), cols=np.asarray(part["col"].dropna().unique()),
                    min=float(finite.min()) if finite.size else np.inf, nonfinite=int(values.size - finite.size),
                    missing_ids=int(part["row"].isna().sum() + part["col"].isna().sum()), entries=len(part))


def _merge(*summaries: _Summary) -> _Summary:
    """Distinct ids (unsorted: hashing is much faster than sorting) and value checks of several partitions."""
    import pandas as pd

    return _Summary(rows=pd.unique(np.concatenate([s.rows for s in summaries])),
                    cols=pd.unique(np.concatenate([s.cols for s in summaries])),
                    min=min(s.min for s in summaries), nonfinite=sum(s.nonfinite for s in summaries),
                    missing_ids=sum(s.missing_ids for s in summaries), entries=sum(s.entries for s in summaries))


def _positions(part: pd.DataFrame, row_ids: np.ndarray, col_ids: np.ndarray, dtype: np.dtype) -> Coo:
    """Ids to positions in the sorted distinct ids. Each task builds its own hash tables: pandas' lazily built
    index engine is not safe to share between threads."""
    import pandas as pd

    return (pd.Index(row_ids).get_indexer(part["row"]), pd.Index(col_ids).get_indexer(part["col"]),
            part["value"].to_numpy(dtype, na_value=np.nan))


def _sorted_ids(ids: np.ndarray, column: str, source: str) -> np.ndarray:
    try:
        return np.sort(ids)
    except TypeError as error:
        raise ValueError(f"The ids in column {column!r} of {source!r} mix types that do not sort together (e.g. "
                         "numbers and strings); make them one type.") from error


def _open_table(plan: Plan, fmt: str) -> tuple[Any, tuple[str, str, str], np.dtype]:
    """The triplet table with columns renamed to row, col, value; the original names; the value dtype."""
    import dask.dataframe as dd

    def read(**kwargs: Any) -> Any:
        try:
            if fmt == "parquet":
                return dd.read_parquet(plan.source, split_row_groups="adaptive", blocksize=READ_BLOCKSIZE, **kwargs)
            return dd.read_csv(plan.source, **_text_blocks(plan.source), **kwargs)
        except Exception as error:  # pyarrow, fsspec and pandas raise many types for unreadable files
            raise unreadable(plan.source, fmt, error) from error

    table = read()
    available = list(table.columns)
    names = plan.row_col_value or tuple(available[:3])
    listing = f"available columns: {', '.join(map(repr, available))}"
    if len(names) < 3:
        raise ValueError(f"{plan.source!r} has {len(available)} column(s); a triplet table needs row id, column "
                         f"id and value columns ({listing}).")
    for name in names:
        if name not in available:
            raise ValueError(f"Column {name!r} not found in {plan.source!r}; {listing}.")
    r, c, v = names
    kind = table[v].dtype.kind if hasattr(table[v].dtype, "kind") else "O"
    if kind not in "biuf" and not len(table.head(1, npartitions=-1)):
        raise ValueError(f"{plan.source!r} holds no entries: it has a header line ({listing}) but no rows.")
    if kind not in "biuf":
        raise ValueError(f"Column {v!r} of {plan.source!r} holds {table[v].dtype} values, not numbers; pass "
                         f"row_col_value=(row id, column id, value) naming a numeric value column ({listing}).")
    dtype = out_dtype(table[v].dtype.numpy_dtype if hasattr(table[v].dtype, "numpy_dtype") else table[v].dtype,
                      plan.source)
    if fmt == "csv":  # pin the value type: Dask infers it from a sample, and later blocks may hold floats
        table = read(usecols=list(names), dtype={v: dtype})
    return table[list(names)].rename(columns=dict(zip(names, _COO))), (r, c, v), dtype


def _read_triplets(plan: Plan, fmt: str) -> Converted:
    frame, (r, c, v), dtype = _open_table(plan, fmt)
    summaries = [dask.delayed(_summarize, pure=True)(part) for part in frame.to_delayed()]
    while len(summaries) > 1:
        summaries = [dask.delayed(_merge, pure=True)(*summaries[i:i + 8]) for i in range(0, len(summaries), 8)]
    try:
        (summary,) = dask.compute(summaries[0])
    except Exception as error:  # any reader error: the file's content is at fault
        raise unreadable(plan.source, fmt, error) from error
    if summary.missing_ids:
        raise ValueError(f"{summary.missing_ids} missing id(s) in columns {r!r}/{c!r} of {plan.source!r}; every "
                         "entry needs a row and a column id.")
    if summary.nonfinite:
        raise ValueError(f"NaN or infinite values in {plan.source!r} (column {v!r}, {summary.nonfinite} of them). "
                         "NMF needs finite values: impute or drop missing entries first.")
    if summary.min < 0:
        raise ValueError(f"Negative values in {plan.source!r} (column {v!r}, smallest {summary.min:g}). NMF needs "
                         "non-negative data: shift or clip it first.")
    if not summary.entries:
        raise ValueError(f"{plan.source!r} holds no entries.")
    row_ids, col_ids = _sorted_ids(summary.rows, r, plan.source), _sorted_ids(summary.cols, c, plan.source)
    shape = (len(row_ids), len(col_ids))
    grid = plan.grid(shape, summary.entries * (dtype.itemsize + 4), sparse=True)
    ids = (dask.delayed(row_ids, pure=True), dask.delayed(col_ids, pure=True))  # one graph key each, not a copy a task
    strips = triplet_strips(frame.to_delayed(), _positions, (*ids, dtype), grid[0])
    array = assemble(strips, shape, grid, dtype, True, plan.source, f"column {v!r}, ")
    return Converted(array, (row_ids.astype(str), col_ids.astype(str)))


READERS = {
    "mtx": _read_mtx,
    "npz": _read_npz,
    "npy": _read_npy,
    "h5ad": _read_h5ad,
    "parquet": lambda plan: _read_triplets(plan, "parquet"),
    "csv": lambda plan: _read_triplets(plan, "csv"),
}
