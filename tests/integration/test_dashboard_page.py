"""The dnmf page of the Dask dashboard on a real LocalCluster: ``/dnmf.json`` holds every iteration of a fit as
the estimator saw it, while the fit runs and once it ended; the page joins the dashboard's lists; and headless
Chromium renders one point of the loss curve per iteration."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from html.parser import HTMLParser

import pytest

import dnmf
from dnmf.runtime import dashboard
from dnmf.datasets import make_low_rank

pytestmark = pytest.mark.cluster

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return response.read()


def base_url(client) -> str:
    return client.dashboard_link.rsplit("/", 1)[0]


def fit_record(client, fit_id: str) -> dict:
    fits = json.loads(get(f"{base_url(client)}/dnmf.json"))["fits"]
    (fit,) = [fit for fit in fits if fit["fit"] == fit_id]
    return fit


class FitIds:
    """A callback that keeps the id of the fit it runs in, as the dashboard knows it."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def __call__(self, record) -> None:
        current = dashboard.publisher()
        if current is not None and current.fit_id not in self.ids:
            self.ids.append(current.fit_id)


def test_dnmf_json_holds_every_iteration_of_the_fit(client, tmp_path):
    X, _, _ = make_low_rank(150, 100, 3, random_state=0)
    ids = FitIds()
    model = dnmf.NMF(3, max_iter=9, tol=0, random_state=0, callback=ids, checkpoint=str(tmp_path / "ckpt"),
                     checkpoint_every=4).fit(X)
    (fit_id,) = ids.ids
    fit = fit_record(client, fit_id)
    records = fit["records"]
    assert [r["iteration"] for r in records] == list(range(1, 10))
    assert [r["loss"] for r in records] == model.loss_history_
    assert [r["checkpoint"] for r in records] == [i in (4, 8, 9) for i in range(1, 10)]
    assert records[0]["improvement"] is None
    for before, after in zip(records, records[1:]):
        assert after["improvement"] == pytest.approx((before["loss"] - after["loss"]) / before["loss"])
    assert all(r["seconds"] > 0 and r["phase_seconds"] for r in records)
    assert {"gram", "update"} <= set(fit["phase_seconds"])
    assert fit["status"] == "stopped" and fit["reason"] == "max_iter reached"
    assert fit["iteration"] == 9 and fit["max_iter"] == 9 and fit["shape"] == [150, 100, 3]
    assert fit["last_checkpoint"] == 9 and fit["eta_seconds"] is None
    fields = {"iteration", "loss", "improvement", "seconds", "phase_seconds", "checkpoint"}
    assert all(set(r) == fields for r in records)  # numbers only: no factor travels
    assert max(len(json.dumps(r)) for r in records) < 1000


def test_the_page_shows_a_running_fit_and_how_each_fit_ended(client):
    X, _, _ = make_low_rank(120, 90, 3, random_state=1)
    seen_while_running: list[dict] = []
    ids = FitIds()

    def look_at_the_dashboard(record):
        ids(record)
        seen_while_running.append(fit_record(client, ids.ids[-1]))
        if record.iteration == 3:
            raise StopIteration

    dnmf.NMF(3, max_iter=50, tol=0, random_state=0, callback=look_at_the_dashboard).fit(X)
    assert [(seen["status"], seen["iteration"], len(seen["records"])) for seen in seen_while_running] == \
        [("running", i, i) for i in (1, 2, 3)]
    assert seen_while_running[-1]["eta_seconds"] > 0 and seen_while_running[-1]["seconds_per_iteration"] > 0
    stopped = fit_record(client, ids.ids[-1])
    assert (stopped["status"], stopped["reason"], stopped["iteration"]) == ("stopped", "stopped by a callback", 3)

    converged_model = dnmf.NMF(3, max_iter=400, tol=1e-2, random_state=0, callback=ids).fit(X)
    assert converged_model.converged_
    assert fit_record(client, ids.ids[-1])["status"] == "converged"

    def fail(record):
        ids(record)
        raise RuntimeError("the callback broke")

    with pytest.raises(RuntimeError, match="the callback broke"):
        dnmf.NMF(3, max_iter=5, tol=0, random_state=0, callback=fail).fit(X)
    failed = fit_record(client, ids.ids[-1])
    assert (failed["status"], failed["reason"]) == ("failed", "RuntimeError: the callback broke")


def test_the_page_is_in_the_dashboards_lists_and_the_card_links_it(client):
    X, _, _ = make_low_rank(60, 40, 2, random_state=0)
    model = dnmf.NMF(2, max_iter=2, tol=0, random_state=0).fit(X)
    base = base_url(client)
    assert json.loads(get(f"{base}/individual-plots.json"))["Dnmf"] == "/dnmf"
    assert re.search(rb'<a href="dnmf">dnmf</a>', get(f"{base}/status")), "no dnmf in the More... menu"
    page = get(f"{base}/dnmf")
    assert b"dnmf.json" in page and b"<script" in page and b"http" not in page.replace(b"http://www.w3.org", b"")
    assert dashboard.page_link() == f"{base}/dnmf"
    assert f'href="{base}/dnmf"' in model._repr_html_()


class Points(HTMLParser):
    """The ``dnmf-point`` circles of each fit's card in a rendered DOM, as (iteration, loss)."""

    def __init__(self) -> None:
        super().__init__()
        self.fits: dict[str, list[tuple[int, float]]] = {}
        self._fit: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-fit" in attrs:
            self._fit = attrs["data-fit"]
            self.fits[self._fit] = []
        if tag == "circle" and "dnmf-point" in attrs.get("class", ""):
            self.fits[self._fit].append((int(attrs["data-iteration"]), float(attrs["data-loss"])))


def chromium() -> str:
    found = next((path for path in map(shutil.which, ("chromium", "chromium-browser")) if path), None)
    if found is None:
        reason = "headless Chromium not found: install Debian's chromium package (apt-get install -y chromium)"
        print(reason)
        pytest.skip(reason)
    return found


def test_chromium_renders_one_point_per_iteration(client, tmp_path):
    browser = chromium()
    X, _, _ = make_low_rank(100, 80, 3, random_state=2)
    ids = FitIds()
    model = dnmf.NMF(3, max_iter=14, tol=0, random_state=0, callback=ids).fit(X)
    done = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                           "--virtual-time-budget=10000", "--dump-dom", f"{base_url(client)}/dnmf"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    parser = Points()
    parser.feed(done.stdout)
    points = parser.fits[ids.ids[-1]]
    assert [iteration for iteration, _ in points] == list(range(1, 15))
    assert [loss for _, loss in points] == pytest.approx(model.loss_history_, rel=1e-12)
    assert 'data-status="stopped"' in done.stdout
