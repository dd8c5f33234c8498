"""OGC API – Features Part 3: CQL2 text and JSON filters, queryables, and the errors a filter can earn.

Each case gives the same condition in CQL2-text and CQL2-JSON and the fixture features it must select,
so both encodings are held to one expected answer.
"""

from __future__ import annotations

import json

import pytest
from conftest import EPSG2154, EPSG4326
from conftest import WIFI_ITEMS as WIFI
from factories import CAHORS, FIGEAC, OgcFixtures
from fastapi.testclient import TestClient
from pyproj import Transformer

from geo_service.layers import LayerRegistry

MINE_TEXT = "source = 'tests-factory'"
MINE_JSON = {"op": "=", "args": [{"property": "source"}, "tests-factory"]}
P, D = {"property": "date_mise_en_service"}, {"property": "geometry"}
ALL = {"wifi_cahors_mairie", "wifi_cahors_eglise", "wifi_figeac", "wifi_gourdon"}


def select(ogc_client: TestClient, ogc_fx: OgcFixtures, url: str, params: dict) -> set[str]:
    """The fixture keys of the features a request returns."""
    r = ogc_client.get(url, params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    layer_id = url.split("/")[3]
    return ogc_fx.keys(layer_id, {f["id"] for f in r.json()["features"]})


def both(ogc_client: TestClient, ogc_fx: OgcFixtures, text: str, cql_json: dict, url: str = WIFI,
         **params: str) -> set[str]:
    """Run a condition in CQL2-text and CQL2-JSON (each ANDed with "is a fixture row"); they must agree."""
    as_text = select(ogc_client, ogc_fx, url, {"filter": f"({text}) AND {MINE_TEXT}", **params})
    as_json = select(ogc_client, ogc_fx, url, {"filter": json.dumps({"op": "and", "args": [cql_json, MINE_JSON]}),
                                       "filter-lang": "cql2-json", **params})
    assert as_text == as_json, (text, as_text, as_json)
    return as_text


COMPARISONS = [
    ("statut = 'installee'", {"op": "=", "args": [{"property": "statut"}, "installee"]},
     {"wifi_cahors_mairie", "wifi_cahors_eglise"}),
    ("statut <> 'installee'", {"op": "<>", "args": [{"property": "statut"}, "installee"]},
     {"wifi_figeac", "wifi_gourdon"}),
    ("rayon_m >= 100", {"op": ">=", "args": [{"property": "rayon_m"}, 100]}, {"wifi_cahors_mairie", "wifi_figeac"}),
    ("rayon_m < 99.5", {"op": "<", "args": [{"property": "rayon_m"}, 99.5]}, {"wifi_cahors_eglise"}),
    ("lieu = 'Place de l''église'", {"op": "=", "args": [{"property": "lieu"}, "Place de l'église"]},
     {"wifi_cahors_eglise"}),
    ("lieu LIKE 'Mairie%'", {"op": "like", "args": [{"property": "lieu"}, "Mairie%"]},
     {"wifi_cahors_mairie", "wifi_figeac"}),
    ("lieu LIKE '_alle de Gourdon'", {"op": "like", "args": [{"property": "lieu"}, "_alle de Gourdon"]},
     {"wifi_gourdon"}),
    ("lieu NOT LIKE 'Mairie%'", {"op": "not", "args": [{"op": "like", "args": [{"property": "lieu"}, "Mairie%"]}]},
     {"wifi_cahors_eglise", "wifi_gourdon"}),
    ("CASEI(lieu) = casei('MAIRIE DE FIGEAC')",
     {"op": "=", "args": [{"op": "casei", "args": [{"property": "lieu"}]},
                          {"op": "casei", "args": ["MAIRIE DE FIGEAC"]}]},
     {"wifi_figeac"}),
    ("statut IN ('programmee', 'hors service')",
     {"op": "in", "args": [{"property": "statut"}, ["programmee", "hors service"]]}, {"wifi_figeac", "wifi_gourdon"}),
    ("statut NOT IN ('installee')",
     {"op": "not", "args": [{"op": "in", "args": [{"property": "statut"}, ["installee"]]}]},
     {"wifi_figeac", "wifi_gourdon"}),
    ("rayon_m BETWEEN 50 AND 100", {"op": "between", "args": [{"property": "rayon_m"}, [50, 100]]},
     {"wifi_cahors_mairie", "wifi_cahors_eglise"}),
    ("rayon_m IS NULL", {"op": "isNull", "args": [{"property": "rayon_m"}]}, {"wifi_gourdon"}),
    ("rayon_m IS NOT NULL", {"op": "not", "args": [{"op": "isNull", "args": [{"property": "rayon_m"}]}]},
     ALL - {"wifi_gourdon"}),
    ("statut = 'installee' AND NOT (rayon_m > 60) OR code_insee = '46102'",
     {"op": "or", "args": [{"op": "and", "args": [
         {"op": "=", "args": [{"property": "statut"}, "installee"]},
         {"op": "not", "args": [{"op": ">", "args": [{"property": "rayon_m"}, 60]}]}]},
         {"op": "=", "args": [{"property": "code_insee"}, "46102"]}]},
     {"wifi_cahors_eglise", "wifi_figeac"}),
    ("date_mise_en_service > DATE('2021-01-01')",
     {"op": ">", "args": [P, {"date": "2021-01-01"}]}, {"wifi_cahors_eglise", "wifi_figeac"}),
]


@pytest.mark.parametrize(("text", "cql_json", "expected"), COMPARISONS, ids=[c[0] for c in COMPARISONS])
def test_comparison_like_in_between_null(ogc_client: TestClient, ogc_fx: OgcFixtures, text: str, cql_json: dict,
                                         expected: set[str]):
    assert both(ogc_client, ogc_fx, text, cql_json) == expected


TEMPORAL = [
    ("T_AFTER(date_mise_en_service, DATE('2021-03-15'))", {"op": "t_after", "args": [P, {"date": "2021-03-15"}]},
     {"wifi_figeac"}),
    ("T_BEFORE(date_mise_en_service, TIMESTAMP('2021-01-01T00:00:00Z'))",
     {"op": "t_before", "args": [P, {"timestamp": "2021-01-01T00:00:00Z"}]}, {"wifi_cahors_mairie"}),
    ("T_DURING(date_mise_en_service, INTERVAL('2020-01-01', '2022-01-01'))",
     {"op": "t_during", "args": [P, {"interval": ["2020-01-01", "2022-01-01"]}]}, {"wifi_cahors_eglise"}),
    ("T_DURING(date_mise_en_service, INTERVAL('2020-01-01', '..'))",
     {"op": "t_during", "args": [P, {"interval": ["2020-01-01", ".."]}]}, {"wifi_cahors_eglise", "wifi_figeac"}),
    ("T_EQUALS(date_mise_en_service, DATE('2023-09-01'))", {"op": "t_equals", "args": [P, {"date": "2023-09-01"}]},
     {"wifi_figeac"}),
    ("T_INTERSECTS(date_mise_en_service, INTERVAL('2019-06-01', '2021-03-15'))",
     {"op": "t_intersects", "args": [P, {"interval": ["2019-06-01", "2021-03-15"]}]},
     {"wifi_cahors_mairie", "wifi_cahors_eglise"}),
    ("T_DISJOINT(date_mise_en_service, INTERVAL('2019-06-01', '2021-03-15'))",
     {"op": "t_disjoint", "args": [P, {"interval": ["2019-06-01", "2021-03-15"]}]}, {"wifi_figeac"}),
    ("T_STARTS(date_mise_en_service, INTERVAL('2019-06-01', '2020-01-01'))",
     {"op": "t_starts", "args": [P, {"interval": ["2019-06-01", "2020-01-01"]}]}, {"wifi_cahors_mairie"}),
    ("T_FINISHES(date_mise_en_service, INTERVAL('2023-01-01', '2023-09-01'))",
     {"op": "t_finishes", "args": [P, {"interval": ["2023-01-01", "2023-09-01"]}]}, {"wifi_figeac"}),
    ("T_MEETS(date_mise_en_service, INTERVAL('2021-03-15', '2022-01-01'))",
     {"op": "t_meets", "args": [P, {"interval": ["2021-03-15", "2022-01-01"]}]}, {"wifi_cahors_eglise"}),
    ("T_METBY(date_mise_en_service, INTERVAL('2019-01-01', '2019-06-01'))",
     {"op": "t_metby", "args": [P, {"interval": ["2019-01-01", "2019-06-01"]}]}, {"wifi_cahors_mairie"}),
    ("T_CONTAINS(INTERVAL('2020-01-01', '2022-01-01'), date_mise_en_service)",
     {"op": "t_contains", "args": [{"interval": ["2020-01-01", "2022-01-01"]}, P]}, {"wifi_cahors_eglise"}),
    ("T_STARTEDBY(INTERVAL('2021-03-15', '2022-01-01'), date_mise_en_service)",
     {"op": "t_startedby", "args": [{"interval": ["2021-03-15", "2022-01-01"]}, P]}, {"wifi_cahors_eglise"}),
    ("T_FINISHEDBY(INTERVAL('2023-01-01', '2023-09-01'), date_mise_en_service)",
     {"op": "t_finishedby", "args": [{"interval": ["2023-01-01", "2023-09-01"]}, P]}, {"wifi_figeac"}),
    # An instant never overlaps an interval in Allen's sense (it would have to start before and end inside).
    ("T_OVERLAPS(date_mise_en_service, INTERVAL('2019-01-01', '2024-01-01'))",
     {"op": "t_overlaps", "args": [P, {"interval": ["2019-01-01", "2024-01-01"]}]}, set()),
    ("T_OVERLAPPEDBY(date_mise_en_service, INTERVAL('2019-01-01', '2024-01-01'))",
     {"op": "t_overlappedby", "args": [P, {"interval": ["2019-01-01", "2024-01-01"]}]}, set()),
]


@pytest.mark.parametrize(("text", "cql_json", "expected"), TEMPORAL, ids=[c[0] for c in TEMPORAL])
def test_temporal_functions_on_the_date_field(ogc_client: TestClient, ogc_fx: OgcFixtures, text: str, cql_json: dict,
                                              expected: set[str]):
    assert both(ogc_client, ogc_fx, text, cql_json) == expected


def _square(lon: float, lat: float, d: float) -> list:
    return [[[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]]]


def _wkt(ring: list) -> str:
    return "POLYGON((" + ", ".join(f"{x} {y}" for x, y in ring[0]) + "))"


AROUND_CAHORS = _square(*CAHORS, 0.01)
SPATIAL = [
    (f"S_INTERSECTS(geometry, BBOX({CAHORS[0] - .01}, {CAHORS[1] - .01}, {CAHORS[0] + .01}, {CAHORS[1] + .01}))",
     {"op": "s_intersects", "args": [D, {"bbox": [CAHORS[0] - .01, CAHORS[1] - .01, CAHORS[0] + .01,
                                                  CAHORS[1] + .01]}]},
     {"wifi_cahors_mairie", "wifi_cahors_eglise"}),
    (f"S_INTERSECTS(geometry, POINT({FIGEAC[0]} {FIGEAC[1]}))",
     {"op": "s_intersects", "args": [D, {"type": "Point", "coordinates": list(FIGEAC)}]}, {"wifi_figeac"}),
    (f"S_WITHIN(geometry, {_wkt(AROUND_CAHORS)})",
     {"op": "s_within", "args": [D, {"type": "Polygon", "coordinates": AROUND_CAHORS}]},
     {"wifi_cahors_mairie", "wifi_cahors_eglise"}),
    (f"S_DISJOINT(geometry, {_wkt(AROUND_CAHORS)})",
     {"op": "s_disjoint", "args": [D, {"type": "Polygon", "coordinates": AROUND_CAHORS}]},
     {"wifi_figeac", "wifi_gourdon"}),
]


@pytest.mark.parametrize(("text", "cql_json", "expected"), SPATIAL, ids=[c[0][:40] for c in SPATIAL])
def test_spatial_functions(ogc_client: TestClient, ogc_fx: OgcFixtures, text: str, cql_json: dict, expected: set[str]):
    assert both(ogc_client, ogc_fx, text, cql_json) == expected


def test_s_contains_on_polygons(ogc_client: TestClient, ogc_fx: OgcFixtures):
    url = "/ogc/collections/communes/items"
    point = f"POINT({CAHORS[0]} {CAHORS[1]})"
    assert select(ogc_client, ogc_fx, url, {"filter": f"S_CONTAINS(geometry, {point})"}) == {"commune_a"}
    line = f"LINESTRING({CAHORS[0]} {CAHORS[1]}, {FIGEAC[0]} {FIGEAC[1]})"
    assert select(ogc_client, ogc_fx, url, {"filter": f"S_CROSSES(geometry, {line})"}) == {"commune_a", "commune_b"}


def test_filter_crs_lambert93_and_lat_lon(ogc_client: TestClient, ogc_fx: OgcFixtures):
    to_l93 = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True)
    x, y = to_l93.transform(*CAHORS)
    text = f"S_INTERSECTS(geometry, BBOX({x - 500}, {y - 500}, {x + 500}, {y + 500}))"
    cahors = {"wifi_cahors_mairie", "wifi_cahors_eglise"}
    box = {"op": "s_intersects", "args": [D, {"bbox": [x - 500, y - 500, x + 500, y + 500]}]}
    assert both(ogc_client, ogc_fx, text, box, **{"filter-crs": EPSG2154}) == cahors
    lat_lon = f"S_INTERSECTS(geometry, POINT({FIGEAC[1]} {FIGEAC[0]}))"
    assert select(ogc_client, ogc_fx, WIFI, {"filter": lat_lon, "filter-crs": EPSG4326}) == {"wifi_figeac"}


