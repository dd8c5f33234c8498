"""What a file is, told by its first bytes — never by its name or extension.

Files come from people (``/admin/import``) and from the internet (``geo-service import URL``): a name says
what its sender claims, the bytes say what a reader will meet. GDAL in particular opens a file by its
content, so a file named ``x.geojson`` holding a GDAL virtual-format description (``<OGRVRTDataSource>``)
would be opened as such and read a file of the server or fetch a URL. Every file is therefore classified by
``sniff`` and used only as what its bytes show; ``require`` refuses, in French and naming the accepted formats,
a file whose bytes are not what its use needs.
"""

from __future__ import annotations

import codecs
import struct
from pathlib import PurePosixPath

from geo_service.errors import ImportFileError

HEAD_BYTES = 4096

# Content kinds ``sniff`` tells apart.
ZIP, GZIP, SEVEN_ZIP = "zip", "gzip", "7z"
GEOPACKAGE, SQLITE, FLATGEOBUF, SHAPE, DBASE = "gpkg", "sqlite", "fgb", "shp", "dbf"
JSON, XML, TEXT, PDF, BINARY, EMPTY = "json", "xml", "text", "pdf", "binary", "empty"

LABELS = {ZIP: "une archive zip", GZIP: "un fichier gzip", SEVEN_ZIP: "une archive 7-Zip", GEOPACKAGE: "un GeoPackage",
          SQLITE: "une base SQLite qui n'est pas un GeoPackage", FLATGEOBUF: "un FlatGeobuf",
          SHAPE: "un shapefile (.shp/.shx)", DBASE: "une table dBASE (.dbf)", JSON: "du JSON",
          XML: "du XML (format virtuel GDAL, GML, KML… : non acceptés)", TEXT: "du texte", PDF: "un PDF",
          BINARY: "un fichier binaire de format inconnu", EMPTY: "vide"}

# What a file of each name is used as, and the content kinds that use accepts. A file whose name claims
# one of these is read as such only if its bytes agree; other members of an archive are never opened.
USES: dict[str, tuple[str, frozenset[str]]] = {
    ".geojson": ("GeoJSON", frozenset({JSON})),
    ".json": ("GeoJSON", frozenset({JSON})),
    ".gpkg": ("GeoPackage", frozenset({GEOPACKAGE})),
    ".fgb": ("FlatGeobuf", frozenset({FLATGEOBUF})),
    ".shp": ("shapefile", frozenset({SHAPE})),
    ".shx": ("index de shapefile", frozenset({SHAPE})),
    ".dbf": ("table de shapefile", frozenset({DBASE})),
    ".prj": ("projection de shapefile", frozenset({TEXT})),
    ".cpg": ("encodage de shapefile", frozenset({TEXT})),
    ".csv": ("CSV", frozenset({TEXT})),
    ".txt": ("CSV", frozenset({TEXT})),
    ".tsv": ("CSV", frozenset({TEXT})),
}
# The vector formats GDAL may open (sniffed kind → name); GDAL's driver list is cut down to these.
VECTOR_KINDS = {JSON: "GeoJSON", GEOPACKAGE: "GeoPackage", FLATGEOBUF: "FlatGeobuf", SHAPE: "shapefile"}
VECTOR_TEXT = "GeoJSON, GeoPackage, FlatGeobuf ou shapefile zippé"
ACCEPTED_TEXT = ("GeoJSON (.geojson), GeoPackage (.gpkg), FlatGeobuf (.fgb), shapefile zippé (.shp, .shx, .dbf, "
                 ".prj dans un .zip) ou CSV (.csv, .txt)")

_SQLITE = b"SQLite format 3\x00"
_GPKG_IDS = (b"GPKG", b"GP10", b"GP11")
_SHAPE_FILE_CODE = 9994
_DBASE_VERSIONS = frozenset({0x02, 0x03, 0x04, 0x05, 0x30, 0x31, 0x32, 0x43, 0x63, 0x83, 0x8B, 0x8E, 0xCB, 0xF5,
                             0xFB})


def sniff(head: bytes) -> str:
    """The kind of a file from its first bytes (``HEAD_BYTES`` are enough).

    >>> sniff(b'{"type": "FeatureCollection"}'), sniff(b'<OGRVRTDataSource>'), sniff(b'id;nom\\n1;Gramat')
    ('json', 'xml', 'text')
    >>> sniff(b'PK\\x03\\x04...'), sniff(b'\\x1f\\x8b\\x08'), sniff(b'\\x00\\x01\\x02')
    ('zip', 'gzip', 'binary')
    """
    if not head:
        return EMPTY
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return ZIP
    if head.startswith(b"\x1f\x8b"):
        return GZIP
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return SEVEN_ZIP
    if head.startswith(_SQLITE):
        return GEOPACKAGE if head[68:72] in _GPKG_IDS else SQLITE
    if head[:3] == b"fgb" and head[4:7] == b"fgb":
        return FLATGEOBUF
    if len(head) >= 100 and struct.unpack(">i", head[:4])[0] == _SHAPE_FILE_CODE \
            and struct.unpack("<i", head[28:32])[0] == 1000:
        return SHAPE
    if _is_dbase(head):
        return DBASE
    if head.startswith(b"%PDF-"):
        return PDF
    text = _as_text(head)
    if text is None:
        return BINARY
    start = text.lstrip("\ufeff \t\r\n")
    if start.startswith("<"):
        return XML
    if start.startswith(("{", "[")):
        return JSON
    return TEXT


def _is_dbase(head: bytes) -> bool:
    """A dBASE header: known version byte, a plausible last-update date, header and record lengths."""
    if len(head) < 32 or head[0] not in _DBASE_VERSIONS:
        return False
    month, day = head[2], head[3]
    header_length, record_length = struct.unpack("<HH", head[8:12])
    return 1 <= month <= 12 and 1 <= day <= 31 and header_length >= 33 and record_length >= 1


def _as_text(head: bytes) -> str | None:
    """The start of a text file (UTF-8, UTF-16 with its mark, or a single-byte French encoding), else None."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return head.decode("utf-16", errors="ignore")
        except UnicodeDecodeError:
            return None
    if b"\x00" in head:
        return None
    # Control characters other than tab, newlines and form feed do not occur in text files.
    if any(b < 0x20 and b not in (0x09, 0x0A, 0x0C, 0x0D) for b in head):
        return None
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return head.decode("cp1252", errors="replace")


def use_of(name: str) -> tuple[str, frozenset[str]] | None:
    """What a file named ``name`` is used as (label, accepted kinds), or None: a name the service never reads."""
    return USES.get(PurePosixPath(name).suffix.lower())


def require(name: str, kind: str, accepted: frozenset[str], use: str, hint: str | None = ACCEPTED_TEXT) -> None:
    """Refuse (422, French) a file whose bytes are not one of the ``accepted`` kinds for its ``use``;
    ``hint`` names the formats the person may send instead."""
    if kind in accepted:
        return
    shown = PurePosixPath(name).name
    if kind == EMPTY:
        raise ImportFileError(f"« {shown} » : fichier vide")
    raise ImportFileError(f"« {shown} » n'est pas un fichier {use} : son contenu est {LABELS.get(kind, kind)}."
                          + (f" Formats acceptés : {hint}" if hint else ""))
