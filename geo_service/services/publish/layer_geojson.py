"""Reading the features of a layer as GeoJSON, built by PostGIS and streamed in chunks.

Identifiers come from the layer registry only, never from user text; values are bound parameters.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, text

from geo_service.errors import InvalidParameter
from geo_service.layers import LayerDecl

COORDINATE_DECIMALS = 6  # ≈ 0.1 m, finer than any source the service holds
STREAM_BATCH = 2000


@dataclass(frozen=True)
class BBox:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    @classmethod
    def parse(cls, value: str) -> BBox:
        """Parse ``minLon,minLat,maxLon,maxLat`` (WGS84 degrees), refusing anything else.

        >>> BBox.parse("1.4,44.4,1.5,44.5").max_lat
        44.5
        """
        parts = value.split(",")
        if len(parts) != 4:
            raise InvalidParameter("bbox doit compter 4 nombres : minLon,minLat,maxLon,maxLat", parameter="bbox")
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            raise InvalidParameter(f"bbox contient une valeur non numérique : « {value} »",
                                   parameter="bbox") from None
        if not all(math.isfinite(n) for n in numbers):
            raise InvalidParameter("bbox contient une valeur non finie", parameter="bbox")
        box = cls(*numbers)
        if not (-180 <= box.min_lon <= box.max_lon <= 180 and -90 <= box.min_lat <= box.max_lat <= 90):
            raise InvalidParameter("bbox hors des limites WGS84 ou coins inversés", parameter="bbox")
        return box


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _visible_rows(layer: LayerDecl) -> str:
    # Proposals, rejected edits and logically deleted rows are never shown to the public.
    return "validation_state = 'published' AND deleted_at IS NULL" if layer.editable else "TRUE"


def _properties_sql(layer: LayerDecl, include_restricted: bool) -> str:
    fields = layer.fields if include_restricted else layer.public_fields()
    pairs = [f"'{f.name}', {_quote(f.name)}" for f in fields]
    if layer.editable:
        pairs += ["'demo', demo", "'source', source"]
    # jsonb_build_object takes at most 100 arguments: build groups of 50 pairs and merge them.
    groups = [", ".join(pairs[i:i + 50]) for i in range(0, len(pairs), 50)]
    return " || ".join(f"jsonb_build_object({g})" for g in groups)


def stream_geojson(conn: Connection, layer: LayerDecl, bbox: BBox | None = None,
                   include_restricted: bool = False) -> Iterator[str]:
    """Yield a GeoJSON FeatureCollection of the layer's visible features, a batch of features at a time."""
    where = [_visible_rows(layer)]
    params: dict[str, float] = {}
    if bbox is not None:
        where.append("geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)")
        params = {"x0": bbox.min_lon, "y0": bbox.min_lat, "x1": bbox.max_lon, "y1": bbox.max_lat}
    sql = text(
        "SELECT json_build_object('type', 'Feature', 'id', fid, "
        f"'geometry', ST_AsGeoJSON(geom, {COORDINATE_DECIMALS})::json, "
        f"'properties', {_properties_sql(layer, include_restricted)})::text "
        f"FROM {_quote(layer.id)} WHERE {' AND '.join(where)} ORDER BY fid"
    )
    result = conn.execution_options(stream_results=True, yield_per=STREAM_BATCH).execute(sql, params)
    # The first batch before the first chunk: the query runs before the answer starts (api/streams.started).
    partitions = result.partitions()
    first = next(partitions, [])
    yield '{"type":"FeatureCollection","features":[' + ",".join(row[0] for row in first)
    for partition in partitions:
        yield "," + ",".join(row[0] for row in partition)
    yield "]}"


def count(conn: Connection, layer: LayerDecl) -> int:
    """Number of features the public sees in a layer."""
    return conn.execute(text(f"SELECT count(*) FROM {_quote(layer.id)} WHERE {_visible_rows(layer)}")).scalar_one()
