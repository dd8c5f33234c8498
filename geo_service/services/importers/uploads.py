"""Files sent to ``/admin/import``, kept between the preview and the import.

A bulk import takes several pages (preview, mapping, check, commit): the file is stored once, in a private
folder named by a random token, with the account that sent it. Only that account can use it again; it is
removed after the import and, at the latest, after ``KEEP_HOURS``.

Neither the name nor the extension of what was sent is trusted: the first bytes must show one of the kinds
the page accepts before anything is written (``formats.sniff``), the file is stored under a fixed name
(``donnees``) beside the folder's own records (``meta.json``, derived results such as the preview), and
the original name is kept only to be shown back.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from geo_service.errors import ImportFileError, NotFound, PayloadTooLarge
from geo_service.services.importers.framework import file_types

KEEP_HOURS = 24
DATA_FILE = "donnees"
META_FILE = "meta.json"
_CHUNK = 1 << 20
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
_RECORD = re.compile(r"^[a-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Upload:
    token: str
    path: Path
    name: str
    owner: str
    size: int


def default_folder() -> Path:
    return Path(tempfile.gettempdir()) / "geo-service-uploads"


def _shown_name(name: str) -> str:
    """The sender's file name as shown back on the pages (never used as a path)."""
    return "".join(c for c in name.replace("\\", "/").rsplit("/", 1)[-1] if c.isprintable())[:200] or "fichier"


def save(folder: Path, stream: BinaryIO, name: str, owner: str, max_bytes: int,
         accepted: frozenset[str]) -> Upload:
    """Copy ``stream`` to a new private folder once its first bytes show one of the ``accepted`` kinds.

    Refused, with nothing kept: another kind (422, naming the accepted formats), more than ``max_bytes`` (413).
    """
    purge(folder)
    head = stream.read(file_types.HEAD_BYTES)
    file_types.require(name, file_types.sniff(head), accepted, "d'un format accepté")
    token = secrets.token_urlsafe(24)
    home = folder / token
    home.mkdir(parents=True, mode=0o700)
    path = home / DATA_FILE
    size = len(head)
    try:
        with open(path, "wb") as out:
            out.write(head)
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"Le fichier dépasse la taille maximale acceptée "
                                          f"({max_bytes / 1024 / 1024:g} Mo) : utilisez la commande "
                                          "« geo-service edit import » ou « geo-service import »")
                out.write(chunk)
        (home / META_FILE).write_text(json.dumps({"name": _shown_name(name), "owner": owner}), encoding="utf-8")
    except BaseException:
        shutil.rmtree(home, ignore_errors=True)
        raise
    return Upload(token, path, _shown_name(name), owner, size)


def load(folder: Path, token: str, owner: str) -> Upload:
    """The upload ``token`` of ``owner``; anything else (unknown, expired, another account's) is a 404."""
    missing = NotFound("Fichier envoyé introuvable ou expiré : envoyez-le à nouveau")
    if not _TOKEN.match(token):
        raise missing
    home = folder / token
    try:
        meta = json.loads((home / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise missing from None
    path = home / DATA_FILE
    if meta.get("owner") != owner or not path.is_file():
        raise missing
    return Upload(token, path, str(meta.get("name") or "fichier"), owner, path.stat().st_size)


def recall(upload: Upload, record: str) -> object | None:
    """A result computed earlier from this upload (e.g. its preview), or None."""
    try:
        return json.loads((upload.path.parent / f"{_checked(record)}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def remember(upload: Upload, record: str, value: object) -> None:
    """Keep a result computed from this upload, so that the next page view does not compute it again."""
    target = upload.path.parent / f"{_checked(record)}.json"
    partial = target.with_suffix(".tmp")
    partial.write_text(json.dumps(value, ensure_ascii=False, default=str), encoding="utf-8")
    partial.replace(target)


def _checked(record: str) -> str:
    if not _RECORD.match(record) or record == META_FILE.removesuffix(".json"):
        raise ImportFileError(f"nom d'enregistrement invalide : {record!r}")
    return record


def discard(upload: Upload) -> None:
    shutil.rmtree(upload.path.parent, ignore_errors=True)


def purge(folder: Path, keep_hours: float = KEEP_HOURS) -> None:
    """Remove uploads older than ``keep_hours`` (abandoned previews)."""
    if not folder.is_dir():
        return
    limit = time.time() - keep_hours * 3600
    for home in folder.iterdir():
        try:
            if home.is_dir() and home.stat().st_mtime < limit:
                shutil.rmtree(home, ignore_errors=True)
        except OSError:
            continue