def test_list_properties_filter_by_membership(ogc_client: TestClient, ogc_fx: OgcFixtures):
    url = "/ogc/collections/third_places/items"
    assert select(ogc_client, ogc_fx, url, {"filter": "services = 'visio'"}) == {"tl_cahors"}
    assert select(ogc_client, ogc_fx, url, {"filter": "services IN ('fablab', 'bureaux')"}) == {"tl_figeac"}
    contains = {"op": "a_contains", "args": [{"property": "services"}, ["coworking", "visio"]]}
    as_json = {"filter": json.dumps(contains), "filter-lang": "cql2-json"}
    assert select(ogc_client, ogc_fx, url, as_json) == {"tl_cahors"}


def test_queryables_are_a_json_schema_of_the_declared_fields(ogc_client: TestClient, registry: LayerRegistry):
    r = ogc_client.get("/ogc/collections/wifi_hotspots/queryables")
    assert r.headers["content-type"].startswith("application/schema+json")
    schema = r.json()
    layer = registry.get("wifi_hotspots")
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/ogc/collections/wifi_hotspots/queryables")
    props = schema["properties"]
    assert set(props) >= {"geometry", *(f.name for f in layer.public_fields())}
    assert props["geometry"]["format"] == "geometry-point"
    assert props["statut"] == {"title": "Statut", "type": "string", "enum": ["installee", "programmee", "hors service"]}
    assert props["rayon_m"]["type"] == "integer" and props["rayon_m"]["maximum"] == 500
    assert props["date_mise_en_service"]["format"] == "date"
    assert props["date_mise_en_service"]["x-ogc-role"] == "primary-instant"
    services = ogc_client.get("/ogc/collections/third_places/queryables").json()["properties"]["services"]
    assert services["type"] == "array" and "visio" in services["items"]["enum"]


