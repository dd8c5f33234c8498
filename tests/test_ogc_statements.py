"""The OGC read paths built for CPU (api/ogc_read.py, services/publish/ogc_items.py): same answers as the general path.

A feature is read with its version in one statement on the read engine; a page whose only conditions are
visibility and a bbox runs a statement compiled once per shape, with ``numberMatched`` and the layer's
state in the same statement; a filtered page runs the text compiled once per filter; a feature's GeoJSON is
PostGIS's, links added; the standard ``/items`` parameters are documented, not parsed, by FastAPI.
Each test holds one of these to what the general path (filters through SQLAlchemy, state read first) gives.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import EPSG2154, EPSG4326
from factories import CAHORS, FIGEAC, OgcFixtures, account
from fastapi.testclient import TestClient
from pyproj import Transformer
from sqlalchemy import Engine, text

from geo_service.api.problems import version_etag
from geo_service.main import create_app
from geo_service.settings import Settings

ITEMS = "/ogc/collections/wifi_hotspots/items"
PREMISES = "/ogc/collections/premises/items"
EDITOR = "ogc-statements-editor"


@pytest.fixture(scope="module")
def editor_token(engine: Engine) -> Iterator[str]:
    with engine.begin() as conn:
        token = account(conn, EDITOR, "editor")
    yield token
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM account_tokens WHERE account_id IN "
                          "(SELECT id FROM accounts WHERE username = :u)"), {"u": EDITOR})
        conn.execute(text("DELETE FROM accounts WHERE username = :u"), {"u": EDITOR})


def around(point: tuple[float, float], half: float = 0.01) -> tuple[float, float, float, float]:
    return point[0] - half, point[1] - half, point[0] + half, point[1] + half


def comparable(response) -> dict:
    """A page without what differs between two requests for the same features (time, links to itself)."""
    assert response.status_code == 200, response.text
    doc = response.json()
    doc.pop("timeStamp")
    doc.pop("links")
    return doc


def test_a_box_alone_pages_as_the_same_box_given_as_a_filter(ogc_client: TestClient, ogc_fx: OgcFixtures):
    x0, y0, x1, y1 = around(CAHORS)
    as_filter = {"filter": f"S_INTERSECTS(geometry, BBOX({x0}, {y0}, {x1}, {y1}))"}
    for extra in ({}, {"crs": EPSG2154}, {"crs": EPSG4326}, {"sortby": "-rayon_m,lieu"}, {"limit": "1"},
                  {"limit": "1", "offset": "1"}, {"properties": "lieu,statut", "skipGeometry": "true"}):
        boxed = ogc_client.get(ITEMS, params={"bbox": f"{x0},{y0},{x1},{y1}", **extra})
        filtered = ogc_client.get(ITEMS, params={**as_filter, **extra})
        assert comparable(boxed) == comparable(filtered), extra
        assert boxed.headers["content-crs"] == filtered.headers["content-crs"]
    ids = {f["id"] for f in ogc_client.get(ITEMS, params={"bbox": f"{x0},{y0},{x1},{y1}"}).json()["features"]}
    assert {ogc_fx.ids["wifi_cahors_mairie"], ogc_fx.ids["wifi_cahors_eglise"]} <= ids
    assert ogc_fx.ids["wifi_hidden"] not in ids and ogc_fx.ids["wifi_figeac"] not in ids


def test_reused_statements_take_each_request_s_values(ogc_client: TestClient, ogc_fx: OgcFixtures):
    """The page statement is compiled once per shape: a second box, CRS or page must not get the first's."""
    def ids(**params: str) -> set[int]:
        return {f["id"] for f in comparable(ogc_client.get(ITEMS, params=params))["features"]}

    cahors, figeac = (",".join(map(str, around(p))) for p in (CAHORS, FIGEAC))
    first = ids(bbox=cahors)
    assert ogc_fx.ids["wifi_cahors_mairie"] in first and ogc_fx.ids["wifi_figeac"] not in first
    assert ogc_fx.ids["wifi_figeac"] in ids(bbox=figeac) and ogc_fx.ids["wifi_cahors_mairie"] not in ids(bbox=figeac)
    assert ids(bbox=cahors) == first
    to_l93 = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True)
    for point in (CAHORS, FIGEAC):
        lon0, lat0, lon1, lat1 = around(point)
        (a, b), (c, d) = to_l93.transform([lon0, lon1], [lat0, lat1])
        l93 = ids(bbox=f"{min(a, b)},{min(c, d)},{max(a, b)},{max(c, d)}", **{"bbox-crs": EPSG2154})
        assert l93 == ids(bbox=",".join(map(str, (lon0, lat0, lon1, lat1))))
    whole = comparable(ogc_client.get(ITEMS, params={"bbox": cahors}))
    pages = [comparable(ogc_client.get(ITEMS, params={"bbox": cahors, "limit": "1", "offset": str(i)}))
             for i in range(whole["numberMatched"] + 1)]
    assert [f for page in pages for f in page["features"]] == whole["features"]
    assert all(page["numberMatched"] == whole["numberMatched"] for page in pages)
    assert [page["numberReturned"] for page in pages] == [1] * whole["numberMatched"] + [0]


