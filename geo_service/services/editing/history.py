"""Feature history: every change recorded with its author, path, and properties and geometry before and after.

States are captured and written back without passing through anything lossy: properties as JSONB built by
PostgreSQL (``jsonb_build_object``; floats in their shortest exact form) and restored with
``jsonb_populate_record`` into the table's own column types; geometries as EWKB. A revert therefore
restores a feature bit for bit. ``state_at`` finds any past version, from the "after" of the change that
made it or the "before" of the change that replaced it (so rows written before the history existed —
demo, imports — can still be reverted to their first recorded state).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, text

from geo_service.layers import LayerDecl
from geo_service.services import csv_safe
from geo_service.services.sql_build import columns_object_sql, quote_ident

# Snapshotted besides the declared fields: the provenance an editor may set, and the import that wrote the row.
SNAPSHOT_SERVICE_COLUMNS = ("source", "licence", "source_date", "import_id")
CSV_COLUMNS = ("id", "at", "layer_id", "fid", "action", "version_before", "version_after", "actor", "path",
               "change_request_id", "change_set", "comment", "properties_before", "properties_after",
               "geometry_before", "geometry_after")


@dataclass(frozen=True)
class Snapshot:
    """A feature as stored: version, properties (JSON), geometry (EWKB), state, deletion time."""

    version: int
    properties: dict
    ewkb: bytes
    validation_state: str
    deleted_at: datetime | None
    updated_by: str | None = None


@dataclass(frozen=True)
class Entry:
    id: int
    at: datetime
    action: str
    version_before: int | None
    version_after: int | None
    actor: str
    path: str
    properties_before: dict | None
    properties_after: dict | None
    geojson_before: dict | None
    geojson_after: dict | None
    change_request_id: int | None
    comment: str | None


def snapshot_columns(layer: LayerDecl) -> list[str]:
    return [f.name for f in layer.fields] + list(SNAPSHOT_SERVICE_COLUMNS)


def properties_sql(layer: LayerDecl, alias: str = "t") -> str:
    """The JSONB object of a row's snapshot columns."""
    return columns_object_sql(snapshot_columns(layer), alias)


def snapshot(conn: Connection, layer: LayerDecl, fid: int, *, lock: bool = False) -> Snapshot | None:
    """The stored state of one row (deleted or not), optionally locked until the transaction ends."""
    row = conn.execute(text(
        f"SELECT t.version, {properties_sql(layer)}, ST_AsEWKB(t.geom), t.validation_state, t.deleted_at, "
        f"t.updated_by FROM {quote_ident(layer.id)} t WHERE t.fid = :fid{' FOR UPDATE' if lock else ''}"),
        {"fid": fid}).first()
    if row is None:
        return None
    return Snapshot(int(row[0]), row[1], bytes(row[2]), row[3], row[4], row[5])


def write_state(conn: Connection, layer: LayerDecl, fid: int, properties: dict, ewkb: bytes, actor: str) -> None:
    """Put ``properties`` (a snapshot's JSON) and ``ewkb`` back into a row, exactly, and bump its version."""
    columns = [c for c in snapshot_columns(layer) if c in properties]
    targets = ", ".join(quote_ident(c) for c in columns)
    sources = ", ".join(f"r.{quote_ident(c)}" for c in columns)
    conn.execute(text(
        f"UPDATE {quote_ident(layer.id)} SET ({targets}) = (SELECT {sources} FROM "
        f"jsonb_populate_record(NULL::{quote_ident(layer.id)}, CAST(:props AS jsonb)) r), "
        "geom = ST_GeomFromEWKB(:g), version = version + 1, updated_by = :u, updated_at = now() WHERE fid = :fid"),
        {"props": json.dumps(properties), "g": ewkb, "u": actor, "fid": fid})


