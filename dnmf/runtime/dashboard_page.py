"""The ``/dnmf`` page: plain HTML and JavaScript, no library and no network beyond the scheduler's own
``dnmf.json``, which it polls every second. Every fit gets a card: status, iteration / max_iter, time per iteration,
ETA, the checkpoints, mean task seconds per phase, and the loss curve as an inline SVG on a log scale with one
``<circle class="dnmf-point">`` per iteration."""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>dnmf fits</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.2em; color: #222; }
header a { margin-right: 1em; }
.dnmf-fit { border: 1px solid #ccc; border-radius: 6px; padding: 0.8em 1em; margin: 1em 0; max-width: 980px; }
.dnmf-fit h2 { font-size: 1.05em; margin: 0 0 0.4em 0; }
.dnmf-status { padding: 0.1em 0.5em; border-radius: 4px; color: white; font-size: 0.85em; margin-left: 0.5em; }
.dnmf-status.running { background: #1f77b4; } .dnmf-status.converged { background: #2ca02c; }
.dnmf-status.stopped { background: #ff7f0e; } .dnmf-status.failed { background: #d62728; }
.dnmf-body { display: flex; gap: 1.5em; flex-wrap: wrap; }
table { border-collapse: collapse; font-size: 0.9em; } th { text-align: left; padding-right: 1em; }
td { text-align: right; font-variant-numeric: tabular-nums; }
svg text { font-size: 10px; fill: #555; }
#dnmf-empty { color: #777; }
</style>
</head>
<body>
<header><a href="status">Dask dashboard</a><a href="dnmf.json">dnmf.json</a></header>
<h1>dnmf fits</h1>
<p id="dnmf-empty">No dnmf fit has reported to this scheduler yet.</p>
<div id="dnmf-fits"></div>
<script>
"use strict";
const SVG = "http://www.w3.org/2000/svg";
const W = 560, H = 220, L = 58, R = 12, T = 10, B = 28;

function el(tag, attrs, text) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function seconds(s) {
  if (s === null || s === undefined) return "\\u2013";
  if (s < 1) return (s * 1000).toFixed(0) + " ms";
  if (s < 120) return s.toFixed(2) + " s";
  if (s < 7200) return (s / 60).toFixed(1) + " min";
  return (s / 3600).toFixed(1) + " h";
}

function number(v) {
  return ((v >= 1e4 || v < 1e-2) ? v.toExponential(2) : v.toPrecision(3)).replace("e+", "e");
}

function curve(records) {
  const svg = el("svg:svg", {width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "dnmf-curve",
                              role: "img", "aria-label": "loss per iteration, log scale"});
  const points = records.filter(r => r.loss !== null && r.loss > 0);
  svg.appendChild(el("svg:rect", {x: L, y: T, width: W - L - R, height: H - T - B, fill: "#fafafa",
                                  stroke: "#ddd"}));
  if (!points.length) return svg;
  const logs = points.map(r => Math.log10(r.loss));
  let lo = Math.min(...logs), hi = Math.max(...logs);
  if (hi - lo < 1e-12) { lo -= 0.5; hi += 0.5; }
  const first = points[0].iteration, last = points[points.length - 1].iteration;
  const span = Math.max(last - first, 1);
  const x = i => L + (i - first) / span * (W - L - R);
  const y = v => T + (hi - v) / (hi - lo) * (H - T - B);
  const label = (v, at) => svg.appendChild(el("svg:text", {x: L - 4, y: at + 3, "text-anchor": "end"}, number(v)));
  const near = 14;
  for (let d = Math.ceil(lo); d <= Math.floor(hi); d++) {
    svg.appendChild(el("svg:line", {x1: L, x2: W - R, y1: y(d), y2: y(d), stroke: "#e4e4e4"}));
    if (y(d) - y(hi) > near && y(lo) - y(d) > near) label(Math.pow(10, d), y(d));
  }
  label(Math.pow(10, hi), y(hi));
  label(Math.pow(10, lo), y(lo));
  svg.appendChild(el("svg:text", {x: L, y: H - 8}, "iteration " + first));
  svg.appendChild(el("svg:text", {x: W - R, y: H - 8, "text-anchor": "end"}, "iteration " + last));
  const path = points.map((r, i) => `${x(r.iteration).toFixed(1)},${y(logs[i]).toFixed(1)}`).join(" ");
  svg.appendChild(el("svg:polyline", {points: path, fill: "none", stroke: "#1f77b4", "stroke-width": 1.5}));
  points.forEach((r, i) => {
    const dot = el("svg:circle", {cx: x(r.iteration).toFixed(1), cy: y(logs[i]).toFixed(1),
                                  r: r.checkpoint ? 3 : 1.8, fill: r.checkpoint ? "#ff7f0e" : "#1f77b4",
                                  class: "dnmf-point", "data-iteration": r.iteration, "data-loss": r.loss});
    dot.appendChild(el("svg:title", {}, `iteration ${r.iteration}: loss ${r.loss.toPrecision(6)}`));
    svg.appendChild(dot);
  });
  return svg;
}

function table(rows, cls) {
  const t = el("table", {class: cls});
  for (const [name, value] of rows) {
    const tr = el("tr");
    tr.appendChild(el("th", {}, name));
    tr.appendChild(el("td", {}, value));
    t.appendChild(tr);
  }
  return t;
}

function card(fit) {
  const div = el("div", {class: "dnmf-fit", id: "fit-" + fit.fit, "data-fit": fit.fit, "data-status": fit.status});
  const title = el("h2", {}, fit.label + (fit.shape ? ` on ${fit.shape[0]} \\u00d7 ${fit.shape[1]}` : ""));
  title.appendChild(el("span", {class: "dnmf-status " + fit.status}, fit.status));
  div.appendChild(title);
  const records = fit.records;
  const lastLoss = records.length ? records[records.length - 1].loss : null;
  const every = fit.checkpoint_every ? `every ${fit.checkpoint_every}` : (fit.checkpoint_seconds ? "timed" : "none");
  const rows = [
    ["iteration", `${fit.iteration} / ${fit.max_iter === null ? "?" : fit.max_iter}`],
    ["loss", lastLoss === null ? "\\u2013" : lastLoss.toPrecision(6)],
    ["time per iteration", seconds(fit.seconds_per_iteration)],
    ["ETA (to max_iter)", fit.status === "running" ? seconds(fit.eta_seconds) : "\\u2013"],
    ["checkpoints", every + (fit.last_checkpoint ? `, last at ${fit.last_checkpoint}` : "")
                     + (fit.next_checkpoint ? `, next at ${fit.next_checkpoint}` : "")],
    ["client", fit.client || "\\u2013"],
  ];
  if (fit.reason) rows.push(["reason", fit.reason]);
  const body = el("div", {class: "dnmf-body"});
  body.appendChild(curve(records));
  const side = el("div");
  side.appendChild(table(rows, "dnmf-facts"));
  const phases = Object.entries(fit.phase_seconds).sort((a, b) => b[1] - a[1]);
  if (phases.length) {
    side.appendChild(el("h3", {style: "font-size: 0.9em; margin: 0.8em 0 0.2em"}, "task seconds per iteration"));
    side.appendChild(table(phases.map(([p, s]) => [p, seconds(s)]), "dnmf-phases"));
  }
  body.appendChild(side);
  div.appendChild(body);
  return div;
}

async function refresh() {
  try {
    const answer = await fetch("dnmf.json", {cache: "no-store"});
    const data = await answer.json();
    const box = document.getElementById("dnmf-fits");
    box.replaceChildren(...data.fits.slice().reverse().map(card));
    document.getElementById("dnmf-empty").hidden = data.fits.length > 0;
    document.body.setAttribute("data-updated", String(data.time));
  } catch (error) {
    document.getElementById("dnmf-empty").textContent = "Could not read dnmf.json: " + error;
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
"""
