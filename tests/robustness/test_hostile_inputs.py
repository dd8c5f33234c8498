"""The hostile-input catalogue: what an attacker sends, and what must come back.

Each case asserts the answer (a 4xx problem detail in French, or a normal answer that treats the input as plain
data) and that the database is unchanged (a digest of every row of the tables concerned, before and after):
SQL fragments in every filter, sort, property, search and path parameter; script and HTML stored through the
editing API, then read back escaped on every page that shows them; oversized and deeply nested bodies;
geometries with a million vertices, NaN and Infinity, the wrong winding, self-intersections. Uploads are tested
with the bulk import (tests/test_upload_safety.py). Runs on a database of its own.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import shape
from sqlalchemy import text

from geo_service.main import create_app
from geo_service.services.editing import accounts
from robustness.support import World, build_world, scratch_database, table_checksum

SQL_FRAGMENTS = ["' OR 1=1--", '"; DROP TABLE premises; --', "$$", "1; SELECT pg_sleep(5)--", "')) OR true--"]
NUL = "\x00"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
ITEMS = "/ogc/collections/wifi_hotspots/items"
FRENCH_WORDS = ("de|du|des|la|le|les|un|une|est|et|ou|en|doit|pas|sont|trop|hors|nombres?|attendue?|invalide|"
                "aucune?")
FRENCH = re.compile(rf"[éèàùçêâîôû«»]|\b({FRENCH_WORDS})\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def world(settings, registry, boundaries_dir) -> Iterator[World]:
    with scratch_database(settings, "hostile") as scratch:
        built = build_world(scratch, registry, boundaries_dir)
        yield built
        built.engine.dispose()


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.settings), base_url="http://localhost", raise_server_exceptions=False) as c:
        yield c


def admin(world: World, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens['admin']}", **extra}


def assert_problem(response, *statuses: int) -> None:
    """A refusal as RFC 9457 problem details with a French ``detail``."""
    assert response.status_code in (statuses or range(400, 500)), (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    detail = response.json()["detail"]
    assert FRENCH.search(detail), f"detail not in French: {detail!r}"


def assert_handled(response) -> None:
    """Either a French refusal (problem details, or an HTML page for the pages), or a normal answer (the input
    read as plain data)."""
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400 and response.headers["content-type"].startswith("text/html"):
        assert FRENCH.search(response.text) and '<html lang="fr">' in response.text
    elif response.status_code >= 400:
        assert_problem(response)


# -- SQL fragments in every parameter -----------------------------------------------------------------------------
# (path, parameter, needs an account): every place the service reads user text to query the database.
QUERY_PARAMETERS = [
    (ITEMS, "filter", False), (ITEMS, "sortby", False), (ITEMS, "properties", False), (ITEMS, "bbox", False),
    (ITEMS, "datetime", False), (ITEMS, "crs", False), (ITEMS, "bbox-crs", False), (ITEMS, "filter-lang", False),
    (ITEMS, "filter-crs", False), (ITEMS, "limit", False), (ITEMS, "offset", False), (ITEMS, "lieu", False),
    (ITEMS, "statut", False), (ITEMS, "f", False),
    ("/api/geocode", "q", False), ("/api/nearby", "address", False), ("/map/report", "address", False),
    ("/api/layers/wifi_hotspots", "bbox", False), ("/api/export/wifi_hotspots", "format", False),
    ("/admin/api/features/wifi_hotspots", "q", True), ("/admin/api/features/wifi_hotspots", "commune", True),
    ("/admin/api/features/wifi_hotspots", "epci", True), ("/admin/api/features/wifi_hotspots", "state", True),
    ("/admin/api/features/wifi_hotspots", "bbox", True), ("/admin/api/proposals", "status", True),
    ("/admin/api/history.csv", "layer", True), ("/admin/api/history.csv", "since", True),
]
PATH_TEMPLATES = ["/ogc/collections/{}/items", ITEMS + "/{}", "/api/layers/{}", "/api/export/{}",
                  "/tiles/{}/8/128/93.mvt", "/ogc/collections/{}/queryables", "/admin/api/history/{}/1",
                  "/ogc/collections/wifi_hotspots/tiles/WebMercatorQuad/{}/93/128", "/basemap/{}/8/128/92.png",
                  "/basemap/plan/{}/128/92.png", "/basemap/plan/8/128/92.{}"]
SEARCHED = {"lieu", "statut", "q", "address", "commune", "epci"}


@pytest.mark.parametrize("fragment", SQL_FRAGMENTS)
def test_sql_fragments_in_every_query_parameter_are_plain_data(client, world, fragment):
    before = table_checksum(world.engine, world.registry)
    for path, name, needs_account in QUERY_PARAMETERS:
        response = client.get(path, params={name: fragment}, headers=admin(world) if needs_account else {})
        assert_handled(response)
        if response.status_code == 200 and path == ITEMS and name in SEARCHED:
            assert response.json()["numberMatched"] == 0, (name, fragment)  # a value, not a condition
    assert table_checksum(world.engine, world.registry) == before


@pytest.mark.parametrize("fragment", SQL_FRAGMENTS)
def test_sql_fragments_in_every_path_parameter_are_404_or_400(client, world, fragment):
    before = table_checksum(world.engine, world.registry)
    for template in PATH_TEMPLATES:
        response = client.get(template.format(quote(fragment, safe="")), headers=admin(world))
        assert_problem(response, 400, 404)
    assert table_checksum(world.engine, world.registry) == before


@pytest.mark.parametrize("fragment", SQL_FRAGMENTS)
def test_sql_fragments_in_written_properties_are_stored_as_text(client, world, fragment):
    body = {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(world.inside)},
            "properties": {"borne_id": fragment, "code_insee": "46042", "lieu": fragment,
                           "ssid": "WIFI public lotois", "statut": "installee"}}
    created = client.post(ITEMS, json=body, headers=admin(world))
    assert created.status_code == 201, created.text
    fid = created.json()["id"]
    with world.engine.connect() as conn:
        assert conn.execute(text("SELECT lieu FROM wifi_hotspots WHERE fid = :f"), {"f": fid}).scalar_one() == fragment
        assert conn.execute(text("SELECT count(*) FROM premises")).scalar_one() > 0  # still there
    # A property name is an identifier: one that is not declared is refused, never spliced into SQL.
    before = table_checksum(world.engine, world.registry)
    odd = client.patch(f"{ITEMS}/{fid}", json={"properties": {fragment: "x"}},
                       headers=admin(world, **{"If-Match": created.headers["etag"]}))
    assert_handled(odd)
    if odd.status_code == 200:  # ignored, as an unknown property: nothing but the version moved
        with world.engine.connect() as conn:
            assert conn.execute(text("SELECT lieu FROM wifi_hotspots WHERE fid = :f"), {"f": fid}).scalar_one() \
                == fragment
    else:
        assert table_checksum(world.engine, world.registry) == before
    sorted_ = client.get(ITEMS, params={"sortby": fragment})
    assert_problem(sorted_, 400)


@pytest.mark.parametrize("path, name", [
    pytest.param(p, n, id=f"{p}?{n}") for p, n, _ in QUERY_PARAMETERS[:14]])
def test_a_nul_byte_in_an_items_parameter_is_a_400(client, world, path, name):
    before = table_checksum(world.engine, world.registry)
    assert_problem(client.get(path, params={name: f"a{NUL}b"}), 400)
    assert table_checksum(world.engine, world.registry) == before


# -- script and HTML: stored, then shown escaped everywhere ------------------------------------------------------
@pytest.fixture(scope="module")
def stored_markup(client, world) -> dict[str, int]:
    """A third place and a borne whose every text field is markup, written through the API by an administrator,
    and a contributor's proposal of the same kind (for the validation queue)."""
    place = {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(world.inside)},
             "properties": {"tl_id": "xss-1", "nom": SCRIPT, "adresse": IMG, "code_insee": "46042",
                            "commune": SCRIPT, "horaires": IMG, "telephone": SCRIPT,
                            "url_reservation": "javascript:alert(1)", "site_web": "javascript:alert(1)",
                            "courriel": IMG}}
    created = client.post("/ogc/collections/third_places/items", json=place, headers=admin(world))
    assert created.status_code == 201, created.text
    fid = created.json()["id"]
    changed = client.patch(f"/ogc/collections/third_places/items/{fid}", json={"properties": {"commune": IMG}},
                           headers=admin(world, **{"If-Match": created.headers["etag"]}))
    assert changed.status_code == 200, changed.text
    proposal = dict(place, properties={**place["properties"], "tl_id": "xss-2"})
    proposed = client.post("/ogc/collections/third_places/items", json=proposal,
                           headers={"Authorization": f"Bearer {world.tokens['contributor']}"})
    assert proposed.status_code == 202, proposed.text
    return {"fid": fid, "proposal": proposed.json()["changeRequest"]}


