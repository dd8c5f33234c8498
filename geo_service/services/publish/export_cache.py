"""Whole-layer exports kept as files, built once per layer version and audience: a download then costs a file
read, not a query over the whole layer (the GeoPackage of the 130,000 demo premises took ≈30 s to build, and
anyone may ask for it).

A file's name holds a digest of what decides its content: the layer's change counter and last change
(``layer_state``), its declaration, the format and the audience — ``public`` (the anonymous view) or
``restreint`` (readers who may see the restricted fields; the rows are the same for every reader, so these
two files are all there is). A change to the layer gives a new name, hence a new file; the one before is kept
for downloads still reading it, older ones are deleted. One lock file per export serialises its builds across
threads and worker processes; a request arriving while a build runs is served the previous file at once if
there is one, rather than waiting.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine

from geo_service.layers import LayerDecl
from geo_service.services.publish import layer_export, layer_state
from geo_service.services.publish.read_access import Reader

log = logging.getLogger(__name__)
# The current file and the one before it, which a download that started before the change may still read.
KEPT_PER_EXPORT = 2


@dataclass(frozen=True)
class ExportFile:
    path: Path
    # Strong ETag: the digest in the file's name, so it changes exactly when the content may.
    etag: str

    @property
    def gzipped(self) -> Path:
        """The same file compressed once (gzip): compressing 40–80 MB for every download cost seconds of CPU."""
        return _gzipped(self.path)


def _gzipped(path: Path) -> Path:
    return path.with_name(path.name + ".gz")


def prepare_folder(folder: Path) -> Path:
    """Create the folder, readable by the service's user only (it may hold restricted fields), and refuse one
    that another user owns: in a shared temp folder, someone could have made it first to plant files."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if folder.stat().st_uid != os.getuid():
        raise PermissionError(f"Le dossier des exports {folder} appartient à un autre utilisateur : "
                              "choisissez-en un autre (GEO_SERVICE_API__EXPORT_DIR)")
    return folder


def audience(layer: LayerDecl, reader: Reader) -> str:
    return "restreint" if reader.sees_restricted(layer) else "public"


def export_file(engine: Engine, layer: LayerDecl, reader: Reader, fmt: str, folder: Path) -> ExportFile:
    """The layer as an export file of ``folder`` for what ``reader`` may see, built if the layer changed since.

    Takes the engine, not a connection: a request waiting for another's build must not hold a connection.
    """
    prefix = f"{layer.id}-{audience(layer, reader)}-"
    lock = prepare_folder(folder) / f".{prefix}{fmt}.lock"
    with _exclusive(lock, wait=False) as held:
        if held:
            return _current(engine, layer, reader, fmt, folder, prefix)
    previous = _newest(folder, prefix, fmt)
    if previous is not None:
        return previous  # a newer one is being built
    with _exclusive(lock, wait=True):
        return _current(engine, layer, reader, fmt, folder, prefix)


@contextmanager
def _exclusive(path: Path, wait: bool) -> Iterator[bool]:
    """An exclusive ``flock`` on ``path``; without ``wait``, yields False at once if another holds it."""
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _current(engine: Engine, layer: LayerDecl, reader: Reader, fmt: str, folder: Path, prefix: str) -> ExportFile:
    # One snapshot for the layer's state and its rows: the file holds exactly the version its name says.
    with engine.connect() as conn:
        conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            state = layer_state.state(conn, layer.id)
            decides = [state.version, str(state.changed_at), layer.model_dump(mode="json"), fmt, prefix]
            digest = hashlib.sha256(json.dumps(decides, sort_keys=True).encode()).hexdigest()[:24]
            path = folder / f"{prefix}{digest}.{fmt}"
            if not path.exists():
                _build(conn, layer, reader, fmt, path)
                _prune(folder, prefix, fmt)
    return ExportFile(path, f'"{digest}"')


def _build(conn: Connection, layer: LayerDecl, reader: Reader, fmt: str, path: Path) -> None:
    # Written aside, then renamed: a download never sees half a file, and a failed build leaves none. The
    # compressed copy is renamed first, so that wherever the file is, its copy is too.
    partial = path.parent / ".building" / path.name
    partial.parent.mkdir(exist_ok=True)
    partial.unlink(missing_ok=True)  # GDAL would add to a crashed build's file
    started = time.perf_counter()
    if fmt == "gpkg":
        layer_export.geopackage(conn, layer, reader, partial)
    else:
        writer = layer_export.geojson if fmt == "geojson" else layer_export.csv_rows
        with partial.open("w", encoding="utf-8", newline="") as out:
            out.writelines(writer(conn, layer, reader))
    # Level 6, as the service's GZip middleware (main.py).
    with partial.open("rb") as plain, gzip.open(_gzipped(partial), "wb", compresslevel=6) as packed:
        shutil.copyfileobj(plain, packed, 1 << 20)
    os.replace(_gzipped(partial), _gzipped(path))
    os.replace(partial, path)
    log.info("Export %s construit en %.1f s", path.name, time.perf_counter() - started)


def _files(folder: Path, prefix: str, fmt: str) -> list[Path]:
    """The export's files, newest first."""
    found = []
    for path in folder.glob(f"{prefix}*.{fmt}"):
        try:
            found.append((path.stat().st_mtime_ns, path))
        except FileNotFoundError:
            continue  # removed meanwhile by a build's pruning
    return [path for _, path in sorted(found, reverse=True)]


def _newest(folder: Path, prefix: str, fmt: str) -> ExportFile | None:
    files = _files(folder, prefix, fmt)
    return ExportFile(files[0], f'"{files[0].stem.removeprefix(prefix)}"') if files else None


def _prune(folder: Path, prefix: str, fmt: str) -> None:
    for old in _files(folder, prefix, fmt)[KEPT_PER_EXPORT:]:
        old.unlink(missing_ok=True)
        _gzipped(old).unlink(missing_ok=True)
