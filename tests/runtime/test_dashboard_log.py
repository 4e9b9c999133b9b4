"""The scheduler's record of the fits (:class:`dnmf.runtime.dashboard_server.FitLog`): what ``/dnmf.json`` answers
for the messages a fit logs, in plain data."""

from __future__ import annotations

import json

import pytest

from dnmf.runtime.dashboard_server import FitLog


def start(fit: str = "a", **extra) -> dict:
    return {"fit": fit, "kind": "start", "label": "NMF hals k=3", "max_iter": 10, "checkpoint_every": 4,
            "checkpoint_seconds": None, "client": "host:1", **extra}


def iteration(i: int, loss: float, fit: str = "a", seconds: float = 2.0, **extra) -> dict:
    return {"fit": fit, "kind": "iteration", "iteration": i, "max_iter": 10, "loss": loss, "improvement": None,
            "seconds": seconds, "phase_seconds": {"gram": 0.5, "update": 1.0}, "checkpoint": i % 4 == 0,
            "status": "running", **extra}


def test_a_running_fit_has_its_records_eta_and_next_checkpoint():
    log = FitLog()
    log.add(start(), received=100.0)
    for i, loss in enumerate([8.0, 4.0, 2.0, 1.0, 0.5], start=1):
        log.add(iteration(i, loss, seconds=float(i), **({"shape": [30, 20, 3]} if i == 1 else {})), received=100.0 + i)
    (fit,) = log.summary(now=106.0)["fits"]
    assert [r["loss"] for r in fit["records"]] == [8.0, 4.0, 2.0, 1.0, 0.5]
    assert fit["status"] == "running" and fit["iteration"] == 5 and fit["max_iter"] == 10
    assert fit["shape"] == [30, 20, 3] and fit["label"] == "NMF hals k=3"
    assert fit["seconds_per_iteration"] == pytest.approx(3.0)
    assert fit["eta_seconds"] == pytest.approx(15.0)
    assert fit["phase_seconds"] == {"gram": 0.5, "update": 1.0}
    assert fit["last_checkpoint"] == 4 and fit["next_checkpoint"] == 8


def test_an_ended_fit_has_its_status_and_no_eta():
    log = FitLog()
    log.add(start())
    log.add(iteration(1, 3.0))
    log.add({"fit": "a", "kind": "end", "status": "converged", "reason": None, "iteration": 1})
    (fit,) = log.summary()["fits"]
    assert fit["status"] == "converged" and fit["eta_seconds"] is None and fit["next_checkpoint"] is None


def test_fits_are_kept_apart_and_the_oldest_finished_one_goes_first():
    log = FitLog(max_fits=2)
    log.add(start("a"))
    log.add(start("b"))
    log.add({"fit": "b", "kind": "end", "status": "failed", "reason": "RuntimeError: x"})
    log.add(start("c"))
    assert [fit["fit"] for fit in log.summary()["fits"]] == ["a", "c"]


def test_records_beyond_the_limit_drop_the_oldest_and_count_them():
    log = FitLog(max_records=3)
    log.add(start())
    for i in range(1, 6):
        log.add(iteration(i, 1.0 / i))
    (fit,) = log.summary()["fits"]
    assert [r["iteration"] for r in fit["records"]] == [3, 4, 5] and fit["records_dropped"] == 2


def test_the_summary_is_strict_json_and_foreign_messages_are_ignored():
    log = FitLog()
    log.add("not a dnmf record")
    log.add({"kind": "iteration"})
    log.add(start())
    log.add(iteration(1, float("nan")))
    text = json.dumps(log.summary(), allow_nan=False)
    (fit,) = json.loads(text)["fits"]
    assert fit["records"][0]["loss"] is None
