"""``/map`` in a real headless Chromium: every request stays on 127.0.0.1, toggles draw features, popups escape
their text, the demo badge shows, dense layers wait for zoom, and the page fits a phone. Screenshots go to
test-output/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import AXE, BROWSER_MARKS, SETTLE_MS, Visit, axe_violations, serve_app
from playwright.sync_api import expect
from sqlalchemy import Engine, text

from geo_service import vendor
from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.settings import MapSettings, Settings

# A Wi-Fi spot whose texts try to run script: the popup must show them as plain text.
EVIL_LIEU = '<img src=x onerror="window.__xss=1">Mairie piégée'
EVIL_SSID = "<script>window.__xss=2</script>WIFI-TEST"

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def evil_hotspot(demo_territory, loaded_boundaries: Engine) -> Iterator[tuple[float, float]]:
    """A committed demo Wi-Fi spot with hostile texts, in the first commune; removed after the module."""
    with loaded_boundaries.begin() as conn:
        lon, lat = conn.execute(text(
            "INSERT INTO wifi_hotspots (borne_id, code_insee, commune, lieu, ssid, statut, demo, geom) "
            "SELECT 'TEST-XSS', code_insee, nom, :lieu, :ssid, 'installee', true, ST_PointOnSurface(geom) "
            "FROM communes ORDER BY code_insee LIMIT 1 RETURNING ST_X(geom), ST_Y(geom)"),
            {"lieu": EVIL_LIEU, "ssid": EVIL_SSID}).one()
    yield lon, lat
    with loaded_boundaries.begin() as conn:
        conn.execute(text("DELETE FROM wifi_hotspots WHERE borne_id = 'TEST-XSS'"))


@pytest.fixture(scope="module")
def dense_point(loaded_boundaries: Engine, demo_territory) -> tuple[float, float] | None:
    """One premises point to zoom to, or None when the demo holds none."""
    with loaded_boundaries.connect() as conn:
        row = conn.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM premises ORDER BY fid LIMIT 1")).first()
    return (row[0], row[1]) if row else None


@pytest.fixture(scope="module")
def server(settings: Settings, evil_hotspot, loaded_boundaries: Engine) -> Iterator[str]:
    """The real app under uvicorn on 127.0.0.1 (free port), in a background thread."""
    if not vendor.node_modules_current(settings.web_dir) or not AXE.is_file() \
            or not (settings.web_dir / "static" / "vendor" / "leaflet" / "leaflet.js").is_file():
        vendor.vendor(settings.web_dir)  # also installs axe-core, the audit's dev dependency
    with loaded_boundaries.connect() as conn:
        premises = conn.execute(text("SELECT count(*) FROM premises")).scalar_one()
    # The premises layer must take the by-bbox path even when a small demo holds fewer than the default threshold.
    threshold = min(MapSettings().dense_layer_threshold, max(premises - 1, 1))
    app = create_app(settings.model_copy(update={"map": MapSettings(dense_layer_threshold=threshold)}))
    with serve_app(app) as url:
        yield url


def visit_map(browser, server: str, width: int, height: int) -> Visit:
    """``/map`` in a fresh browser context, loaded."""
    return Visit(browser, width, height).goto(f"{server}/map")


@pytest.fixture(scope="module")
def desktop(browser, server: str) -> Iterator[Visit]:
    visit = visit_map(browser, server, 1280, 800)
    yield visit
    visit.close()


def dots(page, layer_id: str):
    """The drawn markers of a layer."""
    return page.locator(f'.geo-dot__fill[data-layer="{layer_id}"]')


def test_every_public_layer_has_a_toggle(desktop: Visit, registry: LayerRegistry):
    toggles = [t for layer in registry if layer.is_public for t in layer.toggles()]
    assert desktop.page.locator(".panel input[type=checkbox]").count() == len(toggles)
    for toggle in toggles:
        scope = desktop.page.locator(f'.panel [data-layer="{toggle.layer_id}"]')
        box = scope.get_by_label(toggle.label, exact=True)
        assert box.is_checked() == toggle.visible, toggle.id


def zone_paths(page, colour: str):
    """The drawn white-zone polygons of one colour (each operator's code has its own)."""
    return page.locator(f'.leaflet-overlay-pane path[stroke="{colour}"]')


def test_the_first_view_is_calm_and_operators_are_one_click_away(browser, server: str, registry: LayerRegistry):
    """On first load: the search, public Wi-Fi, third places, help places and the white zones where no operator
    covers; nothing else. Each operator's white zones are one click away, in the group of the white zones."""
    visit = visit_map(browser, server, 1280, 800)
    try:
        page = visit.page
        shown = "() => window.lotMap && window.lotMap.shownLayers().join(',')"
        page.wait_for_function(f"() => ({shown})() !== ''", timeout=SETTLE_MS)
        first_view = "white_zones:tous,wifi_hotspots,third_places,digital_help_places"
        page.wait_for_function(f"() => ({shown})() === '{first_view}'", timeout=SETTLE_MS)
        codes = {c.value: c.color for c in registry.get("white_zones").field("operateur").codes}
        expect(zone_paths(page, codes["tous"]).first).to_be_attached(timeout=SETTLE_MS)
        for operator in ("orange", "sfr", "bouygues", "free"):
            assert zone_paths(page, codes[operator]).count() == 0, operator
        assert page.locator('.leaflet-overlay-pane path[stroke="#009dcc"]').count() == 0  # no coverage drawn
        expect(page.locator("#recherche")).to_be_visible()
        group = page.get_by_role("group", name="Zones blanches")
        group.get_by_label("Orange", exact=True).check()
        expect(zone_paths(page, codes["orange"]).first).to_be_attached(timeout=SETTLE_MS)
        page.wait_for_function(f"() => ({shown})().split(',').includes('white_zones:orange')", timeout=SETTLE_MS)
        assert zone_paths(page, codes["tous"]).count() > 0  # the other toggle keeps its zones
        assert visit.errors == []
    finally:
        visit.close()


def test_toggling_a_layer_draws_and_removes_its_features(desktop: Visit):
    page = desktop.page
    wifi = page.locator("#couche-wifi_hotspots")
    assert wifi.is_checked()
    wifi_dots = dots(page, "wifi_hotspots")
    wifi_dots.first.wait_for(state="attached")
    shown = wifi_dots.count()
    assert shown > 0
    wifi.uncheck()
    expect(wifi_dots).to_have_count(0, timeout=SETTLE_MS)
    wifi.focus()
    page.keyboard.press("Space")  # toggles work from the keyboard
    expect(wifi).to_be_checked(timeout=SETTLE_MS)
    expect(wifi_dots).to_have_count(shown, timeout=SETTLE_MS)
    expect(page.locator("#legende-wifi_hotspots")).to_be_visible(timeout=SETTLE_MS)


def test_demo_badge_and_attribution(desktop: Visit, registry: LayerRegistry):
    page = desktop.page
    badge = page.locator("#demo-badge")  # shown once a loaded layer turns out to hold demo data
    expect(badge).to_be_visible(timeout=SETTLE_MS)
    expect(badge).to_contain_text("Données de démonstration", use_inner_text=True, timeout=SETTLE_MS)
    attribution = page.locator(".map-sources").text_content()
    assert registry.get("communes").attribution in attribution
    for layer in registry:
        if layer.is_public and layer.style.visible:
            assert layer.attribution in attribution, layer.id


def test_popup_shows_hostile_text_as_text(desktop: Visit, artefacts_dir: Path):
    page = desktop.page
    marker = page.locator(".geo-dot", has=page.locator('[data-layer="wifi_hotspots"]')).filter(has_text="Mairie piégée")
    marker.focus()
    page.keyboard.press("Enter")  # markers open their card from the keyboard too
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    # A function, not an expression: Playwright evaluates expressions with eval(), which the page's CSP refuses.
    page.wait_for_function("() => getComputedStyle(document.querySelector('.leaflet-popup')).opacity === '1'")
    content = popup.text_content()
    assert EVIL_LIEU in content and EVIL_SSID in content
    assert "Bornes « WIFI public lotois »" in content and "En service" in content  # code label, not "installee"
    assert "Donnée de démonstration" in content
    assert popup.locator("img, script").count() == 0
    page.wait_for_function("() => window.__xss === undefined")  # times out if the stored markup ran
    page.screenshot(path=str(artefacts_dir / "map-desktop-popup.png"))
    page.keyboard.press("Escape")


def test_dense_layer_waits_for_zoom_then_loads_vector_tiles(desktop: Visit, dense_point, artefacts_dir: Path,
                                                            registry: LayerRegistry):
    page = desktop.page
    # Only the premises on the map, so that the click below cannot land on another layer's marker.
    others = [f"#{box}" for box in page.eval_on_selector_all(".panel input[type=checkbox]:checked",
                                                            "boxes => boxes.map(b => b.id)")
              if box != "couche-premises"]
    for toggle in others:
        page.locator(toggle).uncheck()
    page.locator("#couche-premises").check()
    hint = page.locator("#map-hint")
    expect(hint).to_be_visible(timeout=SETTLE_MS)
    expect(hint).to_contain_text("Zoomez pour afficher les locaux", use_inner_text=True, timeout=SETTLE_MS)
    assert not any("/api/layers/premises" in u for u in desktop.requests), "never loaded whole"
    if dense_point is None:
        pytest.skip("la démo ne contient aucun local FTTH")
    lon, lat = dense_point
    map_name = page.locator(".folium-map").get_attribute("id")
    tiles = "/ogc/collections/premises/tiles/WebMercatorQuad/16/"
    with page.expect_response(lambda r: tiles in r.url) as response:
        page.evaluate(f"window['{map_name}'].setView([{lat}, {lon}], 16, {{animate: false}})")
    assert response.value.status in (200, 204)
    mvt = "application/vnd.mapbox-vector-tile"
    assert response.value.status == 204 or response.value.headers["content-type"] == mvt
    page.wait_for_load_state("networkidle")
    expect(hint).to_be_hidden(timeout=SETTLE_MS)
    expect(page.locator("canvas.leaflet-tile").first).to_be_attached(timeout=SETTLE_MS)
    assert not any("/api/layers/premises" in u for u in desktop.requests), "tiles, not GeoJSON by bbox"
    # A click on the premises opens its card, from the tile's properties.
    x, y = page.evaluate(f"(() => {{ const p = window['{map_name}'].latLngToContainerPoint([{lat}, {lon}]); "
                         "return [p.x, p.y]; })()")
    box = page.locator(".folium-map").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)
    # (An earlier popup may still be fading out: look for this one by its layer's title.)
    popup = page.locator(".leaflet-popup-content", has_text="Locaux FTTH")
    popup.wait_for()
    assert popup.locator("h3").text_content()  # the address, from the tile's properties
    page.screenshot(path=str(artefacts_dir / "map-desktop-zoomed.png"))
    page.keyboard.press("Escape")
    page.locator("#couche-premises").uncheck()
    for toggle in others:
        page.locator(toggle).check()


