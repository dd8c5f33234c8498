"""Coordinates of open-data files brought to storage (EPSG:4326) with pyproj, and points written as EWKB.

ARCEP and ANFR files use three systems: WGS84 degrees (Cartefibre ``x``/``y``, despite the names), Lambert-93
metres (sites, DCC, BAN ``x``/``y``) and Web-Mercator metres (MCI ``imb_x``/``imb_y``).
"""

from __future__ import annotations

import math
import struct
from functools import lru_cache

from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from geo_service.services.importers.framework.values import parse_float

WGS84, LAMBERT93, WEB_MERCATOR = "EPSG:4326", "EPSG:2154", "EPSG:3857"
# Where metropolitan France falls, per system: a point elsewhere is a swapped or mis-declared coordinate.
_BOUNDS = {
    WGS84: ((-5.5, 10.0), (41.0, 51.5)),
    LAMBERT93: ((50_000.0, 1_300_000.0), (6_000_000.0, 7_150_000.0)),
    WEB_MERCATOR: ((-620_000.0, 1_120_000.0), (5_010_000.0, 6_710_000.0)),
}
_NAMES = {WGS84: "longitude/latitude WGS84 en degrés", LAMBERT93: "Lambert-93 en mètres",
          WEB_MERCATOR: "Web-Mercator (EPSG:3857) en mètres"}


@lru_cache(maxsize=16)
def transformer(crs: str) -> Transformer:
    """pyproj transformer from ``crs`` to WGS84, x = easting/longitude first."""
    return Transformer.from_crs(crs, WGS84, always_xy=True)


@lru_cache(maxsize=16)
def from_wgs84(crs: str) -> Transformer:
    """pyproj transformer from WGS84 to ``crs`` (lon, lat first)."""
    return Transformer.from_crs(WGS84, crs, always_xy=True)


def normalise_crs(value: str) -> str:
    """``2154``, ``epsg:2154``, ``EPSG:2154`` or a WKT → an ``EPSG:n`` string pyproj accepts."""
    text = str(value).strip()
    if text.isdigit():
        text = f"EPSG:{text}"
    try:
        crs = CRS.from_user_input(text)
    except CRSError as exc:
        raise ValueError(f"système de coordonnées inconnu « {value} »") from exc
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def to_wgs84(x: float, y: float, crs: str) -> tuple[float, float]:
    """(lon, lat) in degrees of a point given in ``crs``."""
    if crs == WGS84:
        return x, y
    lon, lat = transformer(crs).transform(x, y)
    return lon, lat


def check_point(x: float, y: float, crs: str) -> None:
    """Refuse coordinates that cannot be in metropolitan France in ``crs`` (with a hint when swapped)."""
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError("coordonnées non finies")
    bounds = _BOUNDS.get(crs)
    if bounds is None:
        return
    (x0, x1), (y0, y1) = bounds
    if x0 <= x <= x1 and y0 <= y <= y1:
        return
    if x0 <= y <= x1 and y0 <= x <= y1:
        raise ValueError(f"coordonnées inversées ? ({_NAMES[crs]} attendues, x puis y)")
    for other, ((a0, a1), (b0, b1)) in _BOUNDS.items():
        if other != crs and a0 <= x <= a1 and b0 <= y <= b1:
            raise ValueError(f"coordonnées en {_NAMES[other]} ? {_NAMES[crs]} attendues")
    raise ValueError(f"coordonnées hors de France métropolitaine ({_NAMES[crs]} attendues)")


def system_of(x_raw: str | None, y_raw: str | None, candidates: tuple[str, ...] = (WGS84, LAMBERT93)) -> str | None:
    """The first of ``candidates`` in which raw coordinates fall in metropolitan France, or ``None``."""
    try:
        x, y = parse_float(x_raw or ""), parse_float(y_raw or "")
    except ValueError:
        return None
    return next((crs for crs in candidates
                 if _BOUNDS[crs][0][0] <= x <= _BOUNDS[crs][0][1] and _BOUNDS[crs][1][0] <= y <= _BOUNDS[crs][1][1]),
                None)


def point(x_raw: str | None, y_raw: str | None, crs: str) -> tuple[float, float]:
    """(lon, lat) WGS84 from raw text coordinates in ``crs``; ``ValueError`` with the French reason."""
    if not (x_raw or "").strip() or not (y_raw or "").strip():
        raise ValueError("coordonnées manquantes")
    try:
        x, y = parse_float(x_raw or ""), parse_float(y_raw or "")
    except ValueError as exc:
        raise ValueError(f"coordonnées illisibles ({exc})") from None
    check_point(x, y, crs)
    return to_wgs84(x, y, crs)


def point_ewkb(lon: float, lat: float) -> str:
    """Hex EWKB of a point in EPSG:4326, which PostgreSQL's geometry input reads (COPY)."""
    return struct.pack("<BIIdd", 1, 0x20000001, 4326, lon, lat).hex()
