"""The observatory's pages on the demo territory: the table says the API's values, the EPCI filter and the sort
without JavaScript, the outlines the maps join on, the EPCI sheet and its PDF (one A4 page, the key figures of
/api/indicators read back with pypdf), and bad input answered with a French 4xx page."""

from __future__ import annotations

import html
import io
import re
from datetime import date
from html.parser import HTMLParser

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine, text

from geo_service.services.observatory.class_breaks import PALETTE, breaks, classify, number_fr
from geo_service.services.observatory.indicator_catalogue import BY_ID
from geo_service.services.observatory.page_data import value_text
from geo_service.services.resident.opening_hours import french_date

KEY_FIGURES = ("locaux", "locaux_eligibles", "part_locaux_eligibles", "communes_avec_borne_wifi_installee",
               "tiers_lieux", "lieux_mediation_pour_10000_habitants", "distance_moyenne_mediation",
               "part_locaux_au_dela_10km_mediation", "distance_moyenne_tiers_lieu")


class TableRows(HTMLParser):
    """The ``data-*`` attributes of the rows of the page's tables (what the server wrote)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and "data-code" in found:
            self.rows.append(found)


def table_rows(html: str) -> list[dict[str, str | None]]:
    parser = TableRows()
    parser.feed(html)
    return parser.rows


def api_values(client, **params) -> list[dict]:
    response = client.get("/api/indicators", params=params)
    assert response.status_code == 200, response.text
    return response.json()["values"]


def flat(text_: str) -> str:
    """Spaces of every kind (no-break, narrow no-break, line breaks) as one space, for reading a PDF's text."""
    return re.sub(r"[\s\u00a0\u202f]+", " ", text_)


@pytest.fixture(scope="module")
def client(observatory_snapshot, demo_client):
    """The demo application once the demo's snapshots are stored (back-filled history and today's)."""
    return demo_client


@pytest.fixture(scope="module")
def sirens(client) -> list[str]:
    return [v["code"] for v in api_values(client, level="epci", indicator="locaux")]


# -- classes ---------------------------------------------------------------------------------------------------------
def test_classes_cover_every_value_in_order() -> None:
    values = [0.0] * 150 + [1.5, 3.0, 12.0, 40.0, 55.5, 80.0, 99.9]
    classes = breaks(values, "%")
    assert 3 <= len(classes) <= len(PALETTE)
    assert [c.colour for c in classes] == sorted({c.colour for c in classes}, key=PALETTE.index)
    assert all(a.high <= b.low or a.high == b.low for a, b in zip(classes, classes[1:], strict=False))
    places = [classify(v, classes) for v in values]
    assert None not in places and places == sorted(places)  # a larger value never falls in a lower class
    assert classes[0].low <= min(values) and classes[-1].high >= max(values)
    assert breaks([0, 1, 1, 0], "EPCI")[-1].label == "1 EPCI" and breaks([], "%") == []


# -- /observatory ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("indicator", "level"), [("part_locaux_eligibles", "commune"), ("locaux", "epci"),
                                                  ("lieux_mediation_pour_10000_habitants", "epci")])
def test_the_table_holds_the_api_values(client, indicator: str, level: str) -> None:
    response = client.get("/observatory", params={"indicator": indicator, "level": level})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    shown = {r["data-code"]: (float(r["data-value"]) if r["data-value"] else None) for r in table_rows(response.text)}
    expected = {v["code"]: v["value"] for v in api_values(client, level=level, indicator=indicator)}
    assert shown == expected
    # The map's data (code → colour, value in words) names the same areas, and the legend its classes.
    assert response.text.count('class="obs-swatch"') >= len(shown)
    assert "Données au" in response.text and "Sources :" in response.text


def test_epci_filter_and_sort_work_without_javascript(client, sirens, loaded_boundaries: Engine) -> None:
    siren = sirens[0]
    with loaded_boundaries.connect() as conn:
        communes = set(conn.execute(text("SELECT DISTINCT code_insee_actuel FROM communes WHERE epci_siren = :s"),
                                    {"s": siren}).scalars())
    response = client.get("/observatory", params={"indicator": "locaux", "epci": siren, "sort": "valeur",
                                                       "order": "desc"})
    assert response.status_code == 200, response.text
    rows = table_rows(response.text)
    assert {r["data-code"] for r in rows} == communes
    values = [float(r["data-value"]) for r in rows if r["data-value"]]
    assert values == sorted(values, reverse=True) and values
    assert 'aria-sort="descending"' in response.text
    by_name = table_rows(client.get("/observatory", params={"indicator": "locaux", "epci": siren}).text)
    names = [r["data-name"] for r in by_name]
    assert names == sorted(names, key=str.casefold)


