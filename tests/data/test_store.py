"""Matrices and results in Zarr: round trips, AnnData interop, URLs, atomic writes and bad stores."""

from __future__ import annotations

import os

import anndata
import dask
import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
import zarr
from anndata.io import read_elem, write_elem

import dnmf
from dnmf import NMF, StoreError, load_result, open_matrix, read_labels, save_matrix
from dnmf.datasets import make_sparse_low_rank


def assemble(A: da.Array) -> np.ndarray:
    blocks = A.to_delayed()
    rows = [np.hstack([b.toarray() if sp.issparse(b) else b for b in row]) for row in
            __import__("dask").compute(blocks.tolist())[0]]
    return np.vstack(rows)


@pytest.fixture
def matrix(rng):
    return rng.random((53, 41)) * (rng.random((53, 41)) < 0.3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("write_chunks,read_chunks", [((20, 15), (17, 13)), ((53, 41), "auto"), (7, (30, 11))])
def test_round_trip(tmp_path, matrix, dtype, sparse, write_chunks, read_chunks):
    X = (sp.csr_matrix(matrix) if sparse else matrix).astype(dtype)
    save_matrix(X, tmp_path / "m.zarr", chunks=write_chunks)
    A = open_matrix(tmp_path / "m.zarr", chunks=read_chunks)
    assert A.dtype == dtype and A.shape == matrix.shape
    assert sp.issparse(A._meta) == sparse
    np.testing.assert_array_equal(assemble(A), matrix.astype(dtype))


def test_dask_input_is_written_block_by_block(tmp_path, matrix):
    blocks = da.from_array(matrix, chunks=(10, 20)).map_blocks(sp.csr_matrix, meta=sp.csr_matrix((0, 0)))
    save_matrix(blocks, tmp_path / "m.zarr")
    np.testing.assert_array_equal(assemble(open_matrix(tmp_path / "m.zarr")), matrix)


@pytest.mark.parametrize("scheme", ["file://", "memory://"])
def test_urls(tmp_path, matrix, scheme):
    url = f"file://{tmp_path}/m.zarr" if scheme == "file://" else f"memory://dnmf-test-{os.getpid()}/m.zarr"
    save_matrix(sp.csr_matrix(matrix), url, chunks=(20, 20))
    np.testing.assert_array_equal(assemble(open_matrix(url)), matrix)


def test_labels_round_trip_and_anndata_reads_our_store(tmp_path, matrix):
    rows, cols = [f"doc{i}" for i in range(53)], [f"word{j}" for j in range(41)]
    save_matrix(sp.csr_matrix(matrix), tmp_path / "m.zarr", labels=(rows, cols))
    got_rows, got_cols = read_labels(tmp_path / "m.zarr")
    assert list(got_rows) == rows and list(got_cols) == cols
    adata = anndata.read_zarr(tmp_path / "m.zarr")
    assert list(adata.var_names) == cols
    np.testing.assert_array_equal(adata.X.toarray(), matrix)
    X = read_elem(zarr.open_group(tmp_path / "m.zarr" / "X", mode="r"))
    assert isinstance(X, sp.csr_matrix)
    np.testing.assert_array_equal(X.toarray(), matrix)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_matrix_arrays_are_written_with_the_store_codec(tmp_path, matrix, sparse):
    from dnmf.data.sparse import MATRIX_COMPRESSORS

    save_matrix(sp.csr_matrix(matrix) if sparse else matrix, tmp_path / "m.zarr")
    root = zarr.open_group(tmp_path / "m.zarr", mode="r")
    arrays = [root["X"][part] for part in ("data", "indices", "indptr")] if sparse else [root["X"]]
    def settings(codec):  # Zarr fills in the typesize from each array's dtype
        return type(codec), codec.cname, codec.clevel, codec.shuffle

    for array in arrays:
        assert [settings(c) for c in array.compressors] == [settings(c) for c in MATRIX_COMPRESSORS]


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_stores_with_zarrs_default_codec_still_open(tmp_path, matrix, sparse):
    """What dnmf wrote before its stores used :data:`MATRIX_COMPRESSORS`: the same layout, Zarr's default codec."""
    root = zarr.open_group(tmp_path / "old.zarr", mode="w")
    root.attrs["encoding-type"] = "anndata"
    if sparse:
        csr = sp.csr_matrix(matrix)
        group = root.create_group("X")
        group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": list(matrix.shape)})
        for part in ("data", "indices", "indptr"):
            group.create_array(part, data=getattr(csr, part), chunks=(16,))
    else:
        root.create_array("X", data=matrix, chunks=(20, 15)).attrs["encoding-type"] = "array"
    first = (root["X"]["data"] if sparse else root["X"]).compressors
    assert first and type(first[0]).__name__ == "ZstdCodec"
    np.testing.assert_array_equal(assemble(open_matrix(tmp_path / "old.zarr", chunks=(17, 13))), matrix)


def test_missing_labels_get_anndata_defaults(tmp_path, matrix):
    save_matrix(matrix, tmp_path / "m.zarr", labels=(None, [f"c{j}" for j in range(41)]))
    rows, cols = read_labels(tmp_path / "m.zarr")
    assert rows[0] == "0" and rows[-1] == "52" and cols[1] == "c1"


def test_we_open_stores_anndata_wrote(tmp_path, matrix):
    adata = anndata.AnnData(X=sp.csr_matrix(matrix.astype(np.float32)))
    adata.var_names = [f"gene{j}" for j in range(41)]
    adata.write_zarr(tmp_path / "a.zarr")
    A = open_matrix(tmp_path / "a.zarr", chunks=(20, 20))
    np.testing.assert_array_equal(assemble(A), matrix.astype(np.float32))
    assert read_labels(tmp_path / "a.zarr")[1][2] == "gene2"
    group = zarr.open_group(tmp_path / "elem.zarr", mode="w")
    write_elem(group, "X", sp.csc_matrix(matrix))
    np.testing.assert_array_equal(assemble(open_matrix(tmp_path / "elem.zarr" / "X", chunks=(20, 20))), matrix)


@pytest.mark.parametrize("encoding", ["csr", "csc"])
def test_a_sparse_stores_blocks_are_canonical_csr_and_not_cast_again(tmp_path, matrix, encoding):
    """The reader cuts canonical CSR blocks, so ``as_input_matrix`` adds no task per block of every pass; a store of
    another dtype is still cast, and so is sparse Dask input from elsewhere."""
    from dnmf.data.matrix import as_input_matrix

    rows, cols = np.nonzero(matrix)
    shuffled = np.random.default_rng(3).permutation(rows.size)  # unsorted indices within each row (or column)
    stored = sp.coo_matrix((matrix[rows, cols][shuffled], (rows[shuffled], cols[shuffled])), shape=matrix.shape)
    group = zarr.open_group(tmp_path / "elem.zarr", mode="w")
    unsorted = stored.tocsr() if encoding == "csr" else stored.tocsc()
    unsorted.has_sorted_indices = False
    write_elem(group, "X", unsorted)
    A = open_matrix(tmp_path / "elem.zarr" / "X", chunks=(20, 15))
    placed = as_input_matrix(A).array
    assert placed.name == A.name
    for block in dask.compute(placed.to_delayed().ravel().tolist())[0]:
        assert block.format == "csr" and block.has_canonical_format
        rows_of = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
        assert np.all((np.diff(block.indices) > 0) | (np.diff(rows_of) > 0))  # sorted, no duplicates, in each row
    np.testing.assert_array_equal(assemble(placed), matrix)
    write_elem(group, "counts", sp.csr_matrix((matrix * 10).astype(np.int32)))
    counts = as_input_matrix(open_matrix(tmp_path / "elem.zarr" / "counts")).array
    assert counts.dtype == np.float64 and "dnmf-input-cast" in counts.name
    np.testing.assert_array_equal(assemble(counts), (matrix * 10).astype(np.int32))
    elsewhere = da.from_array(sp.csr_matrix(matrix), chunks=(20, 15), asarray=False)
    assert "dnmf-input-cast" in as_input_matrix(elsewhere).array.name


def test_refuses_to_overwrite_and_leaves_the_store_untouched(tmp_path, matrix):
    save_matrix(matrix, tmp_path / "m.zarr")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_matrix(matrix * 2, tmp_path / "m.zarr")
    np.testing.assert_array_equal(open_matrix(tmp_path / "m.zarr").compute(), matrix)
    save_matrix(matrix * 2, tmp_path / "m.zarr", overwrite=True)
    np.testing.assert_array_equal(open_matrix(tmp_path / "m.zarr").compute(), matrix * 2)
    assert os.listdir(tmp_path) == ["m.zarr"]


def test_overwrite_replaces_only_a_store_dnmf_wrote(tmp_path, matrix):
    from dnmf.data.safety import NotOwnStoreError

    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    plain = tmp_path / "plain.txt"
    plain.write_text("mine")
    foreign = zarr.open_group(tmp_path / "foreign.zarr", mode="w")
    foreign.attrs["made-by"] = "another program"
    for target in (folder, plain, tmp_path / "foreign.zarr"):
        with pytest.raises(NotOwnStoreError, match="Refusing to replace"):
            save_matrix(matrix, target, overwrite=True)
    assert (folder / "notes.txt").read_text() == "mine" and plain.read_text() == "mine"
    assert dict(zarr.open_group(tmp_path / "foreign.zarr", mode="r").attrs) == {"made-by": "another program"}

    save_matrix(matrix, tmp_path / "m.zarr")
    assert zarr.open_group(tmp_path / "m.zarr", mode="r").attrs["dnmf"] == {"kind": "matrix", "version": 1}
    (tmp_path / "m.zarr" / "extra.txt").write_text("mine")
    with pytest.raises(NotOwnStoreError, match="extra.txt"):
        save_matrix(matrix * 2, tmp_path / "m.zarr", overwrite=True)
    (tmp_path / "m.zarr" / "extra.txt").unlink()
    legacy = zarr.open_group(tmp_path / "m.zarr", mode="r+")
    del legacy.attrs["dnmf"]
    save_matrix(matrix * 2, tmp_path / "m.zarr", overwrite=True)
    np.testing.assert_array_equal(open_matrix(tmp_path / "m.zarr").compute(), matrix * 2)
    assert anndata.read_zarr(tmp_path / "m.zarr").shape == matrix.shape


def _fail(block):
    raise RuntimeError("disk full")


@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_write_leaves_no_half_written_store(tmp_path, matrix, existing):
    if existing:
        save_matrix(matrix, tmp_path / "m.zarr")
    broken = da.from_array(matrix, chunks=(20, 20)).map_blocks(_fail, dtype=float)
    with pytest.raises(RuntimeError, match="disk full"):
        save_matrix(broken, tmp_path / "m.zarr", overwrite=True)
    assert os.listdir(tmp_path) == (["m.zarr"] if existing else [])
    if existing:
        np.testing.assert_array_equal(open_matrix(tmp_path / "m.zarr").compute(), matrix)


def test_label_count_mismatch(tmp_path, matrix):
    with pytest.raises(ValueError, match="Got 3 row labels for a matrix with 53 rows"):
        save_matrix(matrix, tmp_path / "m.zarr", labels=(["a", "b", "c"], None))
    assert not (tmp_path / "m.zarr").exists()


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="No Zarr store at .*nowhere.zarr"):
        open_matrix(tmp_path / "nowhere.zarr")
    with pytest.raises(FileNotFoundError, match="nowhere.zarr"):
        NMF(2).fit(str(tmp_path / "nowhere.zarr"))


