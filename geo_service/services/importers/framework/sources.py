"""What an import reads: a local file or folder, an http(s) URL or an uploaded file object, with gzip and zip inside.

URLs and file objects are first copied to a temporary file (streamed, never held in memory): zip archives
need to seek, GDAL needs a path, and the progress bar needs a size. Every problem becomes an
``ImportFileError`` with a French message; nothing is written to the database before the file is read.

Nothing here trusts a name: a file (or a member of an archive) is read only as what its first bytes show
(``formats.py``); an archive is checked before use (member count, names, declared sizes); every byte
downloaded or decompressed counts against ``FileLimits.max_unpacked_bytes``; and GDAL is only given files
this module wrote itself — the member it needs (with its shapefile companions) extracted under a fixed
name — never the archive, a URL or a ``/vsi…`` path.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import unquote, urlparse

import httpx

from geo_service.errors import ImportFileError
from geo_service.services.importers.framework import file_types
from geo_service.settings import Settings

DOWNLOAD_TIMEOUT_S = 120.0
_CHUNK = 1 << 20
TABLE_SUFFIXES = (".csv", ".txt", ".tsv", ".csv.gz", ".txt.gz")
MAGIC_GZIP = b"\x1f\x8b"
# The files of a shapefile GDAL needs besides the .shp, extracted with it. Spatial indexes (.qix, .sbn) and
# metadata (.xml) are never opened: GDAL works without them.
SHAPEFILE_COMPANIONS = (".shx", ".dbf", ".prj", ".cpg")
# The name an extracted single file gets from what its bytes hold (some GDAL drivers look at the suffix).
_SUFFIX_OF = {file_types.JSON: ".geojson", file_types.GEOPACKAGE: ".gpkg", file_types.FLATGEOBUF: ".fgb"}

# advance(bytes) of the current progress bar; the caller decides how to show it.
Advance = Callable[[int], None]


@dataclass(frozen=True)
class FileLimits:
    """How far an input may expand (download, gzip, zip) and how many files an archive may hold."""

    max_unpacked_bytes: int = 1 << 30
    max_members: int = 200

    @classmethod
    def from_settings(cls, settings: Settings, *, command_line: bool = False) -> FileLimits:
        """The limits of files sent through the pages, or (``command_line``) of ``geo-service import``."""
        editing = settings.editing
        return cls(editing.command_line_max_unpacked_bytes if command_line else editing.max_unpacked_bytes,
                   editing.max_archive_members)

    def too_large(self, name: str) -> ImportFileError:
        return ImportFileError(f"{name} : le contenu décompressé ou téléchargé dépasse "
                               f"{self.max_unpacked_bytes / 1024 / 1024:g} Mo (archive piégée, ou fichier trop "
                               "gros pour cette voie d'import)")


@dataclass(frozen=True)
class Member:
    """One file of the input: the file itself, an entry of a zip archive or a file of a folder."""

    name: str
    size: int

    @property
    def basename(self) -> str:
        return PurePosixPath(self.name).name


class _Counting(io.RawIOBase):
    """A read-only stream that reports the bytes read: to the progress bar, and to a limit's counter."""

    def __init__(self, raw: BinaryIO, advance: Advance | None, count: Advance | None = None):
        self._raw, self._advance, self._count = raw, advance, count

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if n and self._advance:
            self._advance(n)
        if n and self._count:
            self._count(n)
        return n


