"""Editing features: create, replace, patch, delete (logical), restore, revert — the one write path.

Every tool that writes (OGC API Part 4, the web editor, imports, the CLI) calls these functions inside its
own transaction, so a refusal writes nothing. Each change is checked in this order: rights on the layer
(``rights.check_layer``), the feature against the declaration (``properties``, ``shapes``: types, code
lists, required, patterns, bounds, geometry type and validity, territory), the perimeter rule
(``rights.check_geometries``), optimistic locking (the expected ``version``, 412), then the natural key
(409). An EPCI contributor's change becomes a proposal: a new feature is a row in state ``proposed``
(hidden from readers); a change or deletion of a published feature is a ``change_requests`` row holding
the complete proposed state, while the published row stays as it is until an administrator accepts
(``services/editing/moderation_queue.py``). Every change to a row is recorded in ``feature_history``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

import shapely
from sqlalchemy import Connection, Table, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from geo_service.errors import Conflict, InvalidFeature, InvalidParameter, NotFound, PreconditionFailed
from geo_service.layers import LayerDecl, LayerRegistry
from geo_service.services.editing import history, rights
from geo_service.services.editing.accounts import Principal
from geo_service.services.editing.geometry_checks import Shape, check_in_territory, parse_geometry
from geo_service.services.editing.property_checks import check_properties
from geo_service.services.publish.crs import CRS84, Crs
from geo_service.services.publish.visibility import is_published
from geo_service.settings import Settings
from geo_service.tables import metadata_for

PATHS = ("web", "api", "import", "cli")


@dataclass(frozen=True)
class EditRules:
    """The numbers the checks use, taken once from the settings."""

    territory_name: str
    territory_tolerance_m: float
    perimeter_tolerance_m: float
    max_vertices: int = 100_000

    @classmethod
    def from_settings(cls, settings: Settings) -> EditRules:
        return cls(settings.territory.name, settings.territory.tolerance_m, settings.editing.perimeter_tolerance_m,
                   settings.editing.max_vertices)


@dataclass(frozen=True)
class EditContext:
    """Who edits, through which path, with which rules; ``crs`` is the CRS of incoming geometries."""

    principal: Principal
    path: str
    registry: LayerRegistry
    rules: EditRules
    crs: Crs = CRS84
    at: datetime | None = None
    change_set: str | None = None

    def __post_init__(self) -> None:
        if self.path not in PATHS:
            raise ValueError(f"unknown edit path {self.path!r}")


@dataclass(frozen=True)
class EditResult:
    """What a change did: ``status`` is published, proposed, deleted or restored; ``version`` is the row's."""

    layer_id: str
    fid: int
    version: int
    status: str
    change_request_id: int | None = None
    warnings: list[str] = field(default_factory=list)


# -- helpers -----------------------------------------------------------------------------------------------
def _layer(ctx: EditContext, layer_id: str) -> tuple[LayerDecl, Table]:
    if layer_id not in ctx.registry:
        raise NotFound(f"Aucune couche « {layer_id} »")
    layer = ctx.registry.get(layer_id)
    return layer, metadata_for(ctx.registry).tables[layer.id]


def _feature_parts(feature: object, fid: int | None = None) -> tuple[dict, object, bool]:
    """(properties, geometry, geometry given?) of a GeoJSON Feature body; anything else is a 400."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise InvalidParameter("Corps attendu : une entité GeoJSON (« type »: « Feature »)", parameter="body")
    if fid is not None and feature.get("id") not in (None, fid, str(fid)):
        raise InvalidParameter(f"L'identifiant du corps ({feature.get('id')}) diffère de celui de l'adresse ({fid})",
                               parameter="id")
    props = feature.get("properties")
    props = {} if props is None else props
    if not isinstance(props, dict):
        raise InvalidParameter("« properties » doit être un objet", parameter="properties")
    return props, feature.get("geometry"), "geometry" in feature


def _live_row(conn: Connection, layer: LayerDecl, fid: int, *, lock: bool = True) -> history.Snapshot:
    """A published, not deleted row, locked for the change; anything else does not exist for editing."""
    snap = history.snapshot(conn, layer, fid, lock=lock)
    if snap is None or not is_published(snap.validation_state, snap.deleted_at):
        raise NotFound(f"Aucune entité « {fid} » dans « {layer.id} »")
    return snap


def check_version(snap: history.Snapshot, expected: int | None) -> None:
    """Optimistic locking: the client's version (from If-Match) must be the stored one."""
    if expected is not None and expected != snap.version:
        raise PreconditionFailed(
            f"L'entité a été modifiée entre-temps (version {snap.version}, vous envoyez la version {expected}) : "
            "rechargez-la et refaites votre modification", current_version=snap.version)


