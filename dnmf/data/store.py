"""Matrices in Zarr: open and save dense and sparse matrices, with row and column labels.

Layouts read by :func:`open_matrix`:

* a Zarr array: a dense matrix;
* a Zarr group in AnnData's on-disk sparse convention: attributes ``encoding-type`` (``csr_matrix`` or
  ``csc_matrix``), ``encoding-version`` and ``shape``, arrays ``data``, ``indices`` and ``indptr``;
* an AnnData store (``encoding-type: anndata``): its ``X``, with ``obs``/``var`` index as labels.

:func:`save_matrix` writes the last form (AnnData-compatible, so ``anndata.read_zarr`` opens it): a group holding
``X`` (dense array or CSR group) and, when labels are given, ``obs``/``var`` data frames whose index holds them.
It writes into a temporary sibling and moves it into place at the end, so a failed write never leaves a
half-written store under the final name.

Sparse blocks are read inside tasks: one task per row strip slices ``indptr``, reads only that strip's ``data``
and ``indices`` and cuts the strip into the column blocks of the grid. A fit whose input streams keeps what its
workers read on their local disks, uncompressed, for the passes after the first (:mod:`dnmf.runtime.local_cache`).

What is read is checked: a missing or undecodable chunk, a shape or array that disagrees with the others, or a
chunk too large for a worker is a :class:`StoreError` naming the store, never zeros and never a huge allocation
(see :mod:`dnmf.data.sparse`). Sparse blocks come out in canonical CSR (duplicate entries summed).
"""

from __future__ import annotations

import math
import operator
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dask
import dask.array as da
import numpy as np
import scipy.sparse as sp
import zarr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from dnmf.core.grid import Chunks, resolve_chunks
from dnmf.data.labels import check_labels, read_index, write_index
from dnmf.data.location import Location
from dnmf.data.matrix import as_input_matrix
from dnmf.data.safety import NotOwnStoreError, replaceable_store
from dnmf.data.sparse import (MATRIX_COMPRESSORS, SparseLayout, canonical_csr, mark_canonical_csr, read_strip,
                              sparse_layout)
from dnmf.data.sparse_write import write_csr
from dnmf.exceptions import StoreError
from dnmf.runtime import current
from dnmf.runtime.local_cache import StripCache
from dnmf.runtime.templates import is_held

__all__ = ["Location", "StoreError", "open_matrix", "open_node", "read_labels", "save_matrix", "staged_group",
           "stored_nnz", "write_blocks"]

#: The ``dnmf`` attribute of a matrix store's root: what marks it as written by dnmf (see :mod:`dnmf.data.safety`).
MATRIX_FORMAT = {"kind": "matrix", "version": 1}



def open_node(location: Location) -> zarr.Array | zarr.Group:
    if not location.exists():
        raise FileNotFoundError(f"No Zarr store at {location.url!r}: check the path or URL.")
    try:
        return zarr.open(store=location.url, mode="r", **location.zarr_kwargs())
    except Exception as error:  # zarr raises many types for unreadable metadata
        raise StoreError(f"{location.url!r} is not a readable Zarr store ({type(error).__name__}: {error}).") from error


def _matrix_node(location: Location) -> tuple[zarr.Array | zarr.Group, Location, zarr.Group | None]:
    """The node holding the matrix, its location, and the AnnData root when there is one."""
    node = open_node(location)
    if isinstance(node, zarr.Group) and node.attrs.get("encoding-type") == "anndata":
        if "X" not in node:
            raise StoreError(f"The AnnData store {location.url!r} has no X matrix.")
        return node["X"], location.child("X"), node
    return node, location, None


def _block_shape(rows: slice, cols: slice) -> tuple[int, int]:
    return rows.stop - rows.start, cols.stop - cols.start


def _cut_block(strip: sp.spmatrix, rows: slice, cols: slice) -> sp.csr_matrix:
    """Block ``[rows, cols]`` of a canonical strip as canonical CSR: the strip itself when it is one CSR block."""
    whole = _block_shape(rows, cols) == strip.shape
    if whole and strip.format == "csr":
        return strip
    return canonical_csr(strip[rows, cols])


