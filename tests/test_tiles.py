"""Vector tiles (OGC API – Tiles, TileJSON, the short /tiles form) on fixture features built here.

The central check: a tile decoded with ``mapbox-vector-tile`` holds exactly the features that the items
endpoint returns for the same area (the tile plus its edge buffer), with the same properties; below a
layer's ``thin_below_zoom`` it holds one representative per cell whose ``point_count`` add up to them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

import mapbox_vector_tile
import morecantile
import pytest
from factories import Factory
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import Engine

from geo_service.layers import LayerDecl, LayerRegistry
from geo_service.main import create_app
from geo_service.services.publish.ogc_documents import CONFORMANCE
from geo_service.settings import Settings

TMS = morecantile.tms.get("WebMercatorQuad")
MVT = "application/vnd.mapbox-vector-tile"
# In the middle of a z14 tile off the Atlantic coast: no demo row nor other test file's fixture falls in
# any tile from z10 up, so a tile must hold exactly these fixtures whatever else the database holds.
CENTRE = TMS.bounds(TMS.tile(-3.0, 44.0, 14))
LON = (CENTRE.left + CENTRE.right) / 2
LAT = (CENTRE.bottom + CENTRE.top) / 2
STEP = (CENTRE.right - CENTRE.left) / 12  # fixtures stay within the central half of the z14 tile
ZOOMS = [10, 11, 12, 13, 14]
ETATS = ["deploye", "cible", "raccorde"]


@dataclass
class TileFixtures:
    factory: Factory
    wifi: dict[int, str] = field(default_factory=dict)  # fid → lieu
    premises: dict[int, str] = field(default_factory=dict)  # fid → etat
    hidden: int = 0
    place: int = 0


@pytest.fixture(scope="module")
def fx(engine: Engine, registry: LayerRegistry) -> Iterator[TileFixtures]:
    fx = TileFixtures(Factory(registry))
    f = fx.factory
    with engine.begin() as conn:
        for i in range(5):
            lieu = f"Borne {i} de Souillac"
            fx.wifi[f.feature(conn, "wifi_hotspots", (LON + (i - 2) * STEP, LAT + STEP), lieu=lieu,
                              statut="installee" if i % 2 else "programmee", code_insee="46309",
                              date_mise_en_service=date(2020, 1, 1 + i))] = lieu
        for i in range(60):  # enough properties for a tile above the gzip threshold
            etat = ETATS[i % 3]
            point = (LON + (i % 10 - 4.5) * STEP / 2, LAT - (i // 10) * STEP / 2)
            fx.premises[f.feature(conn, "premises", point, etat=etat, code_insee="46309", nb_logements=1 + i % 4,
                                  adresse=f"{i + 1} avenue du Test, Souillac")] = etat
        fx.hidden = f.feature(conn, "premises", (LON, LAT), etat="cible", adresse="Local proposé",
                              validation_state="proposed")
        fx.place = f.feature(conn, "third_places", (LON + STEP, LAT), nom="Tiers-lieu de Souillac",
                             services=["coworking", "visio"], telephone="05 65 00 00 01")
    try:
        yield fx
    finally:
        with engine.begin() as conn:
            f.cleanup(conn)


@pytest.fixture(scope="module")
def client(settings: Settings, fx: TileFixtures) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def tile_at(zoom: int) -> morecantile.Tile:
    return TMS.tile(LON, LAT, zoom)


def decode(response) -> dict:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MVT
    return mapbox_vector_tile.decode(response.content)


def buffered_bbox(tile: morecantile.Tile, settings: Settings) -> str:
    """The lon/lat box a tile covers with its edge buffer, computed independently with morecantile."""
    box = TMS.xy_bounds(tile)
    pad = (box.right - box.left) * settings.tiles.buffer / settings.tiles.extent
    west, south = TMS.lnglat(box.left - pad, box.bottom - pad)
    east, north = TMS.lnglat(box.right + pad, box.top + pad)
    return f"{west},{south},{east},{north}"


def items(client: TestClient, layer_id: str, bbox: str) -> dict[int, dict]:
    r = client.get(f"/ogc/collections/{layer_id}/items", params={"bbox": bbox, "limit": 10000})
    assert r.status_code == 200, r.text
    return {f["id"]: f["properties"] for f in r.json()["features"]}


@pytest.mark.parametrize("zoom", ZOOMS)
def test_a_tile_holds_the_features_the_items_endpoint_returns(client: TestClient, settings: Settings,
                                                              fx: TileFixtures, zoom: int):
    tile = tile_at(zoom)
    layer = decode(client.get(f"/ogc/collections/wifi_hotspots/tiles/WebMercatorQuad/{zoom}/{tile.y}/{tile.x}"))
    features = {f["id"]: f["properties"] for f in layer["wifi_hotspots"]["features"]}
    expected = items(client, "wifi_hotspots", buffered_bbox(tile, settings))
    assert set(features) == set(expected) and set(fx.wifi) <= set(features)
    for fid, props in features.items():
        assert props["lieu"] == expected[fid]["lieu"] and props["statut"] == expected[fid]["statut"]
        assert props["date_mise_en_service"] == expected[fid]["date_mise_en_service"]
    assert all(f["geometry"]["type"] == "Point" for f in layer["wifi_hotspots"]["features"])


@pytest.mark.parametrize("zoom", ZOOMS)
def test_dense_points_are_exact_from_their_zoom_and_thinned_below(client: TestClient, settings: Settings,
                                                                  registry: LayerRegistry, fx: TileFixtures,
                                                                  zoom: int):
    tile = tile_at(zoom)
    layer = decode(client.get(f"/tiles/premises/{zoom}/{tile.x}/{tile.y}.mvt"))["premises"]
    features = {f["id"]: f["properties"] for f in layer["features"]}
    expected = items(client, "premises", buffered_bbox(tile, settings))
    assert fx.hidden not in features and fx.hidden not in expected
    if zoom >= registry.get("premises").style.thin_below_zoom:
        assert set(features) == set(expected) and set(fx.premises) <= set(features)
        assert all("point_count" not in p for p in features.values())
        for fid, props in features.items():
            assert (props["etat"], props["adresse"]) == (expected[fid]["etat"], expected[fid]["adresse"])
    else:
        assert len(features) < len(expected)  # thinned: a representative per cell and state
        assert set(features) <= set(expected)
        assert sum(p["point_count"] for p in features.values()) == len(expected)
        assert all(props["etat"] == expected[fid]["etat"] for fid, props in features.items())


def test_tile_coordinates_place_the_point(client: TestClient, fx: TileFixtures, settings: Settings):
    tile = tile_at(14)
    layer = decode(client.get(f"/tiles/wifi_hotspots/14/{tile.x}/{tile.y}.mvt"))["wifi_hotspots"]
    fid = next(iter(fx.wifi))
    x, y = next(f["geometry"]["coordinates"] for f in layer["features"] if f["id"] == fid)
    box, extent = TMS.xy_bounds(tile), layer["extent"]
    # mapbox-vector-tile flips y to point up by default: (0, 0) is the tile's bottom-left corner.
    size = box.right - box.left
    lon, lat = TMS.lnglat(box.left + x / extent * size, box.bottom + y / extent * size)
    point = client.get(f"/ogc/collections/wifi_hotspots/items/{fid}").json()["geometry"]["coordinates"]
    assert lon == pytest.approx(point[0], abs=1e-4) and lat == pytest.approx(point[1], abs=1e-4)


def test_short_form_and_ogc_path_give_the_same_tile(client: TestClient, fx: TileFixtures):
    tile = tile_at(13)
    ogc = client.get(f"/ogc/collections/premises/tiles/WebMercatorQuad/13/{tile.y}/{tile.x}")
    short = client.get(f"/tiles/premises/13/{tile.x}/{tile.y}.mvt")
    assert ogc.status_code == short.status_code == 200 and ogc.content == short.content


def test_combined_tileset_has_one_layer_per_collection(client: TestClient, fx: TileFixtures):
    tile = tile_at(14)
    combined = decode(client.get(f"/ogc/tiles/WebMercatorQuad/14/{tile.y}/{tile.x}"))
    assert {"wifi_hotspots", "premises", "third_places"} <= set(combined)
    single = decode(client.get(f"/ogc/collections/wifi_hotspots/tiles/WebMercatorQuad/14/{tile.y}/{tile.x}"))
    assert combined["wifi_hotspots"]["features"] == single["wifi_hotspots"]["features"]
    place = next(f for f in combined["third_places"]["features"] if f["id"] == fx.place)
    assert json.loads(place["properties"]["services"]) == ["coworking", "visio"]  # lists travel as JSON text


def test_empty_tile_is_204(client: TestClient):
    r = client.get("/ogc/tiles/WebMercatorQuad/10/500/20")  # Pacific Ocean
    assert r.status_code == 204 and r.content == b"" and r.headers["etag"]


def _revalidated_until_changed(client: TestClient, url: str, etag: str):
    """The tile asked with ``If-None-Match: etag`` until it is not a 304: a change reaches the service by its
    notification (services/publish/layer_versions.py), a moment after the commit."""
    deadline = time.monotonic() + 20
    while (answer := client.get(url, headers={"If-None-Match": etag})).status_code == 304:
        assert time.monotonic() < deadline, "change not seen"
        time.sleep(0.05)
    return answer


def test_tiles_are_gzipped_and_cached(client: TestClient, settings: Settings, registry: LayerRegistry,
                                      engine: Engine, fx: TileFixtures):
    tile = tile_at(14)
    url = f"/tiles/premises/14/{tile.x}/{tile.y}.mvt"
    raw = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip" and len(raw.content) > 1024
    assert raw.headers["cache-control"] == f"public, max-age={settings.api.cache_max_age_s}"
    assert "last-modified" in raw.headers
    again = client.get(url, headers={"If-None-Match": raw.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    # Any change to the layer, a deletion included, gives a new ETag.
    factory = Factory(registry)
    with engine.begin() as conn:
        factory.feature(conn, "premises", (LON, LAT), etat="cible")
    try:
        added = _revalidated_until_changed(client, url, raw.headers["etag"])
        assert added.status_code == 200 and added.headers["etag"] != raw.headers["etag"]
    finally:
        with engine.begin() as conn:
            factory.cleanup(conn)
    removed = _revalidated_until_changed(client, url, added.headers["etag"])
    assert removed.status_code == 200 and removed.headers["etag"] not in (raw.headers["etag"], added.headers["etag"])


def test_tileset_list_metadata_and_links(client: TestClient, registry: LayerRegistry):
    conforms = client.get("/ogc/conformance").json()["conformsTo"]
    assert conforms == CONFORMANCE
    for part in ("core", "tileset", "tilesets-list", "geodata-tilesets", "dataset-tilesets", "mvt"):
        assert f"http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/{part}" in conforms
    landing = {lk["rel"]: lk["href"] for lk in client.get("/ogc").json()["links"]}
    assert landing["http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"].endswith("/ogc/tiles")
    collection = client.get("/ogc/collections/premises").json()
    rels = {lk["rel"]: lk["href"] for lk in collection["links"]}
    listing = client.get(rels["http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"]).json()
    (tileset_ref,) = listing["tilesets"]
    assert tileset_ref["dataType"] == "vector" and tileset_ref["tileMatrixSetURI"] == TMS.uri
    self_href = next(lk["href"] for lk in tileset_ref["links"] if lk["rel"] == "self")
    metadata = client.get(self_href).json()
    assert metadata["tileMatrixSetURI"] == TMS.uri and metadata["crs"].endswith("/EPSG/0/3857")
    links = {lk["rel"]: lk for lk in metadata["links"]}
    assert links["item"]["templated"] is True and links["item"]["type"] == MVT
    assert links["item"]["href"].endswith("/premises/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}")
    scheme = client.get(links["http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"]["href"]).json()
    assert scheme["id"] == "WebMercatorQuad" and len(scheme["tileMatrices"]) == 25
    (layer,) = metadata["layers"]
    assert layer["id"] == "premises" and layer["geometryDimension"] == 0
    assert {"etat", "adresse", "point_count"} <= set(layer["propertiesSchema"]["properties"])
    sets = client.get("/ogc/tileMatrixSets").json()["tileMatrixSets"]
    assert [s["id"] for s in sets] == ["WebMercatorQuad"]
    everything = client.get("/ogc/tiles/WebMercatorQuad").json()
    assert [la["id"] for la in everything["layers"]] == [la.id for la in registry if la.is_public]


@pytest.mark.parametrize("url", ["/ogc/collections/premises/tiles/WebMercatorQuad/tilejson.json",
                                 "/ogc/tiles/WebMercatorQuad/tilejson.json"])
def test_tilejson_is_valid_and_its_template_works(client: TestClient, settings: Settings, fx: TileFixtures,
                                                  url: str):
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.mapbox.tilejson+json")
    doc = r.json()
    assert doc["tilejson"] == "3.0.0" and doc["scheme"] == "xyz"
    assert 0 <= doc["minzoom"] <= doc["maxzoom"] == settings.tiles.max_zoom
    west, south, east, north = doc["bounds"]
    assert -180 <= west <= LON <= east <= 180 and -90 <= south <= LAT <= north <= 90
    assert len(doc["center"]) == 3 and west <= doc["center"][0] <= east
    assert all(isinstance(layer["fields"], dict) and layer["id"] for layer in doc["vector_layers"])
    assert "premises" in {layer["id"] for layer in doc["vector_layers"]}
    (template,) = doc["tiles"]
    assert all(part in template for part in ("{z}", "{x}", "{y}"))
    tile = tile_at(14)
    path = template.replace("{z}", "14").replace("{x}", str(tile.x)).replace("{y}", str(tile.y))
    assert "premises" in decode(client.get(path.removeprefix("http://testserver")))


BAD_TILES = [
    ("/ogc/collections/premises/tiles/WebMercatorQuad/abc/0/0", 400, "tileMatrix"),
    ("/ogc/collections/premises/tiles/WebMercatorQuad/10/1.5/0", 400, "tileRow"),
    ("/ogc/collections/premises/tiles/WebMercatorQuad/10/0/-1", 400, "tileCol"),
    ("/ogc/collections/premises/tiles/WebMercatorQuad/10/0/%20", 400, "tileCol"),
    ("/ogc/collections/premises/tiles/WebMercatorQuad/10/0/99999999999", 400, "tileCol"),
    ("/tiles/premises/x/0/0.mvt", 400, "z"),
    ("/tiles/premises/10/0/y.mvt", 400, "y"),
    ("/ogc/collections/premises/tiles/WebMercatorQuad/25/0/0", 404, None),
    ("/ogc/collections/premises/tiles/WebMercatorQuad/19/0/0", 404, None),
    ("/ogc/collections/premises/tiles/WebMercatorQuad/10/1024/0", 404, None),
    ("/tiles/premises/3/8/0.mvt", 404, None),
    ("/ogc/tiles/WebMercatorQuad/2/0/4", 404, None),
    ("/ogc/collections/premises/tiles/WorldCRS84Quad/10/0/0", 404, None),
    ("/ogc/collections/premises/tiles/WorldCRS84Quad", 404, None),
    ("/ogc/collections/nope/tiles", 404, None),
    ("/ogc/collections/nope/tiles/WebMercatorQuad/10/0/0", 404, None),
    ("/tiles/nope/10/0/0.mvt", 404, None),
    ("/ogc/tileMatrixSets/nope", 404, None),
    ("/ogc/collections/premises/tiles/WebMercatorQuad?f=html", 400, "f"),
]


@pytest.mark.parametrize(("url", "status", "parameter"), BAD_TILES)
def test_bad_tile_requests_are_problems_never_500(client: TestClient, url: str, status: int, parameter: str | None):
    r = client.get(url)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == status and problem["detail"]
    if parameter:
        assert problem["parameter"] == parameter


def test_restricted_layers_and_fields_stay_out_of_tiles(settings: Settings, registry: LayerRegistry,
                                                        fx: TileFixtures):
    wifi = registry.get("wifi_hotspots")
    third = registry.get("third_places")
    fields = [f.model_copy(update={"restricted": f.name == "telephone"}) for f in third.fields]
    changed = [wifi.model_copy(update={"access": wifi.access.model_copy(update={"read": "restricted"})}),
               third.model_copy(update={"fields": fields})]
    restricted = LayerRegistry([*changed, *(la for la in registry if la.id not in ("wifi_hotspots", "third_places"))])
    app = create_app(settings)
    app.state.registry = restricted
    tile = tile_at(14)
    with TestClient(app) as c:
        for url in ("/ogc/collections/wifi_hotspots/tiles", f"/tiles/wifi_hotspots/14/{tile.x}/{tile.y}.mvt",
                    f"/ogc/collections/wifi_hotspots/tiles/WebMercatorQuad/14/{tile.y}/{tile.x}"):
            assert c.get(url).status_code == 404, url
        combined = decode(c.get(f"/ogc/tiles/WebMercatorQuad/14/{tile.y}/{tile.x}"))
        assert "wifi_hotspots" not in combined
        place = next(f for f in combined["third_places"]["features"] if f["id"] == fx.place)
        assert "telephone" not in place["properties"] and place["properties"]["nom"] == "Tiers-lieu de Souillac"
        ids = [la["id"] for la in c.get("/ogc/tiles/WebMercatorQuad/tilejson.json").json()["vector_layers"]]
        assert "wifi_hotspots" not in ids
    # Without the restriction, the same tile does carry the phone number (a popup field).
    with TestClient(create_app(settings)) as c:
        public = decode(c.get(f"/tiles/third_places/14/{tile.x}/{tile.y}.mvt"))
    assert any(f["properties"].get("telephone") for f in public["third_places"]["features"])


def test_thinning_is_declared_on_point_layers_only(registry: LayerRegistry):
    communes = registry.get("communes").model_dump()
    communes["style"]["thin_below_zoom"] = 12
    with pytest.raises(ValidationError, match="thin_below_zoom"):
        LayerDecl.model_validate(communes)
