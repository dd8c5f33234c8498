"""Per-layer export (GeoJSON, GeoPackage, CSV): published rows only, with the licence and attribution."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pyogrio
import pytest
from click.testing import CliRunner
from factories import CAHORS, EDIT_SOURCE, Factory
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.cli.app import cli
from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.settings import Settings


@pytest.fixture(scope="module")
def rows(loaded_boundaries: Engine, registry: LayerRegistry) -> Iterator[dict[str, int]]:
    factory = Factory(registry)
    with loaded_boundaries.begin() as conn:
        ids = {"kept": factory.feature(conn, "wifi_hotspots", CAHORS, source=EDIT_SOURCE, lieu="Exportée",
                                       borne_id="EXPORT-1"),
               "deleted": factory.feature(conn, "wifi_hotspots", CAHORS, source=EDIT_SOURCE, lieu="Effacée",
                                          borne_id="EXPORT-2"),
               "proposed": factory.feature(conn, "wifi_hotspots", CAHORS, source=EDIT_SOURCE, lieu="Proposée",
                                           borne_id="EXPORT-3", validation_state="proposed")}
        conn.execute(text("UPDATE wifi_hotspots SET deleted_at = now() WHERE fid = :f"), {"f": ids["deleted"]})
    yield ids
    with loaded_boundaries.begin() as conn:
        factory.cleanup(conn)


@pytest.fixture(scope="module")
def client(settings: Settings, rows, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    # Export files go to a folder of the test's own, not the system temp folder's default.
    api = settings.api.model_copy(update={"export_dir": tmp_path_factory.mktemp("exports")})
    with TestClient(create_app(settings.model_copy(update={"api": api})), base_url="http://localhost") as c:
        yield c


def test_geojson_export_carries_licence_and_only_published_rows(client: TestClient, registry: LayerRegistry):
    r = client.get("/api/export/wifi_hotspots", params={"format": "geojson"})
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    doc = r.json()
    layer = registry.get("wifi_hotspots")
    assert doc["licence"] == layer.licence and doc["attribution"] == layer.attribution
    lieux = {f["properties"]["lieu"] for f in doc["features"]}
    assert "Exportée" in lieux and not {"Effacée", "Proposée"} & lieux


def test_csv_export_has_coordinates_and_licence_per_row(client: TestClient, registry: LayerRegistry):
    r = client.get("/api/export/wifi_hotspots", params={"format": "csv"})
    rows = [row for row in csv.DictReader(io.StringIO(r.text)) if row["borne_id"].startswith("EXPORT-")]
    assert [row["borne_id"] for row in rows] == ["EXPORT-1"]
    assert rows[0]["licence"] == registry.get("wifi_hotspots").licence
    assert rows[0]["attribution"] == registry.get("wifi_hotspots").attribution
    assert abs(float(rows[0]["lon"]) - CAHORS[0]) < 1e-6 and abs(float(rows[0]["lat"]) - CAHORS[1]) < 1e-6


def test_geopackage_export(client: TestClient, tmp_path, registry: LayerRegistry):
    r = client.get("/api/export/wifi_hotspots", params={"format": "gpkg"})
    assert r.status_code == 200
    path = tmp_path / "wifi.gpkg"
    path.write_bytes(r.content)
    frame = pyogrio.read_dataframe(path)
    assert "Exportée" in set(frame["lieu"]) and "Effacée" not in set(frame["lieu"])
    info = pyogrio.read_info(path)
    assert info["crs"] == "EPSG:4326"
    assert registry.get("wifi_hotspots").licence in str(pyogrio.read_info(path, layer="wifi_hotspots"))


def test_unknown_format_or_layer(client: TestClient):
    assert client.get("/api/export/wifi_hotspots", params={"format": "shp"}).status_code == 400
    assert client.get("/api/export/nope").status_code == 404


def test_cli_export(settings: Settings, tmp_path, rows):
    target = tmp_path / "bornes.csv"
    result = CliRunner().invoke(cli, ["export", "wifi_hotspots", "csv", "-o", str(target)],
                                env={"GEO_SERVICE_DATABASE_URL": settings.database_url}, catch_exceptions=False)
    assert result.exit_code == 0 and "licence" in result.output
    assert "EXPORT-1" in target.read_text(encoding="utf-8")
