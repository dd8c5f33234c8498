"""Hostile query strings on the read API (``/api/layers``, ``/ogc``, ``/tiles``, ``/api/nearby``,
``/api/geocode``, ``/map``): NUL characters, numbers beyond every range, NaN and infinities, dates that are
not dates, nesting and lengths meant to exhaust. Each answer is a 4xx problem in French that names the faulty
parameter — or an ordinary answer where the service may ignore the option — and never a 5xx.

Cases marked "before" answered 500 (or named the wrong parameter) before the fixes they come with.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote_plus

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from geo_service.main import create_app
from geo_service.settings import Settings

WIFI = "/ogc/collections/wifi_hotspots/items"
NUL = "\x00"
OK = "ok"  # any answer but a 5xx: the service may ignore the option (the embed shows a notice)


def nested_json(depth: int) -> str:
    return '{"op":"not","args":[' * depth + '{"op":"=","args":[{"property":"rayon_m"},1]}' + "]}" * depth


# (id, path, query parameters, expected status or OK, parameter the problem must name)
CASES = [
    # NUL characters: PostgreSQL refuses them in text (before: psycopg.DataError, a 500).
    ("filter NUL (before: 500)", WIFI, {"filter": f"lieu = 'a{NUL}b'"}, 400, "filter"),
    ("LIKE NUL (before: 500)", WIFI, {"filter": f"lieu LIKE '%{NUL}%'"}, 400, "filter"),
    ("property filter NUL (before: 500)", WIFI, {"lieu": f"Mairie{NUL}"}, 400, "lieu"),
    ("sortby NUL", WIFI, {"sortby": f"lieu{NUL}"}, 400, "sortby"),
    ("datetime NUL", WIFI, {"datetime": f"2020-01-01{NUL}"}, 400, "datetime"),
    ("crs NUL", WIFI, {"crs": NUL}, 400, "crs"),
    ("f NUL", WIFI, {"f": NUL}, 400, "f"),
    ("bbox NUL", WIFI, {"bbox": f"1{NUL},44,2,45"}, 400, "bbox"),
    ("feature id NUL", f"{WIFI}/1{NUL}", {}, 404, None),
    ("layers bbox NUL", "/api/layers/wifi_hotspots", {"bbox": f"1{NUL},44,2,45"}, 400, "bbox"),
    ("export format NUL", "/api/export/wifi_hotspots", {"format": NUL}, 400, "format"),
    ("geocode NUL", "/api/geocode", {"q": f"Cah{NUL}ors"}, OK, None),
    ("nearby address NUL", "/api/nearby", {"address": f"1 rue{NUL} de Cahors"}, OK, None),
    ("embed NUL", "/map/embed", {"layers": f"wifi_hotspots{NUL}", "lat": f"4{NUL}4", "zoom": NUL}, OK, None),
    ("report NUL", "/map/report", {"address": f"Cah{NUL}ors"}, OK, None),
    # Numbers beyond every range.
    ("offset 10^40 (before: parameter filter)", WIFI, {"offset": "1" + "0" * 40}, 400, "offset"),
    ("offset 2^31", WIFI, {"offset": str(2**31)}, 400, "offset"),
    ("offset negative", WIFI, {"offset": "-5"}, 400, "offset"),
    ("limit 10^40", WIFI, {"limit": "1" + "0" * 40}, 400, "limit"),
    ("limit zero", WIFI, {"limit": "0"}, 400, "limit"),
    ("limit not a number", WIFI, {"limit": "dix"}, 400, "limit"),
    ("CQL2 integer beyond bigint (before: English database error)", WIFI,
     {"filter": "rayon_m = 99999999999999999999"}, 400, "filter"),
    ("CQL2 1e400", WIFI, {"filter": "rayon_m < 1e400"}, 400, "filter"),
    ("property integer beyond bigint (before: parameter filter)", WIFI, {"rayon_m": "9" * 30}, 400, "rayon_m"),
    ("property integer NaN", WIFI, {"rayon_m": "nan"}, 400, "rayon_m"),
    # NaN, infinities, boxes.
    ("bbox NaN", WIFI, {"bbox": "nan,nan,nan,nan"}, 400, "bbox"),
    ("bbox infinite", WIFI, {"bbox": "-inf,-inf,inf,inf"}, 400, "bbox"),
    ("bbox 1e400", WIFI, {"bbox": "0,0,1e400,1"}, 400, "bbox"),
    ("bbox Lambert-93 beyond its domain", WIFI, {"bbox": "0,6000000,1e308,1e308", "bbox-crs": "EPSG:2154"},
     400, "bbox"),
    ("bbox of 4000 numbers", WIFI, {"bbox": ",".join(["1"] * 4000)}, 400, "bbox"),
    ("layers bbox NaN", "/api/layers/wifi_hotspots", {"bbox": "nan,44,2,45"}, 400, "bbox"),
    ("layers bbox infinite", "/api/layers/wifi_hotspots", {"bbox": "1,44,inf,45"}, 400, "bbox"),
    ("layers bbox long", "/api/layers/wifi_hotspots", {"bbox": "1" * 20_000}, 400, "bbox"),
    ("CQL2 geometry beyond the CRS", WIFI, {"filter": "S_INTERSECTS(geometry, POINT(1e308 1e308))"}, 400, "filter"),
    ("CQL2 self-intersecting polygon", WIFI,
     {"filter": "S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))"}, 400, "filter"),
    ("nearby NaN", "/api/nearby", {"lon": "nan", "lat": "nan"}, 400, "lon"),
    ("nearby 1e999", "/api/nearby", {"lon": "1e999", "lat": "44"}, 400, "lon"),
    ("report NaN", "/map/report", {"lon": "nan", "lat": "1e999"}, 400, None),
    ("embed zoom and centre garbage", "/map/embed", {"zoom": "1e400", "lat": "nan", "lon": "-inf"}, OK, None),
    ("embed 3000 layers", "/map/embed", {"layers": ",".join(["wifi"] * 3000)}, OK, None),
    ("snippet height 10^30", "/map/embed/snippet", {"height": "1" + "0" * 30}, 400, "height"),
    # Dates that are not dates.
    ("datetime month 13", WIFI, {"datetime": "2020-13-45"}, 400, "datetime"),
    ("datetime three parts", WIFI, {"datetime": "2020-01-01/2021-01-01/2022-01-01"}, 400, "datetime"),
    ("datetime hour 25", WIFI, {"datetime": "2020-01-01T25:00:00Z"}, 400, "datetime"),
    ("datetime year 99999", WIFI, {"datetime": "99999-01-01"}, 400, "datetime"),
    ("datetime offset +99:00", WIFI, {"datetime": "2020-01-01T00:00:00+99:00"}, 400, "datetime"),
    ("datetime reversed", WIFI, {"datetime": "2021-01-01/2020-01-01"}, 400, "datetime"),
    ("CQL2 DATE garbage", WIFI, {"filter": "date_mise_en_service = DATE('2020-02-30')"}, 400, "filter"),
    # Tiles.
    ("tile zoom negative", "/tiles/wifi_hotspots/-1/0/0.mvt", {}, 400, "z"),
    ("tile zoom 10^21", "/tiles/wifi_hotspots/999999999999999999999/0/0.mvt", {}, 400, "z"),
    ("tile zoom NUL", f"/tiles/wifi_hotspots/1{NUL}/0/0.mvt", {}, 400, "z"),
    ("tile column beyond the grid", "/tiles/wifi_hotspots/3/8/0.mvt", {}, 404, None),
    ("OGC tile matrix negative", "/ogc/tiles/WebMercatorQuad/-3/0/0", {}, 400, "tileMatrix"),
    # Lengths and nesting.
    ("CQL2-JSON nested 900 deep (before: RecursionError, 500)", WIFI,
     {"filter": nested_json(900), "filter-lang": "cql2-json"}, 400, "filter"),
    ("filter of 40,000 characters", WIFI, {"filter": "lieu = '" + "x" * 40_000 + "'"}, 400, "filter"),
    ("property filter of 40,000 characters", WIFI, {"lieu": "x" * 40_000}, 400, "lieu"),
    ("sortby repeating a property 2000 times", WIFI, {"sortby": ",".join(["lieu"] * 2000)}, 400, "sortby"),
    ("properties repeating a property 2000 times", WIFI, {"properties": ",".join(["lieu"] * 2000)}, 400,
     "properties"),
    ("filter-lang unknown", WIFI, {"filter-lang": "sql"}, 400, "filter-lang"),
    ("geocode 5000 characters", "/api/geocode", {"q": "a" * 5000}, 400, "q"),
    ("geocode limit 10^30", "/api/geocode", {"q": "Cahors", "limit": "1" + "0" * 30}, 400, "limit"),
    ("parentheses 1000 deep (a valid filter)", WIFI, {"filter": "(" * 1000 + "rayon_m = 1" + ")" * 1000}, 200, None),
    ("parentheses 5000 deep (too many words)", WIFI, {"filter": "(" * 5000 + "rayon_m = 1" + ")" * 5000}, 400,
     "filter"),
]


@pytest.fixture(scope="module")
def client(settings: Settings, loaded_boundaries: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize(("path", "params", "expected", "parameter"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_hostile_query_string_is_never_a_5xx(client: TestClient, path: str, params: dict, expected: int | str,
                                               parameter: str | None):
    query = "&".join(f"{quote_plus(k)}={quote_plus(v, safe=chr(39) + '(),:')}" for k, v in params.items())
    answer = client.get(f"{quote_plus(path, safe='/')}?{query}" if query else quote_plus(path, safe="/"))
    assert answer.status_code < 500, (answer.status_code, answer.text[:300])
    if expected == OK:
        return
    assert answer.status_code == expected, (answer.status_code, answer.text[:300])
    if 400 <= answer.status_code < 500 and path.startswith(("/ogc", "/api", "/tiles")):
        assert answer.headers["content-type"] == "application/problem+json"
        problem = answer.json()
        assert problem["detail"] and problem.get("parameter") == parameter, problem


def test_an_html_accept_header_with_a_nan_weight_is_not_a_5xx(client: TestClient):
    for accept in ("text/html;q=nan", "text/html;q=1e999, application/json;q=-inf", "*/*;q=" + "9" * 5000):
        assert client.get(WIFI, headers={"Accept": accept}).status_code == 200
