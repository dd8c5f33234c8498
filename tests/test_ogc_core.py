"""OGC API – Features Part 1 (core, GeoJSON, HTML, OpenAPI 3.0) and Part 2 (CRS), on known fixture features.

Every items query that counts adds ``source=tests-factory`` so the counts hold in a database shared with
other tests (the demo, loaded boundaries).
"""

from __future__ import annotations

import pytest
from conftest import CRS84_URI as CRS84
from conftest import EPSG2154, EPSG4326
from factories import CAHORS, Factory, OgcFixtures
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from pyproj import Transformer
from sqlalchemy import Engine, text

from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services.publish.ogc_documents import CONFORMANCE
from geo_service.settings import Settings

ITEMS = "/ogc/collections/wifi_hotspots/items"
MINE = {"source": "tests-factory"}


def ids(response) -> set[int]:
    assert response.status_code == 200, response.text
    return {f["id"] for f in response.json()["features"]}


def link(doc: dict, rel: str, type_: str | None = None) -> str:
    return next(lk["href"] for lk in doc["links"] if lk["rel"] == rel and (type_ is None or lk["type"] == type_))


def test_landing_links_to_api_conformance_and_data(ogc_client: TestClient):
    r = ogc_client.get("/ogc")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert link(doc, "self").endswith("/ogc")
    assert link(doc, "service-desc").endswith("/ogc/api")
    assert link(doc, "conformance").endswith("/ogc/conformance")
    assert link(doc, "data").endswith("/ogc/collections")


def test_conformance_declares_the_tested_classes(ogc_client: TestClient):
    conforms = ogc_client.get("/ogc/conformance").json()["conformsTo"]
    assert conforms == CONFORMANCE
    for part in ("ogcapi-features-1/1.0/conf/core", "ogcapi-features-2/1.0/conf/crs",
                 "ogcapi-features-3/1.0/conf/filter", "cql2/1.0/conf/cql2-text", "cql2/1.0/conf/temporal-functions"):
        assert any(uri.endswith(part) for uri in conforms)


def test_openapi_is_a_valid_openapi_30_document(ogc_client: TestClient, settings: Settings):
    r = ogc_client.get("/ogc/api")
    assert r.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    doc = r.json()
    assert doc["openapi"].startswith("3.0")
    validate(doc)
    assert doc["servers"][0]["url"].endswith("/ogc")
    operation = doc["paths"]["/collections/{collectionId}/items"]["get"]
    params = {p.get("name", p.get("$ref", "").split("/")[-1]): p for p in operation["parameters"]}
    assert {"bbox", "bbox-crs", "crs", "limit", "offset", "datetime", "filter", "filter-lang", "sortby"} <= set(params)
    assert doc["components"]["parameters"]["limit"]["schema"]["maximum"] == settings.api.ogc_max_limit
    wifi = {p.get("name"): p for p in doc["paths"]["/collections/wifi_hotspots/items"]["get"]["parameters"]}
    assert wifi["statut"]["schema"]["enum"] == ["installee", "programmee", "hors service"]


def test_collections_are_the_public_layers_described_by_their_declarations(ogc_client: TestClient,
                                                                           registry: LayerRegistry):
    doc = ogc_client.get("/ogc/collections").json()
    by_id = {c["id"]: c for c in doc["collections"]}
    assert list(by_id) == [layer.id for layer in registry if layer.is_public]
    wifi = by_id["wifi_hotspots"]
    layer = registry.get("wifi_hotspots")
    assert (wifi["title"], wifi["attribution"], wifi["license"]) == (layer.title, layer.attribution, layer.licence)
    assert wifi["storageCrs"] == CRS84 and set(wifi["crs"]) == {CRS84, EPSG4326, EPSG2154}
    assert link(wifi, "license").startswith("https://www.etalab.gouv.fr/")
    assert link(wifi, "items", "application/geo+json").endswith(ITEMS)


def test_collection_extent_comes_from_the_table(ogc_client: TestClient, engine: Engine):
    doc = ogc_client.get("/ogc/collections/wifi_hotspots").json()
    x0, y0, x1, y1 = doc["extent"]["spatial"]["bbox"][0]
    with engine.connect() as conn:
        row = conn.execute(text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) e "
                                "FROM wifi_hotspots WHERE validation_state = 'published') s")).one()
    assert [x0, y0, x1, y1] == pytest.approx(list(row), abs=1e-6)
    start, end = doc["extent"]["temporal"]["interval"][0]
    assert start <= "2019-06-01T00:00:00Z" and end >= "2023-09-01T00:00:00Z"


