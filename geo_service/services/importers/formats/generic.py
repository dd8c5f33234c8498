"""Any layer from GeoJSON, GeoPackage, a zipped shapefile or a CSV, with a small mapping file.

The mapping file (YAML) says which layer, which column feeds which field, and where the data comes from::

    layer: wifi_hotspots            # an editable layer with a natural key
    dataset: Bornes Wi-Fi de la communauté de communes
    licence: Licence Ouverte 2.0 (Etalab)
    crs: EPSG:2154                  # CSV only (default EPSG:4326); vector files carry their own
    x: X                            # CSV only: the coordinate columns (longitude/x, latitude/y)
    y: Y
    list_separator: "|"             # multi-valued fields (string_list)
    columns: {ID_BORNE: borne_id, INSEE: code_insee, LIEU: lieu}
    values: {statut: installee, ssid: WIFI public lotois}   # fixed values

Rows are kept by their commune code when ``code_insee`` is mapped, else by position. A layer's commune
code, when not mapped, is taken from the commune under the point.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import shapely
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from shapely.geometry.base import BaseGeometry

from geo_service.errors import ImportFileError
from geo_service.services.importers.framework import coordinates, file_types, vector_files
from geo_service.services.importers.framework.csv_table import CsvTable, normalise_header
from geo_service.services.importers.framework.import_run import ImportContext, Kind, Progress
from geo_service.services.importers.framework.sources import Member, Source
from geo_service.services.importers.framework.validation import Validator

VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".fgb")
# What a file of features may hold, by its bytes (alone, gzipped, or as the members of a zip).
ACCEPTED_KINDS = frozenset({file_types.JSON, file_types.GEOPACKAGE, file_types.FLATGEOBUF, file_types.TEXT})
CHUNK_FEATURES = 2000
_MULTI = {"MultiPoint": "Point", "MultiLineString": "LineString", "MultiPolygon": "Polygon"}


class MappingFile(BaseModel):
    """The mapping file, checked before anything is read."""

    model_config = ConfigDict(extra="forbid")
    layer: str
    dataset: str | None = None
    licence: str = "non précisée"
    date: dt.date | None = None
    crs: str = coordinates.WGS84
    x: str | None = None
    y: str | None = None
    list_separator: str = "|"
    columns: dict[str, str] = Field(min_length=1)
    values: dict[str, object] = {}


KEYS = tuple(MappingFile.model_fields)
_PYDANTIC_FR = {"missing": "clé obligatoire absente", "extra_forbidden": "clé inconnue",
                "string_type": "texte attendu", "dict_type": "table clé: valeur attendue",
                "date_from_datetime_parsing": "date AAAA-MM-JJ attendue", "too_short": "au moins une colonne attendue"}


def load_mapping(value: object) -> MappingFile:
    """The mapping from a path or an already parsed dict; any fault is an ``ImportFileError`` in French."""
    if value is None:
        raise ImportFileError("import generic : un fichier de correspondance est nécessaire (--mapping FICHIER.yaml)")
    raw = value
    if isinstance(value, str | Path):
        try:
            raw = yaml.safe_load(Path(value).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ImportFileError(f"fichier de correspondance illisible ({exc})") from exc
    try:
        return MappingFile.model_validate(raw)
    except ValidationError as exc:
        faults = " ; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(fichier)'} : "
                            f"{_PYDANTIC_FR.get(e['type'], e['msg'])}" for e in exc.errors())
        raise ImportFileError(f"fichier de correspondance : {faults} (clés : {', '.join(KEYS)})") from exc


def run(ctx: ImportContext) -> None:
    """Check the mapping against the layer, then read the file as CSV or vector data."""
    mapping = load_mapping(ctx.options.get("mapping"))
    ctx.source.check(ACCEPTED_KINDS)
    if mapping.layer not in ctx.registry:
        raise ImportFileError(f"couche inconnue « {mapping.layer} » ; couches : {', '.join(ctx.registry.ids)}")
    layer = ctx.layer(mapping.layer)
    if not layer.editable:
        raise ImportFileError(f"la couche {layer.id} est une couche de base : elle ne s'importe pas ainsi")
    declared = {f.name for f in layer.fields}
    fields = [*mapping.columns.values(), *mapping.values]
    unknown = sorted(set(fields) - declared)
    if unknown:
        raise ImportFileError(f"champs inconnus de la couche {layer.id} : {', '.join(unknown)}")
    locate = "code_insee" in declared and "code_insee" not in fields
    missing = [f.name for f in layer.fields if f.required and f.name not in fields
               and not (locate and f.name == "code_insee")]
    if layer.natural_key not in fields:
        missing.insert(0, f"{layer.natural_key} (clé naturelle)")
    if missing:
        raise ImportFileError(f"champs obligatoires de {layer.id} sans colonne dans la correspondance : "
                              f"{', '.join(dict.fromkeys(missing))}")
    ctx.set_dataset(mapping.dataset or f"Import de {ctx.source.name}", mapping.licence)
    if mapping.date:
        ctx.report.source_date = mapping.date
    located = [name for name in ("code_insee", "commune") if locate and name in declared and name not in fields]
    columns = tuple(dict.fromkeys([*fields, *located]))
    stage = ctx.stage(ctx.target(layer.id, columns), ctx.source.name)
    validator = Validator(layer, only=columns, list_separator=mapping.list_separator)
    by_column = {normalise_header(k): v for k, v in mapping.columns.items()}
    source_of = {v: k for k, v in mapping.columns.items()}
    vector = vector_member(ctx.source)
    rows = vector_rows(ctx.source, vector, layer.geometry, ctx.progress) if vector is not False \
        else _csv_rows(ctx, mapping)
    for file, line, attrs, geom in rows:
        ctx.report.read += 1
        record = {by_column[k]: v for k, v in attrs.items() if k in by_column}
        record.update(mapping.values)
        code = record.get("code_insee")
        if code and not ctx.in_territory(str(code).strip()):
            ctx.report.outside += 1
            continue
        values, problems = validator.check(record, skip_required=frozenset({"code_insee"}) if locate else frozenset())
        for name, reason in problems:
            ctx.reject(file, line, source_of.get(name, name), record.get(name), reason)
        if isinstance(geom, str):
            ctx.reject(file, line, "géométrie", "", geom)
            continue
        if not problems:
            stage.add(line, values, shapely.to_wkb(geom, hex=True, include_srid=True), by_code=bool(code))
    ctx.write(stage, source_of.get(layer.natural_key or "", "clé"), "géométrie", locate=locate,
              commune_name="commune" if "commune" in located else None)
    stage.drop()


def vector_member(source: Source) -> Member | None | bool:
    """The vector member to read (None: the input itself), or False for a CSV.

    In an archive the members' names choose (their bytes are checked when read); a single file is what
    its bytes show, whatever its name.
    """
    if source.is_archive:
        found = source.with_suffix(*VECTOR_SUFFIXES)
        if found:
            return found[0]
        if source.with_suffix(".csv", ".txt"):
            return False
        raise ImportFileError(f"{source.name} : l'archive ne contient aucun fichier d'un format accepté "
                              f"({file_types.ACCEPTED_TEXT})")
    return None if source.kind in file_types.VECTOR_KINDS else False


def csv_member(source: Source) -> Member | None:
    """The delimited file to read: the input itself, or the first CSV of an archive."""
    return source.with_suffix(".csv", ".txt")[0] if source.is_archive else None


def csv_crs(name: str) -> str:
    try:
        return coordinates.normalise_crs(name)
    except ValueError as exc:
        raise ImportFileError(f"crs : {exc}") from exc


def point_rows(table: CsvTable, x: str, y: str, crs: str, on_bad_width=None, max_rows: int | None = None
               ) -> Iterator[tuple[str, int, dict, BaseGeometry | str]]:
    """``(file, line, attributes, point in EPSG:4326 or the French reason why not)`` of a CSV with coordinates."""
    x, y = normalise_header(x), normalise_header(y)
    table.require(x, y)
    for line, row in table.rows(on_bad_width, max_rows=max_rows):
        attrs = table.record(row)
        try:
            lon, lat = coordinates.point(attrs.get(x), attrs.get(y), crs)
            geom: BaseGeometry | str = shapely.set_srid(shapely.Point(lon, lat), 4326)
        except ValueError as exc:
            geom = f"{exc} ({attrs.get(x)}, {attrs.get(y)})"
        yield table.label, line, attrs, geom


def _csv_rows(ctx: ImportContext, mapping: MappingFile) -> Iterator[tuple[str, int, dict, BaseGeometry | str]]:
    if not (mapping.x and mapping.y):
        raise ImportFileError("fichier CSV : indiquez les colonnes des coordonnées (x: et y: dans la correspondance)")
    try:
        crs = csv_crs(mapping.crs)
    except ImportFileError as exc:
        raise ImportFileError(f"fichier de correspondance : {exc.detail}") from exc
    with ctx.csv(csv_member(ctx.source)) as table:
        table.require(*(normalise_header(c) for c in mapping.columns))
        yield from point_rows(table, mapping.x, mapping.y, crs, ctx.bad_width(table.label, table.width))


def _plain_value(value: object) -> object:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    return value if isinstance(value, str) else str(value)


def vector_info(source: Source, member: Member | None, path: str | None = None) -> dict:
    """pyogrio's description of the vector data (fields, crs, geometry_type, features)."""
    name = member.basename if member else source.name
    return vector_files.read_info(path or source.vector_path(member), name)