FILTER_ERRORS = [
    ("statut = ", "cql2-text", "syntaxe"),
    ("statut == 'x'", "cql2-text", "syntaxe"),
    ("couleur = 'bleu'", "cql2-text", "couleur"),
    ("rayon_m = 'loin'", "cql2-text", "rayon_m"),
    ("lieu > 3", "cql2-text", "lieu"),
    ("T_AFTER(lieu, DATE('2020-01-01'))", "cql2-text", "lieu"),
    ("T_AFTER(date_mise_en_service, DATE('2020-02-30'))", "cql2-text", "2020-02-30"),
    ("geometry = 'x'", "cql2-text", "spatiales"),
    ("S_INTERSECTS(lieu, POINT(1 44))", "cql2-text", "lieu"),
    ("S_INTERSECTS(geometry, POINT(500 44))", "cql2-text", "domaine"),
    ("rayon_m + 1 > 3", "cql2-text", "arithmétique"),
    ("ACCENTI(lieu) = 'x'", "cql2-text", "accenti"),
    ('{"op": "=", "args": [{"property": "statut"}]}', "cql2-json", "invalide"),
    ('{"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [1, 2, 3, 4, 5, 6]}]}', "cql2-json", "bbox"),
    ("[1, 2]", "cql2-json", "condition"),
]


@pytest.mark.parametrize(("expression", "lang", "mentions"), FILTER_ERRORS, ids=[e[0][:40] for e in FILTER_ERRORS])
def test_filter_errors_are_400_with_the_reason(ogc_client: TestClient, expression: str, lang: str, mentions: str):
    r = ogc_client.get(WIFI, params={"filter": expression, "filter-lang": lang})
    assert r.status_code == 400, r.text
    problem = r.json()
    assert problem["parameter"] == "filter"
    assert mentions in problem["detail"], problem["detail"]