def test_unknown_collection_and_feature_are_404_problems(ogc_client: TestClient, ogc_fx: OgcFixtures):
    for url in ("/ogc/collections/nope", "/ogc/collections/nope/items", f"{ITEMS}/999999999", f"{ITEMS}/abc",
                f"{ITEMS}/{ogc_fx.ids['wifi_hidden']}"):
        r = ogc_client.get(url)
        assert r.status_code == 404, url
        assert r.headers["content-type"] == "application/problem+json"


def test_items_hide_unpublished_rows_and_count_matches(ogc_client: TestClient, ogc_fx: OgcFixtures, engine: Engine):
    r = ogc_client.get(ITEMS, params={**MINE, "limit": 100})
    assert r.headers["content-type"].startswith("application/geo+json")
    doc = r.json()
    expected = {ogc_fx.ids[k] for k in ("wifi_cahors_mairie", "wifi_cahors_eglise", "wifi_figeac", "wifi_gourdon")}
    assert {f["id"] for f in doc["features"]} == expected
    assert doc["numberMatched"] == doc["numberReturned"] == 4
    assert "timeStamp" in doc
    with engine.connect() as conn:
        published = conn.execute(text("SELECT count(*) FROM wifi_hotspots WHERE validation_state = 'published'"))
        assert ogc_client.get(ITEMS).json()["numberMatched"] == published.scalar_one()


def test_default_limit_and_paging_links(ogc_client: TestClient, ogc_fx: OgcFixtures, settings: Settings):
    assert ogc_client.get(ITEMS).json()["numberReturned"] <= settings.api.ogc_default_limit
    seen, url, pages = [], ITEMS, 0
    params = {**MINE, "limit": 3}
    while url:
        doc = ogc_client.get(url, params=params).json()
        seen += [f["id"] for f in doc["features"]]
        assert doc["numberMatched"] == 4
        if pages == 1:
            assert "offset=0" in link(doc, "prev")
        url, params, pages = next((lk["href"] for lk in doc["links"] if lk["rel"] == "next"), None), None, pages + 1
    assert pages == 2 and len(seen) == len(set(seen)) == 4


def test_bbox_in_each_crs_selects_the_same_features(ogc_client: TestClient, ogc_fx: OgcFixtures):
    lon0, lat0, lon1, lat1 = CAHORS[0] - 0.01, CAHORS[1] - 0.01, CAHORS[0] + 0.01, CAHORS[1] + 0.01
    cahors = {ogc_fx.ids["wifi_cahors_mairie"], ogc_fx.ids["wifi_cahors_eglise"]}
    assert ids(ogc_client.get(ITEMS, params={**MINE, "bbox": f"{lon0},{lat0},{lon1},{lat1}"})) == cahors
    latlon = {"bbox": f"{lat0},{lon0},{lat1},{lon1}", "bbox-crs": EPSG4326}
    assert ids(ogc_client.get(ITEMS, params={**MINE, **latlon})) == cahors
    to_l93 = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True)
    (x0, x1), (y0, y1) = to_l93.transform([lon0, lon1], [lat0, lat1])
    l93 = {"bbox": f"{min(x0, x1)},{min(y0, y1)},{max(x0, x1)},{max(y0, y1)}", "bbox-crs": EPSG2154}
    assert ids(ogc_client.get(ITEMS, params={**MINE, **l93})) == cahors


def test_crs_output_and_content_crs_header(ogc_client: TestClient, ogc_fx: OgcFixtures):
    one = f"{ITEMS}/{ogc_fx.ids['wifi_cahors_mairie']}"
    r = ogc_client.get(one)
    assert r.headers["content-crs"] == f"<{CRS84}>"
    assert r.json()["geometry"]["coordinates"] == pytest.approx(list(CAHORS))
    r = ogc_client.get(one, params={"crs": EPSG4326})
    assert r.headers["content-crs"] == f"<{EPSG4326}>"
    assert r.json()["geometry"]["coordinates"] == pytest.approx([CAHORS[1], CAHORS[0]])
    r = ogc_client.get(ITEMS, params={**MINE, "crs": EPSG2154, "bbox": "1.43,44.44,1.45,44.46"})
    assert r.headers["content-crs"] == f"<{EPSG2154}>"
    expected = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True).transform(*CAHORS)
    mairie = next(f for f in r.json()["features"] if f["id"] == ogc_fx.ids["wifi_cahors_mairie"])
    assert mairie["geometry"]["coordinates"] == pytest.approx(list(expected), abs=0.01)


