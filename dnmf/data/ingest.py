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
from typing import Any

import numpy as np

from dnmf.data.formats import READ_BLOCKSIZE, READERS
from dnmf.data.matrix import Chunks
from dnmf.data.strips import Plan, SourceError, describe

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

    plan = Plan(source, chunks, None if block_rows is None else int(block_rows),
                None if row_col_value is None else tuple(row_col_value))
    try:
        converted = READERS[fmt](plan)
    except ImportError as error:
        raise ImportError(f"Ingesting {fmt} files needs {_EXTRAS[fmt]} ({error}); install with pip.") from error
    A = converted.array
    logger.info("Ingesting %s source %r (%d × %d, %s, %d row strips) into %r", fmt, source, *A.shape, A.dtype,
                A.numblocks[0], url)
    try:
        save_matrix(A, url, chunks="auto", labels=converted.labels, overwrite=overwrite,
                    storage_options=storage_options)
    except SourceError as error:
        raise ValueError(str(error)) from None
    except (ValueError, TypeError) as error:
        raise ValueError(f"Could not convert {source!r} ({fmt}) into {url!r}: {describe(error)}") from error
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