def _strip_blocks(url: str, storage_options: dict[str, Any], encoding: str, start: int, stop: int,
                  shape: tuple[int, int], cuts: list[tuple[slice, slice]], cache: StripCache | None) -> list[Any]:
    """The grid's blocks of one strip (:func:`dnmf.data.sparse.read_strip`, cut at ``cuts``), through ``cache``
    where the fit keeps one."""
    def read() -> list[Any]:
        strip = read_strip(url, storage_options, encoding, start, stop, shape)
        return [_cut_block(strip, rows, cols) for rows, cols in cuts]

    if cache is None:
        return read()
    shapes = [_block_shape(rows, cols) for rows, cols in cuts]
    return cache.blocks(f"{tokenize(url, encoding, start, stop, shape, cuts)}.npy", read, shapes)


def _sparse_array(location: Location, layout: SparseLayout, chunks: Chunks,
                  cache: StripCache | None = None) -> da.Array:
    """The store's blocks, one task per strip reading it and cutting it into its blocks. Strips are sized for the
    data and the row pointers (8 bytes per row), so that a store of many rows streams through the workers."""
    m, n = layout.shape
    nbytes = 0
    if isinstance(chunks, str) and chunks == "auto":
        group = zarr.open_group(store=location.url, mode="r", **location.zarr_kwargs())
        major = m if layout.encoding == "csr_matrix" else n
        nbytes = int(group["data"].shape[0]) * (layout.dtype.itemsize + 4) + 8 * (major + 1)
    rows, cols = resolve_chunks(chunks, layout.shape, current().grid(layout.shape, nbytes))
    row_edges, col_edges = np.cumsum((0, *rows)), np.cumsum((0, *cols))
    token = tokenize(location.url, layout, rows, cols, cache)
    strip_name, name = f"dnmf-read-strip-{token}", f"dnmf-read-{token}"
    by_rows = layout.encoding == "csr_matrix"
    edges = row_edges if by_rows else col_edges
    cuts: dict[int, list[tuple[slice, slice]]] = {s: [] for s in range(len(edges) - 1)}
    blocks = {}
    for i in range(len(rows)):
        for j in range(len(cols)):
            strip = i if by_rows else j
            local_rows = slice(0, rows[i]) if by_rows else slice(int(row_edges[i]), int(row_edges[i + 1]))
            local_cols = slice(int(col_edges[j]), int(col_edges[j + 1])) if by_rows else slice(0, cols[j])
            blocks[(name, i, j)] = (operator.getitem, (strip_name, strip), len(cuts[strip]))
            cuts[strip].append((local_rows, local_cols))
    strips = {
        (strip_name, s): (_strip_blocks, location.url, location.storage_options, layout.encoding,
                          int(edges[s]), int(edges[s + 1]), layout.shape, cuts[s], cache)
        for s in range(len(edges) - 1)
    }
    graph = HighLevelGraph({strip_name: strips, name: blocks}, {strip_name: set(), name: {strip_name}})
    return mark_canonical_csr(da.Array(graph, name, chunks=(rows, cols), dtype=layout.dtype,
                                       meta=sp.csr_matrix((0, 0), dtype=layout.dtype)))


def _read_dense_block(node: zarr.Array, url: str, rows: slice, cols: slice) -> np.ndarray:
    try:
        return node[rows, cols]
    except OSError:
        raise
    except Exception as error:  # codecs raise RuntimeError, ValueError, ... for damaged bytes
        raise StoreError(f"Could not decode rows {rows.start}–{rows.stop - 1}, columns {cols.start}–"
                         f"{cols.stop - 1} of {url!r} ({type(error).__name__}: {error}): the store is damaged. "
                         "Write it again.") from error


def _dense_block(node: zarr.Array, url: str, rows: slice, cols: slice, cache: StripCache | None) -> np.ndarray:
    """Block ``[rows, cols]`` of a dense store, through ``cache`` where the fit keeps one."""
    if cache is None:
        return _read_dense_block(node, url, rows, cols)
    name = f"{tokenize(url, node.path, rows, cols)}.npy"
    return cache.blocks(name, lambda: [_read_dense_block(node, url, rows, cols)], [_block_shape(rows, cols)])[0]


