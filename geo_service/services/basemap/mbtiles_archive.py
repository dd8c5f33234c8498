"""An MBTiles file of the territory (the self-hosted base map): checked, described and read with Python's sqlite3.

MBTiles 1.3 is an SQLite database with a ``metadata`` table (name, value) and a ``tiles`` table (or view)
(zoom_level, tile_column, tile_row, tile_data) whose rows count from the south (TMS): the web maps' ``y``, counted
from the north, is flipped here and nowhere else. The file is opened read-only for every read, so a file
installed again by ``geo-service basemap install`` is seen by the next request.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from geo_service.errors import InvalidParameter, NotFound

# Tile formats the service serves, with their media type. Its own maps draw only the raster ones; pbf (vector)
# tiles are served for clients that draw them (QGIS, MapLibre).
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "pbf": "application/x-protobuf"}
RASTER_FORMATS = ("png", "jpg", "webp")
# Zoom levels beyond this do not exist in any web map (a 2^30 grid is already 4 cm per pixel).
MAX_ZOOM = 30
# Web Mercator stops at ±85.0511° of latitude.
MERCATOR_LAT = math.degrees(math.atan(math.sinh(math.pi)))

Bbox = tuple[float, float, float, float]  # west, south, east, north in degrees


class MbtilesError(ValueError):
    """A file that is not a usable MBTiles, said in French."""


@dataclass(frozen=True)
class MbtilesInfo:
    path: Path
    name: str
    format: str  # png, jpg, webp or pbf
    min_zoom: int
    max_zoom: int
    bounds: Bbox
    tile_count: int
    attribution: str

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    @property
    def raster(self) -> bool:
        return self.format in RASTER_FORMATS

    def lines(self) -> list[str]:
        """A French description, one fact a line (``geo-service basemap info``)."""
        west, south, east, north = self.bounds
        return [f"Fichier : {self.path}", f"Nom : {self.name or '(sans nom)'}",
                f"Format des tuiles : {self.format}" + ("" if self.raster else " (vectoriel : servi, non dessiné "
                                                                           "par les cartes du service)"),
                f"Niveaux de zoom : {self.min_zoom} à {self.max_zoom}", f"Tuiles : {self.tile_count}",
                f"Emprise : ouest {west:.4f}, sud {south:.4f}, est {east:.4f}, nord {north:.4f}",
                f"Attribution : {self.attribution or '(aucune : à donner dans GEO_SERVICE_MAP__BASEMAP_ATTRIBUTION)'}"]


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    if not path.is_file():
        raise MbtilesError(f"{path} : fichier introuvable")
    # mode=ro: never creates nor changes the file; as_uri() escapes the characters a URI would take for its own.
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            yield conn
    except sqlite3.DatabaseError as exc:
        raise MbtilesError(f"{path} : ce n'est pas une base MBTiles lisible ({exc})") from exc


def _metadata(conn: sqlite3.Connection) -> dict[str, str]:
    columns = {row[1] for row in conn.execute("PRAGMA table_info(metadata)")}
    if not {"name", "value"} <= columns:
        raise MbtilesError("table « metadata » (name, value) absente : ce n'est pas un fichier MBTiles")
    return {str(name): str(value) for name, value in conn.execute("SELECT name, value FROM metadata")
            if name is not None and value is not None}


def _format(metadata: dict[str, str]) -> str:
    declared = metadata.get("format", "").strip().lower()
    fmt = {"jpeg": "jpg", "mvt": "pbf"}.get(declared, declared)
    if fmt not in MEDIA_TYPES:
        raise MbtilesError(f"format de tuiles « {declared or '(absent)'} » non pris en charge : "
                           f"attendu {', '.join(MEDIA_TYPES)} (métadonnée « format »)")
    return fmt


def _bounds(metadata: dict[str, str], conn: sqlite3.Connection, max_zoom: int) -> Bbox:
    raw = metadata.get("bounds")
    if raw:
        try:
            west, south, east, north = (float(v) for v in raw.split(","))
        except ValueError as exc:
            raise MbtilesError(f"métadonnée « bounds » illisible : « {raw} » (attendu ouest,sud,est,nord)") from exc
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            raise MbtilesError(f"métadonnée « bounds » hors des limites du globe : « {raw} »")
        return west, south, east, north
    # No bounds said: the extent of the tiles of the deepest zoom, the closest to the data (as GDAL does).
    zoom = max_zoom
    col_min, col_max, row_min, row_max = conn.execute(
        "SELECT min(tile_column), max(tile_column), min(tile_row), max(tile_row) FROM tiles WHERE zoom_level = ?",
        (zoom,)).fetchone()
    west, north = tile_corner(zoom, col_min, flip_row(zoom, row_max))
    east, south = tile_corner(zoom, col_max + 1, flip_row(zoom, row_min) + 1)
    return west, south, east, north


def read_info(path: Path) -> MbtilesInfo:
    """Check that ``path`` is an MBTiles the service can serve and describe it; MbtilesError says why not."""
    with _read_only(path) as conn:
        metadata = _metadata(conn)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(tiles)")}
        if not {"zoom_level", "tile_column", "tile_row", "tile_data"} <= columns:
            raise MbtilesError("table « tiles » (zoom_level, tile_column, tile_row, tile_data) absente")
        fmt = _format(metadata)
        count, least, most = conn.execute("SELECT count(*), min(zoom_level), max(zoom_level) FROM tiles").fetchone()
        if not count:
            raise MbtilesError("le fichier ne contient aucune tuile")
        if not (isinstance(least, int) and isinstance(most, int) and 0 <= least <= most <= MAX_ZOOM):
            raise MbtilesError(f"niveaux de zoom {least} à {most} hors de 0 à {MAX_ZOOM}")
        return MbtilesInfo(path=path, name=metadata.get("name", ""), format=fmt, min_zoom=int(least),
                           max_zoom=int(most), bounds=_bounds(metadata, conn, int(most)), tile_count=int(count),
                           attribution=metadata.get("attribution", "").strip())


def check_covers(info: MbtilesInfo, territory: Bbox, slack_deg: float = 0.01) -> None:
    """MbtilesError unless the file's bounds hold the territory's box (give or take ``slack_deg``)."""
    west, south, east, north = info.bounds
    t_west, t_south, t_east, t_north = territory
    if west > t_west + slack_deg or south > t_south + slack_deg or east < t_east - slack_deg \
            or north < t_north - slack_deg:
        raise MbtilesError(f"l'emprise du fichier ({west:.3f}, {south:.3f}, {east:.3f}, {north:.3f}) ne couvre "
                           f"pas le territoire ({t_west:.3f}, {t_south:.3f}, {t_east:.3f}, {t_north:.3f})")


def flip_row(zoom: int, row: int) -> int:
    """XYZ ``y`` (from the north) ↔ TMS row (from the south): the same flip both ways."""
    return (1 << zoom) - 1 - row


def tile_corner(zoom: int, x: int, y: int) -> tuple[float, float]:
    """(longitude, latitude) of the north-west corner of XYZ tile x/y at ``zoom``."""
    n = 1 << zoom
    return x / n * 360.0 - 180.0, math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))


def parse_address(z: str, x: str, y: str) -> tuple[int, int, int]:
    """A tile address from the URL: not a number is a 400, a tile outside the world's grid a 404."""
    numbers = []
    for name, raw in (("z", z), ("x", x), ("y", y)):
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 10):
            raise InvalidParameter(f"« {name} » doit être un entier positif ou nul", parameter=name)
        numbers.append(int(raw))
    zoom, col, row = numbers
    if zoom > MAX_ZOOM:
        raise NotFound(f"Niveau de zoom {zoom} inexistant (0 à {MAX_ZOOM})")
    if col >= 1 << zoom or row >= 1 << zoom:
        raise NotFound(f"Tuile {zoom}/{col}/{row} hors de la grille : x et y vont de 0 à {(1 << zoom) - 1}")
    return zoom, col, row


def read_tile(path: Path, zoom: int, x: int, y: int) -> bytes | None:
    """The bytes of XYZ tile zoom/x/y (``y`` from the north), or None if the file has no such tile."""
    with _read_only(path) as conn:
        row = conn.execute("SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
                           (zoom, x, flip_row(zoom, y))).fetchone()
    data = row[0] if row else None
    if isinstance(data, str):  # SQLite keeps what it was given: a file written as text still holds the bytes
        return data.encode("utf-8", "surrogateescape")
    return bytes(data) if isinstance(data, bytes | memoryview) else None
