"""``/map`` as HTML: French, one labelled toggle per public layer, a legend, and only self-hosted assets."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text

from geo_service import vendor
from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services.app_caches import AppCaches
from geo_service.services.resident import folium_map, map_page
from geo_service.services.resident.hours_in_words import in_words
from geo_service.settings import MapSettings, Settings


class PageParser(HTMLParser):
    """Collects the tags of a page with their attributes, and the text of each <label for=…>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.labels: dict[str, str] = {}
        self._label_for: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "label":
            self._label_for = attributes.get("for")
            if self._label_for:
                self.labels[self._label_for] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_for = None

    def handle_data(self, data: str) -> None:
        if self._label_for:
            self.labels[self._label_for] += data

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


@pytest.fixture(scope="session")
def vendored(settings: Settings) -> None:
    """The vendored Leaflet files the page links to (built by ``make``; built here if a checkout lacks them)."""
    if not (settings.web_dir / "static" / "vendor" / "leaflet" / "leaflet.js").is_file():
        vendor.vendor(settings.web_dir)


@pytest.fixture(scope="module")
def client(settings: Settings, loaded_boundaries: Engine, vendored: None) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def page(client: TestClient) -> tuple[str, PageParser]:
    response = client.get("/map")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    parser = PageParser()
    parser.feed(response.text)
    return response.text, parser


def test_root_redirects_to_the_map(client: TestClient):
    response = client.get("/", follow_redirects=False)
    assert response.status_code in (302, 307)
    assert response.headers["location"].endswith("/map")


def test_map_page_is_french_and_titled(page):
    source, parser = page
    assert parser.find("html")[0]["lang"] == "fr"
    assert "<h1" in source and "Services près de chez vous" in source
    assert parser.find("a", **{"class": "skip-link"}), "a skip link"
    viewport = parser.find("meta", name="viewport")
    assert len(viewport) == 1 and "user-scalable=no" not in (viewport[0]["content"] or "")
    maps = parser.find("div", **{"class": "folium-map"})
    assert len(maps) == 1 and maps[0]["aria-label"]


def test_one_labelled_toggle_per_public_layer(page, registry: LayerRegistry):
    """One checkbox per layer, or per code of a layer split by ``style.toggle_by`` (one per operator)."""
    _, parser = page
    toggles = [t for layer in registry if layer.is_public for t in layer.toggles()]
    boxes = parser.find("input", type="checkbox")
    assert [box["value"] for box in boxes] == [t.id for t in toggles]
    for toggle in toggles:
        dom_id = "couche-" + toggle.id.replace(":", "--")
        [box] = parser.find("input", type="checkbox", id=dom_id)
        assert ("checked" in box) == toggle.visible, toggle.id
        assert parser.labels[dom_id].strip() == toggle.label


def test_the_first_view_is_calm(page):
    """What residents ask first is drawn at once; each operator's white zones and coverage, and the networks,
    are one click away (the declarations' ``style.visible``)."""
    _, parser = page
    checked = [box["value"] for box in parser.find("input", type="checkbox") if "checked" in box]
    assert checked == ["white_zones:tous", "wifi_hotspots", "third_places", "digital_help_places"]
    # Each operator's white zones, grouped under the layer's title in a fieldset of their own.
    groups = [f["data-layer"] for f in parser.find("fieldset") if "layer--parts" in (f.get("class") or "")]
    assert groups == ["white_zones", "mobile_coverage"]


def test_legend_lists_the_code_labels_of_styled_layers(page, registry: LayerRegistry):
    text = html.unescape(page[0])
    for layer in registry:
        if layer.is_public and layer.style.by:
            for code in layer.field(layer.style.by).codes or ():
                assert code.label in text, (layer.id, code.label)


def test_config_carries_styles_and_popups_but_no_features(page, registry: LayerRegistry):
    source, _ = page
    raw = re.search(r'<script type="application/json" id="map-config">(.*?)</script>', source, re.S).group(1)
    config = json.loads(raw)
    assert [c["id"] for c in config["layers"]] == [la.id for la in registry if la.is_public]
    wifi = next(c for c in config["layers"] if c["id"] == "wifi_hotspots")
    assert [f["name"] for f in wifi["popup"]] == registry.get("wifi_hotspots").popup
    assert "FeatureCollection" not in source, "features are fetched by map.js, never embedded"


