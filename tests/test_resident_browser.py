"""The resident's map in a real headless Chromium: find an address with the keyboard only and read the fibre
state; the report on a phone (bottom sheet); click and geolocation; a link that keeps the state; hostile text
shown as text; the embed inside a page of another origin (allowed, and refused when not listed); the text
page; axe WCAG 2.1 AA audits. No request may leave 127.0.0.1. Screenshots go to test-output/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from browser_support import (
    AXE,
    BROWSER_MARKS,
    SETTLE_MS,
    axe_violations,
    open_visit,
    serve_app,
    serve_folder,
    wait_until,
)
from playwright.sync_api import expect
from sqlalchemy import Engine, text

from geo_service import vendor
from geo_service.main import create_app
from geo_service.settings import MapSettings, Settings

EVIL = '<img src=x onerror="window.__xss=1">Borne piégée'

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def premise(engine: Engine, demo_territory) -> dict:
    """A demo premise of Figeac (numbered) and the label the geocoder gives it."""
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT imb_id, numero, nom_voie, code_postal, nom_commune, etat, ST_X(geom) AS lon, ST_Y(geom) AS lat "
            "FROM premises WHERE nom_commune = 'Figeac' AND numero ~ '^[0-9]+$' AND etat = 'en cours de deploiement' "
            "ORDER BY imb_id LIMIT 1")).mappings().one()
    return {**row, "label": f"{row['numero']} {row['nom_voie']}, {row['code_postal']} {row['nom_commune']}"}


@pytest.fixture(scope="module")
def quiet_point(engine: Engine, demo_territory) -> tuple[float, float]:
    """A point inside a commune, over 3 km from any Wi-Fi borne: a click there hits the map, not a marker."""
    with engine.connect() as conn:
        return tuple(conn.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM communes) c "
            "WHERE NOT EXISTS (SELECT 1 FROM wifi_hotspots w "
            "                  WHERE ST_DWithin(w.geom::geography, c.p::geography, 3000)) "
            "ORDER BY ST_X(p) LIMIT 1")).one())


@pytest.fixture(scope="module")
def evil_borne(engine: Engine, demo_territory) -> Iterator[tuple[float, float]]:
    """A committed Wi-Fi borne in service with a hostile name, in a commune; removed after the module."""
    with engine.begin() as conn:
        lon, lat = conn.execute(text(
            "INSERT INTO wifi_hotspots (borne_id, code_insee, commune, lieu, ssid, statut, demo, geom) "
            "SELECT 'TEST-XSS-RAPPORT', code_insee, nom, :lieu, 'WIFI', 'installee', true, ST_PointOnSurface(geom) "
            "FROM communes ORDER BY code_insee DESC LIMIT 1 RETURNING ST_X(geom), ST_Y(geom)"), {"lieu": EVIL}).one()
    yield lon, lat
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM wifi_hotspots WHERE borne_id = 'TEST-XSS-RAPPORT'"))


@pytest.fixture(scope="module")
def server(settings: Settings, demo_territory, evil_borne) -> Iterator[str]:
    """The app, allowing any local port to frame the embed (the "foreign site" of these tests)."""
    if not (settings.web_dir / "static" / "vendor" / "leaflet" / "leaflet.js").is_file() or not AXE.is_file():
        vendor.vendor(settings.web_dir)
    allowed = MapSettings(embed_frame_ancestors=["'self'", "http://127.0.0.1:*"])
    with serve_app(create_app(settings.model_copy(update={"map": allowed}))) as url:
        yield url


@pytest.fixture(scope="module")
def strict_server(settings: Settings, demo_territory) -> Iterator[str]:
    """The app with the default frame-ancestors (self and lot.fr only)."""
    with serve_app(create_app(settings)) as url:
        yield url


def expected_headline(server: str, lon: float, lat: float) -> str:
    import httpx

    return httpx.get(f"{server}/api/nearby", params={"lon": lon, "lat": lat}).json()["fibre"]["headline"]


def test_keyboard_only_search_shows_the_fibre_state(browser, server: str, premise: dict, visits, artefacts_dir: Path):
    visit = open_visit(browser, visits).goto(f"{server}/map")
    page = visit.page
    page.keyboard.press("Tab")  # the first skip link: "Aller à la recherche d'adresse"
    focused = page.locator(":focus")
    expect(focused).to_have_text(re.compile(r"^\s*Aller à la recherche"))
    page.keyboard.press("Enter")
    expect(focused).to_have_id("recherche")
    search = page.locator("#recherche")
    page.keyboard.type(f"{premise['numero']} {premise['nom_voie']} fig", delay=15)
    page.locator("#recherche-liste [role=option]").first.wait_for()
    expect(search).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("ArrowDown")
    first = page.locator("#recherche-liste [role=option]").first
    expect(first).to_have_attribute("aria-selected", "true")
    expect(search).to_have_attribute("aria-activedescendant", first.get_attribute("id"))
    assert premise["label"] in first.text_content()
    page.keyboard.press("Enter")
    status = page.locator("#rapport .rpt-status")
    status.wait_for()
    expect(search).to_have_attribute("aria-expanded", "false")
    assert status.text_content() == expected_headline(server, premise["lon"], premise["lat"])
    assert status.text_content() == "Raccordable prochainement"
    expect(focused).to_have_id("rapport-titre")  # the report is read next
    assert premise["label"] in page.locator("#rapport").text_content()
    query = parse_qs(urlsplit(page.url).query)
    assert query["address"] == [premise["label"]] and "zoom" in query and "layers" in query
    page.screenshot(path=str(artefacts_dir / "resident-desktop-report.png"))

    # Escape closes the suggestions (once they are back: they come after a pause in typing and a request); the
    # close button returns to the search box.
    search.focus()
    page.keyboard.type(" x", delay=10)
    expect(search).to_have_attribute("aria-expanded", "true", timeout=SETTLE_MS)
    page.keyboard.press("Escape")
    expect(search).to_have_attribute("aria-expanded", "false", timeout=SETTLE_MS)
    page.locator("#rapport-fermer").click()
    expect(page.locator("#rapport")).to_be_hidden()
    expect(focused).to_have_id("recherche")


def test_a_shared_link_restores_address_layers_and_zoom(browser, server: str, premise: dict, visits):
    """Twenty times in a row: an animated first fit of the map used to swallow the link's zoom now and then (the
    map stayed at the territory's zoom and rewrote the link to it)."""
    from urllib.parse import urlencode

    link = f"{server}/map?" + urlencode({"address": premise["label"], "layers": "third_places,premises", "zoom": 17})
    settled = ("() => { const m = window.lotMap && window.lotMap.map; const url = new URL(window.location.href);"
               " return !!m && m.getZoom() === 17 && url.searchParams.get('zoom') === '17'"
               " && !!url.searchParams.get('address'); }")
    for attempt in range(20):
        visit = open_visit(browser, visits).goto(link)
        page = visit.page
        page.locator("#rapport .rpt-status").wait_for()
        reached = wait_until(page, settled)
        seen = page.evaluate("() => [window.lotMap.map.getZoom(), window.location.search]")
        assert reached, (f"attempt {attempt + 1}: the map or the link lost the zoom", seen)
        assert page.locator("#couche-premises").is_checked() and page.locator("#couche-third_places").is_checked()
        assert not page.locator("#couche-wifi_hotspots").is_checked()
        assert premise["label"] in page.locator("#rapport").text_content()
        visits.remove(visit)
        assert visit.foreign_requests() == [] and visit.errors == [], (visit.foreign_requests(), visit.errors)
        visit.close()


