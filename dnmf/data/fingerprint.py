"""What identifies an input matrix, for checkpoints and result stores: its shape, statistics and a hash of a sample."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import scipy.sparse as sp
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from dnmf.core.blocks import is_blocks
from dnmf.data.matrix import MatrixStats

__all__ = ["corner_digests", "fingerprint"]


def _block_digest(block: Any) -> np.ndarray:
    import hashlib

    digest = hashlib.sha256()
    if sp.issparse(block):
        csr = sp.csr_matrix(block)
        for part in (csr.data, csr.indices, csr.indptr):
            digest.update(np.ascontiguousarray(part).tobytes())
    else:
        digest.update(np.ascontiguousarray(block).tobytes())
    return np.array([digest.hexdigest()], dtype=object)


def corner_digests(A: Any) -> Any:
    """SHA-256 digests of A's first and last blocks: a list of two strings for in-process blocks, else a lazy
    Dask array of them (to be computed with the pass that reads those blocks anyway)."""
    last = (A.numblocks[0] - 1, A.numblocks[1] - 1)
    if is_blocks(A):
        return [str(_block_digest(A.block(*ij))[0]) for ij in ((0, 0), last)]
    name = f"dnmf-fingerprint-{tokenize(A.name)}"
    corners = {(name, 0): (_block_digest, (A.name, 0, 0)), (name, 1): (_block_digest, (A.name, *last))}
    graph = HighLevelGraph.from_collections(name, corners, dependencies=[A])
    return da.Array(graph, name, chunks=((1, 1),), dtype=object, meta=np.empty((0,), dtype=object))


def fingerprint(A: Any, stats: MatrixStats, digests: Any = None) -> dict[str, Any]:
    """What identifies an input: shape, dtype, nnz, chunking, sum and squared norm (one pass, already done), and
    a SHA-256 of its first and last blocks (``digests``, from :func:`corner_digests`, computed here if not given)."""
    if digests is None:
        digests = corner_digests(A)
    if isinstance(digests, da.Array):
        digests = digests.compute()
    return {
        "shape": list(stats.shape),
        "dtype": str(A.dtype),
        "nnz": stats.nnz,
        "chunks": [list(map(int, A.chunks[0])), list(map(int, A.chunks[1]))],
        "sum": stats.sum,
        "norm_squared": stats.norm_squared,
        "sample_sha256": [str(d) for d in digests],
    }