@pytest.mark.parametrize(("value", "keys"), [
    ("2019-06-01", {"wifi_cahors_mairie"}),
    ("2019-06-01T15:30:00Z", {"wifi_cahors_mairie"}),
    ("2020-01-01/..", {"wifi_cahors_eglise", "wifi_figeac"}),
    ("../2020-01-01", {"wifi_cahors_mairie"}),
    ("2020-01-01/2022-12-31", {"wifi_cahors_eglise"}),
    ("2021-03-15T00:00:00Z/2023-09-01T00:00:00Z", {"wifi_cahors_eglise", "wifi_figeac"}),
])
def test_datetime_filters_on_the_layer_date_field(ogc_client: TestClient, ogc_fx: OgcFixtures, value: str,
                                                   keys: set[str]):
    assert ids(ogc_client.get(ITEMS, params={**MINE, "datetime": value})) == {ogc_fx.ids[k] for k in keys}


def test_datetime_is_ignored_on_a_layer_without_date(ogc_client: TestClient):
    url = "/ogc/collections/third_places/items"
    dated = ogc_client.get(url, params={**MINE, "datetime": "2020-01-01/.."})
    assert ids(dated) == ids(ogc_client.get(url, params=MINE))


def test_property_filters_sortby_properties_and_skip_geometry(ogc_client: TestClient, ogc_fx: OgcFixtures):
    installed = {ogc_fx.ids["wifi_cahors_mairie"], ogc_fx.ids["wifi_cahors_eglise"]}
    assert ids(ogc_client.get(ITEMS, params={**MINE, "statut": "installee"})) == installed
    assert ids(ogc_client.get(ITEMS, params={**MINE, "rayon_m": "200"})) == {ogc_fx.ids["wifi_figeac"]}
    assert ids(ogc_client.get("/ogc/collections/third_places/items", params={**MINE, "services": "visio"})) == {
        ogc_fx.ids["tl_cahors"]}
    doc = ogc_client.get(ITEMS, params={**MINE, "sortby": "-rayon_m,lieu"}).json()
    assert [f["properties"]["rayon_m"] for f in doc["features"]] == [200, 100, 50, None]
    doc = ogc_client.get(ITEMS, params={**MINE, "sortby": "+lieu"}).json()
    names = [f["properties"]["lieu"] for f in doc["features"]]
    assert names == sorted(names)
    doc = ogc_client.get(ITEMS, params={**MINE, "properties": "lieu,statut", "skipGeometry": "true"}).json()
    assert all(set(f["properties"]) == {"lieu", "statut"} and f["geometry"] is None for f in doc["features"])


def test_html_by_accept_header_or_f_and_json_otherwise(ogc_client: TestClient, ogc_fx: OgcFixtures):
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    for url in ("/ogc", "/ogc/conformance", "/ogc/collections", "/ogc/collections/wifi_hotspots", ITEMS,
                f"{ITEMS}/{ogc_fx.ids['wifi_cahors_eglise']}", "/ogc/collections/wifi_hotspots/queryables"):
        r = ogc_client.get(url, headers=browser)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), url
        assert '<html lang="fr">' in r.text
        as_json = ogc_client.get(url, params={"f": "json"}, headers=browser)
        assert as_json.headers["content-type"].startswith("application/")
        assert ogc_client.get(url, headers={"Accept": "*/*"}).headers["content-type"].startswith("application/")
    page = ogc_client.get(f"{ITEMS}/{ogc_fx.ids['wifi_cahors_eglise']}", params={"f": "html"}).text
    assert "Place de l&#39;église" in page and "En service" in page  # the code's French label


