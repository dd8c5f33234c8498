"""A layer seen as an OGC API collection: its table, and the properties a given reader may see and query.

Everything here derives from the layer declaration (through ``geo_service.tables``): the property list
drives the GeoJSON properties, the queryables, the property filters, ``sortby`` and CQL2 alike, so that
one list decides what is visible and what is queryable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Column, ColumnElement, Table

from geo_service.errors import InvalidParameter, NotFound
from geo_service.layers import FieldDecl, LayerDecl
from geo_service.services.app_caches import AppCaches
from geo_service.services.publish.read_access import Reader
from geo_service.services.publish.visibility import visible_rows
from geo_service.tables import metadata_for

# Names a client may use for the geometry in CQL2 (``geometry`` is the one queryables advertise).
GEOMETRY_NAMES = ("geometry", "geom")
# Service columns of editable layers that the public may see and filter on: (name, type, French title).
_SERVICE_PROPERTIES = (
    ("source", "string", "Source de la donnée"),
    ("demo", "boolean", "Donnée de démonstration (fictive)"),
    ("updated_at", "datetime", "Dernière mise à jour"),
)

@dataclass(frozen=True)
class Prop:
    """One feature property: its name, declared type, French title, column, and declaration if any."""

    name: str
    type: str
    title: str
    column: Column
    field: FieldDecl | None = None

    @property
    def is_temporal(self) -> bool:
        return self.type in ("date", "datetime")


@dataclass(frozen=True)
class Collection:
    layer: LayerDecl
    table: Table
    props: dict[str, Prop]
    reader: Reader
    # The application's caches, for the statements built on this collection (not part of its identity).
    caches: AppCaches = field(compare=False, hash=False, repr=False)

    @property
    def id(self) -> str:
        return self.layer.id

    @property
    def geom(self) -> Column:
        return self.table.c.geom

    @property
    def fid(self) -> Column:
        return self.table.c.fid

    @property
    def date_prop(self) -> Prop | None:
        """The property ``datetime`` filters on: the layer's declared ``date_field``, if visible."""
        return self.props.get(self.layer.date_field) if self.layer.date_field else None

    def visible_rows(self) -> ColumnElement[bool]:
        """Rows this reader may see: proposals and rejected edits stay hidden from the public."""
        return visible_rows(self.table, self.layer.editable, self.reader.published_only)

    def prop(self, name: str, parameter: str) -> Prop:
        """The property ``name``, or a 400 naming the parameter and the properties that exist."""
        if name not in self.props:
            known = ", ".join(self.props)
            raise InvalidParameter(f"Propriété inconnue « {name} » dans {parameter} ; propriétés : {known}",
                                   parameter=parameter)
        return self.props[name]


def _props(layer: LayerDecl, table: Table, reader: Reader) -> dict[str, Prop]:
    fields = layer.fields if reader.sees_restricted(layer) else layer.public_fields()
    props = {f.name: Prop(f.name, f.type, f.label, table.c[f.name], f) for f in fields}
    if layer.editable:
        props.update({name: Prop(name, type_, title, table.c[name]) for name, type_, title in _SERVICE_PROPERTIES})
    return props


def open_collection(caches: AppCaches, layer_id: str, reader: Reader) -> Collection:
    """The collection of a layer this reader may read; any other id is a 404 (a hidden layer does not exist).

    Kept in ``caches.collections``: building its properties on every request cost as much CPU as reading a feature.
    """
    collection = caches.collections.get((layer_id, reader))
    if collection is not None:
        return collection
    registry = caches.registry
    if layer_id not in registry or not reader.can_read(registry.get(layer_id)):
        raise NotFound(f"Aucune collection « {layer_id} »")
    layer = registry.get(layer_id)
    table = metadata_for(registry).tables[layer.id]
    return caches.collections.put((layer_id, reader), Collection(layer, table, _props(layer, table, reader), reader,
                                                                 caches))


def readable_collections(caches: AppCaches, reader: Reader) -> list[Collection]:
    """Every collection this reader may read, in map order."""
    return [open_collection(caches, layer.id, reader) for layer in caches.registry if reader.can_read(layer)]
