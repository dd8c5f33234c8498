"""Real GIS clients against the real app served by uvicorn: GDAL's OAPIF driver, OWSLib, pygeofilter, pyproj.

What a GIS officer does from QGIS or ogr2ogr goes through the same driver code as these tests.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from factories import CAHORS, OgcFixtures
from owslib.ogcapi.features import Features
from pygeofilter.backends.cql2_json import to_cql2
from pygeofilter.parsers.cql2_text import parse as pygeofilter_parse
from pyproj import Transformer
from sqlalchemy import Engine, text

from geo_service.layers import LayerRegistry
from geo_service.settings import Settings

BBOX = (1.40, 44.40, 1.50, 44.50)  # around Cahors, lon/lat


@pytest.fixture(scope="module")
def server(settings: Settings, ogc_fx: OgcFixtures) -> Iterator[str]:
    """The real app under uvicorn on 127.0.0.1 (free port); yields the /ogc URL.

    uvicorn runs in its own process, not a thread: pyogrio calls GDAL without releasing the GIL, so a
    server thread in the test process would never answer the driver's HTTP requests.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "GEO_SERVICE_DATABASE_URL": settings.database_url or "", "GEO_SERVICE_MODE": "test"}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "geo_service.main:app_from_environment", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"], env=env)
    url = f"http://127.0.0.1:{port}/ogc"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("uvicorn n'a pas démarré")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def db_count(engine: Engine, layer: str, where: str = "TRUE", **params) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {layer} WHERE {where}"), params).scalar_one()


def published(layer_id: str, registry: LayerRegistry) -> str:
    return "validation_state = 'published'" if registry.get(layer_id).editable else "TRUE"