def assert_escaped(html: str, where: str, shown: bool = True) -> None:
    assert SCRIPT not in html and "<img src=x" not in html, f"markup not escaped in {where}"
    if shown:
        assert "&lt;script&gt;" in html or "&lt;img" in html, f"the stored text is not shown in {where}"
    assert not re.search(r"""href\s*=\s*["']?\s*javascript:""", html, re.IGNORECASE), f"javascript: link in {where}"


def test_markup_stored_through_the_api_comes_back_as_data_in_json(client, world, stored_markup):
    for path in ("/api/layers/third_places", f"/ogc/collections/third_places/items/{stored_markup['fid']}"):
        response = client.get(path)
        assert response.headers["content-type"].split(";")[0] in ("application/json", "application/geo+json")
        assert SCRIPT in response.text.replace("\\u003c", "<").replace("\\u003e", ">") or SCRIPT in response.text
    nearby = client.get("/api/nearby", params=dict(zip(("lon", "lat"), world.inside, strict=True)))
    assert nearby.status_code == 200 and nearby.headers["content-type"].startswith("application/json")


def test_markup_is_escaped_on_every_page_that_shows_it(client, world, stored_markup):
    fid, proposal = stored_markup["fid"], stored_markup["proposal"]
    public = {
        "report page": client.get("/map/report", params=dict(zip(("lon", "lat"), world.inside, strict=True))),
        "OGC items page": client.get("/ogc/collections/third_places/items", params={"f": "html", "limit": 100}),
        "OGC item page": client.get(f"/ogc/collections/third_places/items/{fid}", params={"f": "html"}),
    }
    with world.engine.begin() as conn:
        cookie, _ = accounts.open_session(conn, accounts.get_account(conn, "rb-admin").id, "127.0.0.1", 1)
    client.cookies.set("gs_session", cookie)
    try:
        staff = {
            "history page": client.get(f"/admin/history/third_places/{fid}"),
            "validation queue": client.get("/admin/proposals"),
            "proposal page": client.get(f"/admin/proposals/{proposal}"),
            "editor list (JSON)": client.get("/admin/api/features/third_places", params={"state": "published"}),
        }
    finally:
        client.cookies.clear()
    for where, response in {**public, **staff}.items():
        assert response.status_code == 200, (where, response.status_code, response.text[:300])
        if response.headers["content-type"].startswith("text/html"):
            assert_escaped(response.text, where, shown=where != "validation queue")  # the queue lists no names
        else:
            assert response.headers["content-type"].split(";")[0] in ("application/json", "application/geo+json")


