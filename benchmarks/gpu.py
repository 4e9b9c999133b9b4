"""The GPU benchmark of issue 19: dnmf's rules and block kernels on one GPU against a hand-written CuPy MU loop.

The case is 1,000,000 × 200,000 sparse with 1e8 non-zeros, rank 32, float32, MU and HALS (``--scale`` shrinks both
sides by the factor and the non-zeros by its square, keeping the density). Three loops run from the same start:

* ``cupy_loop``: the hand-written MU loop of the issue (``W ← W·AHᵀ/(WHHᵀ+ε)``, ``H ← H·WᵀA/(WᵀWH+ε)``);
* ``dnmf``: one dnmf iteration on a single block held on the device, from dnmf's own block kernels
  (:mod:`dnmf.core.kernels`), rules (:mod:`dnmf.core.rules`) and trace-identity loss, as the in-process executor
  applies them per block;
* ``cpu``: :class:`dnmf.NMF` on the same matrix on the host, on a ``LocalCluster`` of ``--cpu-workers`` single-threaded
  worker processes (``0``: the in-process executor), for ``speedup_over_cpu_workers``.

``python -m benchmarks.gpu`` needs CuPy and a CUDA device and writes ``benchmarks/results/gpu.json``; without them it
exits with status 2 and one line saying so. ``--backend numpy`` runs the same logic with NumPy and SciPy standing in
for CuPy (to test it on CPU; its figures measure nothing about GPUs and it writes ``gpu-numpy.json``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from dnmf.core import kernels
from dnmf.core.rules import hals, mu

RESULTS = Path(__file__).resolve().parent / "results"
FULL = {"rows": 1_000_000, "cols": 200_000, "nnz": 100_000_000, "rank": 32}
RULES = {"mu": mu.update, "hals": hals.update}


class Unavailable(RuntimeError):
    """The backend asked for cannot run here (no CuPy, no device)."""


@dataclass
class Backend:
    """An array library and its sparse module, with how to wait for it and read its memory peak."""

    name: str
    xp: ModuleType
    sparse: ModuleType
    device: str
    sync: Callable[[], None]
    peak_bytes: Callable[[], int | None]
    to_host: Callable[[Any], Any]


def cupy_backend() -> Backend:
    try:
        import cupy
        import cupyx.scipy.sparse
    except ImportError as error:
        raise Unavailable(f"CuPy cannot be imported ({error}); install it with pip install 'dnmf[gpu]', or run "
                          "with --backend numpy --scale 0.01 to exercise the benchmark on CPU") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as error:
        raise Unavailable(f"CuPy finds no CUDA device ({error})") from None
    if count == 0:
        raise Unavailable("CuPy finds no CUDA device")
    pool = cupy.get_default_memory_pool()
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    return Backend("cupy", cupy, cupyx.scipy.sparse, name.decode() if isinstance(name, bytes) else str(name),
                   cupy.cuda.Device(0).synchronize, pool.total_bytes, lambda a: a.get())


def numpy_backend() -> Backend:
    import scipy.sparse

    return Backend("numpy", np, scipy.sparse, f"cpu ({platform.machine()}, NumPy standing in for CuPy)",
                   lambda: None, lambda: None, lambda a: a)


def make_case(backend: Backend, scale: float, seed: int = 0) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    """The sparse matrix (CSR, and its transpose as CSR) and the initial factors, all on the backend."""
    xp = backend.xp
    m, n = max(2, round(FULL["rows"] * scale)), max(2, round(FULL["cols"] * scale))
    nnz, k = max(1, round(FULL["nnz"] * scale * scale)), min(FULL["rank"], n)
    xp.random.seed(seed)
    rows = xp.random.randint(0, m, nnz).astype(xp.int32)
    cols = xp.random.randint(0, n, nnz).astype(xp.int32)
    data = (xp.random.random(nnz) + 0.5).astype(xp.float32)
    A = backend.sparse.coo_matrix((data, (rows, cols)), shape=(m, n)).tocsr()
    A.sum_duplicates()
    At = A.T.tocsr()
    level = float(np.sqrt(float(A.sum()) / (m * n) / k))
    W = (xp.random.random((m, k)) * level).astype(xp.float32)
    H = (xp.random.random((k, n)) * level).astype(xp.float32)
    case = {"shape": [m, n], "nnz": int(A.nnz), "rank": k, "dtype": "float32", "scale": scale}
    return A, At, W, H, case


def cupy_loop_iteration(backend: Backend, A: Any, At: Any, W: Any, H: Any) -> tuple[Any, Any]:
    """The hand-written MU iteration the issue measured (no loss; ε added to every denominator, where dnmf's rule
    replaces zero denominators by ε)."""
    eps = mu.EPSILON
    W = W * (A @ H.T) / (W @ (H @ H.T) + eps)
    H = H * (At @ W).T / ((W.T @ W) @ H + eps)
    return W, H


def dnmf_iteration(backend: Backend, A: Any, At: Any, W: Any, H: Any, *, rule: Callable[..., Any],
                   norm_squared_a: float) -> tuple[Any, Any, float]:
    """One dnmf iteration on one block: W-step as the rule on the transposed problem, H-step, trace-identity loss."""
    xp = backend.xp
    cross_w = kernels.aht_block(A, H)[:, 0, :]
    gram_h = kernels.gram_cols_block(H)[:, :, 0]
    W = xp.ascontiguousarray(rule(xp.ascontiguousarray(W.T), xp.ascontiguousarray(cross_w.T), gram_h).T)
    cross_h = kernels.wta_block(W, A)[0]
    gram_w = kernels.gram_rows_block(W)[0]
    H = rule(H, cross_h, gram_w)
    inner = float(kernels.inner_block(cross_h, H)[0, 0])
    loss = float(kernels.frobenius_loss_block(inner, gram_w, kernels.gram_cols_block(H)[:, :, 0], norm_squared_a))
    return W, H, float(np.sqrt(loss))


def timed_loop(backend: Backend, step: Callable[[Any, Any], tuple[Any, ...]], W: Any, H: Any,
               iterations: int) -> tuple[list[float], Any, Any]:
    """Milliseconds of each of ``iterations`` iterations after one warm-up iteration, and the final factors."""
    W, H = step(W, H)[:2]
    backend.sync()
    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        W, H = step(W, H)[:2]
        backend.sync()
        times.append(1000 * (time.perf_counter() - started))
    return times, W, H


def cpu_ms_per_iteration(A_host: Any, W0: np.ndarray, H0: np.ndarray, solver: str, workers: int,
                         iterations: int) -> float:
    """Median milliseconds per iteration of :class:`dnmf.NMF` on the host (``workers = 0``: in process)."""
    from dnmf import NMF

    seconds: list[float] = []
    model = NMF(W0.shape[1], init="custom", solver={"mu": "mu", "hals": "cd"}[solver], max_iter=iterations + 1,
                tol=0.0, callback=lambda record: seconds.append(record.seconds))
    if workers == 0:
        model.fit_transform(A_host, W=W0, H=H0)
    else:
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            with Client(cluster):
                model.fit_transform(A_host, W=W0, H=H0)
    return 1000 * statistics.median(seconds[1:] or seconds)


def run(args: argparse.Namespace) -> dict[str, Any]:
    backend = cupy_backend() if args.backend == "cupy" else numpy_backend()
    A, At, W0, H0, case = make_case(backend, args.scale)
    case["iterations"] = args.iterations
    norm_squared_a = float((A.data.astype(backend.xp.float64) ** 2).sum())
    dnmf_ms: dict[str, float] = {}
    for solver in args.solvers:
        step = lambda W, H, rule=RULES[solver]: dnmf_iteration(backend, A, At, W, H, rule=rule,  # noqa: E731
                                                               norm_squared_a=norm_squared_a)
        dnmf_ms[solver] = statistics.median(timed_loop(backend, step, W0, H0, args.iterations)[0])
    loop_ms = {"mu": statistics.median(timed_loop(backend, lambda W, H: cupy_loop_iteration(backend, A, At, W, H),
                                                  W0, H0, args.iterations)[0])}
    peak = backend.peak_bytes()
    report: dict[str, Any] = {
        "device": backend.device,
        "backend": backend.name,
        "measured_on_gpu": backend.name == "cupy",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "case": case,
        "dnmf_ms_per_iteration": dnmf_ms,
        "cupy_loop_ms_per_iteration": loop_ms,
        "dnmf_over_cupy_loop": {s: dnmf_ms[s] / loop_ms[s] for s in dnmf_ms if s in loop_ms},
        "peak_gpu_memory_mib": None if peak is None else peak / 2**20,
    }
    if not args.skip_cpu:
        A_host, W_host, H_host = backend.to_host(A), backend.to_host(W0), backend.to_host(H0)
        cpu_ms = {s: cpu_ms_per_iteration(A_host, W_host, H_host, s, args.cpu_workers, args.cpu_iterations)
                  for s in args.solvers}
        report["cpu_workers"] = args.cpu_workers
        report["cpu_ms_per_iteration"] = cpu_ms
        report["speedup_over_cpu_workers"] = {s: cpu_ms[s] / dnmf_ms[s] for s in args.solvers}
    else:
        report["speedup_over_cpu_workers"] = None
    return report


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("cupy", "numpy"), default="cupy",
                        help="cupy (the benchmark) or numpy (NumPy/SciPy standing in, to test the logic on CPU)")
    parser.add_argument("--scale", type=float, default=1.0, help="shrink both sides by this factor (default 1)")
    parser.add_argument("--iterations", type=int, default=20, help="timed iterations per loop (default 20)")
    parser.add_argument("--solvers", type=lambda s: s.split(","), default=["mu", "hals"], help="default mu,hals")
    parser.add_argument("--cpu-workers", type=int, default=os.cpu_count() or 1,
                        help="time dnmf.NMF on the host with this many worker processes (0: in process; default: "
                             "one per CPU)")
    parser.add_argument("--skip-cpu", action="store_true", help="skip the host run (no speedup_over_cpu_workers)")
    parser.add_argument("--cpu-iterations", type=int, default=5, help="iterations of the host run (default 5)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON report (default benchmarks/results/gpu.json, gpu-numpy.json for --backend numpy)")
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 1:
        parser.error(f"--scale must be in (0, 1], got {args.scale}")
    if args.iterations < 1 or args.cpu_iterations < 1 or args.cpu_workers < 0:
        parser.error("--iterations and --cpu-iterations must be at least 1 and --cpu-workers at least 0")
    unknown = [s for s in args.solvers if s not in RULES]
    if unknown:
        parser.error(f"unknown solver {unknown[0]!r} in --solvers; choose among {', '.join(RULES)}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    try:
        report = run(args)
    except Unavailable as error:
        print(f"benchmarks.gpu: {error}.", file=sys.stderr)
        raise SystemExit(2) from None
    out = args.out or RESULTS / ("gpu.json" if args.backend == "cupy" else "gpu-numpy.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