def test_unknown_layout(tmp_path):
    zarr.open_group(tmp_path / "g.zarr", mode="w").attrs["encoding-type"] = "dataframe"
    with pytest.raises(StoreError, match="neither a dense Zarr array nor a known sparse encoding.*dataframe"):
        open_matrix(tmp_path / "g.zarr")


def _sparse_group(path, indptr, indices, data, shape):
    group = zarr.open_group(path, mode="w")
    group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": list(shape)})
    for name, values in (("indptr", indptr), ("indices", indices), ("data", data)):
        group.create_array(name, data=np.asarray(values))


def test_indptr_not_matching_shape(tmp_path):
    _sparse_group(tmp_path / "s.zarr", [0, 1, 2], [0, 1], [1.0, 2.0], (3, 2))
    with pytest.raises(StoreError, match="indptr of 3 entries, but its shape \\(3, 2\\) needs 4"):
        open_matrix(tmp_path / "s.zarr")


def test_indices_out_of_range(tmp_path):
    _sparse_group(tmp_path / "s.zarr", [0, 1, 2, 2], [0, 5], [1.0, 2.0], (3, 2))
    A = open_matrix(tmp_path / "s.zarr", chunks=(3, 2))
    with pytest.raises(StoreError, match="indices out of range \\[0, 2\\)"):
        A.compute()


