"""Geometries sent by editors: GeoJSON read in the CRS the client names, checked, brought to storage (EPSG:4326).

Every refusal is an ``InvalidFeature`` (422) naming ``geometry`` and saying in French what is wrong: malformed
GeoJSON, wrong geometry type for the layer, self-intersection, Lambert-93 metres sent as degrees (or the
reverse), coordinates outside the territory — with a hint when longitude and latitude look swapped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from pyproj import Transformer
from shapely.errors import GEOSException
from shapely.geometry import MultiLineString, MultiPoint, MultiPolygon, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, text

from geo_service.errors import InvalidFeature, OutsideTerritory, TerritoryNotLoaded
from geo_service.layers import LayerDecl
from geo_service.services.publish.crs import CRS84, EPSG2154, STORAGE_SRID, Crs

GEOJSON_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon")
_PROMOTE = {"Point": ("MultiPoint", MultiPoint), "LineString": ("MultiLineString", MultiLineString),
            "Polygon": ("MultiPolygon", MultiPolygon)}
# Where Lambert-93 coordinates of metropolitan France fall (x, y in metres).
_L93_X, _L93_Y = (50_000, 1_300_000), (6_000_000, 7_150_000)
_GEOS_REASONS = {
    "Self-intersection": "le contour se recoupe (auto-intersection)",
    "Ring Self-intersection": "un anneau se recoupe (auto-intersection)",
    "Too few points in geometry component": "une partie compte trop peu de points",
    "Interior is disconnected": "l'intérieur du polygone est coupé en morceaux",
    "Hole lies outside shell": "un trou sort du contour extérieur",
    "Nested holes": "des trous sont imbriqués",
    "Nested shells": "des polygones sont imbriqués",
    "Duplicate Rings": "des anneaux sont en double",
    "Invalid Coordinate": "une coordonnée est invalide",
    "Ring is not closed": "un anneau n'est pas fermé",
}


@dataclass(frozen=True)
class Shape:
    """A checked geometry in the storage CRS (longitude, latitude), of the layer's type."""

    geom: BaseGeometry

    @property
    def ewkb(self) -> bytes:
        """Extended WKB with SRID: PostGIS reads it back bit for bit (``ST_GeomFromEWKB``)."""
        return shapely.to_wkb(shapely.set_srid(self.geom, STORAGE_SRID), include_srid=True)


def _bad(message: str) -> InvalidFeature:
    return InvalidFeature(message, field="geometry")


def _numbers(coordinates: object, max_vertices: int | None = None) -> list[float]:
    """Every number of a GeoJSON ``coordinates`` array, refusing anything that is not a finite number, and more
    than ``max_vertices`` positions (counted before any geometry is built from them)."""
    out: list[float] = []
    vertices = 0
    stack = [coordinates]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            if item and not isinstance(item[0], list):
                vertices += 1
                if max_vertices is not None and vertices > max_vertices:
                    raise _bad(f"Géométrie trop détaillée : plus de {max_vertices} sommets (limite du service) ; "
                               "simplifiez-la ou découpez-la")
            stack.extend(item)
        elif isinstance(item, int | float) and not isinstance(item, bool) and math.isfinite(item):
            out.append(float(item))
        else:
            raise _bad(f"Coordonnée invalide « {item} » : nombres finis attendus")
    return out


def _looks_lambert93(xs: np.ndarray, ys: np.ndarray) -> bool:
    return bool(((xs >= _L93_X[0]) & (xs <= _L93_X[1]) & (ys >= _L93_Y[0]) & (ys <= _L93_Y[1])).all())


def _check_ranges(geom: BaseGeometry, crs: Crs) -> None:
    xy = shapely.get_coordinates(geom)
    xs, ys = xy[:, 0], xy[:, 1]
    if crs.srid == STORAGE_SRID:
        lon, lat = (ys, xs) if crs.lat_first else (xs, ys)
        if (np.abs(lon) > 180).any() or (np.abs(lat) > 90).any():
            if _looks_lambert93(xs, ys):
                raise _bad("Ces coordonnées sont des mètres Lambert-93 (EPSG:2154) envoyés comme des degrés : "
                           "convertissez-les en WGS 84 (longitude, latitude) ou indiquez l'en-tête "
                           f"« Content-Crs: <{EPSG2154.uri}> »")
            raise _bad("Coordonnées hors des bornes WGS 84 (longitude de −180 à 180, latitude de −90 à 90)")
    elif crs.srid == EPSG2154.srid and (np.abs(xs) <= 180).all() and (np.abs(ys) <= 90).all():
        raise _bad("Ces coordonnées sont des degrés alors que le système annoncé (Content-Crs) est Lambert-93 "
                   "(EPSG:2154, en mètres) : envoyez des mètres ou retirez l'en-tête Content-Crs")


@lru_cache(maxsize=8)
def _to_storage(srid: int) -> Transformer:
    return Transformer.from_crs(srid, STORAGE_SRID, always_xy=True)


