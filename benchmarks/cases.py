"""The benchmark cases: seeded float32 matrices with planted low-rank structure, written once to a work folder.

Every candidate runs in a process of its own and loads the case from that folder, so that the peak memory of each
process is its own and no candidate inherits another's warm caches of Python objects.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["CASES", "Case", "load", "prepare"]


@dataclass(frozen=True)
class Case:
    """One benchmark matrix.

    ``kind`` is ``"sparse"`` (a CSR matrix in memory), ``"dense"`` (an ndarray) or ``"store"`` (a sparse Zarr
    store on disk, read block by block).
    """

    name: str
    kind: str
    rows: int
    cols: int
    rank: int
    nnz: int | None = None
    seed: int = 0
    #: Version of the data generator; a change rebuilds matrices cached in the work folder.
    generator: int = 2

    def describe(self) -> str:
        nnz = f", {self.nnz:,} non-zeros" if self.nnz else ""
        return f"{self.name}: {self.kind} {self.rows:,} × {self.cols:,}{nnz}, rank {self.rank}, float32"


CASES = {
    "S1": Case("S1", "sparse", 200_000, 50_000, 32, nnz=10_000_000),
    "S2": Case("S2", "dense", 20_000, 10_000, 32),
    "S3": Case("S3", "store", 1_000_000, 200_000, 8, nnz=450_000_000),
}


def _initial_factors(rows: int, cols: int, rank: int, mean: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform noise scaled as scikit-learn's random init, ``sqrt(mean(A) / k)``: the one start all candidates share."""
    scale = np.sqrt(mean / rank)
    rng = np.random.default_rng(seed)
    W0 = (rng.uniform(0.0, 2.0, size=(rows, rank)) * scale).astype(np.float32)
    H0 = (rng.uniform(0.0, 2.0, size=(rank, cols)) * scale).astype(np.float32)
    return W0, H0


def _planted_sparse(case: Case, noise_share: float = 0.2) -> sp.csr_matrix:
    """A documents × words matrix: an exact rank-``k`` part (each row mixes two topics, each topic a set of words)
    holding ``1 − noise_share`` of the non-zeros, plus small entries at random positions holding the rest, so that
    every column is used and the relative error of a rank-``k`` fit falls from 1 to about 0.1."""
    from dnmf.datasets import make_sparse_low_rank

    density = (1 - noise_share) * case.nnz / (case.rows * 2 * case.cols)
    planted, _, _ = make_sparse_low_rank(case.rows, case.cols, case.rank, topics_per_row=2, column_density=density,
                                         dtype=np.float32, random_state=case.seed)
    rng = np.random.default_rng([case.seed, 2])
    count = int(noise_share * case.nnz)
    noise = sp.csr_matrix((rng.uniform(0.0, 0.5, size=count).astype(np.float32),
                           (rng.integers(0, case.rows, size=count), rng.integers(0, case.cols, size=count))),
                          shape=planted.shape)
    noise.sum_duplicates()
    return sp.csr_matrix(planted + noise, dtype=np.float32)


def _stratified_block(rows: int, cols: int, per_row: int, W: np.ndarray, H: np.ndarray,
                      rng: np.random.Generator) -> sp.csr_matrix:
    """``per_row`` entries of ``W H`` per row, one in each of ``per_row`` equal column bands: sorted and unique by
    construction, so a block of 10⁷ entries costs a second rather than a sort."""
    band = cols // per_row
    columns = (np.arange(per_row) * band + rng.integers(0, band, size=(rows, per_row))).ravel()
    values = np.einsum("ij,ji->i", np.repeat(W, per_row, axis=0), H[:, columns], optimize=False)
    indptr = np.arange(0, rows * per_row + 1, per_row, dtype=np.int64)
    return sp.csr_matrix((values.astype(np.float32), columns.astype(np.int32), indptr), shape=(rows, cols))


