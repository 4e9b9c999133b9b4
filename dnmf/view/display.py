"""How a fitted :class:`dnmf.NMF` and a loaded :class:`dnmf.Result` show themselves: a one-line text summary and a
small HTML card for Jupyter, with the loss curve as an inline SVG sparkline (no plotting library needed).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dnmf.runtime.client import dashboard_link
from dnmf.runtime.dashboard import page_link

__all__ = ["FitSummary", "html_card", "sparkline_svg", "summary_of_model", "summary_of_result", "text_summary"]


@dataclass(frozen=True)
class FitSummary:
    """What the text and HTML views show about one factorization."""

    kind: str
    shape: tuple[int, int]
    rank: int
    solver: str
    n_iter: int
    final_loss: float
    converged: bool
    loss_history: list[float] = field(default_factory=list)
    dashboard_link: str | None = None
    dnmf_page: str | None = None


def summary_of_model(model: Any) -> FitSummary:
    """The summary of a fitted :class:`dnmf.NMF`."""
    return FitSummary(
        kind="NMF",
        shape=(int(model.n_samples_fit_), int(model.n_features_in_)),
        rank=int(model.n_components_),
        solver=str(model.solver),
        n_iter=int(model.n_iter_),
        final_loss=float(model.reconstruction_err_),
        converged=bool(model.converged_),
        loss_history=[float(loss) for loss in model.loss_history_],
        dashboard_link=dashboard_link(),
        dnmf_page=page_link(),
    )


def summary_of_result(result: Any) -> FitSummary:
    """The summary of a :class:`dnmf.Result` read from a result store."""
    info = result.info
    history = [float(loss) for loss in info.get("loss_history", [])]
    final_loss = info.get("reconstruction_err", history[-1] if history else math.nan)
    return FitSummary(
        kind="Result",
        shape=(int(result.W.shape[0]), int(result.H.shape[1])),
        rank=int(result.n_components),
        solver=str(info.get("params", {}).get("solver", "?")),
        n_iter=int(info.get("n_iter", len(history))),
        final_loss=float(final_loss),
        converged=bool(info.get("converged", False)),
        loss_history=history,
        dashboard_link=dashboard_link(),
        dnmf_page=page_link(),
    )


def format_loss(loss: float) -> str:
    return f"{loss:.6g}"


def text_summary(summary: FitSummary) -> str:
    """One line: ``100 × 80, rank 3, solver 'hals', 50 iterations, loss 1.8087, converged``."""
    m, n = summary.shape
    state = "converged" if summary.converged else "not converged"
    return (f"{m} × {n}, rank {summary.rank}, solver {summary.solver!r}, {summary.n_iter} iterations, "
            f"loss {format_loss(summary.final_loss)}, {state}")


def sparkline_svg(values: Sequence[float], width: int = 180, height: int = 40, padding: int = 2) -> str:
    """The curve of ``values`` as a small inline SVG polyline, on a log scale when all values are positive and
    span more than a factor of ten. An empty ``<svg>`` for fewer than two finite values."""
    points = [float(v) for v in values if math.isfinite(float(v))]
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="loss per iteration">')
    if len(points) < 2:
        return head + "</svg>"
    low, high = min(points), max(points)
    if low > 0 and high / low > 10:
        points = [math.log10(v) for v in points]
        low, high = min(points), max(points)
    span = (high - low) or 1.0
    step = (width - 2 * padding) / (len(points) - 1)
    coordinates = " ".join(
        f"{padding + i * step:.1f},{padding + (high - v) / span * (height - 2 * padding):.1f}"
        for i, v in enumerate(points)
    )
    return (head + f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{coordinates}"/>'
            "</svg>")


def html_card(summary: FitSummary) -> str:
    """A small HTML table for Jupyter: shape, rank, solver, iterations, final loss, convergence, the loss curve
    and, when a client is active, the dashboard link and the dnmf page
    (:mod:`dnmf.runtime.dashboard`)."""
    m, n = summary.shape
    rows = [
        ("shape", f"{m} × {n}"),
        ("rank", str(summary.rank)),
        ("solver", summary.solver),
        ("iterations", str(summary.n_iter)),
        ("final loss", format_loss(summary.final_loss)),
        ("converged", "yes" if summary.converged else "no"),
    ]
    cells = "".join(f"<tr><th style=\"text-align:left\">{html.escape(name)}</th>"
                    f"<td style=\"text-align:left\">{html.escape(value)}</td></tr>" for name, value in rows)
    curve = ""
    if len(summary.loss_history) >= 2:
        curve = (f"<tr><th style=\"text-align:left\">loss curve</th><td>{sparkline_svg(summary.loss_history)}"
                 "</td></tr>")
    link = ""
    if summary.dashboard_link:
        url = html.escape(summary.dashboard_link, quote=True)
        link = (f"<tr><th style=\"text-align:left\">dashboard</th><td><a href=\"{url}\" target=\"_blank\">"
                f"{url}</a></td></tr>")
    if summary.dnmf_page:
        url = html.escape(summary.dnmf_page, quote=True)
        link += (f"<tr><th style=\"text-align:left\">dnmf page</th><td><a href=\"{url}\" target=\"_blank\">"
                 f"{url}</a></td></tr>")
    return (f"<div class=\"dnmf-summary\"><strong>dnmf.{html.escape(summary.kind)}</strong>"
            f"<table>{cells}{curve}{link}</table></div>")
