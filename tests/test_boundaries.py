"""Boundary loading: the shared 2018 files, bad folders, the geo.api.gouv.fr client and the CLI error path."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Connection, Engine, text

from geo_service.services.importers.boundaries import BoundaryError, commune_count, load_from_api, load_from_dir
from geo_service.settings import Settings, TerritorySettings

API_FIXTURES = Path(__file__).parent / "fixtures" / "geo_api"
LOT = TerritorySettings()


def snapshot(conn: Connection) -> dict[str, object]:
    """Row counts and a digest of the boundary tables, to prove a failed load changed nothing."""
    return {
        "communes": tuple(conn.execute(text(
            "SELECT count(*), md5(string_agg(code_insee || ST_AsEWKB(geom)::text, ',' ORDER BY code_insee))"
            " FROM communes")).one()),
        "epci": tuple(conn.execute(text("SELECT count(*), md5(string_agg(siren, ',' ORDER BY siren)) FROM epci"))
        .one()),
        "territory": tuple(conn.execute(text("SELECT count(*), max(ST_Area(geom)) FROM territory")).one()),
        "dataset_loads": conn.execute(text("SELECT count(*) FROM dataset_loads")).scalar_one(),
    }


@pytest.fixture
def loaded_conn(loaded_boundaries: Engine, conn: Connection) -> Connection:
    """A rolled-back connection on a database that already holds the 2018 boundaries."""
    assert commune_count(conn) == 320
    return conn


# --- the shared 2018 files ------------------------------------------------------------------------
def test_load_shared_folder(loaded_conn: Connection, boundaries_dir: Path):
    conn = loaded_conn
    report = load_from_dir(conn, LOT, boundaries_dir)

    assert (report.communes, report.current_communes, report.epci) == (320, 312, 10)
    assert report.summary().startswith("320 communes (312 communes actuelles) et 10 EPCI chargés depuis ")
    assert Path(report.source).resolve() == boundaries_dir.resolve()
    # Replaced, not appended to what the session fixture loaded.
    assert conn.execute(text("SELECT count(*), count(DISTINCT code_insee_actuel), sum(population)"
                             " FROM communes")).one() == (320, 312, 176_473)
    assert conn.execute(text("SELECT count(*) FROM communes WHERE population IS NULL")).scalar_one() == 8
    assert conn.execute(text("SELECT count(*), sum(population) FROM epci")).one() == (10, 176_473)
    assert conn.execute(text("SELECT nom, communes_dans_le_territoire, communes_total FROM epci"
                             " WHERE siren = '200067361'")).one() == ("CC Grand-Figeac", 86, 92)
    # Every geometry is a valid MultiPolygon in EPSG:4326 (the files hold Polygons).
    assert conn.execute(text(
        "SELECT count(*) FROM (SELECT geom FROM communes UNION ALL SELECT geom FROM epci"
        " UNION ALL SELECT geom FROM territory) g"
        " WHERE ST_IsValid(geom) AND GeometryType(geom) = 'MULTIPOLYGON' AND ST_SRID(geom) = 4326"
    )).scalar_one() == 331
    # Each commune lies in exactly one EPCI polygon, and it is the EPCI it names.
    placed = conn.execute(text(
        "SELECT c.code_insee, array_agg(e.siren) AS sirens, c.epci_siren FROM communes c"
        " LEFT JOIN epci e ON ST_Within(ST_PointOnSurface(c.geom), e.geom) GROUP BY c.code_insee, c.epci_siren"
    )).all()
    assert len(placed) == 320
    assert [row for row in placed if row.sirens != [row.epci_siren]] == []
    # One territory row whose area is the communes' total area.
    code, nom, area, communes_area = conn.execute(text(
        "SELECT code, nom, ST_Area(geom::geography), (SELECT sum(ST_Area(geom::geography)) FROM communes)"
        " FROM territory")).one()
    assert (code, nom) == ("46", "Lot")
    assert area == pytest.approx(communes_area, rel=0.002)
    assert 5_100e6 < area < 5_300e6  # the Lot is about 5 200 km²
    source, details = conn.execute(text(
        "SELECT source, details FROM dataset_loads WHERE kind = 'boundaries' ORDER BY id DESC LIMIT 1")).one()
    assert source == str(boundaries_dir.resolve())
    assert details["communes"] == 320 and details["communes_actuelles"] == 312 and details["epci"] == 10


# --- bad folders --------------------------------------------------------------------------------------
def test_missing_folder_or_files(loaded_conn: Connection, tmp_path: Path, boundaries_dir: Path):
    before = snapshot(loaded_conn)
    with pytest.raises(BoundaryError, match="introuvable"):
        load_from_dir(loaded_conn, LOT, tmp_path / "absent")
    with pytest.raises(BoundaryError) as empty:
        load_from_dir(loaded_conn, LOT, tmp_path)
    assert "manquant" in str(empty.value)
    assert "communes-46.geojson" in str(empty.value) and "epci-46.geojson" in str(empty.value)
    (tmp_path / "communes-46.geojson").write_bytes((boundaries_dir / "communes-46.geojson").read_bytes())
    with pytest.raises(BoundaryError) as half:
        load_from_dir(loaded_conn, LOT, tmp_path)
    assert "epci-46.geojson" in str(half.value) and "communes-46.geojson" not in str(half.value)
    # Another territory's files are looked for under their own names.
    with pytest.raises(BoundaryError, match="communes-12.geojson"):
        load_from_dir(loaded_conn, TerritorySettings(departement="12", name="Aveyron"), boundaries_dir)
    assert snapshot(loaded_conn) == before


def _square(x: float, y: float, size: float = 0.05) -> dict:
    ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
    return {"type": "Polygon", "coordinates": [ring]}


def _commune(code: str, siren: str = "200000001", geometry: dict | None = None) -> dict:
    return {"type": "Feature", "geometry": geometry or _square(1.5, 44.5),
            "properties": {"code_insee": code, "nom": f"Commune {code}", "code_insee_actuel": code,
                           "nom_actuel": f"Commune {code}", "population": 100, "epci_siren": siren,
                           "epci_nom": "CC d'Essai"}}


TINY = {
    "communes": [_commune("46901", geometry=_square(1.50, 44.5)), _commune("46902", geometry=_square(1.55, 44.5))],
    "epci": [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[1.50, 44.5], [1.60, 44.5], [1.60, 44.55], [1.50, 44.55], [1.50, 44.5]]]},
        "properties": {"siren": "200000001", "nom": "CC d'Essai", "communes_dans_le_lot": 2,
                       "communes_total": 2, "population_lot": 200}}],
}


def _write_folder(folder: Path, data: dict) -> Path:
    for kind in ("communes", "epci"):
        content = data[kind]
        raw = content if isinstance(content, str) else json.dumps(
            {"type": "FeatureCollection", "features": content})
        (folder / f"{kind}-46.geojson").write_text(raw, encoding="utf-8")
    return folder


def _broken(change) -> dict:
    data = copy.deepcopy(TINY)
    change(data)
    return data


BROKEN = {
    "other departement": (_broken(lambda d: d["communes"].append(_commune("12145"))), "12145"),
    "invalid JSON": (_broken(lambda d: d.update(communes='{"type": "FeatureCollection", "features": [')),
                     "JSON invalide"),
    "not a collection": (_broken(lambda d: d.update(epci="[]")), "FeatureCollection"),
    "missing name": (_broken(lambda d: d["communes"][0]["properties"].pop("nom")), "« nom » manquante"),
    "point geometry": (_broken(lambda d: d["communes"][1].update(
        geometry={"type": "Point", "coordinates": [1.5, 44.5]})), "reçu Point"),
    "Lambert-93": (_broken(lambda d: d["communes"][0].update(geometry=_square(580_000, 6_380_000, 1000))),
                   "WGS84"),
    "no commune": (_broken(lambda d: d.update(communes=[])), "aucune commune du département 46"),
    "unknown EPCI": (_broken(lambda d: d["communes"][0]["properties"].update(epci_siren="200099999")),
                     "EPCI 200099999"),
    "duplicate code": (_broken(lambda d: d["communes"].append(_commune("46901", geometry=_square(1.6, 44.5)))),
                       "en double"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_malformed_folder_changes_nothing(loaded_conn: Connection, tmp_path: Path, case: str):
    data, expected = BROKEN[case]
    before = snapshot(loaded_conn)
    with pytest.raises(BoundaryError) as error:
        load_from_dir(loaded_conn, LOT, _write_folder(tmp_path, data))
    assert expected in str(error.value)
    assert snapshot(loaded_conn) == before


def test_tiny_folder_repairs_geometry(loaded_conn: Connection, tmp_path: Path):
    """A self-intersecting ("bow-tie") polygon is stored as a valid MultiPolygon, not refused."""
    bowtie = {"type": "Polygon", "coordinates": [[[1.60, 44.5], [1.65, 44.55], [1.65, 44.5], [1.60, 44.55],
                                                  [1.60, 44.5]]]}
    data = _broken(lambda d: d["communes"].append(_commune("46903", geometry=bowtie)))
    report = load_from_dir(loaded_conn, LOT, _write_folder(tmp_path, data))
    assert (report.communes, report.current_communes, report.epci) == (3, 3, 1)
    assert loaded_conn.execute(text(
        "SELECT ST_IsValid(geom), GeometryType(geom), ST_NumGeometries(geom) FROM communes"
        " WHERE code_insee = '46903'")).one() == (True, "MULTIPOLYGON", 2)
    assert loaded_conn.execute(text("SELECT population, communes_dans_le_territoire FROM epci")).one() == (200, 2)


# --- geo.api.gouv.fr ------------------------------------------------------------------------------
class FakeGeoApi:
    """A local stand-in for geo.api.gouv.fr serving the fixtures; ``failures`` maps a path to a status."""

    routes = {
        "/departements/46/communes": "departements-46-communes.geojson",
        "/epcis": "epcis-46.json",
        "/epcis/200000001/communes": "epcis-200000001-communes.json",
        "/epcis/200000002/communes": "epcis-200000002-communes.json",
    }

    def __init__(self) -> None:
        self.failures: dict[str, int] = {}
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                url = urlsplit(self.path)
                api.requests.append((url.path, parse_qs(url.query)))
                status = api.failures.get(url.path, 200 if url.path in api.routes else 404)
                body = (API_FIXTURES / api.routes[url.path]).read_bytes() if status == 200 else b"erreur"
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def fake_api() -> Iterator[FakeGeoApi]:
    api = FakeGeoApi()
    thread = threading.Thread(target=api.server.serve_forever, daemon=True)
    thread.start()
    yield api
    api.server.shutdown()
    api.server.server_close()


def test_load_from_api(loaded_conn: Connection, fake_api: FakeGeoApi):
    conn = loaded_conn
    report = load_from_api(conn, LOT, fake_api.url + "/")
    assert (report.communes, report.current_communes, report.epci) == (4, 4, 2)
    assert report.summary() == f"4 communes (4 communes actuelles) et 2 EPCI chargés depuis {fake_api.url}"
    communes_query = dict(fake_api.requests[0][1])
    assert fake_api.requests[0][0] == "/departements/46/communes"
    assert communes_query["format"] == ["geojson"] and communes_query["geometry"] == ["contour"]

    rows = conn.execute(text("SELECT code_insee, code_insee_actuel, nom, nom_actuel, population, epci_siren,"
                             " epci_nom, GeometryType(geom) FROM communes ORDER BY code_insee")).all()
    assert [tuple(r) for r in rows] == [
        ("46901", "46901", "Essai-Nord-Ouest", "Essai-Nord-Ouest", 120, "200000001", "CC d'Essai Ouest",
         "MULTIPOLYGON"),
        ("46902", "46902", "Essai-Sud-Ouest", "Essai-Sud-Ouest", 340, "200000001", "CC d'Essai Ouest",
         "MULTIPOLYGON"),
        ("46903", "46903", "Essai-Nord-Est", "Essai-Nord-Est", 560, "200000002", "CC d'Essai Est",
         "MULTIPOLYGON"),
        ("46904", "46904", "Essai-Sud-Est", "Essai-Sud-Est", 80, "200000002", "CC d'Essai Est",
         "MULTIPOLYGON"),
    ]
    epcis = conn.execute(text(
        "SELECT e.siren, e.nom, e.population, e.communes_dans_le_territoire, e.communes_total,"
        " GeometryType(e.geom), ST_Equals(e.geom, (SELECT ST_Union(c.geom) FROM communes c"
        "   WHERE c.epci_siren = e.siren)), ST_Area(e.geom)"
        " FROM epci e ORDER BY siren")).all()
    assert [tuple(e) for e in epcis] == [
        ("200000001", "CC d'Essai Ouest", 460, 2, 2, "MULTIPOLYGON", True, pytest.approx(0.0201)),
        ("200000002", "CC d'Essai Est", 640, 2, 5, "MULTIPOLYGON", True, pytest.approx(0.02)),
    ]
    territory = conn.execute(text(
        "SELECT code, nom, ST_NumGeometries(geom), ST_Area(geom),"
        " ST_Contains(geom, ST_SetSRID(ST_MakePoint(1.55, 44.65), 4326)) FROM territory")).all()
    assert [tuple(t) for t in territory] == [("46", "Lot", 2, pytest.approx(0.0401), True)]
    assert conn.execute(text("SELECT source, details->>'origine', (details->>'communes')::int FROM dataset_loads"
                             " ORDER BY id DESC LIMIT 1")).one() == (fake_api.url, "api", 4)


@pytest.mark.parametrize(("path", "status"), [("/departements/46/communes", 500), ("/epcis", 503),
                                              ("/epcis/200000002/communes", 404)])
def test_api_http_error_changes_nothing(loaded_conn: Connection, fake_api: FakeGeoApi, path: str, status: int):
    fake_api.failures[path] = status
    before = snapshot(loaded_conn)
    with pytest.raises(BoundaryError) as error:
        load_from_api(loaded_conn, LOT, fake_api.url)
    assert f"{fake_api.url}{path} a répondu « {status}" in str(error.value)
    assert snapshot(loaded_conn) == before


def test_api_unreachable_or_unknown_departement(loaded_conn: Connection, fake_api: FakeGeoApi):
    before = snapshot(loaded_conn)
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with pytest.raises(BoundaryError, match="impossible de joindre"):
        load_from_api(loaded_conn, LOT, f"http://127.0.0.1:{closed_port}")
    # The fake API only knows the Lot: another département is a 404, not an empty load.
    with pytest.raises(BoundaryError, match="404"):
        load_from_api(loaded_conn, TerritorySettings(departement="12", name="Aveyron"), fake_api.url)
    assert snapshot(loaded_conn) == before


# --- command line -------------------------------------------------------------------------------------
def test_cli_reports_missing_folder_in_french(loaded_boundaries: Engine, settings: Settings):
    script = Path(sys.executable).with_name("geo-service")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "geo_service.cli"]
    env = {**os.environ, "GEO_SERVICE_DATABASE_URL": settings.database_url or ""}
    result = subprocess.run([*command, "load", "boundaries", "--from", "/nonexistent"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Erreur : dossier de limites introuvable : /nonexistent" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    with loaded_boundaries.connect() as conn:
        assert commune_count(conn) == 320