class Source:
    """One input of an import, local on disk (copied there first when it came from a URL or an upload)."""

    def __init__(self, path: Path, name: str, modified: date | None, temporary: bool = False,
                 limits: FileLimits | None = None):
        self.path, self.name, self.modified, self._temporary = path, name, modified, temporary
        self.limits = limits or FileLimits()
        self.advance: Advance | None = None
        self._unpacked = 0
        self._work: Path | None = None
        self._members: list[Member] | None = None
        self._kind = "dir" if path.is_dir() else _sniff_container(path)
        if self._kind == file_types.SEVEN_ZIP:
            raise ImportFileError(f"{name} : archive 7-Zip non prise en charge ; décompressez-la (7z x) "
                                  "et importez le fichier qu'elle contient")
        if self._kind == file_types.ZIP:
            self._members = self._check_archive()

    @property
    def is_archive(self) -> bool:
        return self._kind in (file_types.ZIP, "dir")

    @property
    def kind(self) -> str:
        """What a single-file input holds (gzip undone), from its first bytes; ``"archive"`` for the others."""
        return "archive" if self.is_archive else self._member_kind(self.members()[0])

    def check(self, accepted: frozenset[str]) -> None:
        """Refuse the input unless every file it would be read as is one of the ``accepted`` kinds, by its bytes.

        In an archive, each member whose name says a format the service reads must hold that format; members
        of other names (a notice, a spatial index) are never opened, hence not checked.
        """
        if not self.is_archive:
            file_types.require(self.name, self.kind, accepted, "d'un format accepté")
            return
        used = [(member, use) for member in self.members() if (use := file_types.use_of(member.name))]
        if not used:
            raise ImportFileError(f"{self.name} : l'archive ne contient aucun fichier d'un format accepté "
                                  f"({file_types.ACCEPTED_TEXT})")
        for member, (label, kinds) in used:
            file_types.require(member.name, self._member_kind(member), kinds, label)

    def members(self) -> list[Member]:
        """The files of the input, in a stable order (archive order, or sorted folder listing)."""
        if self._members is not None:
            return self._members
        if self._kind == "dir":
            return [Member(str(p.relative_to(self.path)), p.stat().st_size)
                    for p in sorted(self.path.rglob("*")) if p.is_file()]
        return [Member(self.name, self.path.stat().st_size)]

    def find(self, basename: str) -> Member | None:
        """The member whose file name is ``basename``, ignoring case and folders inside the archive."""
        wanted = basename.lower()
        return next((m for m in self.members() if m.basename.lower() == wanted), None)

    def tables(self) -> list[Member]:
        """Members that are delimited text files (an archive may also hold a PDF notice or a licence)."""
        found = self.with_suffix(*TABLE_SUFFIXES)
        return found or self.members()[:1]

    def main_table(self) -> Member:
        """The delimited file to read when a kind expects one: the largest of the archive's tables."""
        return max(self.tables(), key=lambda m: m.size)

    def with_suffix(self, *suffixes: str) -> list[Member]:
        """Members whose name ends with one of ``suffixes`` (lower case, e.g. ``.gpkg``)."""
        return [m for m in self.members() if m.name.lower().endswith(suffixes)]

    @contextmanager
    def open(self, member: Member | None = None) -> Iterator[BinaryIO]:
        """A binary stream of one delimited-text member (gzip undone), refused unless its bytes are text;
        reading advances the progress bar and counts against the decompression limit."""
        member = member or self.members()[0]
        with self._stream(member) as stream:
            head = stream.peek(file_types.HEAD_BYTES)[:file_types.HEAD_BYTES]
            file_types.require(member.name, file_types.sniff(head), frozenset({file_types.TEXT}),
                               "CSV (texte délimité)", hint=None)
            yield stream

    def vector_path(self, member: Member | None = None) -> str:
        """A local file GDAL may open for ``member`` (None: the input itself), once its bytes show a vector
        format: the input itself, or the member (and its shapefile companions) extracted under a fixed name."""
        member = member or self.members()[0]
        kind = self._member_kind(member)
        use = file_types.use_of(member.name) if self.is_archive else None
        accepted = use[1] if use else frozenset(file_types.VECTOR_KINDS)
        file_types.require(member.name, kind, accepted & frozenset(file_types.VECTOR_KINDS),
                        use[0] if use else "géographique", hint=file_types.VECTOR_TEXT)
        if kind == file_types.SHAPE and not self.is_archive:
            raise ImportFileError(f"{member.basename} : un shapefile s'envoie zippé avec ses fichiers .shx, .dbf "
                                  "et .prj")
        if self._kind == "plain":
            return str(self.path)
        suffix = PurePosixPath(member.name).suffix.lower() if self.is_archive else _SUFFIX_OF[kind]
        target = self._work_dir() / f"donnees{suffix}"
        self._extract(member, target)
        if kind == file_types.SHAPE:
            stem = member.name[:-len(PurePosixPath(member.name).suffix)]
            for companion in SHAPEFILE_COMPANIONS:
                found = self._at(stem + companion)
                if found is not None:
                    label, kinds = file_types.USES[companion]
                    file_types.require(found.name, self._member_kind(found), kinds, label)
                    self._extract(found, target.with_suffix(companion))
        return str(target)

    def _at(self, name: str) -> Member | None:
        wanted = name.lower()
        return next((m for m in self.members() if m.name.lower() == wanted), None)

    def _member_kind(self, member: Member) -> str:
        with self._stream(member, file_types.HEAD_BYTES) as stream:
            return file_types.sniff(stream.peek(file_types.HEAD_BYTES)[:file_types.HEAD_BYTES])

    @contextmanager
    def _stream(self, member: Member, buffer: int = _CHUNK) -> Iterator[io.BufferedReader]:
        """The member's bytes, gzip undone, counted for the progress bar and against the decompression limit."""
        with self._raw(member) as raw:
            # Bytes of a zip member are decompressed bytes; a plain file's are already bounded by its size.
            unzipped_by_zip = self._kind == file_types.ZIP
            counted = io.BufferedReader(
                _Checked(_Counting(raw, self.advance, self._count if unzipped_by_zip else None), member.name),
                buffer_size=buffer)
            if counted.peek(2)[:2] != MAGIC_GZIP:
                yield counted
                return
            with gzip.GzipFile(fileobj=counted, mode="rb") as unzipped:
                yield io.BufferedReader(_Checked(_Counting(unzipped, None, self._count), member.name),
                                        buffer_size=buffer)

    def _count(self, n: int) -> None:
        self._unpacked += n
        if self._unpacked > self.limits.max_unpacked_bytes:
            raise self.limits.too_large(self.name)

    def _extract(self, member: Member, target: Path) -> None:
        with self._stream(member) as stream, open(target, "wb") as out:
            shutil.copyfileobj(stream, out, _CHUNK)

    def _work_dir(self) -> Path:
        """A new private folder for extracted files, removed with the source."""
        if self._work is None:
            self._work = Path(tempfile.mkdtemp(prefix="geo-service-read-"))
        return Path(tempfile.mkdtemp(dir=self._work))

    def _check_archive(self) -> list[Member]:
        """The members of a zip, once its listing is sane: not too many files, safe names, sizes within limits."""
        with self._zip() as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
        if len(infos) > self.limits.max_members:
            raise ImportFileError(f"{self.name} : l'archive contient {len(infos)} fichiers ; au plus "
                                  f"{self.limits.max_members} sont acceptés")
        total = 0
        for info in infos:
            parts = PurePosixPath(info.filename).parts
            if info.filename.startswith("/") or ".." in parts or any(c in info.filename for c in "\x00\\:"):
                raise ImportFileError(f"{self.name} : nom de fichier refusé dans l'archive "
                                      f"« {info.filename[:80]} »")
            if info.flag_bits & 0x1:
                raise ImportFileError(f"{self.name} : « {PurePosixPath(info.filename).name} » est chiffré "
                                      "dans l'archive")
            total += info.file_size
        if total > self.limits.max_unpacked_bytes:
            raise self.limits.too_large(self.name)
        return [Member(i.filename, i.file_size) for i in infos]

    @contextmanager
    def _raw(self, member: Member) -> Iterator[BinaryIO]:
        if self._kind == file_types.ZIP:
            with self._zip() as archive:
                try:
                    raw = archive.open(member.name)
                except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError) as exc:
                    raise ImportFileError(f"{self.name} : « {member.basename} » illisible dans l'archive "
                                          f"({exc})") from exc
                with raw:
                    yield raw
        elif self._kind == "dir":
            with open(self.path / member.name, "rb") as raw:
                yield raw
        else:
            with open(self.path, "rb") as raw:
                yield raw

    def _zip(self) -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, NotImplementedError, ValueError, EOFError) as exc:
            raise ImportFileError(f"{self.name} : archive zip illisible ({exc})") from exc

    def close(self) -> None:
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
        if self._temporary:
            shutil.rmtree(self.path.parent, ignore_errors=True)