def _shape_of(snap: history.Snapshot) -> Shape:
    return Shape(shapely.from_wkb(snap.ewkb))


def _check_natural_key(conn: Connection, layer: LayerDecl, table: Table, values: Mapping[str, object],
                       fid: int | None) -> None:
    key = layer.natural_key
    if key is None or values.get(key) is None:
        return
    sql = select(table.c.fid, table.c.validation_state, table.c.deleted_at).where(table.c[key] == values[key])
    if fid is not None:
        sql = sql.where(table.c.fid != fid)
    row = conn.execute(sql.limit(1)).first()
    if row is None:
        return
    state = " (supprimée : restaurez-la plutôt)" if row[2] is not None else \
        {"proposed": " (proposée, en attente de validation)", "rejected": " (proposition refusée)"}.get(row[1], "")
    raise Conflict(f"« {layer.field(key).label} » = « {values[key]} » existe déjà dans « {layer.title} » : "
                   f"entité {row[0]}{state}", field=key)


def jsonable(values: Mapping[str, object]) -> dict:
    """Typed property values as JSON (dates as ISO 8601), the form history and proposals keep."""
    return {k: v.isoformat() if isinstance(v, date | datetime) else v for k, v in values.items()}


def _integrity(exc: IntegrityError, layer: LayerDecl) -> Exception:
    # A race past the checks above (two simultaneous creations): the database's constraints decide.
    code = getattr(exc.orig, "sqlstate", "")
    if code == "23505":
        return Conflict(f"Une entité de « {layer.title} » porte déjà cette clé ({layer.natural_key})",
                        field=layer.natural_key)
    return InvalidFeature(f"Refusé par la base : {str(exc.orig).splitlines()[0]}")


def _check(conn: Connection, ctx: EditContext, layer: LayerDecl, props: Mapping[str, object],
           geometry: object) -> tuple[dict, Shape]:
    typed = check_properties(layer, props)
    shape = parse_geometry(layer, geometry, ctx.crs, max_vertices=ctx.rules.max_vertices)
    check_in_territory(conn, shape, ctx.rules.territory_tolerance_m, ctx.rules.territory_name)
    return typed, shape


def _propose(conn: Connection, ctx: EditContext, grant: rights.WriteGrant, layer: LayerDecl, fid: int, kind: str,
             base_version: int, properties: dict | None, ewkb: bytes | None) -> int:
    convention = grant.convention
    return conn.execute(text(
        "INSERT INTO change_requests (layer_id, fid, kind, properties, geom, base_version, submitted_by, "
        "epci_siren, convention_id, path) VALUES (:l, :f, :k, CAST(:p AS jsonb), ST_GeomFromEWKB(:g), :v, :u, "
        ":e, :c, :path) RETURNING id"),
        {"l": layer.id, "f": fid, "k": kind, "p": json.dumps(properties) if properties is not None else None,
         "g": ewkb, "v": base_version, "u": ctx.principal.username, "e": ctx.principal.epci_siren,
         "c": convention.id if convention else None, "path": ctx.path}).scalar_one()


def _record(conn: Connection, ctx: EditContext, layer: LayerDecl, fid: int, action: str,
            before: history.Snapshot | None, comment: str | None = None,
            change_request_id: int | None = None) -> history.Snapshot:
    after = history.snapshot(conn, layer, fid)
    assert after is not None
    history.record(conn, layer.id, fid, action, actor=ctx.principal.username, path=ctx.path, before=before,
                   after=after, change_request_id=change_request_id, change_set=ctx.change_set, comment=comment)
    return after