def _dense_array(node: zarr.Array, url: str, chunks: Chunks, cache: StripCache | None = None) -> da.Array:
    """A dense store's blocks (whole multiples of its Zarr chunks), read in tasks that name the store and the
    block when a chunk cannot be decoded.

    Raises
    ------
    StoreError
        If the array is not 2-D, or one of its Zarr chunks would not fit in a worker's memory.
    """
    if node.ndim != 2:
        raise StoreError(f"{url!r} holds a {node.ndim}-D array; a matrix must be 2-D.")
    chunk_bytes = math.prod(int(c) for c in node.chunks) * np.dtype(node.dtype).itemsize
    memory = current().worker_memory
    if memory and chunk_bytes > memory:
        raise StoreError(f"{url!r} has Zarr chunks of {' × '.join(map(str, node.chunks))} "
                         f"({chunk_bytes / 2**30:.3g} GiB each), more than a worker's memory ({memory / 2**30:.3g} "
                         "GiB): no task could read one. Rechunk the store into smaller chunks.")
    rows, cols = as_input_matrix(node, chunks=chunks).array.chunks
    row_edges, col_edges = np.cumsum((0, *rows)), np.cumsum((0, *cols))
    name = f"dnmf-read-{tokenize(url, node.path, rows, cols, cache)}"
    layer = {(name, i, j): (_dense_block, node, url, slice(int(row_edges[i]), int(row_edges[i + 1])),
                            slice(int(col_edges[j]), int(col_edges[j + 1])), cache)
             for i in range(len(rows)) for j in range(len(cols))}
    array = da.Array(HighLevelGraph.from_collections(name, layer, dependencies=()), name, chunks=(rows, cols),
                     dtype=node.dtype, meta=np.empty((0, 0), dtype=node.dtype))
    return as_input_matrix(array).array


def open_matrix(url: str | os.PathLike[str], chunks: Chunks = "auto",
                storage_options: dict[str, Any] | None = None, *, cache: StripCache | None = None) -> da.Array:
    """Open a dense or sparse matrix store as a lazily loaded 2-D Dask array.

    Parameters
    ----------
    url : str or path
        A local path, ``file://``, ``memory://``, ``s3://`` or other fsspec URL of a dense Zarr array, a sparse
        group in AnnData's CSR/CSC convention, or an AnnData store.
    chunks : "auto", int or tuple
        The block grid (see :func:`dnmf.core.grid.default_grid`). Dense blocks are whole multiples of the Zarr chunks.
    storage_options : dict, optional
        Passed to fsspec, e.g. ``{"endpoint_url": ...}`` for S3.
    cache : dnmf.runtime.local_cache.StripCache, optional
        Keep the blocks read on a worker on its local disk, uncompressed, and read them from there at the next
        passes (a fit whose input streams passes its runtime's :meth:`~dnmf.core.seam.Runtime.local_cache`).

    Returns
    -------
    dask.array.Array
        Blocks are NumPy arrays (dense) or ``scipy.sparse.csr_matrix`` (sparse), read from Zarr inside tasks.

    Raises
    ------
    FileNotFoundError
        If nothing is stored at ``url``.
    StoreError
        If the store is neither dense nor a known sparse encoding, or is inconsistent.
    """
    location = Location.parse(url, storage_options)
    node, node_location, _ = _matrix_node(location)
    if isinstance(node, zarr.Array):
        return _dense_array(node, location.url, chunks, cache)
    return _sparse_array(node_location, sparse_layout(node, node_location.url), chunks, cache)


