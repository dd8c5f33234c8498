"""Files sent to ``/admin/import``, kept between the preview and the import.

A bulk import takes several pages (preview, mapping, check, commit): the file is stored once, in a private
folder named by a random token, with the account that sent it. Only that account can use it again; it is
removed after the import and, at the latest, after ``KEEP_HOURS``. Names are never used as paths: the
original name is kept only for its extension (the format) and the report.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from geo_service.errors import NotFound, PayloadTooLarge

KEEP_HOURS = 24
_CHUNK = 1 << 20
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


@dataclass(frozen=True)
class Upload:
    token: str
    path: Path
    name: str
    owner: str
    size: int


def default_folder() -> Path:
    return Path(tempfile.gettempdir()) / "geo-service-uploads"


def _safe_name(name: str) -> str:
    base = PurePosixPath(name.replace("\\", "/")).name
    return _SAFE_NAME.sub("_", base).strip(" .") or "fichier"


def save(folder: Path, stream: BinaryIO, name: str, owner: str, max_bytes: int) -> Upload:
    """Copy ``stream`` to a new private folder; refused (413, nothing kept) beyond ``max_bytes``."""
    purge(folder)
    token = secrets.token_urlsafe(24)
    home = folder / token
    home.mkdir(parents=True, mode=0o700)
    path = home / _safe_name(name)
    size = 0
    try:
        with open(path, "wb") as out:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"Le fichier dépasse la taille maximale acceptée "
                                          f"({max_bytes / 1024 / 1024:g} Mo) : utilisez la commande "
                                          "« geo-service edit import » ou « geo-service import »")
                out.write(chunk)
    except BaseException:
        shutil.rmtree(home, ignore_errors=True)
        raise
    (home / "upload.json").write_text(json.dumps({"name": name, "owner": owner, "file": path.name}),
                                      encoding="utf-8")
    return Upload(token, path, name, owner, size)


def load(folder: Path, token: str, owner: str) -> Upload:
    """The upload ``token`` of ``owner``; anything else (unknown, expired, another account's) is a 404."""
    missing = NotFound("Fichier envoyé introuvable ou expiré : envoyez-le à nouveau")
    if not _TOKEN.match(token):
        raise missing
    home = folder / token
    try:
        meta = json.loads((home / "upload.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise missing from None
    if meta.get("owner") != owner:
        raise missing
    path = home / meta["file"]
    if not path.is_file():
        raise missing
    return Upload(token, path, meta["name"], owner, path.stat().st_size)


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