# -- operations ---------------------------------------------------------------------------------------------
def create_feature(conn: Connection, ctx: EditContext, layer_id: str, feature: object) -> EditResult:
    """POST: a new feature, published (admin, editor) or proposed (EPCI contributor)."""
    layer, table = _layer(ctx, layer_id)
    grant = rights.check_layer(conn, ctx.principal, layer, "create", ctx.at)
    props, geometry, _ = _feature_parts(feature)
    typed, shape = _check(conn, ctx, layer, props, geometry)
    rights.check_geometries(conn, grant, [("nouvelle", shape)], ctx.rules.perimeter_tolerance_m)
    _check_natural_key(conn, layer, table, typed, None)
    values = {**typed, "geom": func.ST_GeomFromEWKB(shape.ewkb), "updated_by": ctx.principal.username,
              "validation_state": "proposed" if grant.moderated else "published", "import_id": ctx.change_set}
    try:
        fid = conn.execute(insert(table).values(**values).returning(table.c.fid)).scalar_one()
    except IntegrityError as exc:
        raise _integrity(exc, layer) from None
    if grant.moderated:
        after = _record(conn, ctx, layer, fid, "propose", None)
        cr = _propose(conn, ctx, grant, layer, fid, "create", after.version, after.properties, after.ewkb)
        return EditResult(layer.id, fid, after.version, "proposed", cr)
    after = _record(conn, ctx, layer, fid, "create", None)
    return EditResult(layer.id, fid, after.version, "published")


def _apply(conn: Connection, ctx: EditContext, grant: rights.WriteGrant, layer: LayerDecl, table: Table,
           fid: int, before: history.Snapshot, typed: dict, shape: Shape, action: str) -> EditResult:
    """Write a checked new state over ``before`` (or propose it), after the perimeter and key checks."""
    rights.check_geometries(conn, grant, [("existante", _shape_of(before)), ("nouvelle", shape)],
                            ctx.rules.perimeter_tolerance_m)
    _check_natural_key(conn, layer, table, typed, fid)
    if grant.moderated:
        proposed = {**before.properties, **jsonable(typed)}
        cr = _propose(conn, ctx, grant, layer, fid, "update", before.version, proposed, shape.ewkb)
        return EditResult(layer.id, fid, before.version, "proposed", cr)
    values = {**typed, "geom": func.ST_GeomFromEWKB(shape.ewkb), "version": table.c.version + 1,
              "updated_by": ctx.principal.username, "updated_at": func.now()}
    try:
        conn.execute(update(table).where(table.c.fid == fid).values(**values))
    except IntegrityError as exc:
        raise _integrity(exc, layer) from None
    after = _record(conn, ctx, layer, fid, action, before)
    return EditResult(layer.id, fid, after.version, "published")


def _restricted_kept(conn: Connection, ctx: EditContext, layer: LayerDecl, before: history.Snapshot,
                     props: dict) -> dict:
    """Restricted fields the editor cannot read keep their stored values: one cannot replace what one cannot see."""
    if rights.reader_for(conn, ctx.principal, ctx.at).sees_restricted(layer):
        return props
    hidden = {f.name for f in layer.fields if f.restricted}
    return {**{k: v for k, v in props.items() if k not in hidden},
            **{k: before.properties.get(k) for k in hidden}}


def replace_feature(conn: Connection, ctx: EditContext, layer_id: str, fid: int, feature: object,
                    expected_version: int | None) -> EditResult:
    """PUT: the feature's complete new state (absent declared fields become empty; provenance is kept)."""
    layer, table = _layer(ctx, layer_id)
    grant = rights.check_layer(conn, ctx.principal, layer, "update", ctx.at)
    before = _live_row(conn, layer, fid)
    check_version(before, expected_version)
    props, geometry, _ = _feature_parts(feature, fid)
    provenance = {k: before.properties.get(k) for k in ("source", "licence", "source_date") if k not in props}
    typed, shape = _check(conn, ctx, layer, {**provenance, **_restricted_kept(conn, ctx, layer, before, props)},
                          geometry)
    return _apply(conn, ctx, grant, layer, table, fid, before, typed, shape, "update")


