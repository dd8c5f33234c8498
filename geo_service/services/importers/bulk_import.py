"""Bulk import of a file into one layer, through the editing service: preview, column mapping, validation
report, then an all-or-nothing commit recorded in the history as one change set that can be reverted.

This is the GIS officers' and EPCI contributors' import (``/admin/import``, ``geo-service edit import``):
GeoJSON, GeoPackage, a zipped shapefile or a CSV with lon/lat or Lambert-93 x/y. Every row goes through
``editing.create_feature`` / ``editing.patch_feature`` with the importer's account, so the rights, the
perimeter rule, the validation workflow (a contributor's rows become proposals) and the history apply to
an import exactly as to an edit by hand. Rows are matched to existing features by the layer's natural key:
an identical feature is left alone (a re-import of the same file changes nothing), a different one is
updated with the mapped fields only.

Each row runs in a savepoint, so one pass reports every rejected row with its reason; then the whole import
is rolled back if any row was rejected or if it was only a check (``commit=False``). Reading reuses the
open-data importers' readers (``importers/generic.py``): same encodings, separators, CRS and geometry rules.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import shapely
from sqlalchemy import Connection, text

from geo_service.errors import Conflict, Forbidden, ImportFileError, InvalidFeature, NotFound, ServiceError
from geo_service.layers import LayerDecl
from geo_service.services.editing import feature_writes, history, rights
from geo_service.services.editing.feature_writes import EditContext, jsonable
from geo_service.services.editing.geometry_checks import Shape
from geo_service.services.importers.formats import generic
from geo_service.services.importers.framework import coordinates
from geo_service.services.importers.framework.coordinates import WGS84
from geo_service.services.importers.framework.csv_table import CsvTable, normalise_header
from geo_service.services.importers.framework.sources import FileLimits, Source, open_source
from geo_service.services.importers.framework.validation import Validator
from geo_service.services.publish.visibility import is_published

SAMPLE_ROWS = 8
# Columns whose name says they hold coordinates, for the first guess of a CSV's x/y columns.
X_NAMES = ("lon", "long", "longitude", "lng", "x", "coord_x", "x_l93", "xl93")
Y_NAMES = ("lat", "latitude", "y", "coord_y", "y_l93", "yl93")
REVERT_PREFIX = "annulation:"
IMPORT_PROVENANCE = ("source", "licence", "source_date", "import_id")
# Field names a column may also go by (lower case, without accents or separators) for the suggested mapping.
_SEPARATORS = str.maketrans({" ": "", "_": "", "-": "", ".": "", "'": ""})


@dataclass(frozen=True)
class ColumnMapping:
    """Which layer, which source column feeds which field, and (CSV) where the coordinates are."""

    layer: str
    columns: Mapping[str, str]
    x: str | None = None
    y: str | None = None
    crs: str = WGS84
    list_separator: str = "|"
    source: str | None = None
    licence: str | None = None


@dataclass(frozen=True)
class Preview:
    """What the file holds, to choose the mapping: columns, a few rows, and the suggested mapping."""

    name: str
    kind: str  # "csv" or "vector"
    columns: list[str]
    sample: list[dict[str, object]]
    rows: int
    geometry_type: str | None
    crs: str | None
    suggested: dict[str, str]
    x: str | None
    y: str | None
    # More rows than an import through the pages takes (``rows`` then stops at that limit).
    more: bool = False


@dataclass(frozen=True)
class RowFault:
    """A row that cannot be read at all (in place of its geometry)."""

    column: str
    reason: str


@dataclass(frozen=True)
class RowIssue:
    line: int | None
    column: str
    value: str
    reason: str


@dataclass
class BulkReport:
    """The outcome of a check or an import; ``committed`` only when every row passed and it was asked."""

    layer: str
    change_set: str
    committed: bool = False
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    proposed: int = 0
    rejected: list[RowIssue] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.created + self.updated + self.proposed

    @property
    def rejected_rows(self) -> int:
        return len({issue.line for issue in self.rejected})

    def as_dict(self) -> dict:
        return {"layer": self.layer, "change_set": self.change_set, "committed": self.committed,
                "read": self.read, "created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "proposed": self.proposed, "rejected_rows": self.rejected_rows,
                "rejected": [issue.__dict__ for issue in self.rejected]}


@dataclass(frozen=True)
class RevertReport:
    change_set: str
    reverted: int
    deleted: int


# -- reading ------------------------------------------------------------------------------------------------
# What a file for a bulk import may hold, by its bytes (in a zip or gzip, or alone).
ACCEPTED_KINDS = generic.ACCEPTED_KINDS


def _key(name: str) -> str:
    return normalise_header(name).translate(_SEPARATORS)


def suggest_mapping(columns: list[str], layer: LayerDecl) -> dict[str, str]:
    """Column → field where the names agree (case, accents aside) with the field's name or its label."""
    by_name: dict[str, str] = {}
    for f in layer.fields:
        by_name.setdefault(_key(f.name), f.name)
        by_name.setdefault(_key(f.label), f.name)
    suggested: dict[str, str] = {}
    for column in columns:
        name = by_name.get(_key(column))
        if name and name not in suggested.values():
            suggested[column] = name
    return suggested