def test_the_page_s_etag_and_last_modified_match_those_read_before_it(ogc_client: TestClient, ogc_fx: OgcFixtures):
    """Without a conditional header the layer's state comes in the page's statement; with one, it is read
    first. Both give the same validators, and each answers the other's revalidation with a 304."""
    for params in ({"bbox": ",".join(map(str, around(CAHORS)))}, {"limit": "2"}, {"statut": "installee"}):
        plain = ogc_client.get(ITEMS, params=params)
        conditional = ogc_client.get(ITEMS, params=params, headers={"If-None-Match": '"autre"'})
        assert comparable(plain) == comparable(conditional)
        for name in ("etag", "last-modified", "cache-control", "vary", "content-crs"):
            assert plain.headers[name] == conditional.headers[name], name
        assert ogc_client.get(ITEMS, params=params, headers={"If-None-Match": plain.headers["etag"]}).status_code == 304
        since = ogc_client.get(ITEMS, params=params, headers={"If-Modified-Since": plain.headers["last-modified"]})
        assert since.status_code == 304 and since.headers["etag"] == plain.headers["etag"]


def test_a_feature_s_etag_names_its_version_only_when_it_is_published(ogc_client: TestClient, ogc_fx: OgcFixtures,
                                                                       engine: Engine, editor_token: str):
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version FROM wifi_hotspots WHERE fid = :f"),
                               {"f": ogc_fx.ids["wifi_cahors_mairie"]}).scalar_one()
    url = f"{ITEMS}/{ogc_fx.ids['wifi_cahors_mairie']}"
    published = ogc_client.get(url)
    assert published.headers["etag"] == version_etag(version)
    assert ogc_client.get(url, headers={"If-None-Match": version_etag(version)}).status_code == 304
    # Another representation (HTML, another CRS, restricted fields) names the version with a suffix.
    for params, headers in (({"f": "html"}, {}), ({"crs": EPSG2154}, {}),
                            ({}, {"Authorization": f"Bearer {editor_token}"})):
        other = ogc_client.get(url, params=params, headers=headers)
        assert other.headers["etag"].startswith(f'"v{version}-') and other.headers["etag"] != published.headers["etag"]
    assert ogc_client.get(url, headers={"Authorization": f"Bearer {editor_token}"}).headers["cache-control"] == \
        "private, no-cache"
    # A proposal is not a published feature: hidden, whatever its version.
    assert ogc_client.get(f"{ITEMS}/{ogc_fx.ids['wifi_hidden']}").status_code == 404


def test_a_feature_of_a_layer_without_versions_has_an_etag_of_its_content(ogc_client: TestClient, ogc_fx: OgcFixtures):
    url = f"/ogc/collections/communes/items/{ogc_fx.ids['commune_a']}"
    r = ogc_client.get(url)
    assert r.status_code == 200 and r.json()["properties"]["nom"] == "Testville"
    assert not r.headers["etag"].startswith('"v')
    assert ogc_client.get(url, headers={"If-None-Match": r.headers["etag"]}).status_code == 304


@pytest.mark.parametrize(("query", "parameter", "mentions"), [
    ("limit=ten", "limit", "un nombre entier est attendu"),
    ("limit=", "limit", "un nombre entier est attendu"),
    ("offset=x", "offset", "un nombre entier est attendu"),
    ("limit=ten&offset=x", "limit", "un nombre entier est attendu"),
    ("limit=1&limit=ten", "limit", "un nombre entier est attendu"),  # the last value is the one checked
    ("limit=ten&limit=1", "limit", "répété"),
    ("limit=ten&f=xml", "limit", "un nombre entier est attendu"),  # checked before the format
])
def test_limit_and_offset_are_checked_as_integers_first(ogc_client: TestClient, query: str, parameter: str,
                                                        mentions: str):
    r = ogc_client.get(f"{ITEMS}?{query}")
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["parameter"] == parameter and mentions in r.json()["detail"]
    assert ogc_client.get(f"/ogc/collections/nope/items?{query}").status_code == 404  # the collection comes first


def test_openapi_still_documents_every_standard_items_parameter(ogc_client: TestClient):
    operation = ogc_client.get("/openapi.json").json()["paths"]["/ogc/collections/{collectionId}/items"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) == {"collectionId", "bbox", "bbox-crs", "crs", "limit", "offset", "datetime", "filter",
                               "filter-lang", "filter-crs", "sortby", "properties", "skipGeometry", "f"}
    assert all(p["in"] == "query" and not p["required"] and p["description"]
               for name, p in parameters.items() if name != "collectionId")
    assert {"type": "integer"} in parameters["limit"]["schema"]["anyOf"]
    assert parameters["bbox-crs"]["schema"]["title"] == "Bbox-Crs"


