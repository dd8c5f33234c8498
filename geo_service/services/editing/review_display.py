"""What the /admin screens show of a change: before/after rows with French labels, and the geometries.

Pure presentation of stored states (history entries, proposals): values are shown with their code-list
labels and units, so a GIS officer reads "En service" rather than ``installee``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Connection, text

from geo_service.layers import LayerDecl, LayerRegistry
from geo_service.services.editing import history, moderation_queue
from geo_service.services.editing.moderation_queue import ChangeRequest

_SERVICE_LABELS = {"source": "Source", "licence": "Licence", "source_date": "Date de la source",
                   "import_id": "Import"}
KIND_LABELS = {"create": "Création", "update": "Modification", "delete": "Suppression"}
ACTION_LABELS = {"create": "création", "propose": "proposition de création", "update": "modification",
                 "delete": "suppression", "restore": "restauration", "revert": "retour à une version",
                 "accept": "proposition acceptée", "reject": "proposition refusée"}


@dataclass(frozen=True)
class DiffRow:
    name: str
    label: str
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def display(layer: LayerDecl, name: str, value: object) -> str:
    """A stored value as a person reads it: code labels, lists joined, unit appended, "—" when empty."""
    if value is None or value == "" or value == []:
        return "—"
    field = next((f for f in layer.fields if f.name == name), None)
    if field is None:
        return str(value)
    if isinstance(value, list):
        return ", ".join(field.code_label(v) or str(v) for v in value)
    label = field.code_label(value)
    if label:
        return label
    if isinstance(value, bool):
        return "oui" if value else "non"
    return f"{value} {field.unit}" if field.unit else str(value)


def diff(layer: LayerDecl, before: dict | None, after: dict | None) -> list[DiffRow]:
    """One row per declared field and provenance column, in declaration order."""
    before, after = before or {}, after or {}
    names = [(f.name, f.label) for f in layer.fields] + list(_SERVICE_LABELS.items())
    return [DiffRow(name, label, display(layer, name, before.get(name)), display(layer, name, after.get(name)))
            for name, label in names if name in before or name in after]


@dataclass(frozen=True)
class Review:
    """A proposal as the validation screen shows it."""

    request: ChangeRequest
    layer: LayerDecl
    rows: list[DiffRow]
    before_geojson: dict | None
    after_geojson: dict | None
    epci: str | None
    current_version: int | None

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.request.kind, self.request.kind)

    @property
    def stale(self) -> bool:
        """The feature changed since the proposal was made: accepting would be refused."""
        return (self.request.kind != "create" and self.current_version is not None
                and self.current_version != self.request.base_version)

    @property
    def geometry_changed(self) -> bool:
        return self.request.kind == "update" and self.before_geojson != self.after_geojson


def review(conn: Connection, registry: LayerRegistry, request_id: int) -> Review:
    request = moderation_queue.get_request(conn, request_id)
    layer = registry.get(request.layer_id)
    current = history.snapshot(conn, layer, request.fid)
    geometry = conn.execute(text(f'SELECT ST_AsGeoJSON(geom)::json FROM "{layer.id}" WHERE fid = :f'),
                            {"f": request.fid}).scalar()
    if request.kind == "create":
        before, after = None, request.properties or (current.properties if current else None)
        before_geom, after_geom = None, request.geojson or geometry
    elif request.kind == "delete":
        before, after = (current.properties if current else None), None
        before_geom, after_geom = geometry, None
    else:
        before, after = (current.properties if current else None), request.properties
        before_geom, after_geom = geometry, request.geojson
    epci = conn.execute(text("SELECT nom FROM epci WHERE siren = :s"), {"s": request.epci_siren}).scalar()
    return Review(request, layer, diff(layer, before, after), before_geom, after_geom, epci,
                  current.version if current else None)


@dataclass(frozen=True)
class HistoryLine:
    entry: history.Entry
    action_label: str
    changes: list[DiffRow]
    geometry_changed: bool


def history_lines(layer: LayerDecl, entries: list[history.Entry]) -> list[HistoryLine]:
    """Each history entry with only what it changed."""
    lines = []
    for e in entries:
        rows = [r for r in diff(layer, e.properties_before, e.properties_after) if r.changed or e.action == "create"]
        moved = e.geojson_before is not None and e.geojson_after is not None and \
            json.dumps(e.geojson_before, sort_keys=True) != json.dumps(e.geojson_after, sort_keys=True)
        lines.append(HistoryLine(e, ACTION_LABELS.get(e.action, e.action), rows, moved))
    return lines
