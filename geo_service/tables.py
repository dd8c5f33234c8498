"""Database tables derived from the layer declarations (GeoAlchemy2), plus the service's own tables.

Alembic's autogenerate compares this metadata with the database, so a new layer file becomes a
migration with ``geo-service db revision -m "…"`` and no code change.
"""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from geo_service.layers import VALIDATION_STATES, FieldDecl, LayerDecl, LayerRegistry

SRID = 4326
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}

_SQL_TYPES = {
    "string": Text,
    "integer": Integer,
    "number": Float,
    "boolean": Boolean,
    "date": Date,
    "datetime": lambda: DateTime(timezone=True),
    "string_list": lambda: ARRAY(Text),
}


def _sql_literal(value: str | int) -> str:
    return str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"


def _field_constraints(layer: LayerDecl, field: FieldDecl) -> list[CheckConstraint]:
    """Code lists are enforced by the database too, so a direct edit (QGIS, psql) cannot break them."""
    if not field.codes:
        return []
    values = ", ".join(_sql_literal(v) for v in field.code_values or ())
    if field.type == "string_list":
        condition = f"{field.name} <@ ARRAY[{values}]::text[]"
    else:
        condition = f"{field.name} IN ({values})"
    return [CheckConstraint(condition, name=f"{field.name}_codes")]


def layer_table(layer: LayerDecl, metadata: MetaData) -> Table:
    """The table of one layer: its declared fields, its geometry and, if editable, provenance columns."""
    columns: list = [Column("fid", BigInteger, Identity(), primary_key=True)]
    constraints: list = []
    for field in layer.fields:
        columns.append(Column(field.name, _SQL_TYPES[field.type](), nullable=not field.required,
                              comment=field.label))
        constraints.extend(_field_constraints(layer, field))
    columns.append(Column("geom", Geometry(layer.geometry, srid=SRID, spatial_index=True), nullable=False))
    if layer.editable:
        columns += [
            Column("source", Text, comment="Source de la donnée"),
            Column("licence", Text, comment="Licence de la source"),
            Column("source_date", Date, comment="Date de la source"),
            Column("import_id", Text, comment="Identifiant de l'import qui a écrit la ligne"),
            Column("updated_by", Text),
            Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
            Column("version", Integer, nullable=False, server_default=text("1")),
            Column("validation_state", Text, nullable=False, server_default=text("'published'")),
            # Synthetic rows of `geo-service demo`: the only rows a demo run may replace.
            Column("demo", Boolean, nullable=False, server_default=text("false")),
        ]
        states = ", ".join(_sql_literal(s) for s in VALIDATION_STATES)
        constraints.append(CheckConstraint(f"validation_state IN ({states})", name="validation_state"))
    table = Table(layer.id, metadata, *columns, *constraints, comment=layer.title)
    indexed = {f.name for f in layer.fields if f.index or f.name == "code_insee"}
    for name in sorted(indexed - {layer.natural_key}):
        Index(f"ix_{layer.id}_{name}", table.c[name])
    if layer.natural_key:
        Index(f"uq_{layer.id}_{layer.natural_key}", table.c[layer.natural_key], unique=True)
    if layer.editable:
        Index(f"ix_{layer.id}_demo", table.c.demo)
    return table


def build_metadata(registry: LayerRegistry) -> MetaData:
    """All tables of the service: one per layer and the service's bookkeeping tables."""
    metadata = MetaData(naming_convention=NAMING)
    for layer in registry:
        layer_table(layer, metadata)
    Table(
        "territory", metadata,
        Column("code", Text, primary_key=True),
        Column("nom", Text, nullable=False),
        Column("geom", Geometry("MultiPolygon", srid=SRID, spatial_index=True), nullable=False),
        comment="Contour du territoire servi (union des communes chargées)",
    )
    Table(
        "dataset_loads", metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("kind", Text, nullable=False),
        Column("source", Text, nullable=False),
        Column("loaded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        comment="Journal des chargements (limites, démo, imports)",
    )
    return metadata


def migration_filter(metadata: MetaData):
    """Alembic ``include_object`` hook: compare only the service's tables, never PostGIS's own."""
    from geoalchemy2 import alembic_helpers

    def include_object(obj, name, type_, reflected, compare_to):
        if type_ == "table" and reflected and compare_to is None:
            return name in metadata.tables
        return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)

    return include_object
