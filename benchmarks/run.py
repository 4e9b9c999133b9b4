"""dnmf against the in-memory limit and scikit-learn, side by side in one run, and the speed targets.

Every run of every candidate is a fresh process (:mod:`benchmarks.candidates`), so its peak memory is its own.
Candidates are interleaved (A B C … A B C …) and the whole round is repeated, so that drift of this noisy machine
touches all of them alike; figures are medians over repeats with their min–max. A run's seconds per iteration is
the mean over its iterations after the first two: the first is a warm-up in which dnmf also forms the initial
loss, and on a cluster dnmf submits each iteration before the previous loss is back, so the second overlaps the
first's extra work, and only a sum of intervals between losses is wall time. scikit-learn
reports no per-iteration time, so its figure is the fit's time over its iterations, set-up included.

Run from the repository root::

    python -m benchmarks.run                       # every case, full size (12.6 minutes in one run here)
    python -m benchmarks.run --cases S1 --repeats 1 --scale 0.05   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.candidates import EXACT_RTOL, TARGET_RTOL
from benchmarks.cases import CASES, Case, prepare

RESULTS = Path(__file__).resolve().parent / "results"
#: memory_limit of each of the two workers in S3's out-of-core run. A worker process holds ~130 MiB before any data,
#: so a smaller limit leaves no room for a block and pauses the worker.
S3_WORKER_MEMORY = "512MiB"


@dataclass(frozen=True)
class Run:
    """One candidate as a case runs it."""

    case: str
    candidate: str
    solver: str | None = None
    workers: int = 2
    memory_limit: str | None = None
    iterations: int = 5
    repeats: int | None = None  # None: the run's --repeats
    target_from: str | None = None  # label of the run whose final loss is this run's target
    local_cache: bool = True  # dnmf.local-cache: a streamed store's blocks kept on the workers' disks
    note: str = ""

    @property
    def label(self) -> str:
        name = self.candidate
        if self.candidate == "dnmf-cluster":
            name = f"dnmf-cluster-{self.workers}w" + (f"-{self.memory_limit}" if self.memory_limit else "")
        name = f"{name}[{self.solver}]" if self.solver else name
        name = name if self.local_cache else f"{name}-no-local-cache"
        return f"{name}-to-target" if self.target_from else name


@dataclass
class Record:
    run: Run
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def plan(cases: list[str], iterations: int, target_iterations: int,
         target_solvers: tuple[str, ...] = ("hals",)) -> list[Run]:
    """The runs of one round, in the order they interleave."""
    runs: list[Run] = []
    if "S1" in cases or "S4" in cases:
        solvers = ("mu", "hals") if "S1" in cases else ("hals",)
        for solver in solvers:
            runs.append(Run("S1", "inmemory", solver, iterations=iterations))
            runs.append(Run("S1", "dnmf-cluster", solver, iterations=iterations))
            if "S1" in cases and solver == "hals":
                runs.append(Run("S1", "dnmf-threads", solver, iterations=iterations))
                runs.append(Run("S1", "dnmf-inprocess", solver, iterations=iterations))
        if "S4" in cases:
            runs.append(Run("S1", "dnmf-cluster", "hals", workers=1, iterations=iterations))
    if "S1" in cases:
        runs += [Run("S1", "sklearn-mu", iterations=iterations),
                 Run("S1", "sklearn-minibatch", iterations=1, note="one epoch"),
                 Run("S1", "sklearn-cd", iterations=target_iterations, repeats=1,
                     note=f"{target_iterations} iterations; its final loss is the target")]
        target = Run("S1", "sklearn-cd", iterations=target_iterations).label
        runs += [Run("S1", "dnmf-cluster", solver, iterations=target_iterations, repeats=1, target_from=target,
                     note="until scikit-learn cd's loss")
                 for solver in target_solvers]
    if "S2" in cases:
        for solver in ("mu", "hals"):
            runs.append(Run("S2", "inmemory", solver, iterations=iterations))
            runs.append(Run("S2", "dnmf-cluster", solver, iterations=iterations))
        runs += [Run("S2", "dnmf-threads", "hals", iterations=iterations),
                 Run("S2", "sklearn-cd", iterations=iterations), Run("S2", "sklearn-mu", iterations=iterations),
                 Run("S2", "sklearn-minibatch", iterations=1, note="one epoch")]
    if "S3" in cases:
        # Two rounds at most (S3 takes ~2 minutes a round), and one of the store read at every pass (~2 minutes).
        runs += [Run("S3", "dnmf-cluster", "hals", memory_limit=S3_WORKER_MEMORY, iterations=4, repeats=2,
                     note="out of core"),
                 Run("S3", "dnmf-cluster", "hals", memory_limit=S3_WORKER_MEMORY, iterations=3, repeats=1,
                     local_cache=False, note="out of core, every pass read from the store"),
                 Run("S3", "dnmf-cluster", "hals", memory_limit="6GiB", iterations=iterations, repeats=2,
                     note="input held in memory")]
    return runs


def execute(run: Run, directory: Path, target_loss: float | None, timeout: float) -> dict[str, Any]:
    spec = {"case": run.case, "directory": str(directory), "candidate": run.candidate, "solver": run.solver,
            "workers": run.workers, "iterations": run.iterations, "target_loss": target_loss}
    if run.memory_limit:
        spec["memory_limit"] = run.memory_limit
    if not run.local_cache:
        spec["local_cache"] = False
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "benchmarks.candidates", json.dumps(spec)], check=False,
                          capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).resolve().parent.parent)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:] or done.stdout[-300:]}")
    result = json.loads(lines[-1].removeprefix("RESULT "))
    result["process_seconds"] = time.perf_counter() - started
    return result


# -- figures ------------------------------------------------------------------------------------------------------

def per_iteration(result: dict[str, Any]) -> float:
    """Mean seconds per iteration in the steady state: iterations after the first two where there are more."""
    seconds = result["seconds_per_iteration"]
    return float(statistics.fmean(seconds[min(2, len(seconds) - 1):]))


def spread(values: list[float]) -> dict[str, float]:
    return {"median": float(statistics.median(values)), "min": min(values), "max": max(values)}


def time_to_target(result: dict[str, Any], target: float, reference_error: float) -> float | None:
    """Seconds until the run's loss first reached ``target``, provided that its exact final error (relative, like
    ``reference_error``) confirms it: the per-iteration loss is the trace identity, off by ~1e-5 in float32."""
    if result["relative_error"] > reference_error * (1 + EXACT_RTOL):
        return None
    for loss, elapsed in zip(result["loss_history"], result["elapsed_at_iteration"]):
        if loss <= target * (1 + TARGET_RTOL):
            return elapsed
    return result["elapsed_at_iteration"][-1] if result["elapsed_at_iteration"] else None


def summarize(record: Record) -> dict[str, Any]:
    results = record.results
    if not results:
        return {"label": record.run.label, "errors": record.errors}
    summary: dict[str, Any] = {
        "label": record.run.label, "case": record.run.case, "candidate": record.run.candidate,
        "solver": record.run.solver, "workers": record.run.workers, "note": record.run.note,
        "repeats": len(results), "errors": record.errors,
        "seconds_per_iteration": spread([per_iteration(r) for r in results]),
        "relative_error": spread([r["relative_error"] for r in results]),
        "iterations": [len(r["seconds_per_iteration"]) if r.get("n_iter") is None else r["n_iter"] for r in results],
        "fit_seconds": spread([r["fit_seconds"] for r in results]),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in results),
    }
    workers = [w for r in results for w in r.get("workers", {}).values()]
    if workers:
        summary["peak_worker_rss_mib"] = max(w["peak_rss_mib"] for w in workers)
        summary["worker_memory_limit_mib"] = min(w["memory_limit_mib"] for w in workers)
        summary["max_spilled_to_disk_bytes"] = max(r["max_spilled_to_disk_bytes"] for r in results)
    if "tasks_per_iteration" in results[-1]:
        tasks = results[-1]["tasks_per_iteration"]
        summary["tasks_per_iteration"] = {"iteration_2": tasks[1] if len(tasks) > 1 else None,
                                          "compared_at": min(len(tasks), 20), "there": tasks[min(len(tasks), 20) - 1]}
        phases: dict[str, list[float]] = {}
        for r in results:
            for entry in r["phase_seconds"][1:]:
                for phase, seconds in entry.items():
                    phases.setdefault(phase, []).append(seconds)
        summary["phase_seconds_per_iteration"] = {p: float(statistics.fmean(v)) for p, v in phases.items()}
    return summary


def ratio(numerator: dict[str, Any] | None, denominator: dict[str, Any] | None, key: str = "seconds_per_iteration"):
    if not numerator or not denominator or key not in numerator or key not in denominator:
        return None
    return numerator[key]["median"] / denominator[key]["median"]


def targets(summaries: dict[str, dict[str, Any]], time_to: dict[str, Any], target_iterations: int,
            prepared: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of the issue: the figure measured in this run, and whether it is met."""
    def get(case: str, label: str) -> dict[str, Any] | None:
        return summaries.get(f"{case} {label}")

    rows: list[dict[str, Any]] = []

    def add(case: str, figure: str, goal: str, value: float | None, met: bool | None, detail: str = "") -> None:
        rows.append({"case": case, "figure": figure, "target": goal, "measured": value, "met": met, "detail": detail})

    for solver in ("hals", "mu"):
        value = ratio(get("S1", f"dnmf-cluster-2w[{solver}]"), get("S1", f"inmemory[{solver}]"))
        if value is not None:
            add("S1", f"dnmf {solver} s/iteration, 2 workers ÷ in-memory", "≤ 0.8", value, value <= 0.8)
    for label, entry in time_to.items():
        value = entry.get("ratio")
        add("S1", f"time to scikit-learn cd's loss at {target_iterations} iterations, {label} ÷ scikit-learn", "≤ 0.5",
            value, None if value is None else value <= 0.5, entry.get("detail", ""))
    for solver in ("hals", "mu"):
        value = ratio(get("S2", f"dnmf-cluster-2w[{solver}]"), get("S2", f"inmemory[{solver}]"))
        if value is not None:
            add("S2", f"dnmf {solver} s/iteration ÷ in-memory", "≤ 1.2", value, value <= 1.2)
    out_of_core = get("S3", f"dnmf-cluster-2w-{S3_WORKER_MEMORY}[hals]")
    in_memory = get("S3", "dnmf-cluster-2w-6GiB[hals]")
    if out_of_core and "peak_worker_rss_mib" in out_of_core:
        value = prepared["S3"]["disk_bytes"] / 2**20 / (2 * out_of_core["worker_memory_limit_mib"])
        add("S3", "store on disk ÷ the workers' total memory_limit", "≥ 3", value, value >= 3)
        value = out_of_core["peak_worker_rss_mib"] / out_of_core["worker_memory_limit_mib"]
        spilled = out_of_core["max_spilled_to_disk_bytes"]
        add("S3", "peak worker RSS ÷ memory_limit, no spilling", "< 0.8", value, value < 0.8 and spilled == 0,
            f"spilled to disk: {spilled} bytes")
    value = ratio(out_of_core, in_memory)
    if value is not None:
        add("S3", "s/iteration out of core ÷ input held in memory", "≤ 2.0", value, value <= 2.0)
    value = ratio(get("S3", f"dnmf-cluster-2w-{S3_WORKER_MEMORY}[hals]-no-local-cache"), out_of_core)
    if value is not None:
        add("S3", "s/iteration out of core, every pass from the store ÷ with the local cache", "reported", value,
            None)
    one, two = get("S1", "dnmf-cluster-1w[hals]"), get("S1", "dnmf-cluster-2w[hals]")
    value = ratio(one, two)
    if value is not None:
        add("S4", "parallel efficiency, 1 → 2 workers (hals)", "reported", value / 2, None,
            f"speed-up {value:.2f}×")
    for summary in summaries.values():
        tasks = summary.get("tasks_per_iteration")
        if tasks and tasks["iteration_2"] is not None and tasks["compared_at"] > 2:
            add(summary["case"], f"tasks/iteration at 2 vs {tasks['compared_at']}, {summary['label']}", "equal",
                None, tasks["iteration_2"] == tasks["there"], f"{tasks['iteration_2']} vs {tasks['there']}")
    return rows


