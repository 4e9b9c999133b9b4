"""The text and HTML views of a fitted NMF and of a loaded Result: the HTML parses and shows the fit's numbers."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

import dnmf
from dnmf.datasets import make_low_rank
from dnmf.view.display import format_loss, sparkline_svg


class CardParser(HTMLParser):
    """Checks that every tag closes in order, and collects the table's ``th`` → ``td`` text and the SVG points."""

    def __init__(self) -> None:
        super().__init__()
        self.open_tags: list[str] = []
        self.fields: dict[str, str] = {}
        self.polylines: list[str] = []
        self.links: list[str] = []
        self._header: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.open_tags.append(tag)
        if tag in ("th", "td"):
            self._text = []
        if tag == "a":
            self.links.append(dict(attrs)["href"])

    def handle_startendtag(self, tag, attrs):
        if tag == "polyline":
            self.polylines.append(dict(attrs)["points"])

    def handle_endtag(self, tag):
        assert self.open_tags and self.open_tags[-1] == tag, f"</{tag}> closes {self.open_tags}"
        self.open_tags.pop()
        text = "".join(self._text).strip()
        if tag == "th":
            self._header = text
        elif tag == "td" and self._header is not None:
            self.fields[self._header] = text
            self._header = None

    def handle_data(self, data):
        self._text.append(data)


def parse(markup: str) -> CardParser:
    parser = CardParser()
    parser.feed(markup)
    parser.close()
    assert parser.open_tags == [], f"unclosed tags: {parser.open_tags}"
    return parser


@pytest.fixture(scope="module")
def fitted():
    X, _, _ = make_low_rank(90, 70, 3, random_state=0)
    return dnmf.NMF(3, max_iter=25, tol=0, random_state=0).fit(X)


def test_model_html_holds_its_numbers(fitted):
    card = parse(fitted._repr_html_())
    assert card.fields["shape"] == "90 × 70"
    assert card.fields["rank"] == "3"
    assert card.fields["solver"] == "hals"
    assert card.fields["iterations"] == str(fitted.n_iter_) == "25"
    assert float(card.fields["final loss"]) == pytest.approx(fitted.reconstruction_err_, rel=1e-5)
    assert card.fields["converged"] == ("yes" if fitted.converged_ else "no")
    (points,) = card.polylines
    assert len(points.split()) == len(fitted.loss_history_)
    assert card.links == []


def test_result_html_matches_the_model_it_was_saved_from(fitted, tmp_path):
    fitted.save(tmp_path / "result.zarr")
    result = dnmf.load_result(tmp_path / "result.zarr")
    model_card, result_card = parse(fitted._repr_html_()), parse(result._repr_html_())
    assert result_card.fields == model_card.fields
    assert result_card.polylines == model_card.polylines


def test_text_reprs(fitted, tmp_path):
    assert repr(dnmf.NMF(3)) == "NMF(n_components=3)"
    assert parse(dnmf.NMF(3)._repr_html_()).open_tags == []
    first, second = repr(fitted).splitlines()
    assert first == "NMF(n_components=3, tol=0, max_iter=25, random_state=0)"
    loss = format_loss(fitted.reconstruction_err_)
    assert second.strip() == f"fitted: 90 × 70, rank 3, solver 'hals', 25 iterations, loss {loss}, " + (
        "converged" if fitted.converged_ else "not converged")
    fitted.save(tmp_path / "r.zarr")
    assert repr(dnmf.load_result(tmp_path / "r.zarr")).startswith("Result(90 × 70, rank 3, solver 'hals', 25 ")


def test_sparkline_falls_as_the_loss_falls():
    svg = sparkline_svg([1000.0, 100.0, 10.0, 1.0], width=100, height=40, padding=0)
    (points,) = parse(svg).polylines
    xs, ys = zip(*(map(float, pair.split(",")) for pair in points.split()))
    assert xs == pytest.approx((0, 100 / 3, 200 / 3, 100), abs=0.05)
    assert ys == pytest.approx((0, 40 / 3, 80 / 3, 40), abs=0.05)  # log scale: equal steps for equal ratios
    assert "polyline" not in sparkline_svg([1.0])


@pytest.mark.cluster
def test_html_links_the_dashboard_and_the_dnmf_page_when_a_client_is_active(client):
    X, _, _ = make_low_rank(60, 40, 2, random_state=0)
    model = dnmf.NMF(2, max_iter=3, tol=0, random_state=0).fit(X)
    card = parse(model._repr_html_())
    page = client.dashboard_link.rsplit("/", 1)[0] + "/dnmf"
    assert card.links == [client.dashboard_link, page]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/status", card.fields["dashboard"])
    assert card.fields["dnmf page"] == page
