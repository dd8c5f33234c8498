"""Export of one layer as GeoJSON, GeoPackage or CSV, with its licence and attribution.

What is exported is what the reader may see (published, not deleted rows; restricted fields only for those
allowed). The licence and attribution travel with the data: GeoJSON carries them as top-level members,
the GeoPackage in the layer description and its metadata table, each CSV row in ``licence`` and
``attribution`` columns (a CSV has nowhere else to put them).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import Connection, text

from geo_service.errors import InvalidParameter
from geo_service.layers import LayerDecl
from geo_service.services import csv_safe
from geo_service.services.publish.read_access import Reader
from geo_service.services.publish.visibility import visible_rows_sql
from geo_service.services.sql_build import quote_ident

FORMATS = {"geojson": "application/geo+json", "gpkg": "application/geopackage+sqlite3",
           "csv": "text/csv; charset=utf-8"}
BATCH = 2000


@dataclass(frozen=True)
class ExportMeta:
    layer: LayerDecl

    def members(self) -> dict:
        return {"name": self.layer.id, "title": self.layer.title, "licence": self.layer.licence,
                "attribution": self.layer.attribution,
                "generated": datetime.now(UTC).isoformat(timespec="seconds")}


def _columns(layer: LayerDecl, reader: Reader) -> list[str]:
    fields = layer.fields if reader.sees_restricted(layer) else layer.public_fields()
    names = [f.name for f in fields]
    return names + (["source", "licence", "source_date"] if layer.editable else [])


def _rows(conn: Connection, layer: LayerDecl, reader: Reader) -> Iterator[tuple]:
    columns = _columns(layer, reader)
    select_list = ", ".join(f"t.{quote_ident(c)}" for c in columns)
    sql = text(f"SELECT t.fid, {select_list}, ST_AsGeoJSON(t.geom, 7) FROM {quote_ident(layer.id)} t "
               f"WHERE {visible_rows_sql(layer, 't')} ORDER BY t.fid")
    result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(sql)
    for partition in result.partitions():
        yield from partition


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidParameter(f"Format d'export inconnu « {fmt} » ; formats : {', '.join(FORMATS)}",
                               parameter="format")
    return fmt


def _json_value(value: object) -> object:
    return value.isoformat() if isinstance(value, date | datetime) else value


def geojson(conn: Connection, layer: LayerDecl, reader: Reader) -> Iterator[str]:
    """A FeatureCollection, streamed, whose top-level members name the licence and attribution."""
    columns = _columns(layer, reader)
    head = json.dumps({"type": "FeatureCollection", **ExportMeta(layer).members()}, ensure_ascii=False)
    yield head[:-1] + ', "features": ['
    first = True
    for row in _rows(conn, layer, reader):
        props = {c: _json_value(v) for c, v in zip(columns, row[1:-1], strict=True)}
        feature = {"type": "Feature", "id": row[0], "geometry": json.loads(row[-1]), "properties": props}
        yield ("" if first else ",") + json.dumps(feature, ensure_ascii=False)
        first = False
    yield "]}"


def csv_rows(conn: Connection, layer: LayerDecl, reader: Reader) -> Iterator[str]:
    """CSV (comma, UTF-8): points as lon/lat columns, other geometries as GeoJSON; licence on every row.
    Text that a spreadsheet would take for a formula is neutralised (``csv_safe``)."""
    columns = _columns(layer, reader)
    point = layer.geometry == "Point"
    own_licence = "licence" in columns
    out = io.StringIO()
    writer = csv_safe.writer(out)
    writer.writerow(["fid", *columns, *([] if own_licence else ["licence"]), "attribution",
                     *(["lon", "lat"] if point else ["geometry_geojson"])])
    for row in _rows(conn, layer, reader):
        values = dict(zip(columns, row[1:-1], strict=True))
        # A row without its own licence is under the layer's.
        values["licence"] = values.get("licence") or layer.licence
        geometry = json.loads(row[-1])
        writer.writerow([row[0], *(_csv(values[c]) for c in columns), *([] if own_licence else [values["licence"]]),
                         layer.attribution, *(geometry["coordinates"] if point else [json.dumps(geometry)])])
        if out.tell() > 1 << 16:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def _csv(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "|".join(str(v) for v in value)
    return _json_value(value) if isinstance(value, date | datetime) else str(value)  # type: ignore[return-value]


def geopackage(conn: Connection, layer: LayerDecl, reader: Reader, path: Path) -> Path:
    """Write ``path``, a GeoPackage (one layer, EPSG:4326) with the licence and attribution in its description."""
    import geopandas
    import pandas
    from shapely.geometry import shape

    columns = _columns(layer, reader)
    records, geoms = [], []
    for row in _rows(conn, layer, reader):
        records.append({"fid_source": row[0], **{c: _gpkg(v) for c, v in zip(columns, row[1:-1], strict=True)}})
        geoms.append(shape(json.loads(row[-1])))
    frame = geopandas.GeoDataFrame(pandas.DataFrame.from_records(records, columns=["fid_source", *columns]),
                                   geometry=geoms, crs="EPSG:4326")
    description = f"{layer.title}. Licence : {layer.licence}. Attribution : {layer.attribution}."
    frame.to_file(path, driver="GPKG", layer=layer.id, engine="pyogrio",
                  layer_options={"DESCRIPTION": description, "IDENTIFIER": layer.title},
                  metadata={"LICENCE": layer.licence, "ATTRIBUTION": layer.attribution})
    return path


def _gpkg(value: object) -> object:
    # GeoPackage has no list type: lists become "a|b|c", as in the CSV.
    return "|".join(str(v) for v in value) if isinstance(value, list) else value
