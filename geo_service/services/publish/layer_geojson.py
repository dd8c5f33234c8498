"""Reading the features of a layer as GeoJSON (``/api/layers``), built by PostGIS and streamed in chunks.

The rows are those of the one visibility rule (``visibility.py``), the box one of ``crs.parse_bbox`` in CRS84.

Identifiers come from the layer registry only, never from user text; values are bound parameters.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection, text

from geo_service.layers import LayerDecl
from geo_service.services.publish.crs import BBox
from geo_service.services.publish.visibility import visible_rows_sql
from geo_service.services.sql_build import columns_object_sql, quote_ident

COORDINATE_DECIMALS = 6  # ≈ 0.1 m, finer than any source the service holds
STREAM_BATCH = 2000


def _properties_sql(layer: LayerDecl, include_restricted: bool) -> str:
    fields = layer.fields if include_restricted else layer.public_fields()
    return columns_object_sql([*(f.name for f in fields), *(("demo", "source") if layer.editable else ())])


def stream_geojson(conn: Connection, layer: LayerDecl, bbox: BBox | None = None,
                   include_restricted: bool = False) -> Iterator[str]:
    """Yield a GeoJSON FeatureCollection of the layer's visible features, a batch of features at a time."""
    where = [visible_rows_sql(layer)]
    params: dict[str, float] = {}
    if bbox is not None:
        where.append("geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)")
        params = dict(zip(("x0", "y0", "x1", "y1"), bbox.coords, strict=True))
    sql = text(
        "SELECT json_build_object('type', 'Feature', 'id', fid, "
        f"'geometry', ST_AsGeoJSON(geom, {COORDINATE_DECIMALS})::json, "
        f"'properties', {_properties_sql(layer, include_restricted)})::text "
        f"FROM {quote_ident(layer.id)} WHERE {' AND '.join(where)} ORDER BY fid"
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
    sql = f"SELECT count(*) FROM {quote_ident(layer.id)} WHERE {visible_rows_sql(layer)}"
    return conn.execute(text(sql)).scalar_one()