def test_a_split_indicator_gets_a_chart_and_a_table_by_category(client) -> None:
    response = client.get("/observatory", params={"indicator": "locaux_par_etat_ftth", "level": "epci"})
    assert response.status_code == 200, response.text
    assert 'id="obs-map"' not in response.text  # no choropleth of a split figure
    assert '<svg role="img" aria-labelledby="graphique-locaux-par-etat-ftth-titre' in response.text
    totals = {}
    for v in api_values(client, level="epci", indicator="locaux_par_etat_ftth"):
        totals[v["code"]] = totals.get(v["code"], 0) + v["value"]
    assert {r["data-code"]: float(r["data-value"]) for r in table_rows(response.text)} == totals


def test_outlines_join_the_values_by_code(client) -> None:
    for level in ("commune", "epci"):
        response = client.get(f"/observatory/areas/{level}.geojson")
        assert response.status_code == 200 and response.headers["content-type"] == "application/geo+json"
        codes = {f["properties"]["code"] for f in response.json()["features"]}
        assert codes == {v["code"] for v in api_values(client, level=level, indicator="locaux")}
        assert all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in response.json()["features"])
    assert len(client.get("/observatory/areas/commune.geojson").content) < 1_500_000


@pytest.mark.parametrize(("path", "params", "status"), [
    ("/observatory", {"indicator": "<script>alert(1)</script>"}, 400),
    ("/observatory", {"level": "departement'; DROP TABLE communes; --"}, 400),
    ("/observatory", {"sort": "x" * 5000}, 400),
    ("/observatory", {"order": "sideways"}, 400),
    ("/observatory", {"epci": "../../etc/passwd"}, 400),
    ("/observatory", {"epci": "999999999"}, 404),
    ("/observatory", {"indicator": "epci_avec_tiers_lieu", "level": "commune"}, 400),
    ("/observatory/epci/999999999", {}, 404),
    ("/observatory/epci/999999999.pdf", {}, 404),
    ("/observatory/epci/%3Cimg%20src%3Dx%3E", {}, 400),
    ("/observatory/epci/2000677361", {}, 400),
    ("/observatory", {"date": "04/12/2026"}, 400),
    ("/observatory", {"date": "2026-02-30"}, 400),
    ("/observatory", {"date": "<b>2026</b>"}, 400),
    ("/observatory", {"date": "1990-01-01"}, 404),
    ("/observatory", {"indicator": "tiers_lieux", "date": "2019-06-30"}, 404),
])
def test_bad_input_is_a_french_4xx_page(client, path: str, params: dict, status: int) -> None:
    response = client.get(path, params=params)
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("text/html")
    assert 'lang="fr"' in response.text and 'role="alert"' in response.text
    assert "<script>alert" not in response.text and "<img src=x>" not in response.text
    assert re.search(r"(inconnu|Aucun|n'est pas|non reconnue|n'existe pas)", html.unescape(response.text))


class DateOptions(HTMLParser):
    """The ``<option>`` of the page's date list: value, label and whether it is chosen."""

    def __init__(self) -> None:
        super().__init__()
        self.inside, self.options = False, []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.inside = (tag == "select" and found.get("id") == "date") or (self.inside and tag == "option")
        if self.inside and tag == "option":
            self.options.append([found["value"], "", "selected" in found])

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside and self.options:
            self.options[-1][1] += data


def date_options(page: str) -> list[list]:
    parser = DateOptions()
    parser.feed(page)
    return parser.options


