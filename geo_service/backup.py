"""Backup and restore of the service's whole state: one archive file, restored all or nothing.

What the state is: the database, and nothing else. Layers, history, accounts, token digests, conventions,
proposals, import journal, ``layer_changes``, the Alembic version — every table of the ``public`` schema with
its sequences, triggers and extensions — go into a ``pg_dump`` custom-format dump, taken in one snapshot.
Web sessions are left out on purpose (the schema is kept, not the rows): a restored service asks everyone to
sign in again, and the file holds no live session. The service's files are not state: ``layers/`` and
``data/`` are in git, upload folders (``editing.upload_dir``) hold files only between an import's preview and
its commit, exports and tiles are rebuilt from the database, secrets live in the environment.

The archive is a plain tar (the dump is already compressed) of ``manifest.json`` — service version, Alembic
revision, date, row count per table, size and SHA-256 of the dump — and ``database.dump``. It is written under
a temporary name and renamed when complete, readable by its owner only (it holds password hashes).

A restore checks the whole archive first (manifest, checksum, the dump's table of contents, a revision this
code knows), refuses a database that already holds tables unless told to replace it, then replays the dump
in ONE transaction that first empties the schema: any error leaves the target as it was. Row counts are
compared with the manifest at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy import Connection, Engine, text

from geo_service.settings import LOCAL_TIME

FORMAT = "geo-service-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DUMP = "database.dump"
# Tables whose rows are not kept (their definition is): open web sessions.
WITHOUT_DATA = ("account_sessions",)
Progress = Callable[[str], None]


class BackupError(RuntimeError):
    """A backup or restore that cannot be done, worded in French for the person at the terminal."""


@dataclass(frozen=True)
class Manifest:
    service_version: str
    alembic_revision: str | None
    created_at: str  # ISO 8601, UTC
    database: str
    server_version: str
    dump_tool: str
    dump_bytes: int
    dump_sha256: str
    tables: dict[str, int]  # rows per table, as dumped
    without_data: list[str] = field(default_factory=lambda: list(WITHOUT_DATA))
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT:
                raise BackupError(f"ce fichier n'est pas une sauvegarde du service (format « {data.get('format')} »)")
            if data.get("format_version") != FORMAT_VERSION:
                raise BackupError(f"version de sauvegarde {data.get('format_version')} inconnue de ce service "
                                  f"(il lit la version {FORMAT_VERSION})")
            return cls(**data)
        except (ValueError, TypeError, AttributeError) as exc:
            raise BackupError(f"manifeste illisible ({exc})") from None

    def summary(self) -> str:
        when = datetime.fromisoformat(self.created_at).astimezone(LOCAL_TIME).strftime("%d/%m/%Y à %H:%M")
        return (f"sauvegarde du {when} de la base « {self.database} » (service {self.service_version}, "
                f"révision {self.alembic_revision or 'aucune'}) : {len(self.tables)} tables, "
                f"{format_count(self.rows)} lignes, {_size(self.dump_bytes)}")


@dataclass(frozen=True)
class RestoreReport:
    manifest: Manifest
    database: str
    replaced_tables: int  # tables the target held before (0: it was empty)


# -- PostgreSQL client programs --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PgClient:
    """The PostgreSQL client programs of ``bin_dir`` pointed at the database of ``engine``.

    Connection parameters go to the programs as a libpq connection string, the password through ``PGPASSWORD``
    (never on a command line another user could read in the process list).
    """

    bin_dir: Path
    engine: Engine

    def _params(self) -> dict[str, str]:
        url = self.engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg://",
                                                                           "postgresql://", 1)
        return conninfo_to_dict(url)

    @property
    def database(self) -> str:
        return self._params().get("dbname", "")

    def dbname_argument(self) -> str:
        params = self._params()
        params.pop("password", None)
        return make_conninfo(**params)

    def environment(self) -> dict[str, str]:
        # Messages in English whatever the locale: the progress is read from them.
        env = {**os.environ, "LC_ALL": "C.UTF-8"}
        password = self._params().get("password")
        if password:
            env["PGPASSWORD"] = password
        return env

    def program(self, name: str) -> str:
        path = self.bin_dir / name
        if not path.exists():
            raise BackupError(f"{name} introuvable dans {self.bin_dir} : installez le client PostgreSQL "
                              "(paquet postgresql-client)")
        return str(path)

    def major_version(self, name: str) -> int:
        line = subprocess.run([self.program(name), "--version"], capture_output=True, text=True).stdout
        found = re.search(r"(\d+)(?:\.\d+)?", line)
        if found is None:
            raise BackupError(f"version de {name} illisible : « {line.strip()} »")
        return int(found.group(1))


# -- backup ----------------------------------------------------------------------------------------------------
def backup_path(given: Path | None) -> Path:
    """Where a backup goes: the file named, or a dated name in the folder named (default: the current one)."""
    given = given or Path.cwd()
    if given.is_dir():
        return given / f"geo-service-{datetime.now(LOCAL_TIME):%Y%m%d-%H%M%S}.tar"
    return given


def create_backup(client: PgClient, target: Path, *, progress: Progress = lambda _: None) -> Manifest:
    """Write the archive of the whole database to the file ``target`` (never over an existing one)."""
    if target.exists():
        raise BackupError(f"{target} existe déjà : choisissez un autre nom (une sauvegarde n'en écrase aucune)")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".geo-service-backup-", dir=target.parent))
    try:
        dump = work / DUMP
        with client.engine.connect() as conn:
            # One snapshot for the counts and the dump: the manifest describes exactly what was dumped.
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                server = conn.execute(text("SHOW server_version")).scalar_one()
                server_major = conn.execute(text("SHOW server_version_num")).scalar_one()
                tool_major = client.major_version("pg_dump")
                if tool_major < int(server_major) // 10000:
                    raise BackupError(f"pg_dump {tool_major} ne peut pas sauvegarder un serveur PostgreSQL {server} : "
                                      f"installez postgresql-client-{int(server_major) // 10000}")
                revision = _revision(conn)
                tables = {t: (0 if t in WITHOUT_DATA else n) for t, n in _row_counts(conn).items()}
                progress(f"Sauvegarde de la base « {client.database} » (révision {revision or 'aucune'}, "
                         f"{len(tables)} tables, {format_count(sum(tables.values()))} lignes)…")
                _pg_dump(client, snapshot, dump, progress)
        manifest = Manifest(
            service_version=_service_version(), alembic_revision=revision,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"), database=client.database,
            server_version=str(server), dump_tool=f"pg_dump {tool_major}", dump_bytes=dump.stat().st_size,
            dump_sha256=_sha256(dump), tables=tables)
        (work / MANIFEST).write_text(json.dumps(asdict(manifest), ensure_ascii=False, indent=2), encoding="utf-8")
        partial = target.with_name(target.name + ".partiel")
        # Only its owner may read it: it holds password hashes and token digests.
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out, \
                tarfile.open(fileobj=out, mode="w") as archive:
            archive.add(work / MANIFEST, arcname=MANIFEST)  # first: read without going through the dump
            archive.add(dump, arcname=DUMP)
        os.replace(partial, target)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)
        target.with_name(target.name + ".partiel").unlink(missing_ok=True)


def _pg_dump(client: PgClient, snapshot: str, dump: Path, progress: Progress) -> None:
    argv = [client.program("pg_dump"), "--format=custom", "--verbose", f"--snapshot={snapshot}",
            *(f"--exclude-table-data=public.{t}" for t in WITHOUT_DATA), f"--file={dump}",
            f"--dbname={client.dbname_argument()}"]
    with subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                          env=client.environment()) as proc:
        messages = []
        for line in proc.stderr:  # type: ignore[union-attr]
            found = re.search(r'dumping contents of table "public\.([^"]+)"', line)
            if found:
                progress(f"  table {found.group(1)}")
            else:
                messages.append(line.rstrip())
    if proc.returncode != 0:
        raise BackupError("pg_dump a échoué, aucune sauvegarde écrite :\n" + "\n".join(messages[-10:]))


# -- restore ---------------------------------------------------------------------------------------------------
def read_archive(archive: Path, work: Path) -> tuple[Manifest, Path]:
    """The manifest and the dump of ``archive``, unpacked into ``work`` and checked against the manifest."""
    try:
        with tarfile.open(archive, mode="r:") as tar:
            manifest = Manifest.from_json(_member(tar, MANIFEST, archive).read())
            source = _member(tar, DUMP, archive)
            dump = work / DUMP
            digest, size = hashlib.sha256(), 0
            with open(dump, "wb") as out:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
    except (tarfile.TarError, EOFError):
        raise BackupError(f"{archive} n'est pas une archive de sauvegarde lisible : fichier tronqué, abîmé ou "
                          "d'un autre format") from None
    except OSError as exc:
        raise BackupError(f"{archive} illisible ({exc.strerror})") from None
    if size != manifest.dump_bytes or digest.hexdigest() != manifest.dump_sha256:
        raise BackupError(f"{archive} est abîmée : la base sauvegardée ne correspond pas à l'empreinte SHA-256 "
                          f"de son manifeste ({_size(size)} lus, {_size(manifest.dump_bytes)} attendus)")
    return manifest, dump


def _member(tar: tarfile.TarFile, name: str, archive: Path):
    try:
        found = tar.extractfile(name)
    except KeyError:
        found = None
    if found is None:
        raise BackupError(f"{archive} ne contient pas {name} : ce n'est pas une sauvegarde du service")
    return found


def restore_backup(client: PgClient, archive: Path, *, force: bool, known_revisions: Collection[str],
                   progress: Progress = lambda _: None) -> RestoreReport:
    """Replace the content of the client's database with the archive, in one transaction."""
    with tempfile.TemporaryDirectory(prefix="geo-service-restore-") as work:
        progress(f"Vérification de {archive}…")
        manifest, dump = read_archive(archive, Path(work))
        progress(f"  {manifest.summary()}")
        progress("  empreinte SHA-256 vérifiée")
        listed = subprocess.run([client.program("pg_restore"), "--list", str(dump)], capture_output=True, text=True,
                                env=client.environment())
        if listed.returncode != 0:
            raise BackupError(f"la base sauvegardée est illisible par pg_restore : {listed.stderr.strip()}")
        with_rows = sum(" TABLE DATA " in line for line in listed.stdout.splitlines() if not line.startswith(";"))
        if manifest.alembic_revision and manifest.alembic_revision not in known_revisions:
            raise BackupError(f"la sauvegarde est à la révision de schéma « {manifest.alembic_revision} », inconnue "
                              f"de cette version du service ({_service_version()}) : elle vient d'une version plus "
                              "récente ; installez-la pour restaurer ce fichier")
        with client.engine.connect() as conn:
            held = _tables(conn)
        if held and not force:
            raise BackupError(f"la base « {client.database} » contient déjà {len(held)} tables (dont "
                              f"{', '.join(sorted(held)[:3])}…) : ajoutez --force pour remplacer tout son contenu "
                              "par la sauvegarde, ou restaurez dans une base vide")
        progress(f"Restauration dans la base « {client.database} »"
                 f"{' (son contenu actuel est remplacé)' if held else ''}…")
        _replay(client, dump, with_rows, progress)
    with client.engine.connect() as conn:
        restored = _row_counts(conn)
    different = {t: (n, restored.get(t)) for t, n in manifest.tables.items() if restored.get(t) != n}
    if different:
        raise BackupError(f"restauration faite, mais des comptes de lignes diffèrent de la sauvegarde : {different}")
    return RestoreReport(manifest, client.database, len(held))


