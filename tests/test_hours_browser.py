"""A help place's hours as residents read them, in a real headless Chromium: the French sentence and the coming
week's table in the map's report panel (opened with the keyboard) and on the text page without JavaScript,
axe-core finding nothing on either, and a hostile comment in the hours shown as text. The places are committed
with known hours; the week starts on the server's today, so the table is checked for its shape and for what each
weekday must say, never for the date.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import AXE, BROWSER_MARKS, SETTLE_MS, axe_violations, open_visit, serve_app
from playwright.sync_api import expect
from sqlalchemy import Engine, text

from geo_service import vendor
from geo_service.main import create_app
from geo_service.settings import Settings

pytestmark = BROWSER_MARKS

NAME = "France Services d'essai des horaires"
HOURS = "Mo-Fr 08:30-19:00; Sa 09:00-12:00; PH off"
SENTENCE = "du lundi au vendredi, de 8 h 30 à 19 h ; le samedi de 9 h à 12 h ; fermé les jours fériés"
HOSTILE_NAME = "Association au commentaire piégé"
HOSTILE_HOURS = 'Mo 10:00-12:00 "<img src=x onerror=window.__xss=1>"'
HOSTILE_SENTENCE = "le lundi de 10 h à 12 h (« <img src=x onerror=window.__xss=1> »)"
BY_WEEKDAY = {"lundi": "de 8 h 30 à 19 h", "mardi": "de 8 h 30 à 19 h", "mercredi": "de 8 h 30 à 19 h",
              "jeudi": "de 8 h 30 à 19 h", "vendredi": "de 8 h 30 à 19 h", "samedi": "de 9 h à 12 h",
              "dimanche": "fermé"}


@pytest.fixture(scope="module")
def help_place(engine: Engine, demo_territory) -> Iterator[tuple[float, float]]:
    """A committed France Services with the issue's hours, inside a commune; removed after the module."""
    with engine.begin() as conn:
        lon, lat = conn.execute(text(
            "INSERT INTO digital_help_places (lieu_id, nom, adresse, code_insee, commune, categorie, horaires, demo, "
            "geom) SELECT 'TEST-HORAIRES', :nom, '1 place de la Mairie', code_insee, nom, 'france services', "
            ":horaires, true, ST_PointOnSurface(geom) FROM communes ORDER BY code_insee LIMIT 1 "
            "RETURNING ST_X(geom), ST_Y(geom)"), {"nom": NAME, "horaires": HOURS}).one()
        # A neighbour whose hours carry a hostile comment: words are text, never markup.
        conn.execute(text(
            "INSERT INTO digital_help_places (lieu_id, nom, adresse, code_insee, commune, categorie, horaires, demo, "
            "geom) SELECT 'TEST-HORAIRES-XSS', :nom, '2 place de la Mairie', code_insee, nom, 'association', "
            ":horaires, true, ST_Translate(ST_PointOnSurface(geom), 0.0001, 0) FROM communes ORDER BY code_insee "
            "LIMIT 1"), {"nom": HOSTILE_NAME, "horaires": HOSTILE_HOURS})
    yield lon, lat
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM digital_help_places WHERE lieu_id IN ('TEST-HORAIRES', 'TEST-HORAIRES-XSS')"))


@pytest.fixture(scope="module")
def server(settings: Settings, help_place) -> Iterator[str]:
    if not (settings.web_dir / "static" / "vendor" / "leaflet" / "leaflet.js").is_file() or not AXE.is_file():
        vendor.vendor(settings.web_dir)
    with serve_app(create_app(settings)) as url:
        yield url


def plain(words: str) -> str:
    """Non-breaking spaces (« 8 h 30 » never breaks) read as plain ones, as the constants above are written."""
    return words.replace("\u00a0", " ")


def hours_sentence(place) -> str:
    expect(place.locator(".rpt-hours")).to_contain_text("Horaires : ")
    return plain(place.locator(".rpt-hours").text_content())


def read_week(place) -> list[dict]:
    """The week's table of a place, row by row, as a screen reader would be given it."""
    return place.locator("table.rpt-week__table").evaluate("""table => ({
        caption: table.caption.textContent,
        heads: [...table.tHead.rows[0].cells].map(c => [c.tagName, c.scope, c.textContent]),
        rows: [...table.tBodies[0].rows].map(r => ({
            th: r.cells[0].tagName, scope: r.cells[0].scope, day: r.cells[0].textContent, hours: r.cells[1].textContent,
            current: r.getAttribute("aria-current"), today: r.classList.contains("rpt-week__day--today")}))
    })""")