def test_a_past_day_shows_that_snapshot_and_the_list_offers_the_days_holding_the_indicator(client) -> None:
    days = client.get("/api/indicators/snapshots").json()["snapshots"]
    backfilled = [d["date"] for d in days if d["kind"] == "backfilled"]
    computed = [d["date"] for d in days if d["kind"] == "computed"]
    assert len(backfilled) >= 8 and computed
    # The premises' share of eligible ones is held by every snapshot, back-filled days included, latest first.
    page = client.get("/observatory", params={"indicator": "part_locaux_eligibles", "level": "epci"})
    options = date_options(page.text)
    assert [o[0] for o in options] == sorted(backfilled + computed, reverse=True)
    assert options[0][2] and sum(o[2] for o in options) == 1
    assert all(o[1].strip().endswith("(reconstitué)") == (o[0] in backfilled) for o in options)
    # A past day: the table says that snapshot's values, as the API gives them for that date.
    past = backfilled[1]  # early in the roll-out: fewer eligible premises than today
    page = client.get("/observatory", params={"indicator": "part_locaux_eligibles", "level": "epci", "date": past})
    assert page.status_code == 200, page.text[:300]
    shown = {r["data-code"]: float(r["data-value"]) for r in table_rows(page.text) if r["data-value"]}
    expected = {v["code"]: v["value"] for v in api_values(client, level="epci", indicator="part_locaux_eligibles",
                                                          date=past)}
    assert shown == {k: v for k, v in expected.items() if v is not None} and shown
    assert shown != {r["data-code"]: float(r["data-value"]) for r in table_rows(
        client.get("/observatory", params={"indicator": "part_locaux_eligibles", "level": "epci"}).text)
        if r["data-value"]}
    assert [o[0] for o in date_options(page.text) if o[2]] == [past]
    assert f'name="date" value="{past}"' in page.text  # the sort forms keep the day
    assert f"date={past}" in html.unescape(page.text)  # so do the CSV and JSON links
    # A day between two snapshots: the nearest earlier one, said on the page.
    between = date.fromisoformat(past).replace(day=15).isoformat()
    page = client.get("/observatory", params={"indicator": "part_locaux_eligibles", "date": between})
    assert page.status_code == 200
    assert "Pas d'instantané de cet indicateur" in html.unescape(page.text)
    assert [o[0] for o in date_options(page.text) if o[2]] == [max(d for d in backfilled if d <= between)]
    # An indicator the back-filled days do not hold lists the computed days only.
    page = client.get("/observatory", params={"indicator": "tiers_lieux"})
    assert [o[0] for o in date_options(page.text)] == sorted(computed, reverse=True)


def test_unknown_outline_level_is_a_404(client) -> None:
    response = client.get("/observatory/areas/departement.geojson")
    assert response.status_code == 404 and "commune et epci" in response.json()["detail"]


# -- the EPCI sheet ---------------------------------------------------------------------------------------------------
def test_the_sheet_shows_the_api_key_figures_and_its_communes(client, sirens) -> None:
    siren = sirens[0]
    response = client.get(f"/observatory/epci/{siren}")
    assert response.status_code == 200, response.text
    page = flat(response.text)
    for v in api_values(client, level="epci", code=siren, indicator=",".join(KEY_FIGURES)):
        assert flat(value_text(BY_ID[v["indicator"]], v["value"])) in page, v
    communes = {r["data-code"] for r in table_rows(response.text)}
    shown = table_rows(client.get("/observatory", params={"indicator": "locaux", "epci": siren}).text)
    assert communes == {r["data-code"] for r in shown}
    # Two figures, each an image with its own title and description.
    assert len(re.findall(r'<svg role="img" aria-labelledby="(\S+)-titre \1-desc"', response.text)) == 2


def test_every_sheet_prints_on_one_a4_page_with_the_api_figures(client, sirens) -> None:
    for siren in sirens:
        response = client.get(f"/observatory/epci/{siren}.pdf")
        assert response.status_code == 200, response.text[:300]
        assert response.headers["content-type"] == "application/pdf"
        assert response.headers["content-disposition"].startswith(f'attachment; filename="fiche-epci-{siren}-')
        pdf = PdfReader(io.BytesIO(response.content))
        assert len(pdf.pages) == 1, f"{siren}: {len(pdf.pages)} pages"
        width, height = (float(x) for x in pdf.pages[0].mediabox.upper_right)
        assert (round(width / 72 * 25.4), round(height / 72 * 25.4)) == (210, 297)  # A4, in millimetres
        printed = flat(pdf.pages[0].extract_text())
        for v in api_values(client, level="epci", code=siren, indicator=",".join(KEY_FIGURES)):
            assert flat(value_text(BY_ID[v["indicator"]], v["value"])) in printed, (siren, v)
        name = api_values(client, level="epci", code=siren, indicator="locaux")[0]["name"]
        assert flat(name) in printed


def test_the_sheet_curve_tells_the_stored_history(client, sirens) -> None:
    siren = sirens[-1]
    history = client.get("/api/indicators/history", params={"indicator": "part_locaux_eligibles", "level": "epci",
                                                             "code": siren})
    assert history.status_code == 200, history.text
    points = [(v["date"], v["value"]) for v in history.json()["values"] if v["value"] is not None]
    assert len(points) > 4  # the demo's back-filled quarters and today's snapshot
    page = client.get(f"/observatory/epci/{siren}").text
    said = html.unescape(re.search(r'<desc id="courbe-[^"]+-desc">(.*?)</desc>', page, re.DOTALL).group(1))
    for day, value in points:
        assert f"{french_date(date.fromisoformat(day))} : {number_fr(value, 1)} %" in said, (day, value)
