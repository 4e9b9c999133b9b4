"""Microbenchmark of the local update rules on one realistic factor block.

``python -m benchmarks.rules`` builds an H-step block like one of the S1 benchmark's (rank ``k = 32``, 50,000
columns; ``W`` and ``H`` about 30 % dense, with noise), times ``mu``, ``hals`` and ``bpp`` on it from a cold start
(a dense random block, as after random initialisation) and a warm start (the exact solution of a nearby problem,
as late in an alternating loop), interleaving the rules so that machine noise hits them alike, and prints the
median of the repeats as a Markdown table.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from dnmf.core.rules import RULES, bpp

__all__ = ["Block", "main", "make_block", "time_rules"]


@dataclass(frozen=True)
class Block:
    """The inputs of one H-step: the Gram matrix, the cross product, and two starting blocks."""

    gram: np.ndarray
    cross: np.ndarray
    cold: np.ndarray
    warm: np.ndarray


def _sparse_uniform(rng: np.random.Generator, shape: tuple[int, int], density: float) -> np.ndarray:
    return rng.random(shape) * (rng.random(shape) < density)


def make_block(k: int = 32, n_columns: int = 50_000, n_rows: int = 2_000, density: float = 0.3,
               noise: float = 0.1, seed: int = 0) -> Block:
    """A block with ``gram = WᵀW`` and ``cross = Wᵀ(W H + E)`` for sparse non-negative ``W``, ``H``.

    ``WᵀE`` for Gaussian ``E`` of scale ``σ`` is drawn directly as ``σ · L Z`` with ``L Lᵀ = WᵀW`` and ``Z``
    standard normal, which has the same distribution and avoids forming the ``n_rows × n_columns`` noise. ``σ`` is
    ``noise`` times the root-mean-square entry of ``W H``. The warm start is the exact solution for ``W`` with 5 %
    multiplicative noise, the way the previous iteration's solution relates to the current problem.
    """
    rng = np.random.default_rng(seed)
    W = _sparse_uniform(rng, (n_rows, k), density)
    H = _sparse_uniform(rng, (k, n_columns), density)
    gram = W.T @ W
    signal_rms = np.sqrt(np.einsum("ij,ij->", gram, H @ H.T) / (n_rows * n_columns))
    cross = gram @ H + noise * signal_rms * (np.linalg.cholesky(gram) @ rng.standard_normal((k, n_columns)))
    nearby = W * (1.0 + 0.05 * rng.standard_normal(W.shape))
    warm, _ = bpp.solve_nnls(nearby.T @ nearby, nearby.T @ W @ H + (cross - gram @ H))
    cold = rng.random((k, n_columns))
    return Block(gram=gram, cross=cross, cold=cold, warm=warm)


def time_rules(block: Block, rules: tuple[str, ...] = ("mu", "hals", "bpp"),
               repeats: int = 5) -> dict[tuple[str, str], float]:
    """Median seconds of one call of each rule from each start, the calls interleaved over ``repeats`` rounds."""
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(repeats):
        for start_name, start in (("cold", block.cold), ("warm", block.warm)):
            for name in rules:
                began = time.perf_counter()
                RULES[name](start, block.cross, block.gram)
                samples.setdefault((name, start_name), []).append(time.perf_counter() - began)
    return {key: float(np.median(values)) for key, values in samples.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--columns", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    block = make_block(k=args.k, n_columns=args.columns, seed=args.seed)
    medians = time_rules(block, repeats=args.repeats)
    _, cold_stats = bpp.solve_nnls(block.gram, block.cross, start=block.cold)
    _, warm_stats = bpp.solve_nnls(block.gram, block.cross, start=block.warm)
    print(f"k = {args.k}, {args.columns} columns, median of {args.repeats}; "
          f"bpp rounds cold/warm = {cold_stats.rounds}/{warm_stats.rounds}\n")
    print("| rule | cold (s) | warm (s) | cold / hals | warm / hals |")
    print("|------|---------:|---------:|------------:|------------:|")
    for name in ("mu", "hals", "bpp"):
        cold, warm = medians[name, "cold"], medians[name, "warm"]
        print(f"| {name} | {cold:.3f} | {warm:.3f} | {cold / medians['hals', 'cold']:.1f} | "
              f"{warm / medians['hals', 'warm']:.1f} |")


if __name__ == "__main__":
    main()