# Empties the target in the transaction of the replay; waits at most a minute for the locks of a running service.
_PRELUDE = ("SET lock_timeout = '60s';\n"
            "BEGIN;\n"
            "DROP SCHEMA IF EXISTS public CASCADE;\n"
            "CREATE SCHEMA public;\n"
            "GRANT USAGE ON SCHEMA public TO PUBLIC;\n")


def _replay(client: PgClient, dump: Path, tables: int, progress: Progress) -> None:
    """pg_restore writes the dump as SQL and psql runs it after the prelude, in one transaction that psql stops at
    the first error. The SQL passes through here to report each table as its rows arrive, and to send the
    COMMIT only once pg_restore has written everything: a psql that reaches the end of its input without it
    disconnects, and PostgreSQL rolls the transaction back."""
    with tempfile.TemporaryFile() as psql_errors, tempfile.TemporaryFile() as restore_errors:
        source = subprocess.Popen([client.program("pg_restore"), "--no-owner", "--no-privileges", "--file=-",
                                   str(dump)], stdout=subprocess.PIPE, stderr=restore_errors, env=client.environment())
        sink = subprocess.Popen([client.program("psql"), "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1",
                                 f"--dbname={client.dbname_argument()}"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_errors,
                                env=client.environment())
        assert source.stdout is not None and sink.stdin is not None
        done = 0
        try:
            sink.stdin.write(_PRELUDE.encode())
            for line in source.stdout:
                if line.startswith(b"COPY public."):
                    done += 1
                    progress(f"  table {line[12:].split(b' ', 1)[0].decode()} ({done}/{tables})")
                sink.stdin.write(line)
            if source.wait() == 0:
                sink.stdin.write(b"COMMIT;\n")
        except BrokenPipeError:
            source.kill()  # psql stopped at an error: said below
        finally:
            with contextlib.suppress(BrokenPipeError):
                sink.stdin.close()
            source.stdout.close()
            source.wait()
            sink.wait()
        if source.returncode != 0 or sink.returncode != 0:
            psql_errors.seek(0)
            restore_errors.seek(0)
            detail = (psql_errors.read() + restore_errors.read()).decode(errors="replace").strip().splitlines()
            raise BackupError("la restauration a échoué ; la transaction est annulée, la base est inchangée :\n"
                              + "\n".join(detail[-8:]))


# -- what a database holds ---------------------------------------------------------------------------------------
def _tables(conn: Connection) -> list[str]:
    """The tables of the ``public`` schema, those of extensions (PostGIS's ``spatial_ref_sys``) aside."""
    return list(conn.execute(text(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') "
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid "
        "AND d.deptype = 'e') ORDER BY c.relname")).scalars())


def _row_counts(conn: Connection) -> dict[str, int]:
    # Names come from the catalogue, quoted: no text of a user reaches this SQL.
    return {t: conn.execute(text(f'SELECT count(*) FROM public."{t}"')).scalar_one() for t in _tables(conn)}


def _revision(conn: Connection) -> str | None:
    exists = conn.execute(text("SELECT to_regclass('public.alembic_version') IS NOT NULL")).scalar_one()
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar() if exists else None


def _service_version() -> str:
    try:
        return metadata.version("geo-service")
    except metadata.PackageNotFoundError:
        return "inconnue"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def format_count(value: int) -> str:
    return f"{value:,}".replace(",", "\u202f")


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} Mo".replace(".", ",")