def vector_rows(source: Source, member: Member | None, geometry_type: str, progress: Progress | None = None,
                *, repair: bool = True, path: str | None = None) -> Iterator[tuple[str, int, dict, BaseGeometry | str]]:
    """``(file, rank, attributes, geometry in EPSG:4326 or the French reason why not)`` of each feature.

    ``repair``: an invalid geometry is made valid (open data: the producer's slips are not ours to refuse);
    otherwise it is a reason (hand-made files: the person importing should see and fix it).
    """
    path = path or source.vector_path(member)
    name = member.basename if member else source.name
    crs = vector_info(source, member, path).get("crs") or coordinates.WGS84
    bar = progress.bar(f"Lecture de {name}", None) if progress else (lambda _n: None)
    skip = 0
    while True:
        meta, _fids, geometries, values = vector_files.read_features(
            path, name, skip_features=skip, max_features=CHUNK_FEATURES, datetime_as_string=True)
        if len(geometries) == 0:
            break
        skip += len(geometries)
        fields = [normalise_header(f) for f in meta["fields"]]
        for i, wkb in enumerate(geometries):
            attrs = {fields[j]: _plain_value(values[j][i]) for j in range(len(fields))}
            # Reported as the feature's rank in the file (1 = first), which GIS tools show too.
            yield name, skip - len(geometries) + i + 1, attrs, _geometry(wkb, crs, geometry_type, repair)
        bar(len(geometries))