class _Checked(io.RawIOBase):
    """Turns low-level read errors (truncated gzip or zip) into a French ``ImportFileError``."""

    def __init__(self, inner: BinaryIO, name: str):
        self._inner, self._name = inner, name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        try:
            data = self._inner.read(len(buffer))
        except (EOFError, OSError, zipfile.BadZipFile, zlib.error) as exc:
            raise ImportFileError(f"{self._name} : fichier compressé tronqué ou illisible ({exc})") from exc
        buffer[:len(data)] = data
        return len(data)


def _sniff_container(path: Path) -> str:
    with open(path, "rb") as f:
        kind = file_types.sniff(f.read(8))
    return kind if kind in (file_types.ZIP, file_types.GZIP, file_types.SEVEN_ZIP) else "plain"


@contextmanager
def open_source(location: str | os.PathLike | BinaryIO, *, filename: str | None = None,
                advance: Callable[[str, int | None], Advance] | None = None,
                limits: FileLimits | None = None) -> Iterator[Source]:
    """Open a local path, an http(s) URL or a binary file object (``filename``: its name as its sender gave it).

    ``advance(label, total)`` returns the callback a download reports its bytes to (progress bar).
    """
    limits = limits or FileLimits()
    if hasattr(location, "read"):
        source = _from_file_object(location, filename or "fichier envoyé", limits)  # type: ignore[arg-type]
    elif isinstance(location, str) and location.lower().startswith(("http://", "https://")):
        source = _download(location, advance, limits)
    else:
        path = Path(location)
        if not path.exists():
            raise ImportFileError(f"fichier introuvable : {path}")
        modified = None if path.is_dir() else datetime.fromtimestamp(path.stat().st_mtime).date()
        try:
            source = Source(path, filename or path.name, modified, limits=limits)
        except OSError as exc:
            raise ImportFileError(f"lecture impossible de {path} ({exc.strerror})") from exc
    try:
        yield source
    finally:
        source.close()


