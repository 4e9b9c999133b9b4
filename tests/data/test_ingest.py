"""dnmf.data.ingest: every source format round-trips into a store; bad sources fail with clear messages."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import dask
import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from dnmf.data import formats as formats_module
from dnmf.data import strips as strips_module
from dnmf.data.ingest import FORMATS, ingest
from dnmf.data.store import open_matrix, read_labels

SHAPE = (53, 31)  # not a multiple of any block size used below: the last strip and column block are short
MTX = ("pandas", "dask.dataframe")  # Matrix Market coordinate files are read with dask.dataframe.read_csv
TABLES = ("pandas", "pyarrow", "dask.dataframe")


def _needs(*modules: str) -> None:
    for module in modules:
        pytest.importorskip(module)


def _read(url: Path | str) -> tuple[np.ndarray, bool, np.dtype]:
    """The stored matrix as a dense array, assembled block by block; whether its blocks are sparse; its dtype."""
    A = open_matrix(url)
    (blocks,) = dask.compute(A.to_delayed().tolist())
    sparse = {sp.issparse(block) for row in blocks for block in row}
    assert len(sparse) == 1
    dense = np.vstack([np.hstack([b.toarray() if sp.issparse(b) else b for b in row]) for row in blocks])
    return dense, sparse.pop(), A.dtype


def _matrix(dtype=np.float64, density=0.2, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    matrix = sp.random(*SHAPE, density=density, format="csr", random_state=rng, dtype=np.float64)
    matrix.data = np.round(matrix.data * 800) / 8 + 0.5  # eighths: exact in float32 and in text
    matrix.data[matrix.indptr[1]:matrix.indptr[2]] = 0  # an empty row
    matrix.eliminate_zeros()
    return sp.csr_matrix(matrix, dtype=dtype)


def _triplets(matrix: sp.spmatrix, row_ids=None, col_ids=None):
    import pandas as pd

    coo = sp.coo_matrix(matrix)
    rows = coo.row if row_ids is None else np.asarray(row_ids)[coo.row]
    cols = coo.col if col_ids is None else np.asarray(col_ids)[coo.col]
    return pd.DataFrame({"gene": rows, "cell": cols, "count": coo.data})


# ---- Round trips ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_npy_round_trip_is_memory_mapped_and_dense(tmp_path, dtype, monkeypatch):
    dense = _matrix(dtype).toarray()
    np.save(tmp_path / "a.npy", dense)
    loads = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda *args, **kwargs: loads.append(kwargs.get("mmap_mode")) or
                        real_load(*args, **kwargs))
    assert ingest(tmp_path / "a.npy", tmp_path / "a.zarr", chunks=(10, 8)) == str(tmp_path / "a.zarr")
    assert loads and set(loads) == {"r"}
    stored, sparse, stored_dtype = _read(tmp_path / "a.zarr")
    np.testing.assert_array_equal(stored, dense)
    assert not sparse and stored_dtype == dtype


def test_npy_integers_become_float64(tmp_path):
    counts = (_matrix().toarray() * 2).astype(np.int32)
    np.save(tmp_path / "a.npy", counts)
    ingest(tmp_path / "a.npy", tmp_path / "a.zarr", block_rows=20)
    stored, _, dtype = _read(tmp_path / "a.zarr")
    np.testing.assert_array_equal(stored, counts)
    assert dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["csr", "csc", "coo"])
def test_npz_round_trip(tmp_path, dtype, layout):
    matrix = _matrix(dtype)
    sp.save_npz(tmp_path / "a.npz", matrix.asformat(layout))
    ingest(tmp_path / "a.npz", tmp_path / "a.zarr", block_rows=7)
    stored, sparse, stored_dtype = _read(tmp_path / "a.zarr")
    np.testing.assert_array_equal(stored, matrix.toarray())
    assert sparse and stored_dtype == dtype


@pytest.mark.parametrize("field", ["real", "integer", "pattern"])
@pytest.mark.parametrize("gz", [False, True])
def test_mtx_round_trip(tmp_path, field, gz):
    _needs(*MTX)
    matrix = _matrix()
    if field != "real":
        matrix.data = np.ceil(matrix.data)
    scipy.io.mmwrite(tmp_path / "a.mtx", matrix, field=field)
    source = tmp_path / "a.mtx"
    if gz:
        with open(source, "rb") as raw, gzip.open(tmp_path / "a.mtx.gz", "wb") as packed:
            shutil.copyfileobj(raw, packed)
        source = tmp_path / "a.mtx.gz"
    ingest(source, tmp_path / "a.zarr", block_rows=7)
    stored, sparse, dtype = _read(tmp_path / "a.zarr")
    expected = matrix.toarray() if field != "pattern" else (matrix.toarray() != 0).astype(float)
    np.testing.assert_array_equal(stored, expected)
    assert sparse and dtype == np.float64


def test_mtx_symmetric_is_mirrored_and_array_layout_is_read(tmp_path):
    _needs(*MTX)
    half = sp.tril(_matrix()[:31, :31], format="csr")
    symmetric = (half + sp.tril(half, -1).T).tocsr()
    scipy.io.mmwrite(tmp_path / "s.mtx", symmetric, symmetry="symmetric")
    assert "symmetric" in (tmp_path / "s.mtx").read_text().splitlines()[0]
    ingest(tmp_path / "s.mtx", tmp_path / "s.zarr", block_rows=5)
    np.testing.assert_array_equal(_read(tmp_path / "s.zarr")[0], symmetric.toarray())

    dense = _matrix().toarray()
    scipy.io.mmwrite(tmp_path / "d.mtx", dense)
    ingest(tmp_path / "d.mtx", tmp_path / "d.zarr", chunks=(10, 8))
    stored, sparse, _ = _read(tmp_path / "d.zarr")
    np.testing.assert_array_equal(stored, dense)
    assert not sparse


def test_mtx_streams_in_several_blocks(tmp_path, monkeypatch):
    _needs(*MTX)
    matrix = _matrix(density=0.5)
    scipy.io.mmwrite(tmp_path / "a.mtx", matrix)
    monkeypatch.setattr(formats_module, "READ_BLOCKSIZE", 2_000)  # bytes: several partitions to shuffle
    seen = _spy_strips(monkeypatch)
    ingest(tmp_path / "a.mtx", tmp_path / "a.zarr", block_rows=6)
    np.testing.assert_array_equal(_read(tmp_path / "a.zarr")[0], matrix.toarray())
    assert sorted(seen) == list(range(0, SHAPE[0], 6)) and max(seen.values()) < matrix.nnz / 5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["csr", "csc", "dense"])
def test_h5ad_round_trip_with_labels(tmp_path, dtype, layout):
    _needs("anndata", "h5py")
    import anndata

    matrix = _matrix(dtype)
    X = matrix.toarray() if layout == "dense" else matrix.asformat(layout)
    adata = anndata.AnnData(X)
    adata.obs_names = [f"cell{i}" for i in range(SHAPE[0])]
    adata.var_names = [f"gene{j}" for j in range(SHAPE[1])]
    adata.write_h5ad(tmp_path / "a.h5ad")
    ingest(tmp_path / "a.h5ad", tmp_path / "a.zarr", chunks=(10, 8))
    stored, sparse, stored_dtype = _read(tmp_path / "a.zarr")
    np.testing.assert_array_equal(stored, matrix.toarray())
    assert sparse == (layout != "dense") and stored_dtype == dtype
    rows, cols = read_labels(tmp_path / "a.zarr")
    assert list(rows) == list(adata.obs_names) and list(cols) == list(adata.var_names)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "csv.gz"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_triplet_round_trip_with_integer_ids(tmp_path, fmt, dtype):
    _needs(*TABLES)
    matrix = _matrix(dtype)
    # Integer ids with gaps: positions follow their numeric order; empty rows/columns have no id and vanish.
    row_ids, col_ids = np.arange(SHAPE[0]) * 10 + 7, np.arange(SHAPE[1]) * 3
    table = _triplets(matrix, row_ids, col_ids).sample(frac=1, random_state=0)  # any order
    path = tmp_path / f"t.{fmt}"
    table.to_parquet(path) if fmt == "parquet" else table.to_csv(path, index=False)
    ingest(path, tmp_path / "t.zarr", block_rows=9)
    used_rows, used_cols = np.unique(matrix.tocoo().row), np.unique(matrix.tocoo().col)
    stored, sparse, stored_dtype = _read(tmp_path / "t.zarr")
    np.testing.assert_array_equal(stored, matrix.toarray()[np.ix_(used_rows, used_cols)])
    assert sparse and stored_dtype == (dtype if fmt == "parquet" else np.float64)  # CSV values are parsed as float64
    rows, cols = read_labels(tmp_path / "t.zarr")
    assert list(rows) == [str(i) for i in row_ids[used_rows]] and list(cols) == [str(j) for j in col_ids[used_cols]]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_triplet_string_ids_are_sorted_labels_and_duplicates_summed(tmp_path, fmt):
    _needs(*TABLES)
    import pandas as pd

    table = pd.DataFrame({
        "extra": [0, 0, 0, 0, 0, 0],
        "count": [1.0, 2.0, 3.0, 4.0, 0.5, 0.0],
        "cell": ["c2", "c1", "c2", "c9", "c2", "c1"],
        "gene": ["TP53", "ACTB", "TP53", "GAPDH", "ACTB", "GAPDH"],
    })
    path = tmp_path / f"t.{fmt}"
    table.to_parquet(path) if fmt == "parquet" else table.to_csv(path, index=False)
    ingest(path, tmp_path / "t.zarr", row_col_value=("gene", "cell", "count"), chunks=(2, 2))
    rows, cols = read_labels(tmp_path / "t.zarr")
    assert list(rows) == ["ACTB", "GAPDH", "TP53"] and list(cols) == ["c1", "c2", "c9"]
    expected = np.array([[2.0, 0.5, 0.0],   # ACTB: c1 2, c2 0.5
                         [0.0, 0.0, 4.0],   # GAPDH: c1 0 (stored zero, dropped), c9 4
                         [0.0, 4.0, 0.0]])  # TP53: c2 1 + 3, summed
    np.testing.assert_array_equal(_read(tmp_path / "t.zarr")[0], expected)


def test_triplet_parquet_dataset_streams(tmp_path, monkeypatch):
    """Several files of several row groups, small strips: no task sees the whole table, the result is exact."""
    _needs(*TABLES)
    matrix = _matrix(density=0.6, seed=3)
    table = _triplets(matrix, [f"r{i:02d}" for i in range(SHAPE[0])]).sample(frac=1, random_state=1)
    table = table.reset_index(drop=True)
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    for k, part in enumerate(np.array_split(np.arange(len(table)), 4)):
        table.iloc[part].to_parquet(dataset / f"part-{k}.parquet", row_group_size=60)
    monkeypatch.setattr(formats_module, "READ_BLOCKSIZE", 1)  # one partition per row group
    summarized = []
    real_summarize = formats_module._summarize
    monkeypatch.setattr(formats_module, "_summarize",
                        lambda part: summarized.append(len(part)) or real_summarize(part))
    seen = _spy_strips(monkeypatch)
    ingest(dataset, tmp_path / "t.zarr", block_rows=5)

    used = np.flatnonzero(matrix.getnnz(axis=1))  # row 1 is empty: it has no id, so no row
    assert len(summarized) > 4 and max(summarized) <= 60 and sum(summarized) == len(table)
    assert sorted(seen) == list(range(0, len(used), 5)) and max(seen.values()) < len(table) / 5
    np.testing.assert_array_equal(_read(tmp_path / "t.zarr")[0], matrix.toarray()[used])
    rows, _ = read_labels(tmp_path / "t.zarr")
    assert list(rows) == [f"r{i:02d}" for i in used]


def test_triplets_on_the_threaded_scheduler(tmp_path, monkeypatch):
    """Dask's default scheduler runs the id-mapping tasks concurrently. (A pandas Index shared between them
    raced on its lazily built hash table; this exercises the path, though it cannot catch such a race reliably.)"""
    _needs(*TABLES)
    matrix = _matrix(density=0.6, seed=4)
    _triplets(matrix, [f"r{i}" for i in range(SHAPE[0])], [f"c{j}" for j in range(SHAPE[1])]).to_parquet(
        tmp_path / "t.parquet", row_group_size=40)
    monkeypatch.setattr(formats_module, "READ_BLOCKSIZE", 1)
    for attempt in range(3):
        with dask.config.set(scheduler="threads", num_workers=4):
            ingest(tmp_path / "t.parquet", tmp_path / f"t{attempt}.zarr", block_rows=4)
        rows, cols = read_labels(tmp_path / f"t{attempt}.zarr")
        order = np.ix_([int(r[1:]) for r in rows], [int(c[1:]) for c in cols])
        np.testing.assert_array_equal(_read(tmp_path / f"t{attempt}.zarr")[0], matrix.toarray()[order])


def _spy_strips(monkeypatch) -> dict[int, int]:
    """Record, by first row, the number of triplets each row-strip task receives."""
    seen: dict[int, int] = {}
    real_finish = strips_module.finish

    def finish(raw, r0, *args):
        assert isinstance(raw, list) and len(raw) > 1  # COO pieces, one from each partition of the table
        seen[r0] = sum(len(rows) for rows, *_ in raw)
        return real_finish(raw, r0, *args)

    monkeypatch.setattr(strips_module, "finish", finish)
    return seen


def test_remote_source_and_store(tmp_path):
    _needs(*TABLES)
    import fsspec

    matrix = _matrix()
    fs = fsspec.filesystem("memory")
    with fs.open("memory://dnmf-ingest/t.parquet", "wb") as file:
        _triplets(matrix).to_parquet(file)
    try:
        ingest("memory://dnmf-ingest/t.parquet", "memory://dnmf-ingest/t.zarr")
        stored = _read("memory://dnmf-ingest/t.zarr")[0]
    finally:
        fs.rm("memory://dnmf-ingest", recursive=True)
    assert stored.sum() == pytest.approx(matrix.sum())


@pytest.mark.cluster
def test_triplets_on_a_local_cluster(tmp_path, client):
    _needs(*TABLES)
    matrix = _matrix(density=0.4)
    _triplets(matrix).to_parquet(tmp_path / "t.parquet", row_group_size=50)
    ingest(tmp_path / "t.parquet", tmp_path / "t.zarr", block_rows=8)
    used = np.ix_(np.unique(matrix.tocoo().row), np.unique(matrix.tocoo().col))
    np.testing.assert_array_equal(_read(tmp_path / "t.zarr")[0], matrix.toarray()[used])
    np.save(tmp_path / "bad.npy", -matrix.toarray())
    with pytest.raises(ValueError, match="Negative values in .*bad.npy"):
        ingest(tmp_path / "bad.npy", tmp_path / "bad.zarr")


# ---- Bad input --------------------------------------------------------------------------------------------------

def _raised_here(excinfo: pytest.ExceptionInfo) -> None:
    """The error comes from dnmf's ingest modules themselves, not from deep inside a library."""
    assert Path(excinfo.traceback[-1].path).name in ("ingest.py", "formats.py", "strips.py")


