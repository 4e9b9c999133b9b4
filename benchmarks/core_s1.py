"""Seconds per iteration: dnmf on a 2-worker LocalCluster against a single-process, in-memory SciPy loop.

Both candidates run the same update rule (``dnmf.rules.mu.update`` / ``dnmf.rules.hals.update``), in float32,
from the same ``W0``/``H0``, with the same work per iteration: a W-step from ``A Hᵀ`` and ``H Hᵀ``, an H-step from
``WᵀA`` and ``WᵀW``, and the loss ``‖A − WH‖`` by the trace identity ``‖A‖² − 2⟨WᵀA, H⟩ + ⟨WᵀW, HHᵀ⟩``.

Candidates are interleaved (for each repeat, for each solver: in-memory, then dnmf) so that drift of the machine
affects both alike. The first iteration of every run is dropped as warm-up (for dnmf it also computes the initial
loss); a run's figure is the median of the remaining iterations; across repeats we report the median and the
min–max of those per-run medians.

Run from the repository root::

    python -m benchmarks.core_s1                       # full size: 200k × 50k, 1e7 non-zeros, k = 32
    python -m benchmarks.core_s1 --iterations 4 --repeats 1 --rows 20000 --cols 5000 --nnz 1000000   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

SOLVERS = ("mu", "hals")
DNMF = "dnmf-localcluster-2w"
INMEMORY = "numpy-scipy-inmemory"
CANDIDATES = (DNMF, INMEMORY)
#: Share of the machine's CPU used by other processes during a run above which the run is flagged.
FOREIGN_LOAD_WARNING = 0.05


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--cols", type=int, default=50_000)
    parser.add_argument("--nnz", type=int, default=10_000_000)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=8, help="iterations per run (the first is dropped)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "core_s1.json",
                        help="JSON report (default: benchmarks/results/core_s1.json in the repository)")
    args = parser.parse_args(argv)
    if args.iterations < 2:
        parser.error("--iterations must be at least 2 (the first iteration is dropped as warm-up)")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


# -- the in-memory reference ("limit") ---------------------------------------------------------------------------

def inmemory_run(A: sp.csr_matrix, W0: np.ndarray, H0: np.ndarray, rule: Callable[..., np.ndarray],
                 iterations: int, norm_squared_a: float) -> dict[str, Any]:
    """The same alternating loop as dnmf's engine, on whole in-memory arrays: W-step, then H-step, then the loss."""
    At = A.T  # CSC view of the CSR matrix, no copy
    W, H = W0.copy(), H0.copy()
    HHt = H @ H.T
    seconds, losses = [], []
    for _ in range(iterations):
        started = time.perf_counter()
        AHt = A @ H.T                                     # (m, k)
        W = np.ascontiguousarray(rule(W.T, AHt.T, HHt).T)  # W-step on the transposed problem
        WtW = W.T @ W
        WtA = (At @ W).T                                  # (k, n)
        H = rule(H, WtA, WtW)                             # H-step
        HHt = H @ H.T
        cross = float(np.sum(WtA * H, dtype=np.float64))
        gram = float(np.sum(WtW.astype(np.float64) * HHt.astype(np.float64)))
        losses.append(float(np.sqrt(max(norm_squared_a - 2.0 * cross + gram, 0.0))))
        seconds.append(time.perf_counter() - started)
    return {"seconds_per_iteration": seconds, "loss_history": losses, "W": W, "H": H}


def exact_residual(A: sp.csr_matrix, W: np.ndarray, H: np.ndarray, batch: int = 1 << 16) -> float:
    """``‖A − WH‖_F`` in float64 from A's stored entries (independent of dnmf's code), for the final check only."""
    W64, H64 = W.astype(np.float64), H.astype(np.float64)
    rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
    on_support = 0.0
    for start in range(0, A.nnz, batch):
        stop = min(start + batch, A.nnz)
        approx = np.einsum("ij,ji->i", W64[rows[start:stop]], H64[:, A.indices[start:stop]])
        on_support += float(np.sum((A.data[start:stop].astype(np.float64) - approx) ** 2) - np.sum(approx ** 2))
    return float(np.sqrt(max(on_support + float(np.sum((W64.T @ W64) * (H64 @ H64.T))), 0.0)))


# -- dnmf ---------------------------------------------------------------------------------------------------------