def test_a_dropped_read_connection_is_replaced(settings: Settings, ogc_fx: OgcFixtures, engine: Engine):
    """The read engine has no ping: a connection the server closed fails once, and is retried on a new one."""
    with TestClient(create_app(settings)) as c:
        url = f"{ITEMS}/{ogc_fx.ids['wifi_figeac']}"
        assert c.get(url).status_code == 200
        read_engine = c.app.state.read_engine
        with read_engine.connect() as conn:
            pid = conn.connection.driver_connection.info.backend_pid
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        r = c.get(url)
        assert r.status_code == 200 and r.json()["properties"]["lieu"] == "Mairie de Figeac"


def test_premises_page_and_feature_hide_nothing_they_showed_before(ogc_client: TestClient, ogc_fx: OgcFixtures):
    """Restricted fields stay out of anonymous answers on both fast paths, as the collection declares them."""
    public = set(ogc_client.get("/ogc/collections/premises/queryables").json()["properties"]) - {"geometry"}
    page = ogc_client.get(PREMISES, params={"bbox": "1.43,44.44,1.45,44.46"}).json()
    assert page["features"] and all(set(f["properties"]) == public for f in page["features"])
    feature = ogc_client.get(f"{PREMISES}/{ogc_fx.ids['premise_0']}").json()
    assert set(feature["properties"]) == public


def test_filtered_pages_are_compiled_once_per_filter_and_take_each_request_s_values(
        ogc_client: TestClient, ogc_fx: OgcFixtures):
    """Two filters of one shape, asked in turn, each give their own features; a page of one is the same
    whether its statement was just compiled or kept; the page and offset stay bound apart. (Other tests may
    have added bornes: each answer is checked on the properties of what it returns and on the fixtures.)"""
    def page(**params: str) -> list[dict]:
        doc = comparable(ogc_client.get(ITEMS, params={"limit": "1000", **params}))
        if "offset" not in params:  # the whole match on one page
            assert doc["numberMatched"] == len(doc["features"]) == doc["numberReturned"]
        return doc["features"]

    def holding(features: list[dict], **expected: object) -> set[int]:
        assert all(f["properties"][k] == v for f in features for k, v in expected.items()), expected
        return {f["id"] for f in features}

    kept = ogc_client.app.state.caches.filtered_statements
    ids = ogc_fx.ids
    for _ in range(2):
        cahors = holding(page(filter="statut = 'installee' AND code_insee = '46042'"),
                         statut="installee", code_insee="46042")
        assert {ids["wifi_cahors_mairie"], ids["wifi_cahors_eglise"]} <= cahors and ids["wifi_hidden"] not in cahors
        figeac = holding(page(filter="statut = 'programmee' AND code_insee = '46102'"),
                         statut="programmee", code_insee="46102")
        assert ids["wifi_figeac"] in figeac and ids["wifi_cahors_mairie"] not in figeac
        assert ids["wifi_gourdon"] in holding(page(statut="hors service"), statut="hors service")
    assert len(kept) >= 3
    whole = page(filter="statut = 'installee' AND code_insee = '46042'", sortby="lieu")
    mairie, eglise = (next(i for i, f in enumerate(whole) if f["id"] == ids[k])
                      for k in ("wifi_cahors_mairie", "wifi_cahors_eglise"))
    assert mairie < eglise  # « Mairie de Cahors » before « Place de l'église »
    second = page(filter="statut = 'installee' AND code_insee = '46042'", sortby="lieu", limit="1", offset="1")
    assert second == whole[1:2]
    assert ids["wifi_cahors_mairie"] in holding(page(filter="statut = 'installee' AND rayon_m > 60"),
                                                 statut="installee")
    assert ids["wifi_cahors_eglise"] not in {f["id"] for f in page(filter="statut = 'installee' AND rayon_m > 60")}
    # A boolean's value is converted by SQLAlchemy at execution: such a filter is run through it, same answers.
    for _ in range(2):
        real = holding(page(filter="statut = 'installee' AND demo = false"), statut="installee", demo=False)
        assert {ids["wifi_cahors_mairie"], ids["wifi_cahors_eglise"]} <= real
        assert not {ids["wifi_cahors_mairie"], ids["wifi_cahors_eglise"]} & \
            holding(page(filter="statut = 'installee' AND demo = true"), statut="installee", demo=True)


def test_a_feature_is_postgis_s_geojson_with_its_links(ogc_client: TestClient, ogc_fx: OgcFixtures):
    """The JSON of a feature is PostGIS's text with the links added: the same members as its HTML page's
    feature, and links to itself, its HTML page and its collection."""
    fid = ogc_fx.ids["wifi_cahors_mairie"]
    r = ogc_client.get(f"{ITEMS}/{fid}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    feature = r.json()
    assert feature["type"] == "Feature" and feature["id"] == fid
    assert feature["properties"]["lieu"] == "Mairie de Cahors" and feature["geometry"]["type"] == "Point"
    assert feature["geometry"]["coordinates"] == pytest.approx(list(CAHORS))
    assert [(link["rel"], link["type"]) for link in feature["links"]] == [
        ("self", "application/geo+json"), ("alternate", "text/html"), ("collection", "application/json")]
    assert feature["links"][0]["href"].endswith(f"{ITEMS}/{fid}")
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