def patch_feature(conn: Connection, ctx: EditContext, layer_id: str, fid: int, patch: object,
                  expected_version: int | None) -> EditResult:
    """PATCH (JSON merge patch, RFC 7396): given properties replace, ``null`` empties, geometry if given."""
    layer, table = _layer(ctx, layer_id)
    grant = rights.check_layer(conn, ctx.principal, layer, "update", ctx.at)
    before = _live_row(conn, layer, fid)
    check_version(before, expected_version)
    if not isinstance(patch, dict):
        raise InvalidParameter("Corps attendu : un objet JSON (merge patch)", parameter="body")
    props = patch.get("properties")
    props = {} if props is None else props
    if not isinstance(props, dict):
        raise InvalidParameter("« properties » doit être un objet", parameter="properties")
    hidden = set() if rights.reader_for(conn, ctx.principal, ctx.at).sees_restricted(layer) else \
        {f.name for f in layer.fields if f.restricted}
    merged = {**before.properties, **{k: v for k, v in props.items() if k not in hidden}}
    if "geometry" in patch:
        typed, shape = _check(conn, ctx, layer, merged, patch["geometry"])
    else:
        typed, shape = check_properties(layer, merged), _shape_of(before)
    return _apply(conn, ctx, grant, layer, table, fid, before, typed, shape, "update")


def delete_feature(conn: Connection, ctx: EditContext, layer_id: str, fid: int,
                   expected_version: int | None) -> EditResult:
    """DELETE: logical (``deleted_at``), so the feature can be restored; a contributor's is a proposal."""
    layer, table = _layer(ctx, layer_id)
    grant = rights.check_layer(conn, ctx.principal, layer, "delete", ctx.at)
    before = _live_row(conn, layer, fid)
    check_version(before, expected_version)
    rights.check_geometries(conn, grant, [("existante", _shape_of(before))], ctx.rules.perimeter_tolerance_m)
    if grant.moderated:
        cr = _propose(conn, ctx, grant, layer, fid, "delete", before.version, None, None)
        return EditResult(layer.id, fid, before.version, "proposed", cr)
    mark_deleted(conn, table, fid, ctx.principal.username)
    after = _record(conn, ctx, layer, fid, "delete", before)
    return EditResult(layer.id, fid, after.version, "deleted")


def mark_deleted(conn: Connection, table: Table, fid: int, actor: str) -> None:
    conn.execute(update(table).where(table.c.fid == fid).values(
        deleted_at=func.now(), version=table.c.version + 1, updated_by=actor, updated_at=func.now()))


def restore_feature(conn: Connection, ctx: EditContext, layer_id: str, fid: int) -> EditResult:
    """Undo a logical deletion (administrators and editors)."""
    layer, table = _layer(ctx, layer_id)
    rights.check_layer(conn, ctx.principal, layer, "restore", ctx.at)
    before = history.snapshot(conn, layer, fid, lock=True)
    if before is None:
        raise NotFound(f"Aucune entité « {fid} » dans « {layer.id} »")
    if before.deleted_at is None:
        raise Conflict(f"L'entité {fid} de « {layer.title} » n'est pas supprimée")
    conn.execute(update(table).where(table.c.fid == fid).values(
        deleted_at=None, version=table.c.version + 1, updated_by=ctx.principal.username, updated_at=func.now()))
    after = _record(conn, ctx, layer, fid, "restore", before)
    return EditResult(layer.id, fid, after.version, "restored")


def revert_feature(conn: Connection, ctx: EditContext, layer_id: str, fid: int, version: int,
                   expected_version: int | None = None) -> EditResult:
    """Bring back the properties and geometry of an earlier version, exactly, as a new version."""
    layer, table = _layer(ctx, layer_id)
    rights.check_layer(conn, ctx.principal, layer, "revert", ctx.at)
    before = history.snapshot(conn, layer, fid, lock=True)
    if before is None:
        raise NotFound(f"Aucune entité « {fid} » dans « {layer.id} »")
    check_version(before, expected_version)
    state = history.state_at(conn, layer.id, fid, version)
    if state is None:
        raise NotFound(f"Version {version} de l'entité {fid} inconnue de l'historique")
    properties, ewkb = state
    _check_natural_key(conn, layer, table, properties, fid)
    history.write_state(conn, layer, fid, properties, ewkb, ctx.principal.username)
    after = _record(conn, ctx, layer, fid, "revert", before, comment=f"retour à la version {version}")
    return EditResult(layer.id, fid, after.version, "published" if after.deleted_at is None else "deleted")
