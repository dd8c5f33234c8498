"""A small MBTiles file of the territory, made here so the self-hosted base map is proven offline.

The tiles are plain 256×256 PNGs written with zlib and struct (the PNG format is a signature and three chunks):
Pillow is not a dependency of the service, and a solid colour per tile is all the tests need. Each tile's
colour is made of its own address, so a test can tell which tile it was given (and so whether the TMS rows were
flipped correctly).
"""

from __future__ import annotations

import math
import sqlite3
import struct
import zlib
from contextlib import closing
from pathlib import Path

Bbox = tuple[float, float, float, float]  # west, south, east, north


def png_tile(rgb: tuple[int, int, int], size: int = 256) -> bytes:
    """A ``size``×``size`` truecolour PNG of one colour."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * size  # filter byte 0 (none), then the pixels
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8 bits per channel, RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * size, 9))
            + chunk(b"IEND", b""))


def colour_of(zoom: int, x: int, y: int) -> tuple[int, int, int]:
    """A colour unique to a tile of the few the file holds (light, like a plan)."""
    return 150 + (x * 7) % 100, 150 + (y * 11) % 100, 120 + zoom * 10


def tile_of(lon: float, lat: float, zoom: int) -> tuple[int, int]:
    """The XYZ tile (x, y from the north) holding a point."""
    n = 1 << zoom
    lat_r = math.radians(lat)
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(lat_r)) / math.pi) / 2 * n)


def tiles_over(bbox: Bbox, zoom: int) -> list[tuple[int, int]]:
    west, south, east, north = bbox
    (x0, y0), (x1, y1) = tile_of(west, north, zoom), tile_of(east, south, zoom)
    return [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def make_mbtiles(path: Path, bbox: Bbox, zooms: tuple[int, ...] = (8, 9, 10), fmt: str = "png",
                 attribution: str = "Fond de test © Lot numérique") -> dict[tuple[int, int, int], bytes]:
    """Writes an MBTiles of ``bbox`` at ``zooms``; returns its tiles by XYZ address (z, x, y from the north)."""
    tiles = {(z, x, y): png_tile(colour_of(z, x, y)) for z in zooms for x, y in tiles_over(bbox, z)}
    path.unlink(missing_ok=True)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE metadata (name text, value text)")
        db.execute("CREATE TABLE tiles (zoom_level integer, tile_column integer, tile_row integer, tile_data blob)")
        db.execute("CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row)")
        db.executemany("INSERT INTO metadata VALUES (?, ?)", [
            ("name", "Lot (test)"), ("format", fmt), ("minzoom", str(min(zooms))), ("maxzoom", str(max(zooms))),
            ("bounds", ",".join(f"{v:.5f}" for v in bbox)), ("attribution", attribution), ("type", "baselayer")])
        # MBTiles rows count from the south (TMS).
        db.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)",
                       [(z, x, (1 << z) - 1 - y, data) for (z, x, y), data in tiles.items()])
    return tiles
