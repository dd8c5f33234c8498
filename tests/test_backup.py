"""``geo-service backup`` / ``restore`` round-trip the whole state: a throwaway database with accounts, a convention,
a token, a session, edits and their history is backed up, restored into another new database, and compared table
by table, row for row; then the restored service is used (password login, token, history revert). Damaged
archives and a refused or interrupted restore leave the target as it was.

Both databases are created in the test cluster under unique names and dropped at the end.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import CLI, PASSWORD
from factories import EDIT_SOURCE, convention, epci_points
from fastapi.testclient import TestClient
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import Engine, make_url, text

from geo_service import backup
from geo_service.cluster import create_database
from geo_service.db import make_engine, migrate
from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services.editing import accounts, conventions
from geo_service.services.importers import boundaries
from geo_service.settings import AuthSettings, Settings


class Throwaway:
    """A database of the test server, created under a unique name and dropped by ``drop``."""

    def __init__(self, test_settings: Settings, suffix: str):
        server = make_url(test_settings.sqlalchemy_url)
        self._params = conninfo_to_dict(server.set(drivername="postgresql").render_as_string(hide_password=False))
        self.name = f"geo_service_bk_{uuid.uuid4().hex[:8]}_{suffix}"
        create_database(self._connect, self.name)
        self.url = server.set(database=self.name).render_as_string(hide_password=False)
        self.settings = Settings(mode="test", database_url=self.url)
        self.engine = make_engine(self.settings, pool_size=2)

    def _connect(self, database: str) -> psycopg.Connection:
        return psycopg.connect(**{**self._params, "dbname": database}, autocommit=True)

    def drop(self) -> None:
        self.engine.dispose()
        with self._connect("postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def geo_service(target: Throwaway, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GEO_SERVICE_DATABASE_URL": target.url}
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=600)


def fingerprint(engine: Engine) -> dict[str, tuple]:
    """Every table of the schema: row count and an MD5 of its rows in order; every sequence: its last value."""
    with engine.connect() as conn:
        tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars().all()
        found: dict[str, tuple] = {
            t: tuple(conn.execute(text(
                f"SELECT count(*), md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) "
                f'FROM public."{t}" r')).one()) for t in tables}
        for name, last in conn.execute(text("SELECT sequencename, last_value FROM pg_sequences "
                                            "WHERE schemaname = 'public'")):
            found[f"sequence {name}"] = (last,)
    return found


@pytest.fixture(scope="module")
def source(settings: Settings, registry: LayerRegistry, boundaries_dir: Path) -> Iterator[dict]:
    """A service's state worth keeping: boundaries, accounts, a convention, a token, a session, edits with history."""
    db = Throwaway(settings, "src")
    try:
        migrate(db.settings)
        with db.engine.begin() as conn:
            boundaries.load_from_dir(conn, db.settings.territory, boundaries_dir)
            points = epci_points(conn)
            accounts.create_account(conn, "bk-admin", "admin", password=PASSWORD)
            accounts.create_account(conn, "bk-editor", "editor", password=PASSWORD)
            accounts.create_account(conn, "bk-epci", "epci_contributor", password=PASSWORD, epci_siren=points.mine)
            convention(conn, registry, points.mine, "ascendante", ["wifi_hotspots"],
                       starts_on=conventions.local_day(), reference="CONV-SAUVEGARDE")
            token = accounts.create_token(conn, "bk-editor", "QGIS")
            epci_token = accounts.create_token(conn, "bk-epci", "script")
            accounts.open_session(conn, accounts.get_account(conn, "bk-admin").id, "127.0.0.1", 8)
        body = {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(points.inside)},
                "properties": {"borne_id": "sauvegarde-1", "code_insee": "46042", "lieu": "Mairie", "ssid": "W",
                               "statut": "installee", "source": EDIT_SOURCE}}
        with TestClient(create_app(db.settings), base_url="http://localhost") as client:
            made = client.post("/ogc/collections/wifi_hotspots/items", json=body,
                               headers={"Authorization": f"Bearer {token}"})
            assert made.status_code == 201, made.text
            fid = made.json()["id"]
            changed = client.patch(f"/ogc/collections/wifi_hotspots/items/{fid}", json={"properties": {"lieu": "Gare"}},
                                   headers={"Authorization": f"Bearer {token}", "If-Match": made.headers["etag"],
                                            "Content-Type": "application/merge-patch+json"})
            assert changed.status_code == 200, changed.text
            proposal = {**body, "properties": {**body["properties"], "borne_id": "sauvegarde-2"}}
            proposed = client.post("/ogc/collections/wifi_hotspots/items", json=proposal,
                                   headers={"Authorization": f"Bearer {epci_token}"})
            assert proposed.status_code == 202, proposed.text
        yield {"db": db, "token": token, "fid": fid}
    finally:
        db.drop()


