"""Writing demo rows: delete the previous demo rows, bulk-insert new ones stamped with their provenance.

Only rows flagged ``demo`` are ever deleted; rows entered or imported by people (``demo = false``)
are never read or written here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from psycopg import sql
from sqlalchemy import Connection, text

from geo_service.layers import LayerDecl, LayerRegistry


@dataclass(frozen=True)
class Stamp:
    """The provenance columns every demo row carries."""

    source: str
    licence: str
    source_date: date
    updated_by: str
    import_id: str

    def columns(self) -> dict[str, object]:
        """Column → value, in the order the writer appends them to each row."""
        return {"source": self.source, "licence": self.licence, "source_date": self.source_date,
                "updated_by": self.updated_by, "import_id": self.import_id,
                "validation_state": "published", "demo": True}


def demo_tables(conn: Connection) -> list[str]:
    """Tables of the current schema that have a ``demo`` column (the editable layers)."""
    return list(conn.execute(text(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND column_name = 'demo' ORDER BY table_name")).scalars())


def delete_demo_rows(conn: Connection, registry: LayerRegistry) -> int:
    """Remove the demo rows of every editable layer; returns how many went."""
    deleted = 0
    for layer in registry:
        if layer.editable:
            # Identifiers come from validated layer files (pattern ^[a-z][a-z0-9_]*$), never from users.
            deleted += conn.execute(text(f"DELETE FROM {layer.id} WHERE demo")).rowcount
    return deleted


def copy_rows(conn: Connection, layer: LayerDecl, rows: Sequence[dict], stamp: Stamp) -> int:
    """Insert rows (declared fields + ``geom`` as hex EWKB) with COPY, through the caller's transaction."""
    if not rows:
        return 0
    declared = [f.name for f in layer.fields]
    keys: set[str] = set().union(*rows)
    unknown = keys - set(declared) - {"geom"}
    if unknown:
        raise ValueError(f"{layer.id} : champs non déclarés {sorted(unknown)}")
    fields = [name for name in declared if name in keys]
    extra = stamp.columns()
    columns = [*fields, "geom", *extra]
    tail = tuple(extra.values())
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(layer.id), sql.SQL(", ").join(map(sql.Identifier, columns)))
    # The raw psycopg connection shares SQLAlchemy's transaction: the caller still commits or rolls back.
    raw = conn.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row((*(row.get(name) for name in fields), row["geom"], *tail))
    return len(rows)


def record_load(conn: Connection, source: str, details: dict) -> None:
    """One line in the load journal, so the admin page can say when the demo was generated and how."""
    conn.execute(text("INSERT INTO dataset_loads (kind, source, details) VALUES ('demo', :source, "
                      "CAST(:details AS jsonb))"), {"source": source, "details": json.dumps(details)})