def test_etag_last_modified_and_304(ogc_client: TestClient, settings: Settings, registry: LayerRegistry,
                                    engine: Engine):
    for url in ("/ogc/collections", ITEMS, "/ogc/collections/wifi_hotspots/queryables"):
        r = ogc_client.get(url)
        assert r.headers["cache-control"] == f"public, max-age={settings.api.cache_max_age_s}"
        again = ogc_client.get(url, headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
    first = ogc_client.get(ITEMS)
    assert "last-modified" in first.headers
    factory = Factory(registry)
    with engine.begin() as conn:
        factory.feature(conn, "wifi_hotspots", CAHORS, lieu="Borne ajoutée", statut="installee")
    try:
        changed = ogc_client.get(ITEMS, headers={"If-None-Match": first.headers["etag"]})
        assert changed.status_code == 200 and changed.headers["etag"] != first.headers["etag"]
    finally:
        with engine.begin() as conn:
            factory.cleanup(conn)


def test_restricted_layers_and_fields_are_invisible_to_the_public(settings: Settings, registry: LayerRegistry,
                                                                  ogc_fx: OgcFixtures):
    def restrict(layer_id: str, **update):
        return registry.get(layer_id).model_copy(update=update)

    third = registry.get("third_places")
    fields = [f.model_copy(update={"restricted": f.name == "telephone"}) for f in third.fields]
    layers = [restrict("wifi_hotspots", access=registry.get("wifi_hotspots").access.model_copy(
        update={"read": "restricted"})), third.model_copy(update={"fields": fields})]
    restricted = LayerRegistry([*layers, *(la for la in registry if la.id not in ("wifi_hotspots", "third_places"))])
    app = create_app(settings)
    app.state.registry = restricted
    with TestClient(app) as c:
        assert "wifi_hotspots" not in {col["id"] for col in c.get("/ogc/collections").json()["collections"]}
        assert c.get(ITEMS).status_code == 404
        assert c.get(f"{ITEMS}/{ogc_fx.ids['wifi_cahors_mairie']}").status_code == 404
        places = c.get("/ogc/collections/third_places/items", params=MINE).json()["features"]
        assert places and all("telephone" not in f["properties"] for f in places)
        assert "telephone" not in c.get("/ogc/collections/third_places/queryables").json()["properties"]
        for params in ({"telephone": "05 65 00 00 00"}, {"filter": "telephone IS NOT NULL"}, {"sortby": "telephone"}):
            assert c.get("/ogc/collections/third_places/items", params=params).status_code == 400


BAD_REQUESTS = [
    (ITEMS, {"bbox": "1,2,3"}, "bbox"),
    (ITEMS, {"bbox": "1,2,3,4,5,6"}, "bbox"),
    (ITEMS, {"bbox": "a,b,c,d"}, "bbox"),
    (ITEMS, {"bbox": "3,2,1,4"}, "bbox"),
    (ITEMS, {"bbox": "1,2,nan,4"}, "bbox"),
    (ITEMS, {"bbox": "1,44,2,45", "bbox-crs": "EPSG:9999"}, "bbox-crs"),
    (ITEMS, {"crs": "http://www.opengis.net/def/crs/EPSG/0/3857"}, "crs"),
    (ITEMS, {"limit": "0"}, "limit"),
    (ITEMS, {"limit": "10001"}, "limit"),
    (ITEMS, {"limit": "ten"}, "limit"),
    (ITEMS, {"offset": "-1"}, "offset"),
    (ITEMS, {"datetime": "2020-13-01"}, "datetime"),
    (ITEMS, {"datetime": "yesterday"}, "datetime"),
    (ITEMS, {"datetime": "2021-01-01/2020-01-01"}, "datetime"),
    (ITEMS, {"datetime": ".."}, "datetime"),
    (ITEMS, {"statut": "cassee"}, "statut"),
    (ITEMS, {"rayon_m": "loin"}, "rayon_m"),
    (ITEMS, {"couleur": "bleu"}, "couleur"),
    (ITEMS, {"sortby": "-couleur"}, "sortby"),
    (ITEMS, {"properties": "lieu,couleur"}, "properties"),
    (ITEMS, {"skipGeometry": "peut-être"}, "skipGeometry"),
    (ITEMS, {"f": "xml"}, "f"),
    (ITEMS, {"filter": "statut = "}, "filter"),
    (ITEMS, {"filter": "couleur = 'bleu'"}, "filter"),
    (ITEMS, {"filter": "rayon_m = 'loin'"}, "filter"),
    (ITEMS, {"filter": "statut = 'x'", "filter-lang": "ecql"}, "filter-lang"),
    (ITEMS, {"filter": "{not json", "filter-lang": "cql2-json"}, "filter"),
    (ITEMS, {"filter": "S_INTERSECTS(geometry, POINT(1 44))", "filter-crs": "EPSG:1"}, "filter-crs"),
    (ITEMS, {"filter": "S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))"}, "filter"),
    ("/ogc/collections", {"f": "pdf"}, "f"),
    (f"{ITEMS}/1", {"crs": "EPSG:3857"}, "crs"),
]


@pytest.mark.parametrize(("url", "params", "parameter"), BAD_REQUESTS)
def test_bad_input_is_a_400_problem_naming_the_parameter(ogc_client: TestClient, url: str, params: dict,
                                                         parameter: str, ogc_fx: OgcFixtures):
    url = url.replace("/items/1", f"/items/{ogc_fx.ids['wifi_cahors_mairie']}")
    r = ogc_client.get(url, params=params)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["parameter"] == parameter and problem["status"] == 400 and problem["detail"]
