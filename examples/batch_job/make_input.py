"""Write the batch job's input: a sparse matrix with a planted rank-16 structure, as a SciPy ``.npz`` file.

Usage: ``python make_input.py OUT.npz ROWS COLS NNZ``.
"""

from __future__ import annotations

import sys

import scipy.sparse

from dnmf.datasets import make_sampled_low_rank


def main(out: str, rows: int, cols: int, nnz: int) -> None:
    matrix = make_sampled_low_rank(rows, cols, 16, nnz, random_state=0)
    scipy.sparse.save_npz(out, matrix, compressed=False)
    print(f"{out}: {matrix.shape[0]:,} × {matrix.shape[1]:,}, {matrix.nnz:,} non-zeros")


if __name__ == "__main__":
    main(sys.argv[1], *(int(value) for value in sys.argv[2:5]))