def check_file(path: Path, name: str, accepted: frozenset[str], limits: FileLimits | None = None) -> None:
    """Refuse (422, French) a file that is not, by its bytes, one of the ``accepted`` kinds — alone, gzipped,
    or as the members of a zip whose names say a format — before anything else reads it."""
    with open_source(path, filename=name, limits=limits) as source:
        source.check(accepted)


def _temp_path(name: str) -> Path:
    # The original name is kept: its extension tells the format and its digits the date of the data.
    folder = Path(tempfile.mkdtemp(prefix="geo-service-import-"))
    return folder / (PurePosixPath(name.replace("\\", "/")).name.lstrip(".") or "fichier")


def _from_file_object(stream: BinaryIO, name: str, limits: FileLimits) -> Source:
    path = _temp_path(name)
    try:
        _copy_limited(stream.read, path, limits, name)
        return Source(path, name, None, temporary=True, limits=limits)
    except BaseException:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise


def _copy_limited(read: Callable[[int], bytes], path: Path, limits: FileLimits, name: str,
                  report: Advance | None = None) -> None:
    size = 0
    with open(path, "wb") as out:
        while chunk := read(_CHUNK):
            size += len(chunk)
            if size > limits.max_unpacked_bytes:
                raise limits.too_large(name)
            out.write(chunk)
            if report:
                report(len(chunk))


def _download(url: str, advance: Callable[[str, int | None], Advance] | None, limits: FileLimits) -> Source:
    """Stream ``url`` to a temporary file; HTTP and network failures become French ``ImportFileError``."""
    name = unquote(PurePosixPath(urlparse(url).path).name) or "telechargement"
    path = _temp_path(name)
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=DOWNLOAD_TIMEOUT_S,
                          headers={"User-Agent": "geo-service (import de donnees ouvertes)"}) as response:
            if response.status_code >= 400:
                raise ImportFileError(f"{url} a répondu « {response.status_code} {response.reason_phrase} »")
            total = int(response.headers.get("content-length", 0)) or None
            if total and total > limits.max_unpacked_bytes:
                raise limits.too_large(name)
            report = advance("Téléchargement", total) if advance else None
            chunks = response.iter_bytes(_CHUNK)
            _copy_limited(lambda _n: next(chunks, b""), path, limits, name, report)
            modified = _http_date(response.headers.get("last-modified"))
        return Source(path, name, modified, temporary=True, limits=limits)
    except httpx.TimeoutException as exc:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise ImportFileError(f"délai dépassé ({DOWNLOAD_TIMEOUT_S:.0f} s) en téléchargeant {url}") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise ImportFileError(f"téléchargement impossible de {url} : {exc}") from exc
    except BaseException:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise


def _http_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).date()
    except (TypeError, ValueError):
        return None