def check_week(week: dict) -> None:
    assert week["caption"] == f"Horaires des 7 prochains jours : {NAME}"
    assert week["heads"] == [["TH", "col", "Jour"], ["TH", "col", "Horaires"]]
    rows = week["rows"]
    assert len(rows) == 7
    assert all(r["th"] == "TH" and r["scope"] == "row" for r in rows)
    # Today first, marked in words, by aria-current and by its class; no other row is.
    assert rows[0]["current"] == "date" and rows[0]["today"] and "(aujourd'hui)" in rows[0]["day"]
    assert not any(r["current"] or r["today"] or "(aujourd'hui)" in r["day"] for r in rows[1:])
    seen = set()
    for row in rows:
        weekday = row["day"].split()[0]
        seen.add(weekday)
        expected = "fermé" if "(férié)" in row["day"] else BY_WEEKDAY[weekday]
        assert plain(row["hours"]) == expected, row
    assert seen == set(BY_WEEKDAY)


def test_the_panel_reads_a_help_place_hours_in_words_and_its_week(browser, server: str, help_place, visits,
                                                                   artefacts_dir: Path):
    lon, lat = help_place
    page = open_visit(browser, visits).goto(f"{server}/map?lon={lon}&lat={lat}").page
    place = page.locator("#rapport .rpt-place").filter(has=page.get_by_role("heading", name=NAME))
    expect(place).to_have_count(1, timeout=SETTLE_MS)
    assert hours_sentence(place) == f"Horaires : {SENTENCE}"
    assert HOURS not in place.text_content()  # the OSM expression is for machines

    # The table is behind a disclosure, opened with the keyboard.
    summary = place.locator("summary", has_text="Horaires des 7 prochains jours")
    table = place.locator("table.rpt-week__table")
    expect(table).to_be_hidden()
    summary.focus()
    page.keyboard.press("Enter")
    expect(table).to_be_visible()
    check_week(read_week(place))
    place.screenshot(path=str(artefacts_dir / "hours-panel.png"))
    assert axe_violations(page) == []

    hostile = page.locator("#rapport .rpt-place").filter(has=page.get_by_role("heading", name=HOSTILE_NAME))
    assert hours_sentence(hostile) == f"Horaires : {HOSTILE_SENTENCE}"
    expect(hostile.locator("img")).to_have_count(0)
    page.wait_for_function("() => window.__xss === undefined")  # times out if the hostile comment ran


def test_the_text_report_reads_the_same_hours_without_javascript(browser, server: str, help_place, visits):
    lon, lat = help_place
    url = f"{server}/map/report?lon={lon}&lat={lat}"
    # Without JavaScript (read through Playwright's own locators: the page runs no script).
    page = open_visit(browser, visits, java_script_enabled=False).goto(url).page
    place = page.locator(".rpt-place").filter(has=page.get_by_role("heading", name=NAME))
    expect(place).to_have_count(1)
    assert hours_sentence(place) == f"Horaires : {SENTENCE}"
    assert HOURS not in place.text_content()
    place.locator("summary").click()
    expect(place.locator("table.rpt-week__table")).to_be_visible()
    days = place.locator("tbody th[scope=row]").all_text_contents()
    hours = place.locator("tbody td").all_text_contents()
    assert len(days) == len(hours) == 7 and "(aujourd'hui)" in days[0]
    assert [h for d, h in zip(days, hours, strict=True) if d.startswith("dimanche")] == ["fermé"]
    assert all(plain(h) in set(BY_WEEKDAY.values()) for h in hours)

    # The same page audited by axe-core, which needs a page that runs scripts.
    page = open_visit(browser, visits).goto(url).page
    place = page.locator(".rpt-place").filter(has=page.get_by_role("heading", name=NAME))
    place.locator("summary").click()
    expect(place.locator("table.rpt-week__table")).to_be_visible()
    check_week(read_week(place))
    assert axe_violations(page) == []
    hostile = page.locator(".rpt-place").filter(has=page.get_by_role("heading", name=HOSTILE_NAME))
    assert hours_sentence(hostile) == f"Horaires : {HOSTILE_SENTENCE}"
    expect(hostile.locator("img")).to_have_count(0)
    page.wait_for_function("() => window.__xss === undefined")  # times out if the hostile comment ran
