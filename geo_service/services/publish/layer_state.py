"""The change counter of each layer table: what ETags, Last-Modified and cached extents are made of.

A statement-level trigger on every layer table (``tables.install_change_triggers``) bumps one row of
``layer_changes`` on any INSERT, UPDATE,
DELETE or TRUNCATE, whoever writes (the service, an import, the demo, QGIS or psql). Reading a layer's
state is then one primary-key lookup instead of ``count(*)``/``max()`` over the whole table (≈70 ms on
130,000 premises), and it changes on deletions too, which ``max(updated_at)`` would miss.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection, text

from geo_service.tables import LAYER_CHANGES

TABLE = LAYER_CHANGES

T = TypeVar("T")


@dataclass(frozen=True)
class LayerState:
    """How many times a layer table has changed, and when last; ``version`` 0 means "never seen changing"."""

    version: int = 0
    changed_at: datetime | None = None


def states(conn: Connection, layer_ids: Iterable[str]) -> dict[str, LayerState]:
    """The state of each named layer, in one query (a layer never written has ``LayerState()``)."""
    ids = list(layer_ids)
    rows = conn.execute(text(f"SELECT layer_id, version, changed_at FROM {TABLE} "
                             "WHERE layer_id = ANY(CAST(:ids AS text[]))"), {"ids": ids})
    found = {row[0]: LayerState(int(row[1]), row[2]) for row in rows}
    return {layer_id: found.get(layer_id, LayerState()) for layer_id in ids}


def state(conn: Connection, layer_id: str) -> LayerState:
    return states(conn, [layer_id])[layer_id]


