"""Convert matrices from common file formats into a dnmf store (see :mod:`dnmf.data.store`).

Every format becomes a Dask array of row strips (NumPy blocks for dense sources, ``scipy.sparse.csr_matrix`` for
sparse ones) that :func:`dnmf.data.store.save_matrix` writes in parallel. What each format keeps in memory:

========================  ==============================================================================
``.npy``                  Memory-mapped; each task reads one row strip.
``.h5ad``                 Opened backed; each task reads one row strip of ``X`` (dense or CSR). A CSC ``X``
                          works but every strip reads all of it: convert it to CSR first for large files.
``.npz``                  Loaded whole into the calling process (zip members cannot be read in part).
``.mtx``                  Coordinate files stream like triplet tables (below), split into byte blocks of
                          :data:`READ_BLOCKSIZE`. A ``.mtx.gz`` cannot be split, so one task parses all of it
                          (its triplets must fit in a worker). Dense ``array`` files are read whole with
                          :func:`scipy.io.mmread`.
``.parquet``, ``.csv``    Stream in two passes over partitions of about :data:`READ_BLOCKSIZE`: one collects
                          the distinct row and column ids (small next to the table) and checks the values; the
                          other maps ids to positions and splits each partition into COO pieces by row strip,
                          which one task per strip combines into CSR.
========================  ==============================================================================

Values are checked on the way: NaN, infinity and negative values are errors naming the source.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dask
import dask.array as da
import numpy as np
import scipy.sparse as sp

from dnmf.data.matrix import Chunks, default_grid, even_chunks
from dnmf.runtime.client import n_workers, worker_memory

__all__ = ["FORMATS", "READ_BLOCKSIZE", "ingest"]

logger = logging.getLogger("dnmf")

FORMATS = ("mtx", "npz", "npy", "h5ad", "parquet", "csv")
_SUFFIXES = {".mtx": "mtx", ".mtx.gz": "mtx", ".npz": "npz", ".npy": "npy", ".h5ad": "h5ad", ".parquet": "parquet",
             ".parq": "parquet", ".pq": "parquet", ".csv": "csv", ".csv.gz": "csv"}
#: Formats read with NumPy, SciPy or h5py, which need a local file (the others also take fsspec URLs).
_LOCAL_FORMATS = ("npz", "npy", "h5ad")
#: What each format needs beyond dnmf's own dependencies.
_EXTRAS = {"mtx": "dask[dataframe]", "npz": "scipy", "npy": "numpy", "h5ad": "anndata and h5py",
           "parquet": "dask[dataframe] and pyarrow", "csv": "dask[dataframe]"}
#: Bytes per partition when reading Parquet (row groups are grouped up to it), CSV and Matrix Market files.
READ_BLOCKSIZE = 32 * 2**20
_COO = ("row", "col", "value")
#: Triplets: row positions, column positions, values.
Coo = tuple[np.ndarray, np.ndarray, np.ndarray]

if TYPE_CHECKING:  # pandas, pyarrow and anndata are needed only by the formats that use them
    import pandas as pd
    from dask.delayed import Delayed


class _SourceError(ValueError):
    """A problem with the source's content, found by a task while it reads the source."""


