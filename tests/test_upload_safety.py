"""Hostile files sent for import: judged by their bytes, opened by a GDAL that knows four formats and no network.

Each case is what an account that may edit one layer (an EPCI contributor) could send to ``/admin/import``, or
what a URL could serve to ``geo-service import``: a GDAL virtual dataset disguised as GeoJSON that reads a file
of the server or fetches a URL, a GeoJSON whose CRS is a link, decompression bombs, archives of thousands of
files, a CSV of millions of empty lines, a file named like the upload's own records. Every case asserts what the
person sees (a 4xx in French naming the accepted formats), that nothing was kept or written, and — with a local
HTTP server that counts what reaches it — that no request left the service.
"""

from __future__ import annotations

import gzip
import http.server
import json
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import EpciPoints
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from test_bulk_import import (
    PASSWORD,
    bornes_geojson,
    context,
    importing_accounts,
    mapping,
    near,
    replace_editing,
    rows_of,
    token_of,
    upload,
)

from geo_service.api.problems import status_of
from geo_service.errors import Forbidden, ImportFileError
from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services.importers import bulk_import, uploads
from geo_service.services.importers.framework import file_types, vector_files
from geo_service.services.importers.framework.sources import FileLimits, check_file, open_source
from geo_service.settings import Settings

CLI = str(Path(sys.executable).with_name("geo-service"))
SECRET = "LIGNE-SECRETE-DU-SERVEUR"


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers anything, and remembers every request (a service that was tricked into fetching shows here)."""

    served: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        body = self.server.served.get(self.path, b"+proj=longlat +datum=WGS84")  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802
        self.server.hits.append("HEAD " + self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def recorder() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.hits, server.served = [], {}  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()


def url_of(server: http.server.ThreadingHTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def vrt(source: str) -> str:
    """A GDAL virtual dataset whose one layer is read from ``source`` (a file of the server, or a URL)."""
    return (f'<OGRVRTDataSource><OGRVRTLayer name="bornes"><SrcDataSource>{source}</SrcDataSource>'
            '<GeometryField encoding="PointFromColumns" x="x" y="y"/></OGRVRTLayer></OGRVRTDataSource>')


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.csv"
    path.write_text(f"borne_id,lieu,x,y\n{SECRET},{SECRET},1.44,44.45\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def points(loaded_boundaries: Engine, registry: LayerRegistry) -> Iterator[EpciPoints]:
    yield from importing_accounts(loaded_boundaries, registry)


@pytest.fixture
def web(settings: Settings, points: EpciPoints, tmp_path_factory) -> Iterator[tuple[TestClient, Settings]]:
    folder = tmp_path_factory.mktemp("uploads-safety")
    small = settings.model_copy(update={"editing": replace_editing(
        settings, upload_dir=folder, max_upload_bytes=3_000_000, max_unpacked_bytes=2_000_000,
        max_archive_members=50, max_import_rows=1000)})
    with TestClient(create_app(small), base_url="http://localhost") as client:
        token = token_of(client.get("/admin/login").text)
        assert client.post("/admin/login", data={"username": "imp-admin", "password": PASSWORD, "csrf_token": token},
                           follow_redirects=False).status_code == 303
        yield client, small


def kept_uploads(small: Settings) -> set[Path]:
    return set(small.editing.upload_dir.iterdir())


def zipped(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


# -- GDAL itself: four drivers, no network --------------------------------------------------------------------------
def test_gdal_keeps_only_the_four_formats_the_service_reads():
    vector_files.restrict_gdal()
    assert vector_files.registered_drivers() == {"GeoJSON", "GPKG", "ESRI Shapefile", "FlatGeobuf"}


def test_a_virtual_dataset_is_not_opened_even_when_gdal_is_called_directly(secret_file, tmp_path):
    disguised = tmp_path / "bornes.geojson"
    disguised.write_text(vrt(f"CSV:{secret_file}"), encoding="utf-8")
    with pytest.raises(ImportFileError) as refused:
        vector_files.read_features(str(disguised), disguised.name)
    assert SECRET not in refused.value.detail and "illisible" in refused.value.detail


def test_a_geojson_whose_crs_is_a_link_fetches_nothing(recorder, tmp_path):
    path = tmp_path / "lien.geojson"
    path.write_text(json.dumps({
        "type": "FeatureCollection",
        "crs": {"type": "link", "properties": {"href": url_of(recorder, "/crs"), "type": "proj4"}},
        "features": [{"type": "Feature", "properties": {"a": 1}, "geometry": {"type": "Point",
                                                                               "coordinates": [1.44, 44.45]}}]}))
    info = vector_files.read_info(str(path), path.name)
    assert info["features"] == 1
    assert recorder.hits == []  # type: ignore[attr-defined]
    assert url_of(recorder, "/crs") in vector_files.refused_requests


# -- the bytes decide, not the name ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("head", "kind"), [
    (b'{"type": "FeatureCollection", "features": []}', file_types.JSON),
    (b"\xef\xbb\xbf  \n{\"type\": \"Feature\"}", file_types.JSON),
    (b"<OGRVRTDataSource><OGRVRTLayer name='a'/></OGRVRTDataSource>", file_types.XML),
    (b"\xef\xbb\xbf<?xml version='1.0'?><wfs:FeatureCollection/>", file_types.XML),
    (b"borne_id;lieu;x;y\nB1;Mairie;1.44;44.45\n", file_types.TEXT),
    (b"id,nom\n1,P\xe9rigord\n", file_types.TEXT),
    (b"SQLite format 3\x00" + b"\x00" * 52 + b"GPKG" + b"\x00" * 100, file_types.GEOPACKAGE),
    (b"SQLite format 3\x00" + b"\x00" * 200, file_types.SQLITE),
    (b"fgb\x03fgb\x00" + b"\x00" * 50, file_types.FLATGEOBUF),
    (b"\x00\x00\x27\x0a" + b"\x00" * 24 + (1000).to_bytes(4, "little") + b"\x00" * 80, file_types.SHAPE),
    (bytes([0x03, 124, 6, 15]) + b"\x00" * 4 + (97).to_bytes(2, "little") + (20).to_bytes(2, "little")
     + b"\x00" * 30, file_types.DBASE),
    (b"%PDF-1.7\n", file_types.PDF),
    (b"PK\x03\x04\x14\x00", file_types.ZIP),
    (b"\x1f\x8b\x08\x00", file_types.GZIP),
    (b"\x7fELF\x02\x01\x01\x00", file_types.BINARY),
    (b"", file_types.EMPTY),
])
def test_sniff_tells_the_kind_from_the_first_bytes(head: bytes, kind: str):
    assert file_types.sniff(head) == kind


def test_a_virtual_dataset_named_geojson_is_refused_and_not_kept(web, engine, secret_file, tmp_path):
    client, small = web
    before = kept_uploads(small)
    disguised = tmp_path / "bornes.geojson"
    disguised.write_text(vrt(f"CSV:{secret_file}"), encoding="utf-8")
    answer = upload(client, disguised)
    assert answer.status_code == 422
    assert "son contenu est du XML" in answer.text and "GeoPackage (.gpkg)" in answer.text
    assert SECRET not in answer.text
    assert kept_uploads(small) == before
    assert rows_of(engine, SECRET) == {}


def test_a_virtual_dataset_that_fetches_a_url_fetches_nothing(web, recorder, tmp_path):
    client, small = web
    before = kept_uploads(small)
    disguised = tmp_path / "bornes.json"
    disguised.write_text(vrt(f"/vsicurl/{url_of(recorder, '/bornes.csv')}"), encoding="utf-8")
    assert upload(client, disguised).status_code == 422
    assert recorder.hits == []  # type: ignore[attr-defined]
    assert kept_uploads(small) == before


def test_a_disguised_member_of_a_zip_is_refused_by_name(web, secret_file, tmp_path):
    client, small = web
    before = kept_uploads(small)
    archive = zipped(tmp_path / "bornes.zip", {"LISEZMOI.txt": b"Bornes du Grand Cahors\n",
                                                "bornes.geojson": vrt(f"CSV:{secret_file}").encode()})
    answer = upload(client, archive)
    assert answer.status_code == 422
    assert "« bornes.geojson » n&#39;est pas un fichier GeoJSON" in answer.text or \
        "« bornes.geojson » n'est pas un fichier GeoJSON" in answer.text
    assert kept_uploads(small) == before


def test_a_shapefile_member_that_is_not_a_shapefile_is_refused(tmp_path):
    archive = zipped(tmp_path / "bornes.zip", {"bornes.shp": vrt("CSV:/etc/passwd").encode(),
                                                "bornes.dbf": b"x", "bornes.shx": b"y"})
    with pytest.raises(ImportFileError, match="n'est pas un fichier shapefile"):
        check_file(archive, archive.name, bulk_import.ACCEPTED_KINDS)


def test_spatial_indexes_and_notices_beside_a_shapefile_are_ignored(engine, registry, settings, points, tmp_path):
    import geopandas as gpd
    from shapely.geometry import Point

    folder = tmp_path / "shp"
    folder.mkdir()
    gpd.GeoDataFrame({"borne_id": ["SAFE-SHP-1"], "lieu": ["Mairie"], "ssid": ["WIFI public lotois"],
                      "statut": ["installee"]}, geometry=[Point(*near(points.inside, 3))], crs="EPSG:4326"
                     ).to_file(folder / "bornes.shp")
    members = {p.name: p.read_bytes() for p in folder.iterdir()}
    # What ArcGIS adds beside a shapefile; never opened (a crafted index would otherwise reach GDAL's parser).
    members |= {"bornes.sbn": vrt("CSV:/etc/passwd").encode(), "bornes.shp.xml": b"<metadata/>",
                "notice.pdf": b"%PDF-1.4 ..."}
    archive = zipped(tmp_path / "bornes.zip", members)
    check_file(archive, archive.name, bulk_import.ACCEPTED_KINDS)
    with engine.begin() as conn:
        report = bulk_import.run(conn, context(conn, registry, settings, "imp-admin"), archive, archive.name,
                                 mapping(), commit=False)
    assert (report.read, report.created, report.rejected) == (1, 1, [])


# -- bombs ------------------------------------------------------------------------------------------------------
def test_a_zip_bomb_is_refused_before_being_read(web, tmp_path):
    client, small = web
    before = kept_uploads(small)
    archive = zipped(tmp_path / "bornes.zip", {"bornes.csv": b"borne_id,x,y\n" + b"0" * 5_000_000})
    assert archive.stat().st_size < 100_000
    answer = upload(client, archive)
    assert answer.status_code == 422
    assert "dépasse 1.90735 Mo" in answer.text
    assert kept_uploads(small) == before


def test_a_zip_that_lies_about_its_sizes_is_stopped(tmp_path):
    archive = zipped(tmp_path / "bornes.zip", {"bornes.csv": b"borne_id,lieu,x,y\n" + b"B,M,1,44\n" * 400_000})
    # Rewrite the declared sizes of the member (local header and central directory) to 100 bytes.
    data = bytearray(archive.read_bytes())
    info = zipfile.ZipFile(archive).infolist()[0]
    real = info.file_size.to_bytes(4, "little")
    data = data.replace(real, (100).to_bytes(4, "little"))
    archive.write_bytes(bytes(data))
    with open_source(archive, limits=FileLimits(max_unpacked_bytes=1_000_000)) as source, \
            pytest.raises(ImportFileError), source.open() as stream:
        while stream.read(1 << 16):
            pass


def test_a_gzip_bomb_stops_at_the_limit(web, tmp_path):
    client, small = web
    bomb = tmp_path / "bornes.csv.gz"
    bomb.write_bytes(gzip.compress(b"borne_id,lieu,x,y\n" + b" " * 6_000_000, compresslevel=9))
    sent = upload(client, bomb)
    assert sent.status_code == 303, sent.text
    page = client.get(sent.headers["location"])
    assert page.status_code == 422
    assert "dépasse" in page.text


def test_an_archive_of_thousands_of_files_is_refused(web, tmp_path):
    client, small = web
    before = kept_uploads(small)
    archive = zipped(tmp_path / "bornes.zip", {f"part-{i}.csv": b"a,b\n1,2\n" for i in range(2000)})
    answer = upload(client, archive)
    assert answer.status_code == 422
    assert "2000 fichiers" in answer.text and "au plus 50" in answer.text
    assert kept_uploads(small) == before


def test_a_csv_of_millions_of_empty_lines_is_counted_up_to_the_limit_only(engine, registry, settings, points,
                                                                          tmp_path):
    path = tmp_path / "vide.csv"
    with open(path, "wb") as out:
        out.write(b"borne_id,lieu,ssid,statut,x,y\n")
        out.write(b"\n" * 3_000_000)
        out.write(b"B-LAST,Mairie,WIFI public lotois,installee,1.44,44.45\n")
    seen = bulk_import.preview(path, path.name, max_rows=1000)
    assert seen.more and seen.rows == 1000
    with engine.begin() as conn, pytest.raises(ImportFileError, match="Plus de 1000 lignes"):
        bulk_import.run(conn, context(conn, registry, settings, "imp-admin"), path, path.name,
                        mapping(x="x", y="y"), commit=False,
                        max_rows=1000)


def test_the_preview_is_read_from_the_file_once(web, points, tmp_path):
    client, small = web
    path = bornes_geojson(tmp_path / "once.geojson", [("ONCE-1", near(points.inside, 5), {})])
    sent = upload(client, path)
    first = client.get(sent.headers["location"])
    assert first.status_code == 200 and "ONCE-1" in first.text
    token = sent.headers["location"].split("/")[-1].split("?")[0]
    stored = uploads.load(small.editing.upload_dir, token, "imp-admin")
    assert uploads.recall(stored, "apercu-wifi_hotspots") is not None
    stored.path.write_bytes(b"{}")  # were it read again, the page would change
    again = client.get(sent.headers["location"])
    assert again.status_code == 200 and "ONCE-1" in again.text


@pytest.mark.parametrize("name", ["upload.json", "meta.json", "../meta.json", "apercu-wifi_hotspots.json"])
def test_a_file_named_like_the_uploads_own_records_is_only_data(web, points, tmp_path, name):
    client, small = web
    path = bornes_geojson(tmp_path / "bornes.geojson", [("NAMED-1", near(points.inside, 6), {})])
    token = token_of(client.get("/admin/import").text)
    sent = client.post("/admin/import", data={"layer": "wifi_hotspots", "csrf_token": token},
                       files={"file": (name, path.read_bytes())}, follow_redirects=False)
    assert sent.status_code == 303
    page = client.get(sent.headers["location"])
    assert page.status_code == 200 and "NAMED-1" in page.text
    home = small.editing.upload_dir / sent.headers["location"].split("/")[-1].split("?")[0]
    assert sorted(p.name for p in home.iterdir()) == ["apercu-wifi_hotspots.json", "donnees", "meta.json"]
    assert json.loads((home / "meta.json").read_text())["owner"] == "imp-admin"


# -- rights come before any comparison ----------------------------------------------------------------------------
def test_a_check_does_not_tell_a_contributor_about_features_outside_its_perimeter(engine, registry, settings, points,
                                                                               tmp_path):
    outside = bornes_geojson(tmp_path / "ailleurs.geojson", [("PEEK-1", points.outside, {})])
    with engine.begin() as conn:
        admin = context(conn, registry, settings, "imp-admin")
        assert bulk_import.run(conn, admin, outside, outside.name, mapping(), commit=True).created == 1
    # The contributor sends exactly the stored values: "unchanged" would confirm them.
    with engine.begin() as conn:
        report = bulk_import.run(conn, context(conn, registry, settings, "imp-contrib"), outside, outside.name,
                                 mapping(), commit=False)
    assert report.unchanged == 0 and report.rejected_rows == 1
    assert "hors du périmètre" in report.rejected[0].reason
    # And with a guessed, different value: the same answer, not "updated".
    guessed = bornes_geojson(tmp_path / "devine.geojson", [("PEEK-1", points.outside, {"statut": "hors service"})])
    with engine.begin() as conn:
        report = bulk_import.run(conn, context(conn, registry, settings, "imp-contrib"), guessed, guessed.name,
                                 mapping(), commit=False)
    assert (report.updated, report.proposed, report.rejected_rows) == (0, 0, 1)
    assert "hors du périmètre" in report.rejected[0].reason


def test_an_account_without_the_right_learns_nothing_from_a_check(engine, registry, settings, points, tmp_path):
    path = bornes_geojson(tmp_path / "b.geojson", [("PEEK-2", points.inside, {})])
    with engine.begin() as conn:
        ctx = context(conn, registry, settings, "imp-contrib")
        third = bulk_import.ColumnMapping("third_places", {"nom": "nom"}, source="x")
        with pytest.raises(Forbidden):
            bulk_import.run(conn, ctx, path, path.name, third, commit=False)


# -- the command line, for a URL ----------------------------------------------------------------------------------
def test_the_command_line_refuses_a_url_serving_a_virtual_dataset(recorder, settings, tmp_path):
    recorder.served["/bornes.geojson"] = vrt(f"/vsicurl/{url_of(recorder, '/secret.csv')}").encode()
    mapping_file = tmp_path / "correspondance.yaml"
    mapping_file.write_text("layer: wifi_hotspots\ncolumns: {borne_id: borne_id, lieu: lieu}\n", encoding="utf-8")
    env = {"GEO_SERVICE_DATABASE_URL": settings.database_url or "", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([CLI, "import", "generic", url_of(recorder, "/bornes.geojson"), "--mapping",
                             str(mapping_file), "--dry-run"], capture_output=True, text=True, env=env, timeout=120,
                            check=False)
    assert result.returncode != 0
    assert "son contenu est du XML" in result.stderr + result.stdout
    assert recorder.hits == ["/bornes.geojson"]  # type: ignore[attr-defined]




# -- mangled files: a French refusal, never an exception --------------------------------------------------------
def _seed_files(folder: Path) -> dict[str, bytes]:
    import geopandas as gpd
    from shapely.geometry import Point

    frame = gpd.GeoDataFrame({"borne_id": ["A", "B"], "lieu": ["Mairie", "Église"]},
                             geometry=[Point(1.44, 44.45), Point(1.45, 44.46)], crs="EPSG:4326")
    frame.to_file(folder / "a.gpkg")
    frame.to_file(folder / "a.fgb", driver="FlatGeobuf")
    frame.to_file(folder / "a.geojson")
    (folder / "shp").mkdir()
    frame.to_file(folder / "shp" / "a.shp")
    zipped(folder / "a.zip", {p.name: p.read_bytes() for p in (folder / "shp").iterdir()})
    csv = b"borne_id;lieu;x;y\nA;Mairie;1.44;44.45\nB;Eglise;1.45;44.46\n"
    (folder / "a.csv").write_bytes(csv)
    (folder / "a.csv.gz").write_bytes(gzip.compress(csv))
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")  # GDAL's notes on damaged geometries
def test_mangled_files_get_a_french_refusal_never_an_exception(tmp_path):
    """Seeded random damage (bytes changed, cut, inserted, truncated) to a file of each accepted format: the check
    and the preview either read it or refuse it with an ``ImportFileError`` — never another exception (a 500)."""
    import random

    from geo_service.layers import LayerRegistry

    seeds = _seed_files(tmp_path)
    layer = LayerRegistry.from_dir(Settings().layers_dir).get("wifi_hotspots")
    rng = random.Random(46)
    outcomes = {"lu": 0, "refusé": 0}
    for i in range(400):
        name, data = rng.choice(sorted(seeds.items()))
        data = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(data) + 1)
            action = rng.random()
            if action < 0.5 and at < len(data):
                data[at] = rng.randrange(256)
            elif action < 0.7:
                del data[at:at + rng.randint(1, 64)]
            elif action < 0.85:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
            else:
                del data[at:]
        path = tmp_path / f"abime-{i}"
        path.write_bytes(bytes(data))
        try:
            check_file(path, name, bulk_import.ACCEPTED_KINDS)
            bulk_import.preview(path, name, layer, max_rows=100)
            outcomes["lu"] += 1
        except ImportFileError as refused:
            assert refused.detail and status_of(refused) == 422
            outcomes["refusé"] += 1
    assert outcomes["refusé"] > 100 and outcomes["lu"] > 10, outcomes