@pytest.fixture(scope="module")
def archive(source: dict, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sauvegardes")
    done = geo_service(source["db"], "backup", str(folder / "etat.tar"))
    assert done.returncode == 0, done.stderr
    assert "Sauvegarde écrite" in done.stdout and "table feature_history" in done.stderr
    return folder / "etat.tar"


@pytest.fixture(scope="module")
def restored(settings: Settings, source: dict, archive: Path) -> Iterator[Throwaway]:
    db = Throwaway(settings, "dst")
    try:
        done = geo_service(db, "restore", str(archive))
        assert done.returncode == 0, done.stderr
        assert "Restauration terminée" in done.stdout and "comme dans la sauvegarde" in done.stdout
        yield db
    finally:
        db.drop()


def test_the_archive_holds_a_manifest_and_is_private(archive: Path, source: dict):
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    with tarfile.open(archive) as tar:
        assert tar.getnames() == [backup.MANIFEST, backup.DUMP]
        manifest = json.loads(tar.extractfile(backup.MANIFEST).read())
    assert manifest["format"] == "geo-service-backup" and manifest["service_version"]
    assert manifest["alembic_revision"] and manifest["created_at"] and len(manifest["dump_sha256"]) == 64
    assert manifest["tables"]["accounts"] == 3 and manifest["tables"]["feature_history"] >= 2
    assert manifest["tables"]["account_sessions"] == 0 and manifest["without_data"] == ["account_sessions"]
    assert not list(archive.parent.glob("*.partiel")) and not list(archive.parent.glob(".geo-service-backup-*"))


def test_a_restore_gives_back_every_row_of_every_table(source: dict, restored: Throwaway):
    before, after = fingerprint(source["db"].engine), fingerprint(restored.engine)
    # Web sessions are not kept, on purpose: everyone signs in again.
    assert before.pop("account_sessions")[0] == 1 and after.pop("account_sessions")[0] == 0
    assert set(after) == set(before)
    assert {k: v for k, v in after.items() if before[k] != v} == {}
    assert before["feature_history"][0] >= 2 and before["conventions"][0] == 1 and before["change_requests"][0] == 1


def test_the_restored_service_works(source: dict, restored: Throwaway):
    with restored.engine.begin() as conn:
        assert accounts.login(conn, "bk-admin", PASSWORD, "127.0.0.1", AuthSettings()).role == "admin"
    with TestClient(create_app(restored.settings), base_url="http://localhost") as client:
        who = client.get("/admin/api/proposals", headers={"Authorization": f"Bearer {source['token']}"})
        assert who.status_code == 200 and len(who.json()["proposals"]) == 1
    fid = source["fid"]
    reverted = geo_service(restored, "history", "revert", "wifi_hotspots", str(fid), "1", "--as", "bk-editor")
    assert reverted.returncode == 0, reverted.stderr
    with restored.engine.connect() as conn:
        assert conn.execute(text("SELECT lieu, version FROM wifi_hotspots WHERE fid = :f"), {"f": fid}).one() == \
            ("Mairie", 3)
    with source["db"].engine.connect() as conn:  # the source is not touched by anything done to the copy
        assert conn.execute(text("SELECT lieu FROM wifi_hotspots WHERE fid = :f"), {"f": fid}).scalar_one() == "Gare"


def test_a_database_that_holds_tables_is_replaced_only_with_force(source: dict, restored: Throwaway, archive: Path):
    with restored.engine.begin() as conn:
        conn.execute(text("UPDATE accounts SET display_name = 'après la restauration' WHERE username = 'bk-admin'"))
    kept = fingerprint(restored.engine)
    refused = geo_service(restored, "restore", str(archive))
    assert refused.returncode == 1 and "--force" in refused.stderr and "Traceback" not in refused.stderr
    assert fingerprint(restored.engine) == kept
    forced = geo_service(restored, "restore", "--force", str(archive))
    assert forced.returncode == 0, forced.stderr
    again, original = fingerprint(restored.engine), fingerprint(source["db"].engine)
    again.pop("account_sessions"), original.pop("account_sessions")
    assert again == original


def damaged_copies(archive: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    """Broken versions of ``archive`` and the message each must give."""
    data = archive.read_bytes()
    with tarfile.open(archive) as tar:
        dump_at = tar.getmember(backup.DUMP).offset_data
        dump_size = tar.getmember(backup.DUMP).size
        manifest = json.loads(tar.extractfile(backup.MANIFEST).read())
        dump = tar.extractfile(backup.DUMP).read()
    truncated = folder / "tronquee.tar"
    truncated.write_bytes(data[: dump_at + dump_size // 2])
    flipped = bytearray(data)
    flipped[dump_at + dump_size // 2] ^= 0xFF
    altered = folder / "alteree.tar"
    altered.write_bytes(bytes(flipped))
    text_file = folder / "notes.tar"
    text_file.write_text("ceci n'est pas une sauvegarde\n", encoding="utf-8")
    future = folder / "future.tar"
    with tarfile.open(future, "w") as tar:
        for name, content in ((backup.MANIFEST, json.dumps({**manifest, "alembic_revision": "9999_avenir"}).encode()),
                              (backup.DUMP, dump)):
            member = tarfile.TarInfo(name)
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
    return {"truncated": (truncated, "fichier tronqué, abîmé"), "altered": (altered, "empreinte SHA-256"),
            "not an archive": (text_file, "n'est pas une archive de sauvegarde"),
            "newer schema": (future, "inconnue de cette version du service")}


@pytest.mark.parametrize("case", ["truncated", "altered", "not an archive", "newer schema"])
def test_a_damaged_or_foreign_archive_is_refused_and_the_target_untouched(settings: Settings, archive: Path,
                                                                          tmp_path: Path, case: str):
    broken, message = damaged_copies(archive, tmp_path)[case]
    target = Throwaway(settings, "bad")
    try:
        with target.engine.begin() as conn:
            conn.execute(text("CREATE TABLE notes (id int PRIMARY KEY, mot text)"))
            conn.execute(text("INSERT INTO notes VALUES (1, 'à garder')"))
        kept = fingerprint(target.engine)
        refused = geo_service(target, "restore", "--force", str(broken))
        assert refused.returncode == 1 and "Erreur : " in refused.stderr
        assert message in refused.stderr and "Traceback" not in refused.stderr
        assert fingerprint(target.engine) == kept
    finally:
        target.drop()


def test_a_restore_interrupted_half_way_leaves_the_target_as_it_was(settings: Settings, archive: Path):
    """Stopped after a few tables (as by Ctrl-C): the transaction never gets its COMMIT, PostgreSQL rolls it back."""
    target = Throwaway(settings, "cut")
    try:
        with target.engine.begin() as conn:
            conn.execute(text("CREATE TABLE notes (id int PRIMARY KEY, mot text)"))
            conn.execute(text("INSERT INTO notes VALUES (1, 'à garder')"))
        kept = fingerprint(target.engine)
        seen: list[str] = []

        def stop_after_five_tables(message: str) -> None:
            seen.append(message)
            if sum("table " in m for m in seen) == 5:
                raise KeyboardInterrupt

        client = backup.PgClient(Path(shutil.which("pg_dump")).parent, target.engine)
        with pytest.raises(KeyboardInterrupt):
            backup.restore_backup(client, archive, force=True, known_revisions={_revision(archive)},
                                  progress=stop_after_five_tables)
        assert fingerprint(target.engine) == kept
    finally:
        target.drop()


def test_backup_never_overwrites_a_file_and_names_one_in_a_folder(source: dict, archive: Path, tmp_path: Path):
    refused = geo_service(source["db"], "backup", str(archive))
    assert refused.returncode == 1 and "existe déjà" in refused.stderr
    named = geo_service(source["db"], "backup", str(tmp_path))
    assert named.returncode == 0, named.stderr
    [made] = tmp_path.glob("geo-service-*.tar")
    assert str(made) in named.stdout


def _revision(archive: Path) -> str:
    with tarfile.open(archive) as tar:
        return json.loads(tar.extractfile(backup.MANIFEST).read())["alembic_revision"]