class CpuMeter:
    """CPU seconds the whole machine spent busy during a run, and how much of that was not this benchmark's
    (the client and its worker processes). Other load on a 2-core machine skews every figure, so it is recorded."""

    def __init__(self) -> None:
        import psutil

        self.psutil = psutil
        self.me = psutil.Process()

    def _ours(self) -> float:
        total = 0.0
        for process in [self.me, *self.me.children(recursive=True)]:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except self.psutil.Error:
                pass
        return total

    def _machine(self) -> float:
        times = self.psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def __enter__(self) -> CpuMeter:
        self.wall, self.machine, self.ours = time.perf_counter(), self._machine(), self._ours()
        return self

    def __exit__(self, *exc: Any) -> None:
        wall = time.perf_counter() - self.wall
        machine, ours = self._machine() - self.machine, self._ours() - self.ours
        capacity = wall * (os.cpu_count() or 1)
        self.result = {"wall_seconds": wall, "machine_busy_cpu_seconds": machine, "own_cpu_seconds": ours,
                       "foreign_cpu_seconds": max(machine - ours, 0.0),
                       "foreign_share_of_capacity": max(machine - ours, 0.0) / capacity if capacity else 0.0,
                       "loadavg_1min_after": os.getloadavg()[0]}


def worker_memory(client: Any) -> dict[str, float]:
    import psutil

    rss = client.run(lambda: psutil.Process().memory_info().rss)
    return {address: value / 2**20 for address, value in rss.items()}


def summarize_task_stream(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Seconds of worker time by task prefix and by action (compute, transfer, ...) from a task stream."""
    from distributed.utils import key_split

    by_prefix: dict[str, float] = {}
    by_action: dict[str, float] = {}
    for record in records:
        prefix = key_split(record.get("key"))
        for interval in record.get("startstops", ()):
            duration = interval["stop"] - interval["start"]
            by_action[interval["action"]] = by_action.get(interval["action"], 0.0) + duration
            if interval["action"] == "compute":
                by_prefix[prefix] = by_prefix.get(prefix, 0.0) + duration
    top = dict(sorted(by_prefix.items(), key=lambda item: -item[1])[:15])
    return {"n_records": len(records), "seconds_by_action": by_action, "compute_seconds_by_prefix": top}


def dnmf_run(client: Any, A: sp.csr_matrix, W0: np.ndarray, H0: np.ndarray, solver: str, iterations: int,
             record_task_stream: bool) -> dict[str, Any]:
    from distributed import get_task_stream

    from dnmf import NMF

    model = NMF(n_components=W0.shape[1], solver=solver, init="custom", max_iter=iterations, tol=0, random_state=0)
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if record_task_stream:
            with get_task_stream(client) as stream:
                W = model.fit_transform(A, W=W0, H=H0)
            stream_summary = summarize_task_stream(stream.data)
        else:
            W = model.fit_transform(A, W=W0, H=H0)
            stream_summary = None
    fit_seconds = time.perf_counter() - started
    return {
        "seconds_per_iteration": list(model.timings_["seconds_per_iteration"]),
        "tasks_per_iteration": list(model.timings_["tasks_per_iteration"]),
        "loss_history": list(model.loss_history_),
        "reconstruction_err": float(model.reconstruction_err_),
        "fit_seconds": fit_seconds,
        "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
        "task_stream": stream_summary,
        "W": np.asarray(W),
        "H": np.asarray(model.components_),
    }


# -- reporting ----------------------------------------------------------------------------------------------------

def run_figure(seconds: list[float]) -> float:
    """A run's seconds per iteration: the median after dropping the warm-up iteration."""
    return float(statistics.median(seconds[1:]))


def relative(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else float("nan")


def relative_matrix(a: np.ndarray, b: np.ndarray) -> float:
    denominator = float(np.linalg.norm(b.astype(np.float64)))
    return float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64))) / denominator if denominator else 0.0