def _write_store(case: Case, url: Path, block_rows: int = 62_500) -> None:
    import dask
    import dask.array as da

    from dnmf import save_matrix

    per_row = case.nnz // case.rows
    H = np.random.default_rng([case.seed, 0]).exponential(size=(case.rank, case.cols)).astype(np.float32)

    def block(index: int) -> sp.csr_matrix:
        rng = np.random.default_rng([case.seed, 1, index])
        rows = min(block_rows, case.rows - index * block_rows)
        W = rng.exponential(size=(rows, case.rank)).astype(np.float32)
        return _stratified_block(rows, case.cols, per_row, W, H, rng)

    n_blocks = -(-case.rows // block_rows)
    meta = sp.csr_matrix((0, case.cols), dtype=np.float32)
    strips = [da.from_delayed(dask.delayed(block)(i), shape=(min(block_rows, case.rows - i * block_rows), case.cols),
                              dtype=np.float32, meta=meta) for i in range(n_blocks)]
    with dask.config.set(scheduler="threads"):
        save_matrix(da.concatenate(strips, axis=0), url, overwrite=True)


def prepare(case: Case, directory: Path) -> dict[str, Any]:
    """Write the case's matrix and its shared initial factors under ``directory`` unless they are there already.

    Returns
    -------
    dict
        What was written and how long it took, plus ``mean``, ``norm_squared`` and ``disk_bytes`` of the matrix.
    """
    from dnmf.datasets import make_low_rank

    folder = directory / case.name
    manifest = folder / "case.json"
    if manifest.exists() and json.loads(manifest.read_text())["case"] == asdict(case):
        return json.loads(manifest.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if case.kind == "sparse":
        A = _planted_sparse(case)
        sp.save_npz(folder / "A.npz", A, compressed=False)
        total, norm_squared, nnz = (float(A.sum(dtype=np.float64)),
                                    float(np.sum(np.square(A.data, dtype=np.float64))), A.nnz)
    elif case.kind == "dense":
        A, _, _ = make_low_rank(case.rows, case.cols, case.rank, dtype=np.float32, random_state=case.seed)
        np.save(folder / "A.npy", A)
        total, norm_squared, nnz = float(A.sum(dtype=np.float64)), float(np.sum(np.square(A, dtype=np.float64))), A.size
    else:
        import dask

        from dnmf import open_matrix
        from dnmf.data.matrix import as_input_matrix, matrix_stats

        _write_store(case, folder / "A.zarr")
        with dask.config.set(scheduler="threads"):
            stats = matrix_stats(as_input_matrix(open_matrix(folder / "A.zarr")).array)
        total, norm_squared, nnz = stats.sum, stats.norm_squared, stats.nnz
    mean = total / (case.rows * case.cols)
    W0, H0 = _initial_factors(case.rows, case.cols, case.rank, mean, case.seed)
    np.save(folder / "W0.npy", W0)
    np.save(folder / "H0.npy", H0)
    record = {"case": asdict(case), "seconds": time.perf_counter() - started, "mean": mean,
              "norm_squared": norm_squared, "nnz": int(nnz), "disk_bytes": _matrix_bytes(folder)}
    manifest.write_text(json.dumps(record, indent=2))
    return record


def _matrix_bytes(folder: Path) -> int:
    """Bytes the matrix takes on disk (its file or its Zarr store), initial factors excluded."""
    paths = [folder / "A.npz", folder / "A.npy", folder / "A.zarr"]
    total = 0
    for path in paths:
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return total


def load(case: Case, directory: Path) -> tuple[Any, np.ndarray, np.ndarray]:
    """The case's matrix (CSR, ndarray, or the store's path as a string) and the shared initial ``W0``, ``H0``."""
    folder = directory / case.name
    if case.kind == "sparse":
        A: Any = sp.csr_matrix(sp.load_npz(folder / "A.npz"))
    elif case.kind == "dense":
        A = np.load(folder / "A.npy")
    else:
        A = str(folder / "A.zarr")
    return A, np.load(folder / "W0.npy"), np.load(folder / "H0.npy")
