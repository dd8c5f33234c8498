"""The one rule of what a reader sees of a layer table: which rows.

Rows of an editable layer carry a validation state and a logical deletion: the public sees the published rows
that are not deleted; proposals, rejected edits and deleted rows stay hidden (an editor's list shows them on
purpose, through its own filter). Base layers (communes, EPCI) have neither column: every row is seen. The rule
is spelled twice — as a SQLAlchemy expression for the statements built from tables (OGC API, tiles) and as SQL
text for the statements written by hand (the report, exports, the geocoder's index) — and
``tests/test_visibility.py`` holds the two spellings together.
"""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import ColumnElement, Table, and_, true

from geo_service.layers import LayerDecl

PUBLISHED = "published"
# For statements over tables known to be editable (the geocoder's index reads premises).
PUBLISHED_ROWS_SQL = "validation_state = 'published' AND deleted_at IS NULL"


def visible_rows_sql(layer: LayerDecl, alias: str | None = None) -> str:
    """SQL condition of the rows the public sees in ``layer``'s table (``alias``: the table's name in the query)."""
    if not layer.editable:
        return "TRUE"
    prefix = f"{alias}." if alias else ""
    return f"{prefix}validation_state = 'published' AND {prefix}deleted_at IS NULL"


# Built once per table and kind of reader: expressions are immutable, and this one is in every query.
@functools.lru_cache(maxsize=1024)
def visible_rows(table: Table, editable: bool, published_only: bool = True) -> ColumnElement[bool]:
    """The same rule as an expression; ``published_only=False`` (editors' OGC reads) keeps proposals."""
    if not editable:
        return true()
    # Logically deleted rows are hidden from every reader (services/editing/feature_writes.py restores them).
    alive = table.c.deleted_at.is_(None)
    if published_only:
        return and_(alive, table.c.validation_state == PUBLISHED)
    return alive


def is_published(validation_state: str | None, deleted_at: datetime | None) -> bool:
    """The rule on a row already read (a snapshot, a change request's feature)."""
    return validation_state == PUBLISHED and deleted_at is None