# -- bodies -------------------------------------------------------------------------------------------------------
def test_a_body_above_the_limit_is_a_413_and_nothing_is_written(client, world):
    before = table_checksum(world.engine, world.registry)
    big = b'{"type": "Feature", "properties": {"lieu": "' + b"x" * (world.settings.editing.max_body_bytes + 1) + b'"}}'
    response = client.post(ITEMS, content=big, headers=admin(world, **{"Content-Type": "application/geo+json"}))
    assert_problem(response, 413)
    assert table_checksum(world.engine, world.registry) == before


@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_malformed_json_bodies_are_a_400(client, world, method):
    before = table_checksum(world.engine, world.registry)
    fid = world.features["wifi_cahors_mairie"]
    url = ITEMS if method == "post" else f"{ITEMS}/{fid}"
    for raw in (b"{", b"[]", b'"Feature"', b"\xff\xfe", b'{"type": "Feature", "properties": []}'):
        response = client.request(method.upper(), url, content=raw,
                                  headers=admin(world, **{"Content-Type": "application/geo+json", "If-Match": '"v1"'}))
        assert_problem(response, 400, 412, 422)
    assert table_checksum(world.engine, world.registry) == before


def test_a_deeply_nested_body_is_a_400(client, world):
    before = table_checksum(world.engine, world.registry)
    deep = '{"type": "Feature", "properties": {"lieu": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    response = client.post(ITEMS, content=deep, headers=admin(world, **{"Content-Type": "application/geo+json"}))
    assert_problem(response, 400, 413, 422)
    assert table_checksum(world.engine, world.registry) == before


def test_a_deeply_nested_cql2_json_filter_is_a_400(client, world):
    # Written as text: json.dumps itself recurses once per level.
    inner = '{"op": "=", "args": [{"property": "statut"}, "installee"]}'
    deep = '{"op": "not", "args": [' * 500 + inner + "]}" * 500  # 13 kB: past the depth cap, not the length cap
    response = client.get(ITEMS, params={"filter": deep, "filter-lang": "cql2-json"})
    assert_problem(response, 400)