# -- report -------------------------------------------------------------------------------------------------------

def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-2 else f"{value:.{digits}f}"
    return str(value)


def _tasks(tasks: dict[str, Any] | None) -> str:
    return f"{tasks['iteration_2']} → {tasks['there']}" if tasks else "–"


def markdown(summaries: dict[str, dict[str, Any]], target_rows: list[dict[str, Any]],
             prepared: dict[str, dict[str, Any]]) -> str:
    lines = []
    for case in sorted({s["case"] for s in summaries.values() if "case" in s}):
        lines += [f"**{CASES[case].describe()}**", "",
                  ("| candidate | s/iteration (median, min–max) | ÷ in-memory | final ‖A−WH‖/‖A‖ | iterations "
                   "| peak RSS MiB: process / worker | tasks/iter (2 → 20) | note |"),
                  "|---|---|---|---|---|---|---|---|"]
        for summary in summaries.values():
            if summary.get("case") != case:
                continue
            s = summary["seconds_per_iteration"]
            reference = summaries.get(f"{case} inmemory[{summary['solver']}]")
            tasks = summary.get("tasks_per_iteration")
            worker = _fmt(summary.get("peak_worker_rss_mib"), 0) if "peak_worker_rss_mib" in summary else "–"
            lines.append(
                f"| {summary['label']} | {s['median']:.3f} ({s['min']:.3f}–{s['max']:.3f}) "
                f"| {_fmt(ratio(summary, reference), 2) if reference and reference is not summary else '–'} "
                f"| {summary['relative_error']['median']:.4g} | {max(summary['iterations'])} "
                f"| {summary['peak_rss_mib']:.0f} / {worker} "
                f"| {_tasks(tasks)} | {summary['note']} |")
        lines.append("")
        phases = summaries.get(f"{case} dnmf-cluster-2w[hals]", {}).get("phase_seconds_per_iteration")
        if phases:
            lines += ["dnmf-cluster-2w[hals], task seconds per iteration by phase (both workers; `graph` is the "
                      "client's): " + ", ".join(f"{p} {v:.3f}" for p, v in phases.items()), ""]
    lines += ["**Targets**", "", "| case | figure | target | measured | met |", "|---|---|---|---|---|"]
    for row in target_rows:
        met = {True: "met", False: "**missed**", None: "–"}[row["met"]]
        measured = _fmt(row["measured"], 2) if row["measured"] is not None else row["detail"]
        detail = f" ({row['detail']})" if row["detail"] and row["measured"] is not None else ""
        lines.append(f"| {row['case']} | {row['figure']} | {row['target']} | {measured}{detail} | {met} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="sizes,S1,S2,S3,S4",
                        help="comma-separated cases; 'sizes' runs benchmarks.sizes (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of interleaved runs (default: %(default)s)")
    parser.add_argument("--only", default="",
                        help="comma-separated substrings: run only candidates whose label holds one of them")
    parser.add_argument("--iterations", type=int, default=5,
                        help="iterations per timing run, the first two dropped (default: %(default)s)")
    parser.add_argument("--target-iterations", type=int, default=100,
                        help="scikit-learn cd iterations that set the target loss (default: %(default)s)")
    parser.add_argument("--target-solvers", default="hals",
                        help="dnmf solvers raced to scikit-learn cd's loss, e.g. hals,bpp (default: %(default)s)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="shrink every case's rows, columns and non-zeros by this factor (default: %(default)s)")
    parser.add_argument("--workdir", type=Path, default=RESULTS / "data",
                        help="where the cases' matrices are written once and reused (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=RESULTS / "run.json", help="JSON report (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds one run may take (default: %(default)s)")
    args = parser.parse_args(argv)
    args.cases = [c.strip().upper() for c in args.cases.split(",") if c.strip()]
    unknown = set(args.cases) - {*CASES, "S4", "SIZES"}
    if unknown:
        parser.error(f"unknown case(s) {sorted(unknown)}; choose from sizes, S1, S2, S3, S4")
    if args.iterations < 2 or args.repeats < 1 or not 0 < args.scale <= 1:
        parser.error("--iterations must be ≥ 2, --repeats ≥ 1 and 0 < --scale ≤ 1")
    return args


def scaled(case: Case, factor: float) -> Case:
    if factor == 1:
        return case
    return replace(case, rows=max(1000, int(case.rows * factor)), cols=max(500, int(case.cols * factor)),
                   nnz=None if case.nnz is None else max(10_000, int(case.nnz * factor * factor)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    sizes_table = ""
    if "SIZES" in args.cases:
        from benchmarks import sizes

        sizes_table = "**Sizes: no cluster, dnmf vs scikit-learn cd**\n\n" + sizes.main(
            ["--repeats", str(max(args.repeats, 3))])["table"] + "\n\n"
    for name in list(CASES):
        CASES[name] = scaled(CASES[name], args.scale)
    workdir = args.workdir if args.scale == 1 else args.workdir / f"scale-{args.scale:g}"
    runs = plan(args.cases, args.iterations, args.target_iterations,
                tuple(part.strip() for part in args.target_solvers.split(",") if part.strip()))
    if args.only:
        wanted = [part.strip() for part in args.only.split(",") if part.strip()]
        selected = [run for run in runs if any(part in run.label for part in wanted)]
        needed = {(run.case, run.target_from) for run in selected if run.target_from}
        runs = [run for run in runs if run in selected or (run.case, run.label) in needed]
    prepared = {}
    for name in sorted({run.case for run in runs}):
        prepared[name] = prepare(CASES[name], workdir)
        print(f"{CASES[name].describe()}: {prepared[name]['disk_bytes'] / 2**20:,.0f} MiB on disk, "
              f"built in {prepared[name]['seconds']:.1f} s", flush=True)
    records = {f"{run.case} {run.label}": Record(run) for run in runs}
    for repeat in range(args.repeats):
        for run in runs:
            record = records[f"{run.case} {run.label}"]
            if repeat >= (run.repeats or args.repeats):
                continue
            target = None
            if run.target_from:
                source = records[f"{run.case} {run.target_from}"].results
                if not source:
                    record.errors.append("no target: its reference run failed")
                    continue
                target = source[0]["relative_error"] * (prepared[run.case]["norm_squared"] ** 0.5)
            try:
                result = execute(run, workdir, target, args.timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                record.errors.append(str(error))
                print(f"round {repeat + 1} {run.case} {run.label}: FAILED {error}", flush=True)
                continue
            result["target_loss"] = target
            record.results.append(result)
            print(f"round {repeat + 1} {run.case} {run.label}: {per_iteration(result):.3f} s/iter, "
                  f"{len(result['seconds_per_iteration'])} iterations, rel. error {result['relative_error']:.4g}, "
                  f"process {result['process_seconds']:.1f} s", flush=True)
    summaries = {key: summarize(record) for key, record in records.items()}
    time_to: dict[str, Any] = {}
    for record in records.values():
        if record.run.target_from and record.results:
            reference = summaries[f"{record.run.case} {record.run.target_from}"]
            result = record.results[0]
            reference_error = records[f"{record.run.case} {record.run.target_from}"].results[0]["relative_error"]
            reached = time_to_target(result, result["target_loss"], reference_error)
            time_to[record.run.label] = {
                "seconds": reached, "reference_seconds": reference["fit_seconds"]["median"],
                "ratio": None if reached is None else reached / reference["fit_seconds"]["median"],
                "iterations": len(result["loss_history"]),
                "detail": (f"{len(result['loss_history'])} iterations, {reached:.1f} s vs "
                           f"{reference['fit_seconds']['median']:.1f} s" if reached is not None
                           else f"not reached in {len(result['loss_history'])} iterations (exact error "
                                f"{result['relative_error']:.7g} vs {reference_error:.7g})"),
            }
    target_rows = targets({k: s for k, s in summaries.items() if "seconds_per_iteration" in s}, time_to,
                          args.target_iterations, prepared)
    table = markdown({k: s for k, s in summaries.items() if "seconds_per_iteration" in s}, target_rows, prepared)
    elapsed = time.perf_counter() - began
    table = sizes_table + table
    print("\n" + table + f"\n\nWhole benchmark: {elapsed / 60:.1f} minutes.", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "minutes": elapsed / 60, "cases": prepared, "summaries": summaries, "time_to_target": time_to,
        "targets": target_rows, "table_markdown": table,
        "runs": {key: {"results": r.results, "errors": r.errors} for key, r in records.items()},
        "environment": {"python": sys.version, "platform": platform.platform(), "cpu_count": os.cpu_count(),
                        "loadavg": os.getloadavg()},
    }
    args.out.write_text(json.dumps(report, indent=1, default=float))
    print(f"wrote {args.out}")
    return 0 if all(not r.errors for r in records.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