@pytest.fixture
def parquet(tmp_path):
    _needs(*TABLES)
    import pandas as pd

    def write(**columns) -> Path:
        path = tmp_path / "x.parquet"
        pd.DataFrame(columns).to_parquet(path)
        return path

    return write


def test_negative_triplet_values_name_path_and_column(tmp_path, parquet):
    path = parquet(gene=["a", "b", "c"], cell=[0, 1, 2], count=[1, -3, 2])
    with pytest.raises(ValueError, match=r"Negative values in '.*x\.parquet' \(column 'count', smallest -3\)") as info:
        ingest(path, tmp_path / "x.zarr")
    _raised_here(info)
    assert not (tmp_path / "x.zarr").exists()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_triplet_values(tmp_path, parquet, bad):
    path = parquet(gene=["a", "b"], cell=[0, 1], count=[1.0, bad])
    with pytest.raises(ValueError, match=r"NaN or infinite values in '.*x\.parquet' \(column 'count'") as info:
        ingest(path, tmp_path / "x.zarr")
    _raised_here(info)


def test_missing_ids(tmp_path, parquet):
    path = parquet(gene=["a", None], cell=[0, 1], count=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"1 missing id\(s\) in columns 'gene'/'cell' of '.*x\.parquet'"):
        ingest(path, tmp_path / "x.zarr")