def _reproject(geom: BaseGeometry, crs: Crs) -> BaseGeometry:
    if crs.lat_first:
        geom = shapely.transform(geom, lambda xy: xy[:, ::-1])
    if crs.srid != STORAGE_SRID:
        transformer = _to_storage(crs.srid)
        geom = shapely.transform(geom, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
    return geom


def _validity(geom: BaseGeometry) -> None:
    reason = shapely.is_valid_reason(geom)
    if reason == "Valid Geometry":
        return
    name, _, where = reason.partition("[")
    french = _GEOS_REASONS.get(name.strip(), name.strip())
    near = ""
    if where:
        parts = where.rstrip("]").split()
        if len(parts) >= 2:
            near = f" près de ({float(parts[0]):.6f}, {float(parts[1]):.6f})"
    raise _bad(f"Géométrie invalide : {french}{near}")


def parse_geometry(layer: LayerDecl, value: object, crs: Crs = CRS84, *, max_vertices: int | None = None) -> Shape:
    """A GeoJSON geometry in ``crs``, checked and brought to the storage CRS and the layer's geometry type.

    Polygons come out with the winding of RFC 7946 (exterior rings counterclockwise, holes clockwise), whatever
    the winding sent: GeoJSON readers may rely on it, and the stored rows then all agree.
    """
    if value is None:
        raise _bad("La géométrie est obligatoire")
    if not isinstance(value, dict) or "type" not in value:
        raise _bad("Géométrie GeoJSON attendue : un objet avec « type » et « coordinates »")
    kind = value["type"]
    if kind not in GEOJSON_TYPES:
        raise _bad(f"Type de géométrie « {kind} » non pris en charge ; la couche « {layer.title} » attend "
                   f"{layer.geometry}")
    if "coordinates" not in value:
        raise _bad("Géométrie sans « coordinates »")
    _numbers(value["coordinates"], max_vertices)
    try:
        geom = shapely.force_2d(shape(value))
    except (ValueError, TypeError, IndexError, AttributeError, GEOSException) as exc:
        raise _bad(f"Géométrie GeoJSON mal formée : {exc}") from None
    if geom.is_empty:
        raise _bad("La géométrie est vide")
    if geom.geom_type != layer.geometry:
        promoted = _PROMOTE.get(geom.geom_type)
        if promoted is None or promoted[0] != layer.geometry:
            raise _bad(f"La couche « {layer.title} » attend une géométrie {layer.geometry} ; reçu {geom.geom_type}")
        geom = promoted[1]([geom])
    _check_ranges(geom, crs)
    geom = _reproject(geom, crs)
    _validity(geom)
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        geom = shapely.orient_polygons(geom, exterior_cw=False)
    return Shape(geom)


def lies_within(conn: Connection, area_sql: str, params: dict, shape_: Shape, tolerance_m: float) -> bool | None:
    """Whether ``shape_`` lies inside the area selected by ``area_sql`` (one ``geom`` column), give or take
    ``tolerance_m`` metres, measured in Lambert-93. ``None`` when the area query finds nothing.

    ``area_sql`` is written by this package (never from user text); values are bound.
    """
    sql = text(
        "SELECT bool_or(CASE WHEN GeometryType(x.g) = 'POINT' THEN ST_DWithin(a.a, x.g, :tol) "
        "ELSE ST_Covers(ST_Buffer(a.a, :tol), x.g) END) "
        f"FROM (SELECT ST_Transform(geom, 2154) AS a FROM ({area_sql}) s) a, "
        "LATERAL (SELECT ST_Transform(ST_GeomFromEWKB(:g), 2154) AS g) x")
    return conn.execute(sql, {**params, "g": shape_.ewkb, "tol": tolerance_m}).scalar()


def check_in_territory(conn: Connection, shape_: Shape, tolerance_m: float, territory_name: str) -> None:
    """Refuse a geometry outside the territory's outline (``territory`` table), hinting at swapped axes."""
    inside = lies_within(conn, "SELECT geom FROM territory", {}, shape_, tolerance_m)
    if inside is None:
        raise TerritoryNotLoaded("Le contour du territoire n'est pas chargé (geo-service load boundaries) : "
                                  "aucune écriture n'est possible sans lui")
    if inside:
        return
    swapped = Shape(shapely.transform(shape_.geom, lambda xy: xy[:, ::-1]))
    hint = ""
    if _valid_degrees(swapped.geom) and lies_within(conn, "SELECT geom FROM territory", {}, swapped, tolerance_m):
        hint = " ; longitude et latitude semblent inversées (GeoJSON : longitude d'abord)"
    raise OutsideTerritory(f"La géométrie est hors du territoire ({territory_name}), au-delà de la tolérance de "
                           f"{tolerance_m:g} m{hint}", field="geometry")


def _valid_degrees(geom: BaseGeometry) -> bool:
    xy = shapely.get_coordinates(geom)
    return bool((np.abs(xy[:, 0]) <= 180).all() and (np.abs(xy[:, 1]) <= 90).all())