def test_phone_shows_the_report_as_a_bottom_sheet(browser, server: str, premise: dict, visits, artefacts_dir: Path):
    visit = open_visit(browser, visits, 390, 844, is_mobile=True, has_touch=True)
    page = visit.goto(f"{server}/map").page
    page.screenshot(path=str(artefacts_dir / "resident-phone-search.png"))
    page.goto(f"{server}/map?address={premise['label']}", wait_until="networkidle")
    page.locator("#rapport .rpt-status").wait_for()
    # The sheet's height settles after layout (fonts, a late resize) and the map then pans the address above it:
    # wait for that with sheet, map and point all read live, then check one reading of them.
    layout = ("([lat, lon]) => { const m = window.lotMap.map;"
              " const map = document.querySelector('.folium-map').getBoundingClientRect();"
              " const sheet = document.querySelector('#rapport').getBoundingClientRect();"
              " return {mapTop: map.top, mapWidth: map.width, sheetTop: sheet.top, sheetBottom: sheet.bottom,"
              " sheetWidth: sheet.width,"
              " pointY: m.getContainer().getBoundingClientRect().top + m.latLngToContainerPoint([lat, lon]).y}; }")
    address = [premise["lat"], premise["lon"]]
    wait_until(page, f"(address) => {{ const g = ({layout})(address); "
                     "return g.mapTop < g.pointY && g.pointY < g.sheetTop; }", address)
    seen = page.evaluate(layout, address)
    assert seen["sheetWidth"] >= 380 and abs(seen["sheetBottom"] - 844) < 2, seen
    assert seen["sheetTop"] > 844 * 0.35, ("the map stays visible above the sheet", seen)
    assert seen["mapWidth"] >= 380, seen
    assert seen["mapTop"] < seen["pointY"] < seen["sheetTop"], ("the address shows on the map, above the sheet",
                                                                 seen)
    page.screenshot(path=str(artefacts_dir / "resident-phone-report.png"))