def test_missing_column_lists_available_columns(tmp_path, parquet):
    path = parquet(gene=["a"], cell=[0], count=[1.0])
    with pytest.raises(ValueError, match=r"Column 'value' not found in '.*x\.parquet'; available columns: 'gene', "
                                         r"'cell', 'count'") as info:
        ingest(path, tmp_path / "x.zarr", row_col_value=("gene", "cell", "value"))
    _raised_here(info)


def test_non_numeric_value_column(tmp_path, parquet):
    path = parquet(gene=["a"], cell=[0], count=["many"])
    with pytest.raises(ValueError, match=r"Column 'count' of '.*x\.parquet' holds .* values, not numbers.*"
                                         r"available columns: 'gene', 'cell', 'count'") as info:
        ingest(path, tmp_path / "x.zarr")
    _raised_here(info)


def test_too_few_columns(tmp_path, parquet):
    with pytest.raises(ValueError, match=r"has 2 column\(s\); a triplet table needs"):
        ingest(parquet(gene=["a"], count=[1.0]), tmp_path / "x.zarr")


def test_corrupt_parquet(tmp_path):
    _needs(*TABLES)
    (tmp_path / "x.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match=r"Could not read '.*x\.parquet' as parquet") as info:
        ingest(tmp_path / "x.parquet", tmp_path / "x.zarr")
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("bad, message", [(-2.5, r"Negative values in '.*a\.npy' \(smallest -2\.5, rows 10–19\)"),
                                          (np.nan, r"NaN or infinite values in '.*a\.npy' \(rows 10–19\)")])
def test_bad_values_in_npy(tmp_path, bad, message):
    dense = _matrix().toarray()
    dense[12, 3] = bad
    np.save(tmp_path / "a.npy", dense)
    with pytest.raises(ValueError, match=message) as info:
        ingest(tmp_path / "a.npy", tmp_path / "a.zarr", chunks=(10, 8))
    _raised_here(info)
    assert info.value.__cause__ is None and not (tmp_path / "a.zarr").exists()
    assert not list(tmp_path.glob(".a.zarr*"))  # no staging left behind


def test_bad_values_in_sparse_formats(tmp_path):
    _needs(*MTX)
    matrix = _matrix()
    matrix.data[5] = -1.0
    sp.save_npz(tmp_path / "a.npz", matrix)
    with pytest.raises(ValueError, match=r"Negative values in '.*a\.npz' \(smallest -1"):
        ingest(tmp_path / "a.npz", tmp_path / "a.zarr")
    matrix.data[5] = np.inf
    scipy.io.mmwrite(tmp_path / "a.mtx", matrix)
    with pytest.raises(ValueError, match=r"NaN or infinite values in '.*a\.mtx'") as info:
        ingest(tmp_path / "a.mtx", tmp_path / "a.zarr")
    _raised_here(info)


def test_bad_values_in_h5ad(tmp_path):
    _needs("anndata", "h5py")
    import anndata

    matrix = _matrix()
    matrix.data[-1] = -4.0
    anndata.AnnData(matrix).write_h5ad(tmp_path / "a.h5ad")
    with pytest.raises(ValueError, match=r"Negative values in '.*a\.h5ad' \(smallest -4"):
        ingest(tmp_path / "a.h5ad", tmp_path / "a.zarr")


def test_mtx_entries_outside_the_declared_shape(tmp_path):
    _needs(*MTX)
    (tmp_path / "a.mtx").write_text("%%MatrixMarket matrix coordinate real general\n3 3 2\n1 1 1.0\n4 1 2.0\n")
    with pytest.raises(ValueError, match=r"Entries of '.*a\.mtx' \(rows .*\) lie outside the 3 × 3 matrix"):
        ingest(tmp_path / "a.mtx", tmp_path / "a.zarr")


@pytest.mark.parametrize("text, message", [
    ("hello\n1 2 3\n", "is not a Matrix Market file: its first line is 'hello'"),
    ("%%MatrixMarket matrix coordinate complex general\n1 1 1\n1 1 1 0\n", "complex general Matrix Market"),
    ("%%MatrixMarket matrix coordinate real general\n", "has no size line"),
    ("%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1 abc\n",
     r"Could not read '.*a\.mtx' as a Matrix Market coordinate file: ValueError: could not convert string to float"),
])
def test_malformed_mtx(tmp_path, text, message):
    _needs(*MTX)
    (tmp_path / "a.mtx").write_text(text)
    with pytest.raises(ValueError, match=message):
        ingest(tmp_path / "a.mtx", tmp_path / "a.zarr")


def test_unreadable_npy_and_npz(tmp_path):
    (tmp_path / "a.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"Could not read '.*a\.npy' as a NumPy \.npy file") as info:
        ingest(tmp_path / "a.npy", tmp_path / "a.zarr")
    assert info.value.__cause__ is not None
    np.savez(tmp_path / "d.npz", x=np.ones(3))
    with pytest.raises(ValueError, match=r"Could not read '.*d\.npz' as a SciPy sparse \.npz"):
        ingest(tmp_path / "d.npz", tmp_path / "a.zarr")
    np.save(tmp_path / "v.npy", np.ones(5))
    with pytest.raises(ValueError, match=r"shape \(5,\); a matrix must be 2-D"):
        ingest(tmp_path / "v.npy", tmp_path / "a.zarr")
    np.save(tmp_path / "s.npy", np.array([["a"]]))
    with pytest.raises(ValueError, match="needs real numbers"):
        ingest(tmp_path / "s.npy", tmp_path / "a.zarr")


def test_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No such file or directory: '.*nowhere\.mtx'") as info:
        ingest(tmp_path / "nowhere.mtx", tmp_path / "a.zarr")
    _raised_here(info)


def test_unknown_format(tmp_path):
    (tmp_path / "a.xlsx").write_bytes(b"")
    valid = ", ".join(FORMATS)
    with pytest.raises(ValueError, match=f"Unknown format 'xlsx'; valid formats: {valid}"):
        ingest(tmp_path / "a.xlsx", tmp_path / "a.zarr", format="xlsx")
    with pytest.raises(ValueError, match=f"Cannot tell the format of '.*a.xlsx'.*{valid}"):
        ingest(tmp_path / "a.xlsx", tmp_path / "a.zarr")


def test_existing_store_is_refused_before_reading(tmp_path, monkeypatch):
    np.save(tmp_path / "a.npy", _matrix().toarray())
    ingest(tmp_path / "a.npy", tmp_path / "a.zarr")
    monkeypatch.setitem(formats_module.READERS, "npy", lambda plan: pytest.fail("read the source"))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ingest(tmp_path / "a.npy", tmp_path / "a.zarr")
    monkeypatch.undo()
    np.save(tmp_path / "a.npy", 2 * _matrix().toarray())
    ingest(tmp_path / "a.npy", tmp_path / "a.zarr", overwrite=True)
    np.testing.assert_array_equal(_read(tmp_path / "a.zarr")[0], 2 * _matrix().toarray())


@pytest.mark.parametrize("kwargs, message", [
    ({"row_col_value": ("a", "b", "c")}, "row_col_value names three distinct columns"),
    ({"block_rows": 0}, "block_rows must be a positive integer"),
    ({"chunks": (0, 5)}, r"Invalid chunks=\(0, 5\)"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    np.save(tmp_path / "a.npy", _matrix().toarray())
    with pytest.raises(ValueError, match=message):
        ingest(tmp_path / "a.npy", tmp_path / "a.zarr", **kwargs)
