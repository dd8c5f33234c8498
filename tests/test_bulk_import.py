"""Bulk import through the editing rules (``services/importers/bulk_import.py``, ``geo-service edit import``,
``/admin/import``).

Files are written by the tests in each published format (GeoJSON, CSV in degrees and in Lambert-93,
GeoPackage, zipped shapefile); every assertion reads the database back: what was created, that a refused
import wrote nothing, that a re-import changes nothing, that undoing an import restores every feature
exactly, that a contributor's rows are proposals inside its perimeter only, and that a killed import leaves
the database as it was.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
from conftest import CLI, PASSWORD
from factories import EDIT_SOURCE, EpciPoints, epci_world
from fastapi.testclient import TestClient
from pyproj import Transformer
from shapely.geometry import Point
from sqlalchemy import Connection, Engine, text

from geo_service.errors import Conflict, ImportFileError
from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services.editing import accounts, history
from geo_service.services.editing.accounts import Principal
from geo_service.services.editing.feature_writes import EditContext, EditRules
from geo_service.services.importers import bulk_import
from geo_service.settings import Settings

TO_L93 = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True)


@pytest.fixture(scope="module")
def points(loaded_boundaries: Engine, registry: LayerRegistry) -> Iterator[EpciPoints]:
    yield from importing_accounts(loaded_boundaries, registry)


def importing_accounts(loaded_boundaries: Engine, registry: LayerRegistry) -> Iterator[EpciPoints]:
    """An administrator and a Grand Cahors contributor (Wi-Fi convention) for the module; their rows removed after."""
    with epci_world(loaded_boundaries, registry, "imp", reference="CONV-IMPORT") as found:
        yield found
        with loaded_boundaries.begin() as conn:
            # Rows the pages imported under their default provenance (« Import de … ») too, not only tests-edit.
            for layer in ("wifi_hotspots", "white_zones"):
                conn.execute(text(f"DELETE FROM {layer} WHERE updated_by IN ('imp-admin', 'imp-contrib')"))


def context(conn: Connection, registry: LayerRegistry, settings: Settings, username: str) -> EditContext:
    account = accounts.get_account(conn, username)
    principal = Principal(account.username, account.role, account.id, account.epci_siren, via="cli")
    return EditContext(principal, "cli", registry, EditRules.from_settings(settings),
                       change_set=bulk_import.new_change_set())


def near(point: tuple[float, float], i: int) -> tuple[float, float]:
    """A point a few hundred metres from ``point`` (inside the same EPCI), distinct for each ``i``."""
    return round(point[0] + 0.002 * (i % 5), 6), round(point[1] + 0.002 * (i // 5), 6)


def bornes_geojson(path: Path, rows: list[tuple[str, tuple[float, float], dict]]) -> Path:
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": list(xy)},
                 "properties": {"borne_id": key, "lieu": "Mairie", "ssid": "WIFI public lotois",
                                "statut": "installee", **props}} for key, xy, props in rows]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


MAPPING = {"borne_id": "borne_id", "lieu": "lieu", "ssid": "ssid", "statut": "statut"}


def mapping(**options) -> bulk_import.ColumnMapping:
    return bulk_import.ColumnMapping("wifi_hotspots", options.pop("columns", MAPPING), source=EDIT_SOURCE, **options)


def run(engine: Engine, registry: LayerRegistry, settings: Settings, path: Path, column_mapping, *,
        user: str = "imp-admin", commit: bool = True) -> bulk_import.BulkReport:
    with engine.begin() as conn:
        return bulk_import.run(conn, context(conn, registry, settings, user), path, path.name, column_mapping,
                               commit=commit)


def rows_of(engine: Engine, prefix: str) -> dict[str, tuple]:
    with engine.connect() as conn:
        return {r[0]: tuple(r[1:]) for r in conn.execute(text(
            "SELECT borne_id, statut, version, validation_state, deleted_at IS NOT NULL, code_insee, "
            "ST_X(geom), ST_Y(geom) FROM wifi_hotspots WHERE borne_id LIKE :p"), {"p": prefix + "%"})}


def history_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM feature_history")).scalar_one()


def test_a_geojson_file_is_imported_once_and_a_reimport_changes_nothing(engine, registry, settings, points,
                                                                       tmp_path):
    path = bornes_geojson(tmp_path / "bornes.geojson",
                          [(f"GJ-{i}", near(points.inside, i), {}) for i in range(3)])
    report = run(engine, registry, settings, path, mapping())
    assert (report.committed, report.read, report.created, report.rejected) == (True, 3, 3, [])
    stored = rows_of(engine, "GJ-")
    assert sorted(stored) == ["GJ-0", "GJ-1", "GJ-2"]
    assert {row[2] for row in stored.values()} == {"published"}
    # The commune comes from the point when no column gives it.
    with engine.connect() as conn:
        commune = conn.execute(text("SELECT code_insee_actuel FROM communes WHERE ST_Covers(geom, "
                                    "ST_SetSRID(ST_Point(:x, :y), 4326))"),
                               {"x": points.inside[0], "y": points.inside[1]}).scalar_one()
        logged = conn.execute(text("SELECT count(*), count(DISTINCT change_set), min(path) FROM feature_history "
                                   "WHERE change_set = :cs"), {"cs": report.change_set}).one()
    assert stored["GJ-0"][4] == commune
    assert tuple(logged) == (3, 1, "cli")
    before = history_count(engine)
    again = run(engine, registry, settings, path, mapping())
    assert (again.unchanged, again.created, again.updated) == (3, 0, 0)
    assert rows_of(engine, "GJ-") == stored
    assert history_count(engine) == before


def test_every_rejected_row_is_reported_and_nothing_is_written(engine, registry, settings, points, tmp_path):
    x, y = TO_L93.transform(*points.inside)
    paris_x, paris_y = TO_L93.transform(2.35, 48.85)
    lines = ["ID;LIEU;RESEAU;ETAT;X;Y",
             f"L93-1;Mairie;WIFI;installee;{x:.2f};{y:.2f}",          # good
             f"L93-2;Salle;WIFI;allumee;{x + 50:.2f};{y:.2f}",        # unknown code
             f"L93-3;;WIFI;installee;{x + 100:.2f};{y:.2f}",          # missing required field
             f"L93-4;Paris;WIFI;installee;{paris_x:.2f};{paris_y:.2f}",  # outside the territory
             f"L93-1;Encore;WIFI;installee;{x + 150:.2f};{y:.2f}",    # key twice in the file
             f"L93-6;Place;WIFI;installee;{x + 200:.2f};abc",          # not a number
             f"L93-7;Place;WIFI;installee;{x:.2f};{y:.2f};de trop"]    # a separator too many
    path = tmp_path / "bornes_l93.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    columns = {"ID": "borne_id", "LIEU": "lieu", "RESEAU": "ssid", "ETAT": "statut"}
    before = history_count(engine)
    report = run(engine, registry, settings, path, mapping(columns=columns, x="X", y="Y", crs="EPSG:2154"))
    assert not report.committed
    by_line = {issue.line: issue for issue in report.rejected}
    assert sorted(by_line) == [3, 4, 5, 6, 7, 8]
    assert (by_line[3].column, by_line[3].value) == ("ETAT", "allumee") and "hors de la liste" in by_line[3].reason
    assert by_line[4].column == "LIEU" and "obligatoire" in by_line[4].reason
    assert by_line[5].column == "géométrie" and "hors du territoire" in by_line[5].reason
    assert by_line[6].column == "ID" and "déjà ligne 2" in by_line[6].reason
    assert by_line[7].column == "géométrie"
    assert by_line[8].column == "(ligne)" and "7 champs au lieu de 6" in by_line[8].reason
    assert rows_of(engine, "L93-") == {}
    assert history_count(engine) == before
    # The same file without its faulty rows goes in, at the place pyproj gives.
    path.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    good = run(engine, registry, settings, path, mapping(columns=columns, x="X", y="Y", crs="EPSG:2154"))
    assert good.created == 1
    lon, lat = rows_of(engine, "L93-")["L93-1"][5:]
    assert abs(lon - points.inside[0]) < 1e-7 and abs(lat - points.inside[1]) < 1e-7


def test_lambert93_numbers_sent_as_degrees_are_refused(engine, registry, settings, points, tmp_path):
    x, y = TO_L93.transform(*points.inside)
    path = tmp_path / "degres.csv"
    path.write_text(f"borne_id,lieu,ssid,statut,lon,lat\nDEG-1,Mairie,WIFI,installee,{x:.1f},{y:.1f}\n",
                    encoding="utf-8")
    report = run(engine, registry, settings, path, mapping(x="lon", y="lat", crs="EPSG:4326"))
    assert [(i.line, i.column) for i in report.rejected] == [(2, "géométrie")]
    assert rows_of(engine, "DEG-") == {}


def test_geopackage_and_zipped_shapefile(engine, registry, settings, points, tmp_path):
    frame = gpd.GeoDataFrame(
        {"borne_id": ["GPKG-1", "GPKG-2"], "lieu": ["Mairie", "Halle"], "ssid": ["WIFI", "WIFI"],
         "statut": ["installee", "programmee"]},
        geometry=[Point(near(points.inside, 7)), Point(near(points.inside, 8))], crs="EPSG:4326")
    gpkg = tmp_path / "bornes.gpkg"
    frame.to_file(gpkg, driver="GPKG")
    assert run(engine, registry, settings, gpkg, mapping()).created == 2
    shp_dir = tmp_path / "shp"
    shp_dir.mkdir()
    # A shapefile in Lambert-93, as GIS tools of French administrations often write them.
    frame.assign(borne_id=["SHP-1", "SHP-2"]).to_crs("EPSG:2154").to_file(shp_dir / "bornes.shp")
    archive = tmp_path / "bornes_shp.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for member in shp_dir.iterdir():
            zf.write(member, member.name)
    preview = bulk_import.preview(archive, archive.name, registry.get("wifi_hotspots"))
    assert preview.kind == "vector" and preview.rows == 2 and preview.suggested == MAPPING
    assert preview.sample[0]["géométrie"].startswith("POINT (1.")  # shown in degrees, in the layer's terms
    assert run(engine, registry, settings, archive, mapping()).created == 2
    shp = rows_of(engine, "SHP-")
    gpkg_rows = rows_of(engine, "GPKG-")
    for a, b in (("SHP-1", "GPKG-1"), ("SHP-2", "GPKG-2")):
        assert abs(shp[a][5] - gpkg_rows[b][5]) < 1e-7 and abs(shp[a][6] - gpkg_rows[b][6]) < 1e-7


def test_a_self_intersecting_polygon_is_refused(engine, registry, settings, points, tmp_path):
    lon, lat = points.inside
    bowtie = [[lon, lat], [lon + 0.01, lat + 0.01], [lon + 0.01, lat], [lon, lat + 0.01], [lon, lat]]
    path = tmp_path / "zones.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "Polygon", "coordinates": [bowtie]},
        "properties": {"kind": "mobile", "technologie": "4G", "operateur": "tous", "source_calcul": "declaree"}}]}),
        encoding="utf-8")
    columns = {name: name for name in ("kind", "technologie", "operateur", "source_calcul")}
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM white_zones")).scalar_one()
    report = run(engine, registry, settings, path, bulk_import.ColumnMapping("white_zones", columns))
    assert [(i.column, "invalide" in i.reason) for i in report.rejected] == [("géométrie", True)]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM white_zones")).scalar_one() == count


def test_a_mapping_without_a_required_field_is_refused_before_reading(engine, registry, settings, points,
                                                                     tmp_path):
    path = bornes_geojson(tmp_path / "b.geojson", [("MAP-1", points.inside, {})])
    with pytest.raises(ImportFileError, match="Lieu"):
        run(engine, registry, settings, path, mapping(columns={"borne_id": "borne_id", "ssid": "ssid",
                                                               "statut": "statut"}))
    with pytest.raises(ImportFileError, match="inconnus"):
        run(engine, registry, settings, path, mapping(columns={**MAPPING, "x": "altitude"}))


def test_a_contributor_imports_proposals_inside_its_perimeter_only(engine, registry, settings, points, tmp_path):
    rows = [("EPCI-1", near(points.inside, 1), {}), ("EPCI-2", near(points.inside, 2), {}),
            ("EPCI-3", points.outside, {})]
    path = bornes_geojson(tmp_path / "epci.geojson", rows)
    refused = run(engine, registry, settings, path, mapping(), user="imp-contrib")
    assert [(i.line, i.column) for i in refused.rejected] == [(3, "géométrie")]
    assert "périmètre" in refused.rejected[0].reason
    assert rows_of(engine, "EPCI-") == {}
    bornes_geojson(path, rows[:2])
    accepted = run(engine, registry, settings, path, mapping(), user="imp-contrib")
    assert (accepted.committed, accepted.proposed, accepted.created) == (True, 2, 0)
    assert {row[2] for row in rows_of(engine, "EPCI-").values()} == {"proposed"}
    with engine.connect() as conn:
        pending = conn.execute(text("SELECT count(*) FROM change_requests WHERE status = 'pending' "
                                    "AND submitted_by = 'imp-contrib'")).scalar_one()
    assert pending == 2


def test_undoing_an_import_restores_every_feature_exactly(engine, registry, settings, points, tmp_path):
    layer = registry.get("wifi_hotspots")
    path = bornes_geojson(tmp_path / "v1.geojson", [("UNDO-1", near(points.inside, 3), {"statut": "programmee"})])
    run(engine, registry, settings, path, mapping())
    with engine.connect() as conn:
        fid = conn.execute(text("SELECT fid FROM wifi_hotspots WHERE borne_id = 'UNDO-1'")).scalar_one()
        original = history.snapshot(conn, layer, fid)
    # The second file moves and changes UNDO-1 and adds UNDO-2.
    bornes_geojson(path, [("UNDO-1", near(points.inside, 4), {"statut": "installee", "lieu": "Église"}),
                          ("UNDO-2", near(points.inside, 5), {})])
    second = run(engine, registry, settings, path, mapping())
    assert (second.updated, second.created) == (1, 1)
    with engine.begin() as conn:
        undone = bulk_import.revert_change_set(conn, context(conn, registry, settings, "imp-admin"), second.change_set)
    assert (undone.reverted, undone.deleted) == (1, 1)
    with engine.connect() as conn:
        now = history.snapshot(conn, layer, fid)
    assert (now.properties, now.ewkb) == (original.properties, original.ewkb)
    assert rows_of(engine, "UNDO-2")["UNDO-2"][3] is True  # deleted, logically: it can be restored
    with engine.begin() as conn, pytest.raises(Conflict):
        bulk_import.revert_change_set(conn, context(conn, registry, settings, "imp-admin"), second.change_set)
    # Importing the second file again brings it back (the deleted borne is restored).
    again = run(engine, registry, settings, path, mapping())
    assert (again.updated, again.created) == (2, 0)
    assert {k: v[3] for k, v in rows_of(engine, "UNDO-").items()} == {"UNDO-1": False, "UNDO-2": False}


def test_a_killed_import_leaves_the_database_as_it_was(engine, registry, settings, points, tmp_path):
    app = "geo-service-bulk-kill"
    rows = [(f"KILL-{i}", near(points.inside, i % 40), {}) for i in range(3000)]
    path = bornes_geojson(tmp_path / "kill.geojson", rows)
    before = history_count(engine)
    env = {**os.environ, "GEO_SERVICE_DATABASE_URL": settings.database_url, "PGAPPNAME": app}
    process = subprocess.Popen([CLI, "edit", "import", str(path), "--layer", "wifi_hotspots", "--as", "imp-admin",
                                "--source", EDIT_SOURCE], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    seen_writing = False
    deadline = time.monotonic() + 240
    with engine.connect() as watch:
        while not seen_writing and process.poll() is None and time.monotonic() < deadline:
            # Written but not committed: visible only as the import's own open transaction's progress.
            seen_writing = bool(watch.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app "
                "AND query LIKE '%feature_history%'"), {"app": app}).scalar())
            watch.rollback()
            time.sleep(0.05)
        assert seen_writing, "the import ended before it was seen writing"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        while watch.execute(text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :app"),
                            {"app": app}).scalar():
            watch.rollback()
            time.sleep(0.05)
    assert process.returncode == -signal.SIGKILL
    assert rows_of(engine, "KILL-") == {}
    assert history_count(engine) == before


# -- the web pages -------------------------------------------------------------------------------------------------
def token_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest.fixture(scope="module")
def web(settings: Settings, points: EpciPoints, tmp_path_factory) -> Iterator[tuple[TestClient, Settings]]:
    folder = tmp_path_factory.mktemp("uploads")
    small = settings.model_copy(update={"editing": replace_editing(settings, upload_dir=folder,
                                                                   max_upload_bytes=200_000)})
    with TestClient(create_app(small), base_url="http://localhost") as client:
        token = token_of(client.get("/admin/login").text)
        r = client.post("/admin/login", data={"username": "imp-admin", "password": PASSWORD, "csrf_token": token},
                        follow_redirects=False)
        assert r.status_code == 303
        yield client, small


def replace_editing(settings: Settings, **changes):
    return settings.editing.model_copy(update=changes)


def upload(client: TestClient, path: Path, layer: str = "wifi_hotspots"):
    token = token_of(client.get("/admin/import").text)
    return client.post("/admin/import", data={"layer": layer, "csrf_token": token},
                       files={"file": (path.name, path.read_bytes())}, follow_redirects=False)


def test_the_admin_pages_preview_check_import_and_undo(web, engine, points, tmp_path):
    client, _ = web
    good = [(f"WEB-{i}", near(points.inside, 10 + i), {}) for i in range(2)]
    path = bornes_geojson(tmp_path / "web.geojson", [*good, ("WEB-X", near(points.inside, 20), {"statut": "??"})])
    sent = upload(client, path)
    assert sent.status_code == 303
    preview_url = sent.headers["location"]
    page = client.get(preview_url)
    assert page.status_code == 200
    assert "WEB-X" in page.text and 'name="map__borne_id"' in page.text
    assert re.search(r'<option value="statut" selected>statut</option>', page.text)
    form = {"csrf_token": token_of(page.text), "layer": "wifi_hotspots",
            **{f"map__{field}": column for column, field in MAPPING.items()}}
    checked = client.post(preview_url.split("?")[0], data={**form, "action": "commit"})
    assert checked.status_code == 422
    assert "1 ligne refusée : rien n&#39;a été écrit" in checked.text or "1 ligne refusée" in checked.text
    assert "« ?? » hors de la liste" in checked.text or "hors de la liste" in checked.text
    assert rows_of(engine, "WEB-") == {}
    bornes_geojson(path, good)
    sent = upload(client, path)
    form["csrf_token"] = token_of(client.get(sent.headers["location"]).text)
    done = client.post(sent.headers["location"].split("?")[0], data={**form, "action": "commit"})
    assert done.status_code == 200 and "Import enregistré" in done.text
    assert sorted(rows_of(engine, "WEB-")) == ["WEB-0", "WEB-1"]
    change_set = re.search(r"<code>(lot-[^<]+)</code>", done.text).group(1)
    # The file is gone once imported: its page answers 404.
    assert client.get(sent.headers["location"]).status_code == 404
    index = client.get("/admin/import")
    assert change_set in index.text
    # Without the form's token nothing is undone.
    refused = client.post("/admin/import/undo", data={"change_set": change_set, "csrf_token": "faux"})
    assert refused.status_code == 403
    assert {v[3] for v in rows_of(engine, "WEB-").values()} == {False}
    undone = client.post("/admin/import/undo", data={"change_set": change_set, "csrf_token": token_of(index.text)},
                         follow_redirects=False)
    assert undone.status_code == 303
    assert {v[3] for v in rows_of(engine, "WEB-").values()} == {True}


def test_an_upload_above_the_limit_is_refused(web, points, tmp_path):
    client, small = web
    path = tmp_path / "gros.csv"
    path.write_bytes(b"borne_id,lieu\n" + b"X,Y\n" * (small.editing.max_upload_bytes // 4 + 10))
    folder = small.editing.upload_dir
    kept = set(folder.iterdir())
    answer = upload(client, path)
    assert answer.status_code == 413
    assert "taille maximale" in answer.json()["detail"]
    assert set(folder.iterdir()) == kept, "nothing of the refused file stays on disk"


def test_a_file_of_another_format_is_refused_before_being_kept(web, tmp_path):
    client, small = web
    pdf = tmp_path / "plan.pdf"
    pdf.write_bytes(b"%PDF-1.7 ...")
    kept = set(small.editing.upload_dir.iterdir())
    answer = upload(client, pdf)
    assert answer.status_code == 422
    assert "son contenu est un PDF" in answer.text and "GeoPackage (.gpkg)" in answer.text
    assert set(small.editing.upload_dir.iterdir()) == kept


def test_another_account_cannot_use_an_upload(web, settings, points, tmp_path):
    client, small = web
    sent = upload(client, bornes_geojson(tmp_path / "a.geojson", [("OWN-1", points.inside, {})]))
    with TestClient(create_app(small), base_url="http://localhost") as other:
        token = token_of(other.get("/admin/login").text)
        other.post("/admin/login", data={"username": "imp-contrib", "password": PASSWORD, "csrf_token": token})
        assert other.get(sent.headers["location"]).status_code == 404
        assert "Données ouvertes" not in other.get("/admin/import").text


def test_an_open_data_file_is_imported_from_the_admin_page(web, engine):
    client, _ = web
    fixture = Path(__file__).parent / "fixtures" / "opendata" / "lieux-de-mediation-numerique.csv"
    token = token_of(client.get("/admin/import").text)
    answer = client.post("/admin/import/open-data", data={"kind": "mednum", "csrf_token": token, "check_only": "1"},
                         files={"file": (fixture.name, fixture.read_bytes())})
    assert answer.status_code == 200
    assert "vérification seulement" in answer.text and "lignes lues" in answer.text
    assert re.search(r"\d+ refusées", answer.text)