def test_fit_from_url_equals_fit_in_memory(tmp_path):
    A, _, _ = make_sparse_low_rank(300, 120, 4, column_density=0.2, random_state=0)
    save_matrix(A, tmp_path / "a.zarr", chunks=(100, 40), labels=(None, [f"w{j}" for j in range(120)]))
    from_store = NMF(4, max_iter=40, tol=0, random_state=0, chunks=(100, 40))
    W_store = from_store.fit_transform(str(tmp_path / "a.zarr"), out=tmp_path / "result.zarr")
    in_memory = NMF(4, max_iter=40, tol=0, random_state=0, chunks=(100, 40))
    W_memory = in_memory.fit_transform(A)
    assert isinstance(W_store, da.Array)
    np.testing.assert_allclose(W_store.compute(), W_memory, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(from_store.components_, in_memory.components_, rtol=1e-10, atol=1e-12)

    result = load_result(tmp_path / "result.zarr")
    np.testing.assert_array_equal(result.H, from_store.components_)
    np.testing.assert_allclose(result.W.compute(), W_memory, rtol=1e-10, atol=1e-12)
    assert result.info["n_iter"] == 40 and result.info["params"]["n_components"] == 4
    assert result.info["loss_history"] == from_store.loss_history_
    assert result.info["fingerprint"]["shape"] == [300, 120] and result.info["fingerprint"]["nnz"] == A.nnz
    assert set(result.info["versions"]) >= {"dask", "numpy", "zarr"}
    top = result.top_features(5)
    assert len(top) == 4 and all(len(t) == 5 for t in top)
    heaviest = np.argmax(from_store.components_[0])
    assert top[0][0] == (f"w{heaviest}", pytest.approx(from_store.components_[0, heaviest]))


def test_save_after_fit_and_refuse_overwrite(tmp_path, matrix):
    model = NMF(3, max_iter=5, tol=0).fit(matrix)
    model.save(tmp_path / "r.zarr")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "r.zarr")
    result = load_result(tmp_path / "r.zarr")
    assert result.W.shape == (53, 3) and result.row_labels is None
    assert result.top_features(2)[0][0][0].isdigit()


def test_load_result_rejects_other_stores(tmp_path, matrix):
    save_matrix(matrix, tmp_path / "m.zarr")
    with pytest.raises(StoreError, match="not a dnmf result store"):
        load_result(tmp_path / "m.zarr")


def test_public_names():
    for name in ("open_matrix", "save_matrix", "read_labels", "load_result", "NMF"):
        assert hasattr(dnmf, name)
