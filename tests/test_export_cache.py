"""Whole-layer exports are built once per layer version and audience, then served from a file: two downloads
of an unchanged layer build once, a change to the layer gives a new file (and a new ETag), a client holding
the current one gets a 304, concurrent requests never build the same version twice, and the anonymous file
never holds restricted fields.

Builds are counted from the service's log ("Export … construit"), one record per build.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import pwd
import threading
from collections.abc import Iterator
from pathlib import Path

import pyogrio
import pytest
from factories import CAHORS, EDIT_SOURCE, Factory, account
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services.publish import export_cache
from geo_service.services.publish.read_access import ANONYMOUS
from geo_service.settings import Settings

EXPORT = "/api/export/wifi_hotspots"
PHONE = "05 65 99 99 99"


@pytest.fixture(scope="module")
def factory(loaded_boundaries: Engine, registry: LayerRegistry) -> Iterator[Factory]:
    made = Factory(registry)
    with loaded_boundaries.begin() as conn:
        made.feature(conn, "wifi_hotspots", CAHORS, source=EDIT_SOURCE, lieu="Borne exportée", borne_id="CACHE-1")
        made.feature(conn, "third_places", CAHORS, source=EDIT_SOURCE, nom="Tiers-lieu exporté", telephone=PHONE)
    yield made
    with loaded_boundaries.begin() as conn:
        made.cleanup(conn)
        conn.execute(text("DELETE FROM accounts WHERE username = 'x-admin'"))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "exports"


def app_with(settings: Settings, folder: Path, registry: LayerRegistry | None = None):
    app = create_app(settings.model_copy(update={"api": settings.api.model_copy(update={"export_dir": folder})}))
    if registry is not None:
        app.state.registry = registry
    return app


def builds(caplog: pytest.LogCaptureFixture) -> int:
    return sum("construit" in r.getMessage() for r in caplog.records if r.name == export_cache.__name__)


def files(folder: Path, pattern: str) -> list[Path]:
    return sorted(folder.glob(pattern))


@pytest.mark.parametrize("fmt", ["gpkg", "csv", "geojson"])
def test_two_downloads_of_an_unchanged_layer_build_once(settings: Settings, factory: Factory, folder: Path,
                                                        caplog: pytest.LogCaptureFixture, fmt: str):
    caplog.set_level(logging.INFO, logger=export_cache.__name__)
    with TestClient(app_with(settings, folder)) as client:
        first = client.get(EXPORT, params={"format": fmt})
        assert first.status_code == 200 and "attachment" in first.headers["content-disposition"]
        [built] = files(folder, f"wifi_hotspots-public-*.{fmt}")
        stamp = (built.stat().st_ino, built.stat().st_mtime_ns)
        second = client.get(EXPORT, params={"format": fmt})
        assert second.status_code == 200 and second.content == first.content
        assert second.headers["etag"] == first.headers["etag"]
        assert files(folder, f"wifi_hotspots-public-*.{fmt}") == [built]
        assert (built.stat().st_ino, built.stat().st_mtime_ns) == stamp
        assert builds(caplog) == 1
        # A client holding this version: 304, nothing read or built.
        again = client.get(EXPORT, params={"format": fmt}, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and not again.content
        assert builds(caplog) == 1


def test_the_copy_compressed_at_build_time_goes_to_clients_that_accept_gzip(settings: Settings, factory: Factory,
                                                                           folder: Path):
    with TestClient(app_with(settings, folder)) as client:
        packed = client.get(EXPORT, params={"format": "geojson"}, headers={"Accept-Encoding": "gzip"})
        [plain_file] = files(folder, "wifi_hotspots-public-*.geojson")
        assert packed.headers["content-encoding"] == "gzip" and "Accept-Encoding" in packed.headers["vary"]
        assert packed.content == plain_file.read_bytes()  # the client decoded the stored copy
        assert plain_file.with_name(plain_file.name + ".gz").exists()
        for refusing in ("identity", "br"):
            plain = client.get(EXPORT, params={"format": "geojson"}, headers={"Accept-Encoding": refusing})
            assert "content-encoding" not in plain.headers, refusing
            assert plain.content == plain_file.read_bytes()
            assert plain.headers["etag"] != packed.headers["etag"]
        assert client.get(EXPORT, params={"format": "geojson"}, headers={
            "Accept-Encoding": "gzip", "If-None-Match": packed.headers["etag"]}).status_code == 304


def test_a_change_to_the_layer_gives_a_new_file(settings: Settings, factory: Factory, folder: Path,
                                                engine: Engine, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger=export_cache.__name__)
    with TestClient(app_with(settings, folder)) as client:
        before = client.get(EXPORT, params={"format": "csv"})
        assert "CACHE-2" not in before.text
        with engine.begin() as conn:
            factory.feature(conn, "wifi_hotspots", CAHORS, source=EDIT_SOURCE, lieu="Nouvelle", borne_id="CACHE-2")
        after = client.get(EXPORT, params={"format": "csv"})
        assert after.status_code == 200 and after.headers["etag"] != before.headers["etag"]
        assert "CACHE-2" in [row["borne_id"] for row in csv.DictReader(io.StringIO(after.text))]
        assert builds(caplog) == 2
        # The old ETag no longer matches: the new file is sent.
        assert client.get(EXPORT, params={"format": "csv"},
                          headers={"If-None-Match": before.headers["etag"]}).status_code == 200
        # Each change leaves the current file and the one before it, no more.
        for n in (3, 4):
            with engine.begin() as conn:
                factory.feature(conn, "wifi_hotspots", CAHORS, source=EDIT_SOURCE, borne_id=f"CACHE-{n}")
            client.get(EXPORT, params={"format": "csv"})
        assert len(files(folder, "wifi_hotspots-public-*.csv")) == export_cache.KEPT_PER_EXPORT
        assert len(files(folder, "wifi_hotspots-public-*.csv.gz")) == export_cache.KEPT_PER_EXPORT


def test_concurrent_requests_never_build_the_same_version_twice(engine: Engine, registry: LayerRegistry,
                                                                 factory: Factory, folder: Path,
                                                                 caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger=export_cache.__name__)
    export_cache.prepare_folder(folder)
    layer = registry.get("wifi_hotspots")
    start, found = threading.Barrier(6), []

    def download() -> None:
        start.wait()
        found.append(export_cache.export_file(engine, layer, ANONYMOUS, "gpkg", folder))

    threads = [threading.Thread(target=download) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == 6 and len({f.etag for f in found}) == 1 and len({f.path for f in found}) == 1
    assert builds(caplog) == 1


def test_restricted_fields_are_never_in_the_anonymous_file(settings: Settings, registry: LayerRegistry,
                                                           factory: Factory, folder: Path, loaded_boundaries: Engine):
    third = registry.get("third_places")
    fields = [f.model_copy(update={"restricted": f.name == "telephone"}) for f in third.fields]
    restricted = LayerRegistry([third.model_copy(update={"fields": fields}),
                                *(layer for layer in registry if layer.id != "third_places")])
    with loaded_boundaries.begin() as conn:
        token = account(conn, "x-admin", "admin")
    with TestClient(app_with(settings, folder, restricted)) as client:
        anonymous = client.get("/api/export/third_places", params={"format": "gpkg"})
        staff = client.get("/api/export/third_places", params={"format": "gpkg"},
                           headers={"Authorization": f"Bearer {token}"})
        assert anonymous.status_code == staff.status_code == 200
        assert anonymous.headers["etag"] != staff.headers["etag"]
        assert anonymous.headers["cache-control"].startswith("public")
        assert staff.headers["cache-control"] == "private, no-cache"
    [public_file] = files(folder, "third_places-public-*.gpkg")
    [staff_file] = files(folder, "third_places-restreint-*.gpkg")
    assert "telephone" not in pyogrio.read_info(public_file)["fields"]
    assert PHONE.encode() not in public_file.read_bytes()
    assert "telephone" in pyogrio.read_info(staff_file)["fields"]
    assert PHONE in set(pyogrio.read_dataframe(staff_file)["telephone"])
    assert anonymous.content == public_file.read_bytes()


def test_a_folder_another_user_made_is_refused(tmp_path: Path):
    planted = tmp_path / "planted"
    planted.mkdir()
    if os.getuid() != 0:
        pytest.skip("only root can give a folder to another user")
    os.chown(planted, pwd.getpwnam("nobody").pw_uid, -1)
    with pytest.raises(PermissionError, match="autre utilisateur"):
        export_cache.prepare_folder(planted)
