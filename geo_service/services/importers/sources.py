"""What an import reads: a local file or folder, an http(s) URL or an uploaded file object, with gzip and zip inside.

URLs and file objects are first copied to a temporary file (streamed, never held in memory): zip archives
need to seek, GDAL needs a path, and the progress bar needs a size. Every problem becomes an
``ImportFileError`` with a French message; nothing is written to the database before the file is read.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tempfile
import zipfile
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

DOWNLOAD_TIMEOUT_S = 120.0
_CHUNK = 1 << 20
TABLE_SUFFIXES = (".csv", ".txt", ".tsv", ".csv.gz", ".txt.gz")
MAGIC_GZIP, MAGIC_ZIP, MAGIC_7Z = b"\x1f\x8b", b"PK\x03\x04", b"7z\xbc\xaf\x27\x1c"

# advance(bytes) of the current progress bar; the caller decides how to show it.
Advance = Callable[[int], None]


@dataclass(frozen=True)
class Member:
    """One file of the input: the file itself, an entry of a zip archive or a file of a folder."""

    name: str
    size: int

    @property
    def basename(self) -> str:
        return PurePosixPath(self.name).name


class _Counting(io.RawIOBase):
    """A read-only stream that reports the bytes read, for the progress bar."""

    def __init__(self, raw: BinaryIO, advance: Advance | None):
        self._raw, self._advance = raw, advance

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if n and self._advance:
            self._advance(n)
        return n


class Source:
    """One input of an import, local on disk (copied there first when it came from a URL or an upload)."""

    def __init__(self, path: Path, name: str, modified: date | None, temporary: bool = False):
        self.path, self.name, self.modified, self._temporary = path, name, modified, temporary
        self.advance: Advance | None = None
        self._kind = "dir" if path.is_dir() else _sniff_container(path)
        if self._kind == "7z":
            raise ImportFileError(f"{name} : archive 7-Zip non prise en charge ; décompressez-la (7z x) "
                                  "et importez le fichier qu'elle contient")

    @property
    def is_archive(self) -> bool:
        return self._kind in ("zip", "dir")

    def members(self) -> list[Member]:
        """The files of the input, in a stable order (archive order, or sorted folder listing)."""
        if self._kind == "zip":
            with self._zip() as archive:
                return [Member(i.filename, i.file_size) for i in archive.infolist() if not i.is_dir()]
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
        """A binary stream of one member (gzip is undone transparently); reading advances the progress bar."""
        member = member or self.members()[0]
        with self._raw(member) as raw:
            counted = io.BufferedReader(_Counting(raw, self.advance), buffer_size=_CHUNK)
            if counted.peek(2)[:2] == MAGIC_GZIP:
                with gzip.GzipFile(fileobj=counted, mode="rb") as unzipped:
                    yield _Checked(unzipped, member.name)
            else:
                yield _Checked(counted, member.name)

    def gdal_path(self, member: Member | None = None) -> str:
        """A path GDAL (pyogrio) can open: the file itself, a folder member, or ``/vsizip/`` into an archive."""
        if self._kind == "zip":
            return f"/vsizip/{self.path}/{member.name}" if member else f"/vsizip/{self.path}"
        if self._kind == "dir":
            return str(self.path / member.name) if member else str(self.path)
        if self._kind == "gzip":
            return f"/vsigzip/{self.path}"
        return str(self.path)

    @contextmanager
    def _raw(self, member: Member) -> Iterator[BinaryIO]:
        if self._kind == "zip":
            with self._zip() as archive, archive.open(member.name) as raw:
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
        except (zipfile.BadZipFile, OSError) as exc:
            raise ImportFileError(f"{self.name} : archive zip illisible ({exc})") from exc

    def close(self) -> None:
        if self._temporary:
            shutil.rmtree(self.path.parent, ignore_errors=True)


class _Checked(io.BufferedIOBase):
    """Turns low-level read errors (truncated gzip or zip) into a French ``ImportFileError``."""

    def __init__(self, inner: BinaryIO, name: str):
        self._inner, self._name = inner, name

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        try:
            return self._inner.read(size)
        except (EOFError, OSError, zipfile.BadZipFile) as exc:
            raise ImportFileError(f"{self._name} : fichier compressé tronqué ou illisible ({exc})") from exc

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _sniff_container(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(MAGIC_ZIP):
        return "zip"
    if head.startswith(MAGIC_GZIP):
        return "gzip"
    if head.startswith(MAGIC_7Z):
        return "7z"
    return "plain"


@contextmanager
def open_source(location: str | os.PathLike | BinaryIO, *, filename: str | None = None,
                advance: Callable[[str, int | None], Advance] | None = None) -> Iterator[Source]:
    """Open a local path, an http(s) URL or a binary file object (an upload; ``filename`` names it).

    ``advance(label, total)`` returns the callback a download reports its bytes to (progress bar).
    """
    if hasattr(location, "read"):
        source = _from_file_object(location, filename or "fichier envoyé")  # type: ignore[arg-type]
    elif isinstance(location, str) and location.lower().startswith(("http://", "https://")):
        source = _download(location, advance)
    else:
        path = Path(location)
        if not path.exists():
            raise ImportFileError(f"fichier introuvable : {path}")
        modified = None if path.is_dir() else datetime.fromtimestamp(path.stat().st_mtime).date()
        try:
            source = Source(path, path.name, modified)
        except OSError as exc:
            raise ImportFileError(f"lecture impossible de {path} ({exc.strerror})") from exc
    try:
        yield source
    finally:
        source.close()


def _temp_path(name: str) -> Path:
    # The original name is kept: its extension tells the format and its digits the date of the data.
    folder = Path(tempfile.mkdtemp(prefix="geo-service-import-"))
    return folder / (PurePosixPath(name).name or "fichier")


def _from_file_object(stream: BinaryIO, name: str) -> Source:
    path = _temp_path(name)
    with open(path, "wb") as out:
        shutil.copyfileobj(stream, out, _CHUNK)
    return Source(path, name, None, temporary=True)


def _download(url: str, advance: Callable[[str, int | None], Advance] | None) -> Source:
    """Stream ``url`` to a temporary file; HTTP and network failures become French ``ImportFileError``."""
    name = unquote(PurePosixPath(urlparse(url).path).name) or "telechargement"
    path = _temp_path(name)
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=DOWNLOAD_TIMEOUT_S,
                          headers={"User-Agent": "geo-service (import de donnees ouvertes)"}) as response:
            if response.status_code >= 400:
                raise ImportFileError(f"{url} a répondu « {response.status_code} {response.reason_phrase} »")
            total = int(response.headers.get("content-length", 0)) or None
            report = advance("Téléchargement", total) if advance else None
            with open(path, "wb") as out:
                for chunk in response.iter_bytes(_CHUNK):
                    out.write(chunk)
                    if report:
                        report(len(chunk))
            modified = _http_date(response.headers.get("last-modified"))
    except httpx.TimeoutException as exc:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise ImportFileError(f"délai dépassé ({DOWNLOAD_TIMEOUT_S:.0f} s) en téléchargeant {url}") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise ImportFileError(f"téléchargement impossible de {url} : {exc}") from exc
    except ImportFileError:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise
    return Source(path, name, modified, temporary=True)


def _http_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).date()
    except (TypeError, ValueError):
        return None
