"""A report's optional photo: checked by its bytes, re-encoded by Pillow, stripped of every metadata.

The file is opened by what its bytes say, never by its name or declared type: only JPEG, PNG and WebP pictures of
a sane size are accepted (Pillow's decompression-bomb guard, plus our own pixel cap). The picture is turned upright
(EXIF orientation), reduced to ``photo_max_side_px`` and written anew as JPEG: the new file carries no EXIF, GPS,
XMP nor ICC data, only pixels. It is stored under a random name in ``photo_dir`` and served only to officers and to
the reporter's own follow-up link.
"""

from __future__ import annotations

import io
import secrets
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import Connection, text

from geo_service.errors import InvalidParameter, NotFound, PayloadTooLarge, UnsupportedMediaType
from geo_service.settings import ReportSettings

FORMATS = ("JPEG", "PNG", "WEBP")
MAX_PIXELS = 40_000_000  # a 40-megapixel phone picture at most; beyond, decoding would cost too much memory


def reencode(data: bytes, rules: ReportSettings) -> bytes:
    """The photo as a fresh JPEG without metadata, or a French 4xx error."""
    if len(data) > rules.max_photo_bytes:
        raise PayloadTooLarge(f"Photo trop lourde : {rules.max_photo_bytes // (1024 * 1024)} Mo au plus",
                              parameter="photo", limit=rules.max_photo_bytes)
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as probe:
            if probe.width * probe.height > MAX_PIXELS:
                raise PayloadTooLarge("Photo trop grande (plus de 40 millions de pixels)", parameter="photo")
            probe.verify()
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:
            image.load()
            upright = ImageOps.exif_transpose(image)
            picture = upright.convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise UnsupportedMediaType("Ce fichier n'est pas une photo JPEG, PNG ou WebP lisible", parameter="photo") \
            from None
    except (OSError, SyntaxError, ValueError):
        raise InvalidParameter("Photo illisible ou tronquée", parameter="photo") from None
    picture.thumbnail((rules.photo_max_side_px, rules.photo_max_side_px))
    out = io.BytesIO()
    # A new image from the pixels alone: no exif=, no icc_profile=, so no metadata is carried over.
    clean = Image.new("RGB", picture.size)
    clean.paste(picture)
    clean.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue()


def attach(conn: Connection, photo_dir: Path, report_id: int, jpeg: bytes) -> str:
    """Write the re-encoded photo under a random name and record it on the report."""
    photo_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = f"{secrets.token_hex(16)}.jpg"
    path = photo_dir / name
    path.write_bytes(jpeg)
    path.chmod(0o600)
    conn.execute(text("UPDATE reports SET photo_path = :n WHERE id = :r"), {"n": name, "r": report_id})
    return name


def photo_path(photo_dir: Path, name: str) -> Path:
    """The file of a stored photo name (names are ours: hex and .jpg only)."""
    if not name.endswith(".jpg") or not all(c in "0123456789abcdef" for c in name[:-4]):
        raise InvalidParameter("Nom de photo invalide")
    path = photo_dir / name
    if not path.is_file():
        # The folder was emptied or moved (photo_dir left in the temp folder): say so rather than fail.
        raise NotFound("La photo de ce signalement n'est plus disponible")
    return path
