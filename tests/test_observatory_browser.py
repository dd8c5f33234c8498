"""The observatory in Chromium on the demo territory: the map's areas drawn with the legend's colours, the table
sorted from its header buttons (mouse and keyboard), the EPCI sheet's figures, nothing asked of another host.
Screenshots are kept in test-output/ (``artefacts_dir``). axe-core audits both pages in test_page_audit.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser_support import BROWSER_MARKS, open_visit, serve_app, wait_until
from playwright.sync_api import expect

from geo_service import vendor
from geo_service.main import create_app
from geo_service.settings import Settings

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def server(settings: Settings, observatory_snapshot) -> Iterator[str]:
    if not (settings.web_dir / "static" / "vendor" / "leaflet" / "leaflet.js").is_file():
        vendor.vendor(settings.web_dir)
    with serve_app(create_app(settings)) as url:
        yield url


def epci_values(server: str, indicator: str) -> list[dict]:
    answer = httpx.get(f"{server}/api/indicators", params={"level": "epci", "indicator": indicator}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()["values"]


def test_the_map_draws_every_commune_in_its_class_colour(browser, visits, server: str, artefacts_dir: Path):
    visit = open_visit(browser, visits)
    page = visit.page
    visit.goto(f"{server}/observatory?indicator=part_locaux_eligibles&level=commune")
    rows = page.locator("table.obs-table tbody tr")
    count = rows.count()
    assert count > 100
    # The map is drawn once its outlines have arrived: as many shapes as the table has communes.
    expect(page.locator("#obs-map")).to_have_attribute("data-drawn", str(count), timeout=30_000)
    assert wait_until(page, "n => document.querySelectorAll('#obs-map .leaflet-overlay-pane path').length >= n",
                      count), "les communes ne sont pas dessinées"
    legend = page.locator(".obs-legend__classes li")
    expect(legend.first).to_be_visible()
    assert legend.count() >= 3
    # Each class of the legend fills at least one shape of the map (the server's colours, drawn as given).
    legend_colours = page.eval_on_selector_all(".obs-legend__classes .obs-swatch:not(.obs-swatch--none)",
                                               "els => els.map(e => getComputedStyle(e).backgroundColor)")
    fills = page.eval_on_selector_all("#obs-map .leaflet-overlay-pane path", "els => els.map(e => "
                                      "{ const c = document.createElement('i'); c.style.color = e.getAttribute("
                                      "'fill'); document.body.appendChild(c); const v = getComputedStyle(c).color;"
                                      " c.remove(); return v; })")
    assert set(legend_colours) <= set(fills), (legend_colours, sorted(set(fills)))
    expect(page.locator(".obs-chart svg[role=img] title")).to_have_count(1)
    page.screenshot(path=str(artefacts_dir / "observatory.png"), full_page=False)
    assert visit.foreign_requests() == []


def test_the_table_sorts_from_its_headers_with_mouse_and_keyboard(browser, visits, server: str):
    visit = open_visit(browser, visits)
    page = visit.page
    visit.goto(f"{server}/observatory?indicator=locaux&level=epci")
    expect(page.locator("table[data-sorting=client]")).to_have_count(1)
    value_header = page.locator("th", has=page.locator("form[data-sort=valeur]"))
    page.locator("form[data-sort=valeur] button").click()
    expect(value_header).to_have_attribute("aria-sort", "ascending")
    expected = sorted(epci_values(server, "locaux"), key=lambda v: v["value"])
    assert page.eval_on_selector_all("table.obs-table tbody tr", "rows => rows.map(r => r.dataset.code)") == [
        v["code"] for v in expected]
    # The same button, pressed from the keyboard, turns the order round; the focus stays on it.
    page.locator("form[data-sort=valeur] button").focus()
    page.keyboard.press("Enter")
    expect(value_header).to_have_attribute("aria-sort", "descending")
    assert page.eval_on_selector_all("table.obs-table tbody tr", "rows => rows.map(r => r.dataset.code)") == [
        v["code"] for v in reversed(expected)]
    expect(page.locator("form[data-sort=valeur] button")).to_be_focused()
    assert "sort=valeur" in page.url and "order=desc" in page.url


def test_the_epci_sheet_shows_its_map_curve_and_communes(browser, visits, server: str, artefacts_dir: Path):
    siren = epci_values(server, "locaux")[0]["code"]
    visit = open_visit(browser, visits, 1280, 900)
    page = visit.page
    visit.goto(f"{server}/observatory/epci/{siren}")
    expect(page.locator(".obs-sheet__map svg[role=img] title")).to_contain_text("par commune")
    expect(page.locator(".obs-sheet__curve svg[role=img] title")).to_contain_text("éligibles")
    expect(page.locator(".obs-keys tr[data-indicator=locaux] td")).not_to_be_empty()
    expect(page.locator(".obs-communes__table tbody tr").first).to_be_visible()
    page.screenshot(path=str(artefacts_dir / f"observatory-epci-{siren}.png"), full_page=True)
    page.emulate_media(media="print")
    expect(page.locator(".obs-sheet__tools")).to_be_hidden()
    page.screenshot(path=str(artefacts_dir / f"observatory-epci-{siren}-print.png"), full_page=True)
    assert visit.foreign_requests() == []


def test_on_a_phone_the_page_fits_its_width(browser, visits, server: str, artefacts_dir: Path):
    visit = open_visit(browser, visits, 390, 844, is_mobile=True, has_touch=True)
    page = visit.page
    visit.goto(f"{server}/observatory?indicator=tiers_lieux&level=epci")
    expect(page.locator("#obs-map")).not_to_have_attribute("data-drawn", "erreur", timeout=30_000)
    assert wait_until(page, "() => Number(document.getElementById('obs-map').dataset.drawn) > 0"), "carte vide"
    # Map, legend and table one under the other; only the table scrolls sideways, inside its own frame.
    assert wait_until(page, "() => document.documentElement.scrollWidth <= window.innerWidth"), "page trop large"
    assert wait_until(page, "() => document.querySelector('.obs-table-wrap').getBoundingClientRect().top > "
                            "document.getElementById('obs-map').getBoundingClientRect().bottom"), "tableau à côté"
    page.screenshot(path=str(artefacts_dir / "observatory-phone.png"), full_page=False)