def test_a_non_ascii_csrf_token_at_login_is_refused_not_a_500(client):
    client.cookies.clear()
    assert client.get("/admin/login").status_code == 200  # the pre-login cookie the token is compared with
    response = client.post("/admin/login", data={"username": "x", "password": "y", "csrf_token": "é" * 64})
    assert response.status_code == 403


def test_the_audit_csv_refuses_a_layer_that_does_not_exist(client, world):
    # Found by the fuzzer: the layer named the file in Content-Disposition, and a non-Latin-1 one was a 500.
    response = client.get("/admin/api/history.csv", params={"layer": "Āx"}, headers=admin(world))
    assert_problem(response, 400)
    assert response.json()["parameter"] == "layer"


# -- geometries -----------------------------------------------------------------------------------------------------
def zone(ring: list[list[float]], **props: object) -> dict:
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"kind": "mobile", "technologie": "4G", "operateur": "tous", "source_calcul": "declaree",
                           "niveau": "BC", **props}}


def ring_around(lon: float, lat: float, vertices: int, radius: float = 0.01) -> list[list[float]]:
    points = [[round(lon + radius * math.cos(2 * math.pi * i / vertices), 6),
               round(lat + radius * math.sin(2 * math.pi * i / vertices), 6)] for i in range(vertices)]
    return [*points, points[0]]


def test_a_geometry_of_a_million_vertices_is_refused_by_size(client, world):
    before = table_checksum(world.engine, world.registry)
    body = json.dumps(zone(ring_around(*world.inside, 1_000_000))).encode()
    response = client.post("/ogc/collections/white_zones/items", content=body,
                           headers=admin(world, **{"Content-Type": "application/geo+json"}))
    assert_problem(response, 413)
    assert table_checksum(world.engine, world.registry) == before


def test_a_geometry_over_the_vertex_cap_is_a_422_within_the_body_limit(client, world):
    cap = world.settings.editing.max_vertices
    body = json.dumps(zone(ring_around(*world.inside, cap + 10)), separators=(",", ":")).encode()
    assert len(body) < world.settings.editing.max_body_bytes  # refused by the cap, not by size
    before = table_checksum(world.engine, world.registry)
    response = client.post("/ogc/collections/white_zones/items", content=body,
                           headers=admin(world, **{"Content-Type": "application/geo+json"}))
    assert_problem(response, 422)
    assert "sommets" in response.json()["detail"] and response.json()["field"] == "geometry"
    assert table_checksum(world.engine, world.registry) == before


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_nan_and_infinite_coordinates_are_a_422(client, world, number):
    before = table_checksum(world.engine, world.registry)
    properties = json.dumps({"borne_id": "nan", "code_insee": "46042", "lieu": "x", "ssid": "WIFI public lotois",
                             "statut": "installee"})
    raw = f'{{"type": "Feature", "geometry": {{"type": "Point", "coordinates": [{number}, 44.45]}}, ' \
          f'"properties": {properties}}}'
    response = client.post(ITEMS, content=raw, headers=admin(world, **{"Content-Type": "application/geo+json"}))
    assert_problem(response, 400, 422)
    assert table_checksum(world.engine, world.registry) == before


def test_a_self_intersecting_polygon_is_a_422(client, world):
    lon, lat = world.inside
    bowtie = [[lon, lat], [lon + 0.01, lat + 0.01], [lon + 0.01, lat], [lon, lat + 0.01], [lon, lat]]
    before = table_checksum(world.engine, world.registry)
    response = client.post("/ogc/collections/white_zones/items", json=zone(bowtie), headers=admin(world))
    assert_problem(response, 422)
    assert "auto-intersection" in response.json()["detail"]
    assert table_checksum(world.engine, world.registry) == before


def test_a_polygon_of_the_wrong_winding_is_accepted_and_stored_counterclockwise(client, world):
    clockwise = list(reversed(ring_around(*world.inside, 12)))
    assert not shapely.Polygon(clockwise).exterior.is_ccw
    response = client.post("/ogc/collections/white_zones/items", json=zone(clockwise), headers=admin(world))
    assert response.status_code == 201, response.text
    stored = shape(client.get(f"/ogc/collections/white_zones/items/{response.json()['id']}").json()["geometry"])
    assert all(polygon.exterior.is_ccw for polygon in stored.geoms)  # RFC 7946: exterior rings counterclockwise
    assert stored.equals(shapely.Polygon(clockwise))
