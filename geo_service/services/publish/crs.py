"""Coordinate reference systems of the OGC API (Part 2): which ones, their axis order, and the SQL to reach them.

Geometries are stored in EPSG:4326 with longitude first (that is CRS84). Every other CRS is reached in
PostGIS with ``ST_Transform``; EPSG:4326 as the EPSG registry defines it has latitude first, so its
coordinates are swapped with ``ST_FlipCoordinates`` on the way out and on the way in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func

from geo_service.errors import InvalidParameter


@dataclass(frozen=True)
class Crs:
    uri: str
    srid: int
    title: str
    lat_first: bool = False
    decimals: int = 6
    # Where coordinates may lie, in this CRS's own axis order; a bbox outside is a client mistake.
    bounds: tuple[float, float, float, float] | None = None

    def to_storage(self, geom: ColumnElement) -> ColumnElement:
        """A geometry expressed in this CRS, brought to the storage CRS (EPSG:4326, longitude first)."""
        if self.lat_first:
            geom = func.ST_FlipCoordinates(geom)
        return geom if self.srid == STORAGE_SRID else func.ST_Transform(geom, STORAGE_SRID)

    def from_storage(self, geom: ColumnElement) -> ColumnElement:
        """A stored geometry expressed in this CRS, axis order included."""
        out = geom if self.srid == STORAGE_SRID else func.ST_Transform(geom, self.srid)
        return func.ST_FlipCoordinates(out) if self.lat_first else out


STORAGE_SRID = 4326
CRS84 = Crs("http://www.opengis.net/def/crs/OGC/1.3/CRS84", 4326, "WGS 84 (longitude, latitude)",
            bounds=(-180, -90, 180, 90))
EPSG4326 = Crs("http://www.opengis.net/def/crs/EPSG/0/4326", 4326, "WGS 84 (latitude, longitude)",
               lat_first=True, bounds=(-90, -180, 90, 180))
# Lambert-93: metres, three decimals keep millimetres, finer than any source.
EPSG2154 = Crs("http://www.opengis.net/def/crs/EPSG/0/2154", 2154, "RGF93 v1 / Lambert-93", decimals=3,
               bounds=(-357823.24, 6037008.69, 1313632.36, 7230727.37))
SUPPORTED: tuple[Crs, ...] = (CRS84, EPSG4326, EPSG2154)
STORAGE_CRS = CRS84

# Spellings clients use for the same CRS; the URIs above are the canonical ones we answer with.
_ALIASES = {
    "urn:ogc:def:crs:OGC:1.3:CRS84": CRS84, "urn:ogc:def:crs:OGC::CRS84": CRS84, "OGC:CRS84": CRS84,
    "CRS84": CRS84, "[OGC:CRS84]": CRS84,
    "urn:ogc:def:crs:EPSG::4326": EPSG4326, "EPSG:4326": EPSG4326, "[EPSG:4326]": EPSG4326,
    "urn:ogc:def:crs:EPSG::2154": EPSG2154, "EPSG:2154": EPSG2154, "[EPSG:2154]": EPSG2154,
}


def parse_crs(value: str | None, parameter: str) -> Crs:
    """The CRS named by a ``crs``, ``bbox-crs`` or ``filter-crs`` parameter (CRS84 when absent).

    >>> parse_crs("http://www.opengis.net/def/crs/EPSG/0/2154", "crs").srid
    2154
    """
    if value is None or value == "":
        return CRS84
    value = value.strip()
    for crs in SUPPORTED:
        if value == crs.uri:
            return crs
    if value in _ALIASES:
        return _ALIASES[value]
    supported = ", ".join(c.uri for c in SUPPORTED)
    raise InvalidParameter(f"Système de coordonnées inconnu « {value} » ; systèmes acceptés : {supported}",
                           parameter=parameter)


@dataclass(frozen=True)
class BBox:
    """A bounding box as sent by the client, in the axis order of its CRS."""

    coords: tuple[float, float, float, float]
    crs: Crs

    def envelope(self) -> ColumnElement:
        """The box as a polygon in the storage CRS (bound values, never formatted into SQL)."""
        return envelope(self.crs, *self.coords, self.segment)

    @property
    def segment(self) -> float:
        """The longest edge left once a box of another CRS is densified before its transformation."""
        return (self.coords[2] - self.coords[0]) / 16 or 1


def envelope(crs: Crs, x0: object, y0: object, x1: object, y1: object, segment: object) -> ColumnElement:
    """A box of ``crs`` as a polygon in the storage CRS; values or bind parameters (a statement built once)."""
    box = func.ST_MakeEnvelope(x0, y0, x1, y1, crs.srid)
    if crs.srid != STORAGE_SRID:
        # Densify first so that the box's edges stay straight lines of the original CRS.
        box = func.ST_Segmentize(box, segment)
    return crs.to_storage(box)


def parse_bbox(value: str, crs: Crs) -> BBox:
    """Parse ``bbox`` (four numbers in the order of ``crs``'s axes); a 3D box or anything odd is refused.

    >>> parse_bbox("1.4,44.4,1.5,44.5", CRS84).coords
    (1.4, 44.4, 1.5, 44.5)
    """
    parts = [p.strip() for p in value.split(",")]
    if len(parts) == 6:
        raise InvalidParameter("bbox en trois dimensions (6 nombres) non pris en charge : donnez 4 nombres",
                               parameter="bbox")
    if len(parts) != 4:
        raise InvalidParameter(f"bbox doit compter 4 nombres séparés par des virgules, reçu « {value} »",
                               parameter="bbox")
    try:
        numbers = tuple(float(p) for p in parts)
    except ValueError:
        raise InvalidParameter(f"bbox contient une valeur non numérique : « {value} »", parameter="bbox") from None
    if not all(math.isfinite(n) for n in numbers):
        raise InvalidParameter("bbox contient une valeur non finie", parameter="bbox")
    x0, y0, x1, y1 = numbers
    if x0 > x1 or y0 > y1:
        raise InvalidParameter("bbox : les coins sont inversés (attendu min, min, max, max)", parameter="bbox")
    if crs.bounds is not None:
        bx0, by0, bx1, by1 = crs.bounds
        if x0 < bx0 or y0 < by0 or x1 > bx1 or y1 > by1:
            raise InvalidParameter(f"bbox hors du domaine de validité de {crs.uri}", parameter="bbox")
    return BBox(numbers, crs)  # type: ignore[arg-type]