def record(conn: Connection, layer_id: str, fid: int, action: str, *, actor: str, path: str,
           before: Snapshot | None, after: Snapshot | None, change_request_id: int | None = None,
           change_set: str | None = None, comment: str | None = None) -> int:
    """Write one history entry (in the caller's transaction: the change and its record stand or fall together)."""
    return conn.execute(text(
        "INSERT INTO feature_history (layer_id, fid, action, version_before, version_after, actor, path, "
        "properties_before, properties_after, geom_before, geom_after, change_request_id, change_set, comment) "
        "VALUES (:l, :f, :a, :vb, :va, :u, :p, CAST(:pb AS jsonb), CAST(:pa AS jsonb), "
        "ST_GeomFromEWKB(:gb), ST_GeomFromEWKB(:ga), :cr, :cs, :c) RETURNING id"),
        {"l": layer_id, "f": fid, "a": action, "vb": before.version if before else None,
         "va": after.version if after else None, "u": actor, "p": path,
         "pb": json.dumps(before.properties) if before else None,
         "pa": json.dumps(after.properties) if after else None,
         "gb": before.ewkb if before else None, "ga": after.ewkb if after else None,
         "cr": change_request_id, "cs": change_set, "c": comment}).scalar_one()


def state_at(conn: Connection, layer_id: str, fid: int, version: int) -> tuple[dict, bytes] | None:
    """Properties and geometry (EWKB) of version ``version`` of a feature, if the history knows them."""
    row = conn.execute(text(
        "SELECT p, g FROM ("
        " SELECT id, properties_after AS p, ST_AsEWKB(geom_after) AS g FROM feature_history"
        "  WHERE layer_id = :l AND fid = :f AND version_after = :v AND properties_after IS NOT NULL"
        " UNION ALL"
        " SELECT id, properties_before, ST_AsEWKB(geom_before) FROM feature_history"
        "  WHERE layer_id = :l AND fid = :f AND version_before = :v AND properties_before IS NOT NULL"
        ") s ORDER BY id DESC LIMIT 1"), {"l": layer_id, "f": fid, "v": version}).first()
    return None if row is None else (row[0], bytes(row[1]))


def entries(conn: Connection, layer_id: str, fid: int) -> list[Entry]:
    """The history of one feature, newest first, geometries as GeoJSON (for the history page and the API)."""
    rows = conn.execute(text(
        "SELECT id, at, action, version_before, version_after, actor, path, properties_before, properties_after, "
        "ST_AsGeoJSON(geom_before)::json, ST_AsGeoJSON(geom_after)::json, change_request_id, comment "
        "FROM feature_history WHERE layer_id = :l AND fid = :f ORDER BY id DESC"), {"l": layer_id, "f": fid})
    return [Entry(*row) for row in rows]


def _csv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def export_csv(conn: Connection, *, layer_id: str | None = None, since: datetime | None = None,
               until: datetime | None = None) -> Iterator[str]:
    """The audit trail as CSV (UTF-8, comma, one line per change; geometries as WKT), streamed in order; text
    that a spreadsheet would take for a formula is neutralised (``csv_safe``)."""
    out = io.StringIO()
    writer = csv_safe.writer(out)
    writer.writerow(CSV_COLUMNS)
    yield out.getvalue()
    result = conn.execution_options(stream_results=True, yield_per=1000).execute(text(
        "SELECT id, at, layer_id, fid, action, version_before, version_after, actor, path, change_request_id, "
        "change_set, comment, properties_before, properties_after, ST_AsText(geom_before), ST_AsText(geom_after) "
        "FROM feature_history WHERE (CAST(:l AS text) IS NULL OR layer_id = :l) "
        "AND (CAST(:s AS timestamptz) IS NULL OR at >= :s) AND (CAST(:u AS timestamptz) IS NULL OR at < :u) "
        "ORDER BY id"), {"l": layer_id, "s": since, "u": until})
    for partition in result.partitions():
        out.seek(0)
        out.truncate()
        for row in partition:
            writer.writerow([_csv_value(v) for v in row])
        yield out.getvalue()