@dataclass(frozen=True)
class _Plan:
    """What every reader needs besides the path."""

    source: str
    chunks: Chunks
    block_rows: int | None
    row_col_value: tuple[str, str, str] | None

    def grid(self, shape: tuple[int, int], nbytes: int, sparse: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Row strips and column blocks: from ``chunks`` (``"auto"``: :func:`dnmf.data.matrix.default_grid`), rows
        overridden by ``block_rows``. Sparse strips stay whole: a CSR store has no column blocks."""
        m, n = shape
        if isinstance(self.chunks, str) and self.chunks == "auto":
            p, q = default_grid(shape, nbytes, n_workers(), worker_memory())
            rows, cols = even_chunks(m, p), even_chunks(n, q)
        else:
            message = (f"Invalid chunks={self.chunks!r} for a matrix of shape {shape}: pass 'auto', a block size "
                       "such as (10_000, 5_000), or block lengths per axis.")
            try:
                rows, cols = da.core.normalize_chunks(self.chunks, shape)
            except (ValueError, TypeError, ZeroDivisionError) as error:
                raise ValueError(message) from error
            if min(rows + cols) < 1:
                raise ValueError(message)
        if self.block_rows is not None:
            rows = da.core.normalize_chunks(self.block_rows, (m,))[0]
        return tuple(int(r) for r in rows), (n,) if sparse else tuple(int(c) for c in cols)


@dataclass(frozen=True)
class _Converted:
    array: da.Array
    labels: tuple[np.ndarray | None, np.ndarray | None] | None = None


def ingest(source: str | os.PathLike[str], url: str | os.PathLike[str], *, format: str | None = None,
           chunks: Chunks = "auto", row_col_value: tuple[str, str, str] | None = None, overwrite: bool = False,
           storage_options: dict[str, Any] | None = None, block_rows: int | None = None) -> str:
    """Convert a matrix file into a dnmf store, streaming it through Dask where the format allows.

    Parameters
    ----------
    source : str or path
        The file to convert: Matrix Market (``.mtx``, ``.mtx.gz``), SciPy sparse ``.npz``, NumPy ``.npy``,
        AnnData ``.h5ad``, or a triplet table (row id, column id, value) in Parquet (a file, a directory of
        files, or a glob) or CSV with a header line. Parquet, CSV and Matrix Market sources may also be fsspec
        URLs, read with fsspec's default configuration.
    url : str or path
        Local path or fsspec URL of the store to create.
    format : {"mtx", "npz", "npy", "h5ad", "parquet", "csv"}, optional
        The source's format; by default it is told from the file name.
    chunks : "auto", int or tuple
        Block grid of the conversion, as in :func:`dnmf.data.store.save_matrix`: dense stores keep it as their Zarr
        chunks; sparse sources use its row blocks as the strips each task builds.
    row_col_value : (str, str, str), optional
        For triplet tables: the row id, column id and value columns. Default: the first three columns. Ids
        (strings or integers) become positions in their sorted order and are stored as labels; duplicate
        (row, column) pairs are summed.
    overwrite : bool, default=False
        Replace an existing store at ``url``.
    storage_options : dict, optional
        fsspec options for ``url`` (the store), e.g. ``{"endpoint_url": ...}``.
    block_rows : int, optional
        Rows per strip, overriding the row blocks of ``chunks``: how much of the source one task holds.

    Returns
    -------
    str
        ``url``.

    Raises
    ------
    FileNotFoundError
        If ``source`` does not exist.
    FileExistsError
        If a store exists at ``url`` and ``overwrite`` is False (checked before reading anything); also, whatever
        ``overwrite`` says, if ``url`` is the source, lies inside it or holds it, or is something other than a store
        dnmf wrote (:class:`dnmf.data.safety.NotOwnStoreError`).
    ValueError
        For an unknown format, an unreadable source, a missing or non-numeric column, or values that are
        negative, NaN or infinite; the message names the source.
    """
    from dnmf.data.safety import NotOwnStoreError, overlapping
    from dnmf.data.store import Location, save_matrix

    source, url = os.fspath(source), os.fspath(url)
    if format is not None and format not in FORMATS:
        raise ValueError(f"Unknown format {format!r}; valid formats: {', '.join(FORMATS)}.")
    _check_exists(source)
    fmt = format or _detect_format(source)
    if fmt in _LOCAL_FORMATS and "://" in source:
        raise ValueError(f"{fmt} sources must be local files; copy {source!r} to a local disk first.")
    if row_col_value is not None and (fmt not in ("parquet", "csv") or len(row_col_value) != 3
                                      or len(set(row_col_value)) != 3):
        raise ValueError("row_col_value names three distinct columns (row id, column id, value) of a Parquet or "
                         f"CSV triplet table; got {row_col_value!r} for a {fmt} source.")
    if block_rows is not None and (not isinstance(block_rows, (int, np.integer)) or block_rows < 1):
        raise ValueError(f"block_rows must be a positive integer, got {block_rows!r}.")
    if overlapping(source, url):
        raise NotOwnStoreError(f"The store {url!r} and the source {source!r} are the same path or one lies inside "
                               "the other: writing the store would replace or change the source. Choose a store "
                               "path outside the source.")
    if Location.parse(url, storage_options).exists() and not overwrite:
        raise FileExistsError(f"A store already exists at {url!r}; pass overwrite=True to replace it.")

    plan = _Plan(source, chunks, None if block_rows is None else int(block_rows),
                 None if row_col_value is None else tuple(row_col_value))
    try:
        converted = _READERS[fmt](plan)
    except ImportError as error:
        raise ImportError(f"Ingesting {fmt} files needs {_EXTRAS[fmt]} ({error}); install with pip.") from error
    A = converted.array
    logger.info("Ingesting %s source %r (%d × %d, %s, %d row strips) into %r", fmt, source, *A.shape, A.dtype,
                A.numblocks[0], url)
    try:
        save_matrix(A, url, chunks="auto", labels=converted.labels, overwrite=overwrite,
                    storage_options=storage_options)
    except _SourceError as error:
        raise ValueError(str(error)) from None
    except (ValueError, TypeError) as error:
        raise ValueError(f"Could not convert {source!r} ({fmt}) into {url!r}: {_describe(error)}") from error
    return url


def _check_exists(source: str) -> None:
    import fsspec

    fs, path = fsspec.core.url_to_fs(source)
    found = fs.glob(path) if any(char in path for char in "*?[") else fs.exists(path)
    if not found:
        raise FileNotFoundError(f"No such file or directory: {source!r}.")


def _detect_format(source: str) -> str:
    name = source.rstrip("/").lower()
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    if os.path.isdir(source):
        names = [entry.lower() for entry in os.listdir(source)]
        for suffix in (".parquet", ".parq", ".pq", ".csv"):
            if any(entry.endswith(suffix) for entry in names):
                return _SUFFIXES[suffix]
    raise ValueError(f"Cannot tell the format of {source!r} from its name; pass format= one of "
                     f"{', '.join(FORMATS)}.")


def _out_dtype(dtype: Any, source: str) -> np.dtype:
    """float32 and float64 stay; other real numbers become float64."""
    dtype = np.dtype(dtype)
    if dtype in (np.float32, np.float64):
        return dtype
    if dtype.kind in "biuf":
        return np.dtype(np.float64)
    raise ValueError(f"{source!r} holds {dtype} values; a matrix for NMF needs real numbers.")


def _describe(error: BaseException) -> str:
    """The root cause of an error (Dask wraps a reader's error in its own), as 'Type: message'."""
    while error.__cause__ is not None:
        error = error.__cause__
    return f"{type(error).__name__}: {error}"


def _unreadable(source: str, fmt: str, error: Exception) -> ValueError:
    return ValueError(f"Could not read {source!r} as {fmt}: {_describe(error)}")


# ---- Row strips to a Dask array -------------------------------------------------------------------------------

def _finish(raw: Any, r0: int, shape: tuple[int, int], height: int, dtype: np.dtype, source: str,
            what: str) -> np.ndarray | sp.csr_matrix:
    """One row strip, rows ``r0:r0+height``, from a NumPy array, a SciPy sparse matrix, or a list of COO pieces
    ``(rows, cols, values)`` (CSR with duplicates summed); its values checked."""
    span = f"rows {r0}–{r0 + height - 1}"
    if isinstance(raw, np.ndarray):
        block = np.asarray(raw, dtype=dtype)
    elif sp.issparse(raw):
        block = sp.csr_matrix(raw, dtype=dtype)
    else:
        rows, cols, values = (np.concatenate(arrays) for arrays in zip(*raw))
        rows = rows - r0
        if len(rows) and (rows.min() < 0 or rows.max() >= height or cols.min() < 0 or cols.max() >= shape[1]):
            raise _SourceError(f"Entries of {source!r} ({span}) lie outside the {shape[0]} × {shape[1]} matrix it "
                               "declares.")
        block = sp.csr_matrix((values.astype(dtype, copy=False), (rows, cols)), shape=(height, shape[1]))
    values = block.data if sp.issparse(block) else block
    if values.size and not np.isfinite(values).all():
        raise _SourceError(f"NaN or infinite values in {source!r} ({what}{span}). NMF needs finite values: impute "
                           "or drop missing entries first.")
    if values.size and values.min() < 0:
        raise _SourceError(f"Negative values in {source!r} ({what}smallest {values.min():g}, {span}). NMF needs "
                           "non-negative data: shift or clip it first.")
    if sp.issparse(block):
        block.sum_duplicates()
        block.eliminate_zeros()
    return block


def _columns(strip: Any, start: int, stop: int) -> Any:
    return strip[:, start:stop]


def _assemble(raws: list[Any], shape: tuple[int, int], grid: tuple[tuple[int, ...], tuple[int, ...]],
              dtype: np.dtype, sparse: bool, source: str, what: str = "") -> da.Array:
    """A Dask array from one raw row strip per row block of ``grid`` (values or Delayed), cut into its columns."""
    rows, cols = grid
    meta = sp.csr_matrix((0, 0), dtype=dtype) if sparse else np.empty((0, 0), dtype=dtype)
    starts, col_edges = np.cumsum((0, *rows)), np.cumsum((0, *cols))
    blocks = []
    for raw, r0, height in zip(raws, starts, rows):
        strip = dask.delayed(_finish, pure=True)(raw, int(r0), shape, height, dtype, source, what)
        pieces = [strip] if len(cols) == 1 else [dask.delayed(_columns, pure=True)(strip, int(c0), int(c1))
                                                 for c0, c1 in zip(col_edges[:-1], col_edges[1:])]
        blocks.append([da.from_delayed(piece, shape=(height, width), dtype=dtype, meta=meta)
                       for piece, width in zip(pieces, cols)])
    return da.block(blocks)


def _split_rows(part: Any, to_coo: Callable[..., Coo], args: tuple[Any, ...], starts: np.ndarray) -> list[Coo]:
    """One partition of a triplet table as COO pieces, one per row strip (rows outside the matrix go to the first
    or last piece, where :func:`_finish` reports them)."""
    rows, cols, values = to_coo(part, *args)
    if len(starts) == 1:
        return [(rows, cols, values)]
    strip = np.clip(np.searchsorted(starts, rows, side="right") - 1, 0, len(starts) - 1)
    order = np.argsort(strip, kind="stable")
    bounds = np.searchsorted(strip[order], np.arange(len(starts) + 1))
    rows, cols, values = rows[order], cols[order], values[order]
    return [(rows[a:b], cols[a:b], values[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def _triplet_strips(parts: list[Delayed], to_coo: Callable[..., Coo], args: tuple[Any, ...],
                    rows: tuple[int, ...]) -> list[list[Delayed]]:
    """For each row strip, its COO pieces: one from each partition of a triplet table.

    Each partition is read, converted and split once; a strip's task receives only its pieces. This is a task
    shuffle of (partitions × strips) small tasks, with no sort and no task holding more than a partition or a strip.
    """
    starts = np.cumsum((0, *rows))[:-1]
    splits = [dask.delayed(_split_rows, nout=len(rows), pure=True)(part, to_coo, args, starts) for part in parts]
    return [[split[s] for split in splits] for s in range(len(rows))]


# ---- Formats ---------------------------------------------------------------------------------------------------

def _npy_rows(path: str, start: int, stop: int) -> np.ndarray:
    return np.array(np.load(path, mmap_mode="r")[start:stop])


def _read_npy(plan: _Plan) -> _Converted:
    try:
        array = np.load(plan.source, mmap_mode="r")
    except (ValueError, OSError) as error:
        raise _unreadable(plan.source, "a NumPy .npy file", error) from error
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{plan.source!r} holds an array of shape {array.shape}; a matrix must be 2-D and "
                         "non-empty.")
    dtype, shape = _out_dtype(array.dtype, plan.source), tuple(array.shape)
    grid = plan.grid(shape, array.nbytes, sparse=False)
    edges = np.cumsum((0, *grid[0]))
    raws = [dask.delayed(_npy_rows, pure=True)(plan.source, int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
    return _Converted(_assemble(raws, shape, grid, dtype, False, plan.source))


def _in_memory(matrix: np.ndarray | sp.spmatrix, plan: _Plan) -> _Converted:
    """A matrix already read whole: cut into strips held in the task graph."""
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise ValueError(f"{plan.source!r} holds a matrix of shape {matrix.shape}; it must be non-empty.")
    sparse = sp.issparse(matrix)
    matrix = sp.csr_matrix(matrix) if sparse else np.asarray(matrix)
    dtype = _out_dtype(matrix.dtype, plan.source)
    nbytes = matrix.nnz * (dtype.itemsize + 4) if sparse else matrix.nbytes
    grid = plan.grid(matrix.shape, nbytes, sparse)
    edges = np.cumsum((0, *grid[0]))
    raws = [matrix[a:b] for a, b in zip(edges[:-1], edges[1:])]
    return _Converted(_assemble(raws, matrix.shape, grid, dtype, sparse, plan.source))


def _read_npz(plan: _Plan) -> _Converted:
    try:
        matrix = sp.load_npz(plan.source)
    except (ValueError, OSError, KeyError) as error:
        raise _unreadable(plan.source, "a SciPy sparse .npz file (scipy.sparse.save_npz)", error) from error
    return _in_memory(matrix, plan)


def _h5ad_rows(path: str, start: int, stop: int) -> np.ndarray | sp.spmatrix:
    import h5py
    from anndata.io import sparse_dataset

    with h5py.File(path, "r") as file:
        X = file["X"]
        return X[start:stop] if isinstance(X, h5py.Dataset) else sparse_dataset(X)[start:stop]


def _read_h5ad(plan: _Plan) -> _Converted:
    import anndata
    import h5py

    try:
        adata = anndata.read_h5ad(plan.source, backed="r")
    except Exception as error:  # h5py and anndata raise many types for unreadable files
        raise _unreadable(plan.source, "an AnnData .h5ad file", error) from error
    try:
        X = adata.X
        if X is None:
            raise ValueError(f"The AnnData file {plan.source!r} has no X matrix.")
        sparse = not isinstance(X, h5py.Dataset)
        shape, dtype = tuple(X.shape), _out_dtype(X.dtype, plan.source)
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
    return _Converted(_assemble(raws, shape, grid, dtype, sparse, plan.source), labels)


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


def _read_mtx(plan: _Plan) -> _Converted:
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
            raise _unreadable(plan.source, "a Matrix Market array file", error) from error
        return _in_memory(dense, plan)
    if layout != "coordinate" or len(size) != 3:
        raise ValueError(f"{plan.source!r}: unknown Matrix Market layout {layout!r} or size line {size}.")
    m, n, nnz = size
    if m < 1 or n < 1:
        raise ValueError(f"{plan.source!r} declares an empty {m} × {n} matrix.")
    names = ["row", "col"] if field == "pattern" else list(_COO)
    try:
        frame = dd.read_csv(plan.source, sep=r"\s+", header=None, names=names, usecols=range(len(names)),
                            skiprows=header_lines, dtype={"row": np.int64, "col": np.int64, "value": np.float64},
                            **_text_blocks(plan.source))
    except (ValueError, OSError) as error:
        raise _unreadable(plan.source, "a Matrix Market coordinate file", error) from error
    dtype = np.dtype(np.float64)
    grid = plan.grid((m, n), nnz * (dtype.itemsize + 4), sparse=True)
    strips = _triplet_strips(frame.to_delayed(), _mtx_positions, (symmetry,), grid[0])
    return _Converted(_assemble(strips, (m, n), grid, dtype, True, plan.source))


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


def _open_table(plan: _Plan, fmt: str) -> tuple[Any, tuple[str, str, str], np.dtype]:
    """The triplet table with columns renamed to row, col, value; the original names; the value dtype."""
    import dask.dataframe as dd

    def read(**kwargs: Any) -> Any:
        try:
            if fmt == "parquet":
                return dd.read_parquet(plan.source, split_row_groups="adaptive", blocksize=READ_BLOCKSIZE, **kwargs)
            return dd.read_csv(plan.source, **_text_blocks(plan.source), **kwargs)
        except Exception as error:  # pyarrow, fsspec and pandas raise many types for unreadable files
            raise _unreadable(plan.source, fmt, error) from error

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
    if kind not in "biuf":
        raise ValueError(f"Column {v!r} of {plan.source!r} holds {table[v].dtype} values, not numbers; pass "
                         f"row_col_value=(row id, column id, value) naming a numeric value column ({listing}).")
    dtype = _out_dtype(table[v].dtype.numpy_dtype if hasattr(table[v].dtype, "numpy_dtype") else table[v].dtype,
                       plan.source)
    if fmt == "csv":  # pin the value type: Dask infers it from a sample, and later blocks may hold floats
        table = read(usecols=list(names), dtype={v: dtype})
    return table[list(names)].rename(columns=dict(zip(names, _COO))), (r, c, v), dtype


def _read_triplets(plan: _Plan, fmt: str) -> _Converted:
    frame, (r, c, v), dtype = _open_table(plan, fmt)
    summaries = [dask.delayed(_summarize, pure=True)(part) for part in frame.to_delayed()]
    while len(summaries) > 1:
        summaries = [dask.delayed(_merge, pure=True)(*summaries[i:i + 8]) for i in range(0, len(summaries), 8)]
    try:
        (summary,) = dask.compute(summaries[0])
    except Exception as error:  # any reader error: the file's content is at fault
        raise _unreadable(plan.source, fmt, error) from error
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
    strips = _triplet_strips(frame.to_delayed(), _positions, (*ids, dtype), grid[0])
    array = _assemble(strips, shape, grid, dtype, True, plan.source, f"column {v!r}, ")
    return _Converted(array, (row_ids.astype(str), col_ids.astype(str)))


_READERS = {
    "mtx": _read_mtx,
    "npz": _read_npz,
    "npy": _read_npy,
    "h5ad": _read_h5ad,
    "parquet": lambda plan: _read_triplets(plan, "parquet"),
    "csv": lambda plan: _read_triplets(plan, "csv"),
}
