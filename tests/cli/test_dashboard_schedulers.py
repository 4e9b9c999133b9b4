"""The dnmf dashboard page with schedulers dnmf does not start itself, and with the LocalCluster the CLI starts:
``dask scheduler --preload dnmf.runtime.dashboard``, a plain ``dask scheduler`` (the client registers the plugin),
one that cannot load the plugin (one warning, the fit goes on), and ``dnmf fit``'s own LocalCluster, watched while
it runs."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import numpy as np
import pytest
from cli_helpers import dask_processes, run_dnmf, start_dnmf, summary, wait_for
from distributed import Client

import dnmf
from dnmf import load_result
from dnmf.datasets import make_low_rank

pytestmark = pytest.mark.cluster

PARAMS = ["--rank", "4", "--init", "random", "--tol", "0", "--seed", "0", "--chunks", "300,100"]

#: A preload that makes the scheduler's dnmf lack the plugin's module, as an older dnmf would.
WITHOUT_PLUGIN = '''import sys


class WithoutDashboardServer:
    def find_spec(self, name, path=None, target=None):
        if name == "dnmf.runtime.dashboard_server":
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


sys.meta_path.insert(0, WithoutDashboardServer())
'''


def dashboard_base(address: str) -> str:
    with Client(address, timeout=60) as client:
        return client.dashboard_link.rsplit("/", 1)[0]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_preloaded_scheduler_serves_the_page_before_any_fit_and_the_cli_logs_it(tmp_path, counts_store):
    with dask_processes(n_workers=1, scheduler_args=("--preload", "dnmf.runtime.dashboard")) as (address, _):
        base = dashboard_base(address)
        assert get_json(f"{base}/dnmf.json")["fits"] == []
        assert get_json(f"{base}/individual-plots.json")["Dnmf"] == "/dnmf"
        done = run_dnmf("fit", counts_store, *PARAMS, "--max-iter", "6", "--out", tmp_path / "r.zarr",
                        "--scheduler", address)
        assert done.returncode == 0, done.stderr
        (fit,) = get_json(f"{base}/dnmf.json")["fits"]
    assert re.search(rf"dashboard {re.escape(base)}/status; dnmf page {re.escape(base)}/dnmf\b", done.stderr), \
        done.stderr
    assert summary(done)["cluster"]["dnmf_page"] == f"{base}/dnmf"
    history = load_result(tmp_path / "r.zarr").info["loss_history"]
    assert [r["loss"] for r in fit["records"]] == pytest.approx(history, rel=1e-12)
    assert (fit["status"], fit["iteration"], fit["max_iter"]) == ("stopped", 6, 6)


def test_a_plain_scheduler_gets_the_page_from_the_first_fit():
    X, _, _ = make_low_rank(120, 90, 3, random_state=0)
    with dask_processes(n_workers=1) as (address, _), Client(address, timeout=60) as client:
        base = client.dashboard_link.rsplit("/", 1)[0]
        assert status_of(f"{base}/dnmf") == 404
        model = dnmf.NMF(3, max_iter=5, tol=0, random_state=0).fit(X)
        assert status_of(f"{base}/dnmf") == 200
        (fit,) = get_json(f"{base}/dnmf.json")["fits"]
    assert [r["loss"] for r in fit["records"]] == model.loss_history_


def test_a_scheduler_that_cannot_load_the_plugin_logs_one_line_and_the_fit_goes_on(tmp_path, counts_store):
    preload = tmp_path / "without_plugin.py"
    preload.write_text(WITHOUT_PLUGIN)
    with dask_processes(n_workers=1, scheduler_args=("--preload", str(preload))) as (address, _):
        base = dashboard_base(address)
        done = run_dnmf("fit", counts_store, *PARAMS, "--max-iter", "4", "--out", tmp_path / "r.zarr",
                        "--scheduler", address)
        assert done.returncode == 0, done.stderr
        assert status_of(f"{base}/dnmf") == 404
    warnings = [line for line in done.stderr.splitlines() if "No dnmf page" in line]
    assert len(warnings) == 1, done.stderr
    assert "ModuleNotFoundError: No module named 'dnmf.runtime.dashboard_server'" in warnings[0]
    assert "the fit goes on" in warnings[0]
    assert summary(done)["iterations"] == 4 and summary(done)["cluster"]["dnmf_page"] is None
    assert np.isfinite(load_result(tmp_path / "r.zarr").info["loss_history"]).all()


def test_the_page_of_the_cli_s_own_local_cluster_shows_the_fit_while_it_runs(tmp_path, counts_store):
    (tmp_path / "local.yaml").write_text("kind: local\nn_workers: 1\nmemory_limit: 1GiB\n"
                                         "dashboard_address: 127.0.0.1:0\n")
    fit = start_dnmf("fit", counts_store, *PARAMS, "--max-iter", "100000", "--out", tmp_path / "r.zarr",
                     "--cluster", tmp_path / "local.yaml", "--no-checkpoint", cwd=tmp_path)
    try:
        lines: list[str] = []
        wait_for(lambda: lines.append(fit.stderr.readline()) or "dnmf page" in lines[-1], 120,
                 "the dnmf page's link", fit)
        page = re.search(r"dnmf page (http://\S+/dnmf)\b", lines[-1]).group(1)
        seen: list[dict] = []

        def running_with_records() -> bool:
            seen[:] = get_json(f"{page}.json")["fits"]
            return bool(seen) and len(seen[0]["records"]) >= 3

        wait_for(running_with_records, 120, "three iterations on the page", fit)
        (running,) = seen
        assert running["status"] == "running" and running["max_iter"] == 100000
        assert running["eta_seconds"] > 0 and running["shape"] == [600, 200, 4]
        losses = [r["loss"] for r in running["records"]]
        assert losses == sorted(losses, reverse=True)
    finally:
        fit.kill()
        fit.communicate(timeout=60)