def test_no_request_leaves_the_machine(desktop: Visit):
    assert desktop.requests, "the page made requests"
    assert desktop.foreign_requests() == []
    assert desktop.errors == []


def test_screenshots_desktop_and_phone(browser, server: str, artefacts_dir: Path):
    desktop_visit = visit_map(browser, server, 1280, 800)
    try:
        desktop_visit.page.wait_for_function(  # a function: the page's CSP refuses eval() of an expression
            "() => document.querySelectorAll('.geo-dot__fill').length > 0")
        desktop_file = artefacts_dir / "map-desktop.png"
        desktop_visit.page.screenshot(path=str(desktop_file))
        assert desktop_visit.foreign_requests() == []
    finally:
        desktop_visit.close()

    phone = visit_map(browser, server, 390, 844)
    try:
        page = phone.page
        panel = page.locator("#panneau")
        toggle = page.get_by_role("button", name="Couches et légende")
        assert panel.is_hidden() and toggle.is_visible(), "the panel collapses on a phone"
        assert page.locator(".folium-map").bounding_box()["width"] >= 380
        phone_file = artefacts_dir / "map-phone.png"
        page.screenshot(path=str(phone_file))
        toggle.click()
        expect(panel).to_be_visible(timeout=SETTLE_MS)
        expect(toggle).to_have_attribute("aria-expanded", "true", timeout=SETTLE_MS)
        phone_panel_file = artefacts_dir / "map-phone-panel.png"
        page.screenshot(path=str(phone_panel_file))
        page.keyboard.press("Escape")
        expect(panel).to_be_hidden(timeout=SETTLE_MS)
        assert phone.foreign_requests() == []
    finally:
        phone.close()
    for path in (desktop_file, phone_file, phone_panel_file):
        assert path.is_file() and path.stat().st_size > 0, path


@pytest.mark.parametrize("width,height", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_axe_finds_no_wcag_aa_violation(browser, server: str, width: int, height: int):
    """axe-core (injected from node_modules, not served) audits the page against WCAG 2.1 A and AA rules."""
    visit = visit_map(browser, server, width, height)
    try:
        assert axe_violations(visit.page) == []
    finally:
        visit.close()