def blas_info() -> Any:
    try:
        from threadpoolctl import threadpool_info

        return [{k: v for k, v in pool.items() if k in ("internal_api", "num_threads", "version", "user_api")}
                for pool in threadpool_info()]
    except ImportError:
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from distributed import Client, LocalCluster

    from dnmf.datasets import make_sampled_low_rank
    from dnmf.rules import hals, mu

    rules = {"mu": mu.update, "hals": hals.update}
    args.out.parent.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    A = make_sampled_low_rank(args.rows, args.cols, args.rank, args.nnz, dtype=np.float32, random_state=0)
    A = sp.csr_matrix(A, dtype=np.float32)
    data_seconds = time.perf_counter() - t0
    norm_squared_a = float(np.sum(np.square(A.data, dtype=np.float64)))
    m, n, k = A.shape[0], A.shape[1], args.rank
    # Same start for every candidate: uniform noise scaled as scikit-learn's random init, sqrt(mean(A) / k).
    scale = np.sqrt(float(A.sum(dtype=np.float64)) / (m * n) / k)
    rng = np.random.default_rng(0)
    W0 = (rng.uniform(0.0, 2.0, size=(m, k)) * scale).astype(np.float32)
    H0 = (rng.uniform(0.0, 2.0, size=(k, n)) * scale).astype(np.float32)
    print(f"data: {m} x {n}, nnz={A.nnz}, k={k}, built in {data_seconds:.1f} s; "
          f"A is {(A.data.nbytes + A.indices.nbytes + A.indptr.nbytes) / 2**20:.0f} MiB in memory", flush=True)

    runs: list[dict[str, Any]] = []
    cluster_info: dict[str, Any] = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        cluster_info["worker_blas_threads"] = client.run(
            lambda: {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
        cluster_info["worker_memory_mib_start"] = worker_memory(client)
        for repeat in range(args.repeats):
            for solver in SOLVERS:
                last = repeat == args.repeats - 1
                with CpuMeter() as ref_cpu:
                    ref = inmemory_run(A, W0, H0, rules[solver], args.iterations, norm_squared_a)
                ref["cpu"] = ref_cpu.result
                print(f"repeat {repeat} {solver:4s} {INMEMORY}: "
                      f"{' '.join(f'{s:.3f}' for s in ref['seconds_per_iteration'])} s", flush=True)
                with CpuMeter() as dist_cpu:
                    dist = dnmf_run(client, A, W0, H0, solver, args.iterations, record_task_stream=last)
                dist["cpu"] = dist_cpu.result
                for name, result in ((INMEMORY, ref), (DNMF, dist)):
                    if result["cpu"]["foreign_share_of_capacity"] > FOREIGN_LOAD_WARNING:
                        print(f"  note: other processes used {100 * result['cpu']['foreign_share_of_capacity']:.0f}% "
                              f"of the machine's CPU during the {name} run; its timings are suspect", flush=True)
                print(f"repeat {repeat} {solver:4s} {DNMF}: "
                      f"{' '.join(f'{s:.3f}' for s in dist['seconds_per_iteration'])} s "
                      f"(whole fit {dist['fit_seconds']:.1f} s, tasks/iter {dist['tasks_per_iteration']})", flush=True)
                for message in dist["warnings"]:
                    print(f"  warning during dnmf fit: {message}", flush=True)
                check = {
                    "loss_inmemory": ref["loss_history"][-1],
                    "loss_dnmf": dist["loss_history"][-1],
                    "loss_rel_diff": relative(dist["loss_history"][-1], ref["loss_history"][-1]),
                    "max_loss_history_rel_diff": max(relative(a, b) for a, b in
                                                     zip(dist["loss_history"], ref["loss_history"])),
                    "W_rel_diff": relative_matrix(dist["W"], ref["W"]),
                    "H_rel_diff": relative_matrix(dist["H"], ref["H"]),
                }
                if last:
                    check["exact_residual_inmemory"] = exact_residual(A, ref["W"], ref["H"])
                    check["exact_residual_dnmf"] = dist["reconstruction_err"]
                    check["exact_residual_rel_diff"] = relative(check["exact_residual_dnmf"],
                                                                check["exact_residual_inmemory"])
                memory = worker_memory(client)
                for candidate, result in ((INMEMORY, ref), (DNMF, dist)):
                    runs.append({
                        "repeat": repeat, "solver": solver, "candidate": candidate,
                        "seconds_per_iteration": result["seconds_per_iteration"],
                        "seconds_per_iteration_median": run_figure(result["seconds_per_iteration"]),
                        "loss_history": result["loss_history"],
                        "cpu": result["cpu"],
                        **({k: dist[k] for k in ("tasks_per_iteration", "reconstruction_err", "fit_seconds",
                                                 "warnings", "task_stream")} | {"worker_memory_mib_after": memory}
                           if candidate == DNMF else {}),
                        "check": check,
                    })
                del ref, dist

    # -- summary ------------------------------------------------------------------------------------------------
    summary: dict[str, Any] = {}
    for solver in SOLVERS:
        for candidate in CANDIDATES:
            figures = [r["seconds_per_iteration_median"] for r in runs
                       if r["solver"] == solver and r["candidate"] == candidate]
            foreign = [r["cpu"]["foreign_share_of_capacity"] for r in runs
                       if r["solver"] == solver and r["candidate"] == candidate]
            summary.setdefault(solver, {})[candidate] = {
                "median": float(statistics.median(figures)), "min": min(figures), "max": max(figures),
                "per_repeat": figures, "max_foreign_cpu_share": max(foreign),
            }
        entry = summary[solver]
        entry["ratio_dnmf_over_inmemory"] = entry[DNMF]["median"] / entry[INMEMORY]["median"]
        last_dnmf = [r for r in runs if r["solver"] == solver and r["candidate"] == DNMF][-1]
        tasks = last_dnmf["tasks_per_iteration"]
        entry["tasks_iteration_2"] = tasks[1]
        entry["tasks_last_iteration"] = tasks[-1]
        entry["final_check"] = last_dnmf["check"]
        entry["dnmf_fit_seconds_last"] = last_dnmf["fit_seconds"]
        entry["dnmf_task_stream_last"] = last_dnmf["task_stream"]

    lines = [
        f"A: {m} x {n}, nnz={A.nnz}, k={k}; {args.iterations} iterations per run (first dropped), "
        f"{args.repeats} repeats, interleaved",
        "",
        "| candidate | solver | median s/iter | min–max s/iter (per-repeat medians) | dnmf / in-memory "
        "| max other-process CPU share |",
        "|---|---|---|---|---|---|",
    ]
    for solver in SOLVERS:
        for candidate in CANDIDATES:
            s = summary[solver][candidate]
            ratio = f"{summary[solver]['ratio_dnmf_over_inmemory']:.2f}×" if candidate == DNMF else ""
            lines.append(f"| {candidate} | {solver} | {s['median']:.3f} | {s['min']:.3f}–{s['max']:.3f} | {ratio} "
                         f"| {100 * s['max_foreign_cpu_share']:.0f}% |")
    lines += ["", "| solver | dnmf tasks @ iter 2 | dnmf tasks @ last iter | final loss dnmf | final loss in-memory "
              "| rel. diff | max rel. diff over history | W rel. diff | H rel. diff | exact residual rel. diff |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for solver in SOLVERS:
        s, c = summary[solver], summary[solver]["final_check"]
        lines.append(f"| {solver} | {s['tasks_iteration_2']} | {s['tasks_last_iteration']} | {c['loss_dnmf']:.6g} "
                     f"| {c['loss_inmemory']:.6g} | {c['loss_rel_diff']:.2e} | {c['max_loss_history_rel_diff']:.2e} "
                     f"| {c['W_rel_diff']:.2e} | {c['H_rel_diff']:.2e} | {c.get('exact_residual_rel_diff', float('nan')):.2e} |")
    lines.append("")
    for solver in SOLVERS:
        s = summary[solver]
        stream = s["dnmf_task_stream_last"] or {}
        iter_sum = sum([r for r in runs if r["solver"] == solver and r["candidate"] == DNMF][-1]
                       ["seconds_per_iteration"])
        lines.append(f"{solver}: last dnmf fit took {s['dnmf_fit_seconds_last']:.1f} s in all, "
                     f"{iter_sum:.1f} s of it in the {args.iterations} iterations")
        if stream:
            actions = ", ".join(f"{a} {v:.1f} s" for a, v in stream["seconds_by_action"].items())
            top = ", ".join(f"{p} {v:.1f} s" for p, v in list(stream["compute_seconds_by_prefix"].items())[:8])
            lines.append(f"  worker time (whole fit, both workers): {actions}")
            lines.append(f"  top compute by task prefix: {top}")
    table = "\n".join(lines)
    print()
    print(table, flush=True)

    report = {
        "benchmark": "core_s1",
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "data": {"rows": m, "cols": n, "nnz": int(A.nnz), "rank": k, "build_seconds": data_seconds,
                 "norm_squared": norm_squared_a, "init_scale": float(scale)},
        "environment": {"python": sys.version, "platform": platform.platform(), "cpu_count": os.cpu_count(),
                        "numpy": np.__version__, "scipy": __import__("scipy").__version__,
                        "dask": __import__("dask").__version__,
                        "distributed": __import__("distributed").__version__,
                        "client_blas": blas_info(), **cluster_info},
        "summary": summary,
        "runs": runs,
        "table_markdown": table,
    }
    args.out.write_text(json.dumps(report, indent=2, default=float))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