def _guess(columns: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {normalise_header(c): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


@contextmanager
def _csv(source: Source) -> Iterator[CsvTable]:
    member = generic.csv_member(source)
    with source.open(member) as stream:
        yield CsvTable(stream, member.basename if member else source.name)


def preview(path: Path, name: str, layer: LayerDecl | None = None, sample: int = SAMPLE_ROWS, *,
            max_rows: int = 50_000, limits: FileLimits | None = None) -> Preview:
    """Columns, the first rows and the row count (counted up to ``max_rows``) of a file; the suggested mapping
    for ``layer``."""
    with open_source(path, filename=name, limits=limits) as source:
        member = generic.vector_member(source)
        if member is False:
            with _csv(source) as table:
                columns = list(table.header)
                rows = []
                count = 0
                for _line, values in table.rows(max_rows=max_rows):
                    count += 1
                    if len(rows) < sample:
                        rows.append(dict(zip(columns, (v.strip() for v in values), strict=False)))
                more = table.truncated
                count = max_rows if more else count
            x, y = _guess(columns, X_NAMES), _guess(columns, Y_NAMES)
            crs = next((found for row in rows if (found := coordinates.system_of(row.get(x), row.get(y)))), WGS84)
            return Preview(name, "csv", columns, rows, count, "Point", crs,
                           suggest_mapping([c for c in columns if c not in (x, y)], layer) if layer else {}, x, y,
                           more)
        path_for_gdal = source.vector_path(member)
        info = generic.vector_info(source, member, path_for_gdal)
        columns = list(info.get("fields", []))
        rows = []
        # In the layer's terms when it is known: the sample then shows what the import will make of each shape.
        geometry_type = layer.geometry if layer else (info.get("geometry_type") or "Unknown")
        for _file, _rank, attrs, geom in generic.vector_rows(source, member, geometry_type, repair=False,
                                                             path=path_for_gdal):
            values = dict(zip(columns, attrs.values(), strict=False))
            values["géométrie"] = geom if isinstance(geom, str) else geom.wkt[:80]
            rows.append(values)
            if len(rows) >= sample:
                break
        features = int(info.get("features") or 0)
        return Preview(name, "vector", columns, rows, features, info.get("geometry_type"), info.get("crs"),
                       suggest_mapping(columns, layer) if layer else {}, None, None, features > max_rows)


def _rows(source: Source, mapping: ColumnMapping, layer: LayerDecl, max_rows: int
          ) -> Iterator[tuple[int, dict, object]]:
    member = generic.vector_member(source)
    if member is not False:
        yield from ((line, attrs, geom) for _f, line, attrs, geom
                    in generic.vector_rows(source, member, layer.geometry, repair=False))
        return
    if not (mapping.x and mapping.y):
        raise ImportFileError("Fichier CSV : choisissez les colonnes des coordonnées (x/longitude et y/latitude)")
    crs = generic.csv_crs(mapping.crs)
    too_wide: list[tuple[int, int]] = []
    with _csv(source) as table:
        missing = [c for c in (*mapping.columns, mapping.x, mapping.y) if not table.has(normalise_header(c))]
        if missing:
            raise ImportFileError(f"{table.label} : colonne(s) absente(s) du fichier : {', '.join(missing)}")
        rows = generic.point_rows(table, mapping.x, mapping.y, crs, lambda line, n: too_wide.append((line, n)),
                                  max_rows=max_rows)
        yield from ((line, attrs, geom) for _f, line, attrs, geom in rows)
        if table.truncated:
            raise _too_many(max_rows)
        for line, n in too_wide:
            yield line, {}, RowFault("(ligne)", f"{n} champs au lieu de {table.width} : séparateur dans une "
                                                "valeur sans guillemets ?")


# -- checking the mapping ----------------------------------------------------------------------------------
def check_mapping(conn: Connection, ctx: EditContext, mapping: ColumnMapping) -> rights.WriteGrant:
    """The account's right on the layer, once the mapping names only fields of the layer it may read, each once,
    and every required one (or its fallback).

    Checked before any row is read: a check must not tell an account anything about features it could not
    change, nor about fields it cannot read (whether a guessed value matches a stored one).
    """
    if mapping.layer not in ctx.registry:
        raise NotFound(f"Aucune couche « {mapping.layer} »")
    layer = ctx.registry.get(mapping.layer)
    if not layer.editable:
        raise ImportFileError(f"« {layer.title} » est une couche de base : elle ne s'importe pas ici")
    grant = rights.check_layer(conn, ctx.principal, layer, "create", ctx.at)
    declared = {f.name for f in layer.fields}
    targets = [f for f in mapping.columns.values() if f]
    unknown = sorted(set(targets) - declared)
    if unknown:
        raise ImportFileError(f"Champs inconnus de « {layer.title} » : {', '.join(unknown)}")
    if not rights.reader_for(conn, ctx.principal, ctx.at).sees_restricted(layer):
        hidden = sorted({f.label for f in layer.fields if f.restricted and f.name in targets})
        if hidden:
            raise Forbidden(f"Champs réservés de « {layer.title} » que votre compte ne peut pas lire, donc pas "
                            f"importer : {', '.join(hidden)}")
    twice = sorted({f for f in targets if targets.count(f) > 1})
    if twice:
        raise ImportFileError("Un champ ne peut recevoir qu'une colonne : " + ", ".join(twice))
    located = _located(layer, targets)
    missing = [f.label for f in layer.fields if f.required and f.name not in targets and f.name not in located]
    if layer.natural_key and layer.natural_key not in targets:
        missing.insert(0, f"{layer.field(layer.natural_key).label} (clé de rapprochement)")
    if missing:
        raise ImportFileError(f"Champs obligatoires de « {layer.title} » sans colonne : "
                              f"{', '.join(dict.fromkeys(missing))}")
    return grant


def _located(layer: LayerDecl, targets: list[str]) -> list[str]:
    """The commune fields filled from the commune under the point when no column feeds them."""
    declared = {f.name for f in layer.fields}
    if "code_insee" not in declared or "code_insee" in targets:
        return []
    return [name for name in ("code_insee", "commune") if name in declared and name not in targets]


def _commune_at(conn: Connection, geom: object) -> tuple[str, str] | None:
    row = conn.execute(text(
        "SELECT code_insee_actuel, nom_actuel FROM communes "
        "WHERE ST_Covers(geom, ST_PointOnSurface(ST_GeomFromEWKB(:g))) ORDER BY code_insee LIMIT 1"),
        {"g": shapely.to_wkb(geom, include_srid=True)}).first()
    return None if row is None else (row[0], row[1])


# -- importing ------------------------------------------------------------------------------------------------
def new_change_set() -> str:
    return f"lot-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def run(conn: Connection, ctx: EditContext, path: Path, name: str, mapping: ColumnMapping, *,
        commit: bool, max_rows: int = 50_000, limits: FileLimits | None = None) -> BulkReport:
    """Check every row (``commit=False``) or import the file (``commit=True``) as the change set ``ctx.change_set``.

    Nothing stays written unless ``commit`` and no row was rejected; the caller's transaction is left open.
    """
    grant = check_mapping(conn, ctx, mapping)
    layer = grant.layer
    report = BulkReport(layer.id, ctx.change_set or "")
    targets = {normalise_header(column): f for column, f in mapping.columns.items() if f}
    source_of = {f: column for column, f in mapping.columns.items() if f}
    located = _located(layer, list(targets.values()))
    validator = Validator(layer, only=list(dict.fromkeys([*targets.values(), *located])),
                          list_separator=mapping.list_separator)
    provenance = {"source": mapping.source or f"Import de {name}", "licence": mapping.licence,
                  "source_date": date.today().isoformat()}
    seen: dict[object, int] = {}
    whole = conn.begin_nested()
    try:
        with open_source(path, filename=name, limits=limits) as source:
            for line, attrs, geom in _rows(source, mapping, layer, max_rows):
                report.read += 1
                if report.read > max_rows:
                    raise _too_many(max_rows)
                _one_row(conn, ctx, grant, report, line, attrs, geom, targets, source_of, located, validator,
                         provenance, seen)
    except BaseException:
        whole.rollback()
        raise
    if commit and not report.rejected:
        whole.commit()
        report.committed = True
    else:
        whole.rollback()
    return report


def _too_many(max_rows: int) -> ImportFileError:
    return ImportFileError(f"Plus de {max_rows} lignes (lignes vides comprises) : découpez le fichier ou passez "
                           "par « geo-service import generic »")


def _one_row(conn: Connection, ctx: EditContext, grant: rights.WriteGrant, report: BulkReport, line: int,
             attrs: dict, geom: object, targets: dict[str, str], source_of: dict[str, str], located: list[str],
             validator: Validator, provenance: dict, seen: dict[object, int]) -> None:
    layer = grant.layer

    def reject(column: str, value: object, reason: str) -> None:
        report.rejected.append(RowIssue(line, column, "" if value is None else str(value)[:200], reason))

    if isinstance(geom, RowFault):
        reject(geom.column, "", geom.reason)
        return
    if isinstance(geom, str):
        reject("géométrie", "", geom)
        return
    record = {f: attrs.get(column) for column, f in targets.items()}
    if located:
        found = _commune_at(conn, geom)
        if found is None:
            reject("géométrie", _short(geom),
                   f"hors du territoire ({ctx.rules.territory_name}) : aucune commune sous ce point")
            return
        record.update(dict(zip(("code_insee", "commune"), found, strict=False)))
        record = {k: v for k, v in record.items() if k in validator.field_names}
    values, problems = validator.check(record)
    for name, reason in problems:
        reject(source_of.get(name, name), record.get(name), reason)
    if problems:
        return
    key = layer.natural_key
    if key is not None:
        if values[key] in seen:
            reject(source_of[key], values[key], f"clé en double dans le fichier (déjà ligne {seen[values[key]]})")
            return
        seen[values[key]] = line
    properties = {k: v for k, v in jsonable(values).items() if v is not None or k in targets.values()}
    given = {k: v for k, v in provenance.items() if v is not None}
    feature = {"type": "Feature", "properties": {**properties, **given},
               "geometry": json.loads(shapely.to_geojson(geom))}
    savepoint = conn.begin_nested()
    try:
        outcome = _write(conn, ctx, grant, feature, geom, values.get(key) if key else None)
    except ServiceError as exc:
        savepoint.rollback()
        for column, reason in _reasons(exc, source_of):
            reject(column, attrs.get(normalise_header(column)) if column in source_of.values() else "", reason)
        return
    savepoint.commit()
    setattr(report, outcome, getattr(report, outcome) + 1)


def _short(geom: object) -> str:
    return shapely.to_wkt(geom, rounding_precision=6)[:120]


def _reasons(exc: ServiceError, source_of: dict[str, str]) -> list[tuple[str, str]]:
    errors = exc.extra.get("errors") if isinstance(exc, InvalidFeature) else None
    if errors:
        return [(source_of.get(e.get("field"), e.get("field") or "(entité)"), e["message"]) for e in errors]
    name = exc.extra.get("field") or exc.extra.get("parameter")
    column = source_of.get(name, "géométrie" if name in (None, "geometry") and "géom" in exc.detail else "(entité)")
    return [(column, exc.detail)]


def _write(conn: Connection, ctx: EditContext, grant: rights.WriteGrant, feature: dict, geom: object,
           key_value: object) -> str:
    """Create, update or leave the feature; returns the report counter to bump.

    The perimeter rule is applied before the row is compared with a stored feature: otherwise "unchanged"
    would tell a contributor the values of a feature outside its EPCI.
    """
    layer, tolerance = grant.layer, ctx.rules.perimeter_tolerance_m
    rights.check_geometries(conn, grant, [("nouvelle", Shape(geom))], tolerance)
    existing = _by_key(conn, layer, key_value) if key_value is not None else None
    if existing is None:
        result = feature_writes.create_feature(conn, ctx, layer.id, feature)
        return "proposed" if result.status == "proposed" else "created"
    fid, snap = existing
    rights.check_geometries(conn, grant, [("existante", Shape(shapely.from_wkb(snap.ewkb)))], tolerance)
    if snap.deleted_at is not None:
        # Deleted earlier (by hand or by undoing an import): the file brings it back, as a restoration.
        feature_writes.restore_feature(conn, ctx, layer.id, fid)
        snap = history.snapshot(conn, layer, fid)
        assert snap is not None
        if _same(snap, feature):
            return "updated"
    elif _same(snap, feature):
        return "unchanged"
    patch = {"properties": {k: v for k, v in feature["properties"].items() if k not in ("source_date",)},
             "geometry": feature["geometry"]}
    result = feature_writes.patch_feature(conn, ctx, layer.id, fid, patch, expected_version=None)
    return "proposed" if result.status == "proposed" else "updated"


def _by_key(conn: Connection, layer: LayerDecl, value: object) -> tuple[int, history.Snapshot] | None:
    fid = conn.execute(text(f'SELECT fid FROM "{layer.id}" WHERE "{layer.natural_key}" = :v '
                            "AND validation_state = 'published' ORDER BY deleted_at NULLS FIRST LIMIT 1"),
                       {"v": value}).scalar()
    if fid is None:
        return None
    snap = history.snapshot(conn, layer, int(fid))
    return None if snap is None else (int(fid), snap)


def _same(snap: history.Snapshot, feature: dict) -> bool:
    """Whether the stored feature already has the file's values (provenance aside) and geometry."""
    for name, value in feature["properties"].items():
        if name in IMPORT_PROVENANCE:
            continue
        stored = snap.properties.get(name)
        if isinstance(value, float) or isinstance(stored, float):
            if stored is None or value is None or abs(float(stored) - float(value)) > 1e-9:
                return False
        elif stored != value:
            return False
    stored_geom = shapely.from_wkb(snap.ewkb)
    return bool(shapely.equals_exact(stored_geom, shapely.geometry.shape(feature["geometry"]), tolerance=1e-9))


# -- reverting a change set -------------------------------------------------------------------------------------
def change_sets(conn: Connection, limit: int = 50) -> list[dict]:
    """The latest imports recorded in the history: change set, layer, who, when, how many changes."""
    rows = conn.execute(text(
        "SELECT h.change_set, min(h.layer_id), min(h.actor), min(h.at), count(*), "
        " EXISTS (SELECT 1 FROM feature_history r WHERE r.change_set = :prefix || h.change_set) "
        "FROM feature_history h WHERE h.change_set IS NOT NULL AND h.change_set NOT LIKE :prefix || '%' "
        "GROUP BY h.change_set ORDER BY min(h.at) DESC LIMIT :n"), {"n": limit, "prefix": REVERT_PREFIX}).all()
    return [{"change_set": r[0], "layer": r[1], "actor": r[2], "at": r[3], "changes": r[4], "reverted": r[5]}
            for r in rows]


def revert_change_set(conn: Connection, ctx: EditContext, change_set: str) -> RevertReport:
    """Undo a whole import: created (or restored) features deleted (logically), updated ones back to their
    version before.

    Refused (409, nothing written) when a feature was changed again after the import: reverting it would
    silently undo that later change; revert those features one by one from their history instead.
    """
    # Per feature: what the import did first (created, restored or updated it: from which version) and the
    # state it left (its last change in the set).
    rows = conn.execute(text(
        "SELECT layer_id, fid, (array_agg(action ORDER BY id))[1], (array_agg(version_before ORDER BY id))[1], "
        " (array_agg(properties_after ORDER BY id DESC))[1], ST_AsEWKB((array_agg(geom_after ORDER BY id DESC))[1]) "
        "FROM feature_history WHERE change_set = :cs AND action IN ('create', 'update', 'restore') "
        "GROUP BY layer_id, fid ORDER BY max(id) DESC"), {"cs": change_set}).all()
    if not rows:
        raise NotFound(f"Aucun import publié « {change_set} » dans l'historique")
    current: list[int] = []
    later = []
    for layer_id, fid, _action, _vb, properties_after, ewkb_after in rows:
        # Unchanged since the import means the same state, not the same version: undoing a later import
        # brings the features back exactly, as new versions, and this one can then be undone in turn.
        snap = history.snapshot(conn, ctx.registry.get(layer_id), fid, lock=True)
        if snap is None or not is_published(snap.validation_state, snap.deleted_at) \
                or snap.properties != properties_after or snap.ewkb != bytes(ewkb_after):
            later.append(f"{layer_id} {fid}")
        current.append(snap.version if snap else 0)
    if later:
        raise Conflict(f"{len(later)} entité(s) de l'import ont changé depuis (ou l'import est déjà annulé) : "
                       f"{', '.join(later[:20])}{' …' if len(later) > 20 else ''}. Rien n'a été annulé ; "
                       "revenez sur ces entités une à une depuis leur historique")
    # The undoing is a change set of its own, named after the import, so the history tells both apart.
    revert_ctx = EditContext(ctx.principal, ctx.path, ctx.registry, ctx.rules, ctx.crs, ctx.at,
                             REVERT_PREFIX + change_set)
    reverted = deleted = 0
    for (layer_id, fid, action, version_before, _p, _g), version in zip(rows, current, strict=True):
        if action in ("create", "restore"):
            feature_writes.delete_feature(conn, revert_ctx, layer_id, fid, version)
            deleted += 1
        else:
            feature_writes.revert_feature(conn, revert_ctx, layer_id, fid, version_before, version)
            reverted += 1
    return RevertReport(change_set, reverted, deleted)