def ogrinfo(*args: str) -> str:
    result = subprocess.run(["ogrinfo", "-ro", *args], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def pyogrio_client(script: str, **values: object) -> object:
    """Run ``script`` (which prints JSON) in a fresh Python with pyogrio: the test process's own GDAL is cut down
    to the file formats the service reads (services/importers/framework/vector_files.py), the OAPIF driver included."""
    result = subprocess.run([sys.executable, "-c", script, json.dumps(values)], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- GDAL ---------------------------------------------------------------------------------------------------
def test_gdal_lists_every_public_collection(server: str, registry: LayerRegistry):
    listing = ogrinfo("-q", f"OAPIF:{server}")
    names = re.findall(r"^\d+: (\w+)", listing, flags=re.MULTILINE)
    assert names == [layer.id for layer in registry if layer.is_public]
    listed = pyogrio_client("import json, sys, pyogrio; v = json.loads(sys.argv[1]); "
                            "print(json.dumps(list(pyogrio.list_layers(v['url'])[:, 0])))", url=f"OAPIF:{server}")
    assert set(listed) == set(names)


@pytest.mark.parametrize("layer_id", ["wifi_hotspots", "third_places", "premises", "communes"])
def test_gdal_feature_count_equals_the_database(server: str, engine: Engine, registry: LayerRegistry,
                                                layer_id: str):
    summary = ogrinfo("-so", f"OAPIF:{server}", layer_id)
    count = int(re.search(r"Feature Count: (\d+)", summary).group(1))
    assert count == db_count(engine, layer_id, published(layer_id, registry))


def test_gdal_reads_with_a_bbox_and_an_attribute_filter(server: str, engine: Engine, ogc_fx: OgcFixtures):
    where = "statut = 'installee'"
    summary = ogrinfo("-so", "-spat", *map(str, BBOX), "-where", where, f"OAPIF:{server}", "wifi_hotspots")
    count = int(re.search(r"Feature Count: (\d+)", summary).group(1))
    expected = db_count(engine, "wifi_hotspots", "validation_state = 'published' AND statut = 'installee' AND "
                        "ST_Intersects(geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))",
                        x0=BBOX[0], y0=BBOX[1], x1=BBOX[2], y1=BBOX[3])
    assert count == expected >= 2  # at least the two fixture bornes of Cahors
    frame = pyogrio_client(
        "import json, sys, pyogrio; v = json.loads(sys.argv[1]); "
        "f = pyogrio.read_dataframe(v['url'], layer='wifi_hotspots', bbox=tuple(v['bbox']), where=v['where'], "
        "fid_as_index=True); m = f[f['lieu'] == 'Mairie de Cahors']; "
        "print(json.dumps({'rows': len(f), 'crs': f.crs.to_string(), 'statut': sorted(set(f['statut'])), "
        "'ids': [int(i) for i in f.index], 'mairie': [m.geometry.x.iloc[0], m.geometry.y.iloc[0]]}))",
        url=f"OAPIF:{server}", bbox=BBOX, where=where)
    assert frame["rows"] == expected
    assert frame["crs"] == "OGC:CRS84"  # our storageCrs, longitude first
    assert frame["statut"] == ["installee"]
    assert ogc_fx.ids["wifi_cahors_mairie"] in frame["ids"] and ogc_fx.ids["wifi_hidden"] not in frame["ids"]
    assert tuple(frame["mairie"]) == pytest.approx(CAHORS)


# -- OWSLib -------------------------------------------------------------------------------------------------
def test_owslib_collections_items_and_queryables(server: str, registry: LayerRegistry, ogc_fx: OgcFixtures):
    api = Features(server)
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in api.conformance()["conformsTo"]
    assert [c["id"] for c in api.collections()["collections"]] == [la.id for la in registry if la.is_public]
    assert api.collection("third_places")["title"] == registry.get("third_places").title
    page = api.collection_items("wifi_hotspots", limit=1, source="tests-factory", sortby=("lieu", "asc"))
    assert page["numberMatched"] == 4 and page["numberReturned"] == 1
    assert page["features"][0]["properties"]["lieu"] == "Halle de Gourdon"
    one = api.collection_item("wifi_hotspots", str(ogc_fx.ids["wifi_figeac"]))
    assert one["properties"]["lieu"] == "Mairie de Figeac"
    queryables = api.collection_queryables("wifi_hotspots")["properties"]
    assert queryables["statut"]["enum"] == ["installee", "programmee", "hors service"]
    assert queryables["date_mise_en_service"]["format"] == "date"


# -- CQL2 round trip with pygeofilter ------------------------------------------------------------------------
ROUND_TRIP = [
    ("statut = 'installee'", {"wifi_cahors_mairie", "wifi_cahors_eglise"}),
    ("rayon_m > 60 AND rayon_m <= 200", {"wifi_cahors_mairie", "wifi_figeac"}),
    ("lieu LIKE 'Mairie%'", {"wifi_cahors_mairie", "wifi_figeac"}),
    ("statut IN ('programmee', 'hors service')", {"wifi_figeac", "wifi_gourdon"}),
    ("rayon_m BETWEEN 50 AND 100", {"wifi_cahors_mairie", "wifi_cahors_eglise"}),
    ("rayon_m IS NULL OR statut = 'programmee'", {"wifi_gourdon", "wifi_figeac"}),
    ("S_INTERSECTS(geometry, POLYGON((1.4 44.4, 1.5 44.4, 1.5 44.5, 1.4 44.5, 1.4 44.4)))",
     {"wifi_cahors_mairie", "wifi_cahors_eglise"}),
    ("date_mise_en_service T_AFTER DATE('2021-01-01')", {"wifi_cahors_eglise", "wifi_figeac"}),
]


@pytest.mark.parametrize(("expression", "expected"), ROUND_TRIP, ids=[e for e, _ in ROUND_TRIP])
def test_cql2_round_trip_through_pygeofilter(server: str, ogc_fx: OgcFixtures, expression: str, expected: set[str]):
    """pygeofilter parses the expression and writes it as CQL2-JSON; the server must select the same features.

    pygeofilter 0.4 reads temporal operators infix (``a T_AFTER b``); the server takes the CQL2 1.0
    function form, so the text sent to the server is rewritten accordingly.
    """
    cql_json = json.loads(to_cql2(pygeofilter_parse(expression)))
    mine = {"op": "=", "args": [{"property": "source"}, "tests-factory"]}
    server_text = re.sub(r"(\w+) (T_\w+) (DATE\('[^']+'\))", r"\2(\1, \3)", expression)
    with httpx.Client(timeout=30) as client:
        as_json = client.get(f"{server}/collections/wifi_hotspots/items", params={
            "filter": json.dumps({"op": "and", "args": [cql_json, mine]}), "filter-lang": "cql2-json", "limit": 100})
        as_text = client.get(f"{server}/collections/wifi_hotspots/items", params={
            "filter": f"({server_text}) AND source = 'tests-factory'", "limit": 100})
    for response in (as_json, as_text):
        assert response.status_code == 200, response.text
        assert ogc_fx.keys("wifi_hotspots", {f["id"] for f in response.json()["features"]}) == expected


# -- Lambert-93 ---------------------------------------------------------------------------------------------
def test_lambert93_output_matches_pyproj_to_the_centimetre(server: str, engine: Engine):
    to_l93 = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True)
    with engine.connect() as conn:
        stored = {fid: (x, y) for fid, x, y in conn.execute(text(
            "SELECT fid, ST_X(geom), ST_Y(geom) FROM wifi_hotspots WHERE validation_state = 'published'"))}
    response = httpx.get(f"{server}/collections/wifi_hotspots/items", timeout=30,
                         params={"crs": "http://www.opengis.net/def/crs/EPSG/0/2154", "limit": 10000})
    assert response.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/2154>"
    features = response.json()["features"]
    assert len(features) == len(stored)
    for feature in features:
        expected = to_l93.transform(*stored[feature["id"]])
        assert feature["geometry"]["coordinates"] == pytest.approx(list(expected), abs=0.01)