def test_click_on_the_map_and_geolocation_query_the_report(browser, server: str, quiet_point, visits):
    lon, lat = quiet_point
    page = open_visit(browser, visits).goto(f"{server}/map").page
    page.evaluate(f"window.lotMap.map.setView([{lat}, {lon}], 14, {{animate: false}})")
    x, y = page.evaluate(f"(() => {{ const p = window.lotMap.map.latLngToContainerPoint([{lat}, {lon}]);"
                         " const r = window.lotMap.map.getContainer().getBoundingClientRect();"
                         " return [r.left + p.x, r.top + p.y]; })()")
    page.mouse.click(x, y)
    page.locator("#rapport .rpt-status").wait_for()
    assert "Point " in page.locator("#rapport .rpt-where").text_content()
    assert "lon=" in page.url and "lat=" in page.url

    located = open_visit(browser, visits, geolocation={"latitude": lat, "longitude": lon},
                         permissions=["geolocation"]).goto(f"{server}/map").page
    located.get_by_role("button", name="Me localiser").click()
    located.locator("#rapport .rpt-status").wait_for()
    assert located.locator("#rapport .rpt-commune").text_content()


def test_outside_the_territory_the_panel_says_so_in_french(browser, server: str, visits):
    page = open_visit(browser, visits).goto(f"{server}/map?lon=2.35&lat=48.85").page
    alert = page.locator("#rapport [role=alert]")
    alert.wait_for()
    assert "Hors du territoire" in alert.text_content() and "hors du territoire du Lot" in alert.text_content()


def test_hostile_names_are_shown_as_text(browser, server: str, evil_borne, visits):
    lon, lat = evil_borne
    page = open_visit(browser, visits).goto(f"{server}/map?lon={lon}&lat={lat}").page
    page.locator("#rapport .rpt-status").wait_for()
    panel = page.locator("#rapport")
    expect(panel).to_contain_text(EVIL)
    assert panel.locator("img, script").count() == 0 and page.evaluate("window.__xss") is None