def test_every_asset_is_local_and_served(page, client: TestClient):
    source, parser = page
    urls = [a["src"] for a in parser.find("script") if a.get("src")]
    urls += [a["href"] for t, a in parser.tags if t == "link" and a.get("href")]
    assert any(u.endswith("leaflet.js") for u in urls) and any(u.endswith("map.js") for u in urls)
    for url in urls:
        assert url.startswith("/static/"), url
        assert client.get(url).status_code == 200, url
    # No absolute or scheme-relative URL at all: nothing the page names can leave the machine.
    assert "://" not in source
    assert not re.search(r"""(src|href)\s*=\s*["']//""", source)


def test_vendored_licences_are_served(client: TestClient):
    for package in vendor.PACKAGES:
        assert client.get(f"/static/vendor/{package.name}/LICENSE").status_code == 200


def test_our_templates_and_assets_name_no_outside_url(settings: Settings):
    """Our own templates, JS and CSS (not the vendored libraries, whose comments cite their sites) hold no URL."""
    static = settings.web_dir / "static"
    ours = [p for p in static.rglob("*") if p.is_file() and "vendor" not in p.relative_to(static).parts]
    for path in [*settings.web_dir.joinpath("templates").rglob("*.html"), *ours]:
        assert "://" not in path.read_text(encoding="utf-8"), path


def test_basemap_is_opt_in():
    """No tile server unless one is chosen (Settings picks it by mode, tests/test_basemap.py); a chosen one is
    drawn by Folium."""
    bounds = ((44.2, 0.98), (45.05, 2.21))
    default = folium_map.build_folium(bounds, MapSettings(), "/static", "Carte")
    assert "tileLayer" not in default.script
    tiled = folium_map.build_folium(bounds, MapSettings(basemap_url="/tuiles/{z}/{x}/{y}.png",
                                                       basemap_attribution="Fond : test"), "/static", "Carte")
    assert "L.tileLayer" in tiled.script and "/tuiles/{z}/{x}/{y}.png" in tiled.script
    ign = folium_map.build_folium(bounds, MapSettings(basemap="ign-plan"), "/static", "Carte")
    assert "GEOGRAPHICALGRIDSYSTEMS.PLANIGNV2" in ign.script and "ORTHOPHOTOS" not in ign.script  # plan only


def test_dense_layers_are_chosen_by_their_size(conn: Connection, caches: AppCaches, loaded_boundaries: Engine):
    """A layer with more features than the threshold is loaded by bbox and gets a French zoom hint."""
    page = map_page.build_map_page(conn, caches, MapSettings(dense_layer_threshold=1), "du Lot")
    by_id = {layer["id"]: layer for layer in page.config["layers"]}
    assert by_id["communes"]["dense"] and by_id["communes"]["zoomHint"] == "Zoomez pour afficher les communes"
    assert page.config["denseMinZoom"] == MapSettings().dense_min_zoom
    assert map_page.zoom_hint(caches.registry.get("premises")).startswith("Zoomez pour afficher les locaux")


def test_popups_read_opening_hours_in_words(conn: Connection, caches: AppCaches, demo_territory):
    """A place's popup says its hours as the report does (« du lundi au vendredi… »), never the OSM expression."""
    page = map_page.build_map_page(conn, caches, MapSettings(), "du Lot")
    expressions = conn.execute(text("SELECT DISTINCT horaires FROM digital_help_places "
                                    "WHERE horaires IS NOT NULL")).scalars().all()
    assert expressions and set(expressions) <= set(page.config["hoursWords"])
    for expression in expressions:
        words = page.config["hoursWords"][expression]
        assert words == in_words(expression).text and words != expression
        assert not re.search(r"\b(Mo|Tu|We|Th|Fr|Sa|Su|PH)\b", words), words
    popup = {f["name"]: f for f in next(layer for layer in page.config["layers"]
                                        if layer["id"] == "digital_help_places")["popup"]}
    assert popup["horaires"]["hours"] and popup["horaires"]["label"] == "Horaires"
    assert not popup["nom"]["hours"]