def _geometry(wkb: bytes | None, crs: str, geometry_type: str, repair: bool = True) -> BaseGeometry | str:
    """The feature's geometry in EPSG:4326, promoted to the layer's multi type, or the French reason why not."""
    if wkb is None:
        return "géométrie absente"
    geom = shapely.from_wkb(wkb)
    if geom.is_empty:
        return "géométrie vide"
    if crs != coordinates.WGS84 and crs != "EPSG:4326":
        to_wgs84 = coordinates.transformer(crs)
        geom = shapely.transform(geom, lambda xy: np.column_stack(to_wgs84.transform(xy[:, 0], xy[:, 1])))
    kind = geom.geom_type
    if kind != geometry_type:
        if _MULTI.get(geometry_type) == kind:
            geom = getattr(shapely, geometry_type)([geom])
        elif _MULTI.get(kind) == geometry_type and len(geom.geoms) == 1:
            geom = geom.geoms[0]
        else:
            return f"géométrie {kind} au lieu de {geometry_type}"
    if not geom.is_valid:
        if not repair:
            return f"géométrie invalide : {shapely.is_valid_reason(geom)}"
        geom = shapely.make_valid(geom)
        if geom.geom_type != geometry_type:
            return "géométrie invalide (auto-intersection ?) que la réparation change de type"
    return shapely.set_srid(geom, 4326)


KIND = Kind(
    name="generic",
    description="Tout fichier GeoJSON, GeoPackage, shapefile zippé ou CSV (lon/lat ou x/y Lambert-93) vers une "
                "couche, avec un fichier de correspondance (--mapping)",
    targets="la couche nommée dans la correspondance",
    dataset="Import générique",
    publisher="(selon le fichier)",
    licence="non précisée",
    run=run,
)