def _host_page(folder: Path, server: str, name: str) -> None:
    embed = f"{server}/map/embed?layers=wifi_hotspots,third_places,inconnue&zoom=9"
    (folder / name).write_text(
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Site de la commune</title></head>'
        f'<body><h1>Site de la commune</h1><iframe id="carte" src="{embed}" title="Carte" width="800" height="500">'
        "</iframe></body></html>", encoding="utf-8")


def test_the_embed_works_inside_a_page_of_another_origin(browser, server: str, visits, tmp_path: Path,
                                                         artefacts_dir: Path):
    _host_page(tmp_path, server, "accueil.html")
    with serve_folder(tmp_path) as site:
        assert urlsplit(site).port != urlsplit(server).port
        visit = open_visit(browser, visits, 1000, 700)
        responses = []
        visit.page.on("response", lambda r: responses.append(r) if "/map/embed" in r.url else None)
        page = visit.goto(f"{site}/accueil.html").page
        frame = page.frame_locator("#carte")
        frame.locator('.geo-dot__fill[data-layer="wifi_hotspots"]').first.wait_for()
        assert "Couche inconnue ignorée : inconnue" in frame.locator(".embed__notices").text_content()
        assert frame.locator("#couche-third_places").is_checked()
        assert frame.locator("#couche-premises").count() == 0  # only the chosen layers
        embed = page.frames[1]
        assert embed.evaluate("document.cookie") == ""
        headers = responses[0].headers
        assert "frame-ancestors 'self' http://127.0.0.1:*" in headers["content-security-policy"]
        assert "set-cookie" not in headers and headers["cache-control"].startswith("public")
        page.screenshot(path=str(artefacts_dir / "resident-embed-foreign-page.png"))
        assert not [m for m in visit.console if "Content Security Policy" in m], visit.console


def test_the_embed_is_refused_to_sites_not_listed(browser, strict_server: str, visits, tmp_path: Path):
    _host_page(tmp_path, strict_server, "autre.html")
    with serve_folder(tmp_path) as site:
        visit = open_visit(browser, visits, 1000, 700)
        page = visit.goto(f"{site}/autre.html").page
        assert visit.wait_for_console("frame-ancestors"), visit.console
        frame = page.frames[1]
        assert frame.locator(".folium-map").count() == 0, "the browser must refuse to show the framed map"
        visit.errors.clear()


def test_the_snippet_page_previews_the_embed(browser, server: str, visits):
    page = open_visit(browser, visits).goto(
        f"{server}/map/embed/snippet?layers=digital_help_places&lat=44.6&lon=1.6&zoom=11").page
    code = page.locator("#code").input_value()
    assert code.startswith("<iframe src=\"" + server + "/map/embed?layers=digital_help_places")
    page.frame_locator(".snippet-preview").locator(".folium-map").wait_for()


def test_the_text_report_works_without_javascript(browser, server: str, premise: dict, visits, artefacts_dir: Path):
    visit = open_visit(browser, visits, java_script_enabled=False)
    page = visit.goto(f"{server}/map/report").page
    page.get_by_label("Adresse ou commune").fill(premise["label"])
    page.get_by_role("button", name="Voir le rapport").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("h2#rapport-titre").text_content() == f"Rapport pour : {premise['label']}"
    assert page.locator(".rpt-status").text_content() == "Raccordable prochainement"
    page.screenshot(path=str(artefacts_dir / "resident-text-report.png"), full_page=True)


@pytest.mark.parametrize("path,width", [("/map/report?address={label}", 1280), ("/map?address={label}", 1280),
                                        ("/map?address={label}", 390), ("/map/embed/snippet", 1280)],
                         ids=["text-report", "map-with-report", "phone-with-report", "snippet"])
def test_axe_finds_no_wcag_aa_violation(browser, server: str, premise: dict, visits, path: str, width: int):
    visit = open_visit(browser, visits, width, 844)
    page = visit.goto(server + path.format(label=premise["label"])).page
    if path.startswith("/map?"):
        page.locator("#rapport .rpt-status").wait_for()
    assert axe_violations(page) == []