def stored_nnz(url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> int | None:
    """The number of stored values of a sparse matrix store (the length of its ``data``), read from its metadata
    alone; None for a dense store."""
    node, _, _ = _matrix_node(Location.parse(url, storage_options))
    return None if isinstance(node, zarr.Array) else int(node["data"].shape[0])


def read_labels(url: str | os.PathLike[str],
                storage_options: dict[str, Any] | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Row and column labels of a matrix store (``obs``/``var`` index of an AnnData layout), or None."""
    location = Location.parse(url, storage_options)
    _, _, root = _matrix_node(location)
    if root is None:
        return None, None
    return read_index(root, "obs"), read_index(root, "var")


def _write_block(block: np.ndarray, target: zarr.Array, block_info: Any = None) -> np.ndarray:
    target[tuple(slice(start, stop) for start, stop in block_info[0]["array-location"])] = np.asarray(block)
    return np.zeros((1,) * block.ndim, dtype=np.int8)


def write_blocks(x: da.Array, target: zarr.Array, name: str) -> da.Array:
    """A lazy graph that writes every block of ``x`` into ``target`` where it lies; computing it returns one zero
    per block.

    This is ``da.store(x, target, lock=False, compute=False)`` with the layer named ``name`` (``dnmf-...``), so the
    dashboard shows what is written. No two blocks of ``x`` may share a chunk of ``target``.
    """
    return x.map_blocks(_write_block, target=target, chunks=tuple((1,) * n for n in x.numblocks), dtype=np.int8,
                        token=name, meta=np.empty((0,) * x.ndim, dtype=np.int8))


def _write_dense(root: zarr.Group, A: da.Array) -> list[Any]:
    regular = A.rechunk((A.chunks[0][0], A.chunks[1][0]))
    target = root.create_array("X", shape=A.shape, dtype=A.dtype, chunks=(regular.chunks[0][0], regular.chunks[1][0]),
                               compressors=MATRIX_COMPRESSORS)
    target.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
    return [write_blocks(regular, target, "dnmf-save-x")]


def save_matrix(A: Any, url: str | os.PathLike[str], *, chunks: Chunks = "auto", labels: Any = None,
                overwrite: bool = False, storage_options: dict[str, Any] | None = None) -> None:
    """Write a dense or sparse matrix to a Zarr store that :func:`open_matrix` and ``anndata`` read.

    Parameters
    ----------
    A : ndarray, scipy sparse matrix or dask.array.Array of shape (m, n)
        Dask input (NumPy or CSR blocks) is written in parallel, block by block, on the cluster, and computed
        once (:mod:`dnmf.data.sparse_write`).
    url : str or path
        Local path or fsspec URL of the store to create.
    chunks : "auto", int or tuple
        Block grid for NumPy and SciPy input; dense stores use it as their Zarr chunks.
    labels : (row_labels, column_labels), optional
        Strings, either may be None. Stored as the ``obs``/``var`` index of the AnnData layout; a missing side
        gets AnnData's default labels ``"0", "1", …``.
    overwrite : bool, default=False
        Replace an existing store. Without it, an existing store is an error and is left untouched.
    storage_options : dict, optional
        Passed to fsspec.

    Raises
    ------
    FileExistsError
        If a store exists at ``url`` and ``overwrite`` is False.
    """
    matrix = as_input_matrix(A, chunks=chunks)
    array = matrix.array
    row_labels, col_labels = check_labels(labels, array.shape)
    with staged_group(url, storage_options, overwrite) as root:
        root.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0", "dnmf": MATRIX_FORMAT})
        if sp.issparse(getattr(array, "_meta", None)):
            write_csr(root, array, held=matrix.kind in ("numpy", "scipy") or is_held(array))
        else:
            dask.compute(*_write_dense(root, array))
        for name, size, values in (("obs", array.shape[0], row_labels), ("var", array.shape[1], col_labels)):
            write_index(root, name, size, values)


@contextmanager
def staged_group(url: str | os.PathLike[str], storage_options: dict[str, Any] | None,
                 overwrite: bool) -> Iterator[zarr.Group]:
    """A new Zarr group written under a temporary sibling name and moved to ``url`` only once the block exits
    without error; on error the staging copy is removed and whatever was at ``url`` is untouched.
    With ``overwrite``, only a store dnmf wrote (its metadata says so, and it holds nothing else) is replaced.
    A local staging folder gets no group or other write permission, whatever the umask.

    Raises
    ------
    FileExistsError
        If a store exists at ``url`` and ``overwrite`` is False.
    dnmf.data.safety.NotOwnStoreError
        If something that is not a dnmf store is at ``url``: a folder holding other files, a file, another
        program's Zarr store. It is left untouched.
    """
    location = Location.parse(url, storage_options)
    if location.exists():
        if not overwrite:
            raise FileExistsError(f"A store already exists at {location.url!r}; pass overwrite=True to replace it.")
        reason = replaceable_store(location)
        if reason is not None:
            raise NotOwnStoreError(f"Refusing to replace {location.url!r}: {reason}. dnmf only ever replaces a "
                                   "store it wrote itself; move it away or choose another path.")
    staging = location.sibling(f".{location.url.rpartition('/')[2]}.dnmf-tmp-{uuid.uuid4().hex[:12]}")
    try:
        root = zarr.open_group(store=staging.url, mode="w-", zarr_format=3, **staging.zarr_kwargs())
        if staging.is_local:
            os.chmod(staging.url, os.stat(staging.url).st_mode & 0o755)
        yield root
        location.replace_with(staging)
    except BaseException:
        staging.remove()
        raise
