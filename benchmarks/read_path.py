"""The streamed read path of a sparse store, step by step, under each candidate codec.

A streamed pass over a sparse store runs, per row strip, :func:`dnmf.data.sparse.read_strip` (slice ``indptr``,
decode that strip's ``data`` and ``indices``, check them, build canonical CSR) and then cuts the strip into the
grid's column blocks (``dnmf.data.store._cut_block``). This script times each step on one core, the way a worker
runs it, for the same matrix stored under each codec, in interleaved rounds (medians), and reports the throughput
in MB per second of what each step yields in memory (a decoded array; for the whole read and the cut, the CSR
bytes: ``data`` + ``indices`` + ``indptr``) and the bytes on disk.

Two matrices: ``floats`` (sampled entries of a low-rank product, as ``make_sampled_low_rank`` draws them: random
float32 values, the hard case for a compressor) and ``counts`` (the same positions, values rounded up to whole
numbers, like a term-document or single-cell count matrix).

Run from the repository root, pinned to one core as a worker would be::

    taskset -c 0 python -m benchmarks.read_path --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import zarr
from zarr.codecs import BloscCodec, ZstdCodec


def candidates() -> dict[str, tuple[Any, int]]:
    """Per candidate layout: the codec of the three arrays and the chunk length of ``indptr``."""
    from dnmf.data.sparse import MATRIX_COMPRESSORS, SPARSE_ARRAY_CHUNK
    from dnmf.data.sparse_write import INDPTR_CHUNK

    return {"zstd-3, indptr in data's chunks (dnmf before)": ((ZstdCodec(level=3),), SPARSE_ARRAY_CHUNK),
            "zstd-3": ((ZstdCodec(level=3),), INDPTR_CHUNK),
            "blosc-lz4-bitshuffle (dnmf now)": (MATRIX_COMPRESSORS, INDPTR_CHUNK),
            "blosc-zstd-1-bitshuffle": ((BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle"),), INDPTR_CHUNK),
            "no codec": (None, INDPTR_CHUNK)}


def write_store(X: sp.csr_matrix, url: Path, compressors: Any, indptr_chunk: int) -> int:
    """``X`` in AnnData's CSR layout, the way ``save_matrix`` lays it out but under ``compressors``, ``indptr`` in
    chunks of ``indptr_chunk``; its bytes on disk."""
    from dnmf.data.sparse import SPARSE_ARRAY_CHUNK

    group = zarr.open_group(url, mode="w")
    group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": list(X.shape)})
    for part, values in (("data", X.data), ("indices", X.indices), ("indptr", X.indptr.astype(np.int64))):
        chunk = indptr_chunk if part == "indptr" else SPARSE_ARRAY_CHUNK
        group.create_array(part, data=values, chunks=(min(chunk, len(values)),), compressors=compressors)
    return sum(os.path.getsize(Path(root) / name) for root, _, names in os.walk(url) for name in names)


def steps(url: str, shape: tuple[int, int], strips: int,
          column_blocks: int) -> dict[str, tuple[Callable[[], Any], int]]:
    """Per step of the read path: a callable over every strip of the store, and the in-memory bytes it yields."""
    from dnmf.data.sparse import read_chunks, read_strip
    from dnmf.data.store import _cut_block

    group = zarr.open_group(url, mode="r")
    edges = np.linspace(0, shape[0], strips + 1).astype(int)
    columns = np.linspace(0, shape[1], column_blocks + 1).astype(int)
    indptr = group["indptr"][:]

    def decode(part: str) -> tuple[Callable[[], Any], int]:
        array = group[part]
        return (lambda: [read_chunks(array, int(indptr[a]), int(indptr[b]), url) for a, b in zip(edges, edges[1:])],
                array.nbytes)

    def read() -> list[sp.csr_matrix]:
        return [read_strip(url, {}, "csr_matrix", int(a), int(b), shape) for a, b in zip(edges, edges[1:])]

    held = read()

    def cut() -> list[sp.csr_matrix]:
        return [_cut_block(strip, slice(0, strip.shape[0]), slice(int(c), int(d)))
                for strip in held for c, d in zip(columns, columns[1:])]

    csr = sum(strip.data.nbytes + strip.indices.nbytes + strip.indptr.nbytes for strip in held)
    return {"decode data": decode("data"), "decode indices": decode("indices"), "read_strip (all of it)": (read, csr),
            f"cut into {column_blocks} column blocks": (cut, csr)}


def seconds_of(step: Callable[[], Any]) -> float:
    began = time.perf_counter()
    step()
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=100_000)
    parser.add_argument("--nnz", type=int, default=20_000_000)
    parser.add_argument("--strips", type=int, default=18)
    parser.add_argument("--column-blocks", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from dnmf.datasets import make_sampled_low_rank

    floats = make_sampled_low_rank(args.rows, args.cols, 8, args.nnz, dtype=np.float32, random_state=0)
    counts = floats.copy()
    np.ceil(counts.data, out=counts.data)
    csr_mb = (floats.data.nbytes + floats.indices.nbytes + 8 * (args.rows + 1)) / 1e6
    print(f"{args.rows:,} × {args.cols:,}, {floats.nnz:,} non-zeros, {csr_mb:.0f} MB of CSR; {args.strips} strips, "
          f"{args.column_blocks} column blocks; medians of {args.repeats} interleaved rounds\n")
    folder = Path(tempfile.mkdtemp(prefix="dnmf-read-path-"))
    try:
        for label, X in (("floats", floats), ("counts", counts)):
            codecs, plans, disk = candidates(), {}, {}
            for name, (compressors, indptr_chunk) in codecs.items():
                url = folder / f"{label}-{len(plans)}.zarr"
                disk[name] = write_store(X, url, compressors, indptr_chunk)
                plans[name] = steps(str(url), X.shape, args.strips, args.column_blocks)
            seconds: dict[tuple[str, str], list[float]] = {}
            for round_ in range(args.repeats):
                order = list(plans) if round_ % 2 == 0 else list(reversed(plans))
                for name in order:
                    for step, (run, _) in plans[name].items():
                        seconds.setdefault((name, step), []).append(seconds_of(run))
            print(f"[{label}]")
            for name, plan in plans.items():
                print(f"  {name}: {disk[name] / 1e6:.0f} MB on disk ({csr_mb * 1e6 / disk[name]:.2f}× smaller)")
                for step, (_, nbytes) in plan.items():
                    value = statistics.median(seconds[(name, step)])
                    print(f"    {step:28s} {value:7.3f} s   {nbytes / 1e6 / value:6.0f} MB/s")
            print()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
