"""The self-hosted base map in a real headless Chromium: a small MBTiles of the territory, installed through
``geo-service basemap install``, is served by the service and drawn under the resident map, the embed and the
editor (where a switch shows the aerial photographs), with its attribution; no request leaves 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import BROWSER_MARKS, SETTLE_MS, Visit, serve_app, wait_until
from conftest import CLI, PASSWORD
from mbtiles_maker import make_mbtiles
from playwright.sync_api import expect
from sqlalchemy import Engine

from geo_service import vendor
from geo_service.errors import NotFound
from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services.editing import accounts
from geo_service.services.resident import map_page
from geo_service.settings import MapSettings, Settings

pytestmark = BROWSER_MARKS
PLAN_ATTRIBUTION = "Plan de test © Lot numérique"
PHOTO_ATTRIBUTION = "Photographies de test © Lot numérique"
ADMIN = "fond-de-carte-admin"
# A tile of the base map drawn: loaded, 256 pixels wide (the PNG itself, not a broken image).
DRAWN_TILE = """(fragment) => Array.from(document.querySelectorAll("img.leaflet-tile")).some(
    (img) => img.src.includes(fragment) && img.complete && img.naturalWidth === 256)"""


@pytest.fixture(scope="module")
def basemap_dir(settings: Settings, loaded_boundaries: Engine, registry: LayerRegistry,
                tmp_path_factory) -> Path:
    """plan.mbtiles and photo.mbtiles of the territory (z8–z10), installed by the command line."""
    boundaries = [layer for layer in registry if layer.kind == "base" and layer.geometry in map_page.POLYGONS]
    with loaded_boundaries.connect() as conn:
        (south, west), (north, east) = map_page.territory_bounds(conn, boundaries)
    made, installed = tmp_path_factory.mktemp("made"), tmp_path_factory.mktemp("installed")
    box = (west - 0.05, south - 0.05, east + 0.05, north + 0.05)
    make_mbtiles(made / "plan.mbtiles", box, attribution=PLAN_ATTRIBUTION)
    make_mbtiles(made / "photo.mbtiles", box, zooms=(9, 10), fmt="png", attribution=PHOTO_ATTRIBUTION)
    env = {**os.environ, "GEO_SERVICE_DATABASE_URL": settings.database_url, "GEO_SERVICE_MODE": "test",
           "GEO_SERVICE_MAP__BASEMAP_DIR": str(installed)}
    for args in (["plan.mbtiles"], ["--photo", "photo.mbtiles"]):
        *options, name = args
        done = subprocess.run([CLI, "basemap", "install", *options, str(made / name)], capture_output=True,
                              text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
    return installed


@pytest.fixture(scope="module")
def server(settings: Settings, demo_territory, basemap_dir: Path, loaded_boundaries: Engine) -> Iterator[str]:
    if not (settings.web_dir / "static" / "vendor" / "@geoman-io" / "leaflet-geoman-free").is_dir():
        vendor.vendor(settings.web_dir)
    with loaded_boundaries.begin() as conn:
        try:
            accounts.get_account(conn, ADMIN)
        except NotFound:
            accounts.create_account(conn, ADMIN, "admin", password=PASSWORD)
    hosted = settings.model_copy(update={"map": MapSettings(basemap="self-hosted", basemap_dir=basemap_dir)})
    with serve_app(create_app(hosted)) as url:
        yield url


@pytest.fixture
def visit(browser) -> Iterator[Visit]:
    opened = Visit(browser, 1280, 800)
    yield opened
    opened.close()


def assert_drawn(visit: Visit, fragment: str) -> None:
    assert wait_until(visit.page, DRAWN_TILE, fragment), \
        f"aucune tuile {fragment} dessinée ; demandes : {[u for u in visit.requests if '/basemap/' in u][:10]}"


@pytest.mark.parametrize("path", ["/map", "/map/embed"])
def test_the_resident_maps_draw_the_hosted_tiles_and_cite_them(visit: Visit, server: str, path: str,
                                                               artefacts_dir: Path):
    visit.goto(f"{server}{path}")
    assert_drawn(visit, "/basemap/plan/")
    sources = visit.page.locator(".map-sources")
    expect(sources).to_contain_text(PLAN_ATTRIBUTION, timeout=SETTLE_MS)
    if path == "/map":
        expect(visit.page.locator(".panel__basemap")).to_contain_text(PLAN_ATTRIBUTION)
        visit.page.screenshot(path=str(artefacts_dir / "basemap-self-hosted-map.png"))
    assert not visit.foreign_requests(), visit.foreign_requests()
    assert not visit.errors, visit.errors
    # The communes are outlines over the base map, not an opaque land hiding it.
    outlines = visit.page.locator(".leaflet-fond-pane path")
    outlines.first.wait_for(state="attached", timeout=SETTLE_MS)
    assert visit.page.locator(".leaflet-fond-pane path:not([fill='none'])").count() == 0


def test_the_editor_switches_between_plan_and_photographs(visit: Visit, server: str, artefacts_dir: Path):
    page = visit.page
    page.goto(f"{server}/admin/login")
    page.get_by_label("Identifiant").fill(ADMIN)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(f"{server}/admin")
    page.goto(f"{server}/admin/edit/wifi_hotspots")
    assert_drawn(visit, "/basemap/plan/")
    attribution = page.locator("#editor-map .leaflet-control-attribution")
    expect(attribution).to_contain_text(PLAN_ATTRIBUTION, timeout=SETTLE_MS)
    assert not any("/basemap/photo/" in u for u in visit.requests)  # the photographs wait to be chosen
    page.get_by_label("Photographies aériennes").check()
    assert_drawn(visit, "/basemap/photo/")
    expect(attribution).to_contain_text(PHOTO_ATTRIBUTION, timeout=SETTLE_MS)
    expect(attribution).not_to_contain_text(PLAN_ATTRIBUTION, timeout=SETTLE_MS)
    page.screenshot(path=str(artefacts_dir / "basemap-editor-photographs.png"))
    page.get_by_label("Plan").check()
    expect(attribution).to_contain_text(PLAN_ATTRIBUTION, timeout=SETTLE_MS)
    assert not visit.foreign_requests(), visit.foreign_requests()
    assert not visit.errors, visit.errors
