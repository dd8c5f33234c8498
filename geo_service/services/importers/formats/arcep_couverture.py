"""ARCEP theoretical mobile coverage (GeoPackage, EPSG:2154) → ``mobile_coverage``, then white zones.

One row per operator × technology × usage × level (``couverture_id``, e.g. ``orange-4G-data-BC``): the
features of that combination that reach the territory are clipped to its outline and merged in PostGIS
(Lambert-93). Operator, technology and usage come from the features (``operateur`` MCC-MNC or
``operateur_commercial``, ``techno``, ``usage``) or else from ARCEP's file name
(``2023_T2_couv_Metropole_SFR0_2G3G_voix.gpkg``). ``niveau`` is normalised as ARCEP does (upper case,
empty = CL). ARCEP's combined voice map ``2G3G`` is stored as ``2G`` (voice), like the demo.

When the coverage changed, the white zones of each technology imported are recomputed (services/white_zones)
at the level last used for that technology (``BC`` the first time, or ``niveau`` in the options).
Only features whose bounding box meets the territory's are read from the file (GDAL spatial filter).
"""

from __future__ import annotations

import re

import shapely
from sqlalchemy import text

from geo_service.errors import ImportFileError
from geo_service.services.importers import white_zone_compute
from geo_service.services.importers.formats.mast_keys import MCC_MNC, OPERATOR_NAMES
from geo_service.services.importers.framework import vector_files
from geo_service.services.importers.framework.import_run import ImportContext, Kind
from geo_service.services.importers.framework.sources import Member
from geo_service.services.importers.framework.validation import Validator
from geo_service.services.importers.framework.values import parse_date, plain

FILE_OPERATORS = {"of": "orange", "orange": "orange", "sfr0": "sfr", "sfr": "sfr", "bouy": "bouygues",
                  "bytl": "bouygues", "free": "free", "frmo": "free"}
_NAME = re.compile(r"_(?P<op>[a-z0-9]+)_(?P<techno>2g3g|2g|3g|4g|5g)_(?P<usage>voix|data)", re.I)
CHUNK_FEATURES = 200
FIELDS = ("couverture_id", "operateur", "technologie", "niveau", "usage", "date_reference")
_RAW = "import_coverage_raw"


def run(ctx: ImportContext) -> None:
    """Read every GeoPackage of the input, merge per combination, upsert, recompute white zones."""
    members: list[Member | None]
    if ctx.source.is_archive:
        members = list(ctx.source.with_suffix(".gpkg"))
        if not members:
            raise ImportFileError(f"{ctx.source.name} : aucun fichier .gpkg dans l'archive")
    else:
        members = [None]
    ctx.conn.execute(text(f"DROP TABLE IF EXISTS {_RAW}"))
    ctx.conn.execute(text(f"""CREATE TEMP TABLE {_RAW} (fid bigint, couverture_id text, operateur text,
        technologie text, usage text, niveau text, date_reference date, geom geometry) ON COMMIT DROP"""))
    validator = Validator(ctx.layer("mobile_coverage"), only=("operateur", "technologie", "niveau", "usage"))
    for member in members:
        _read_file(ctx, member, validator)
    target = ctx.target("mobile_coverage", FIELDS)
    stage = ctx.stage(target, ctx.source.name)
    stage.count = ctx.conn.execute(text(f"""
        INSERT INTO {stage.name} (_line, _by_code, {', '.join(FIELDS)}, geom)
        SELECT min(r.fid), false, r.couverture_id, r.operateur, r.technologie, r.niveau, r.usage,
               max(r.date_reference),
               ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_Transform(
                   ST_Union(ST_Intersection(ST_Transform(r.geom, 2154), t.g) ORDER BY r.fid), 4326)), 3))
        FROM {_RAW} r, (SELECT ST_Transform(ST_Union(geom), 2154) AS g FROM territory) t
        WHERE ST_Intersects(ST_Transform(r.geom, 2154), t.g)
        GROUP BY r.couverture_id, r.operateur, r.technologie, r.niveau, r.usage""")).rowcount
    ctx.conn.execute(text(f"DELETE FROM {stage.name} WHERE ST_IsEmpty(geom)"))
    features = ctx.conn.execute(text(f"""SELECT count(*) FROM {_RAW} r,
        (SELECT ST_Transform(ST_Union(geom), 2154) AS g FROM territory) t
        WHERE ST_Intersects(ST_Transform(r.geom, 2154), t.g)""")).scalar_one()
    technologies = sorted(set(ctx.conn.execute(text(f"SELECT DISTINCT technologie FROM {stage.name}")).scalars()))
    ctx.write(stage, "couverture_id", rows=False)
    ctx.report.kept += features
    # Features the spatial filter skipped were never read: every feature neither kept nor rejected is outside.
    ctx.report.outside = ctx.report.read - features - ctx.report.rejected
    stage.drop()
    ctx.conn.execute(text(f"DROP TABLE IF EXISTS {_RAW}"))
    if ctx.report.table("mobile_coverage").changed:
        _white_zones(ctx, technologies)


def _read_file(ctx: ImportContext, member: Member | None, validator: Validator) -> None:
    path = ctx.source.vector_path(member)
    name = member.basename if member else ctx.source.name
    layers = vector_files.list_layers(path, name)
    bar = ctx.progress.bar(f"Lecture de {name}", None)
    for layer, geometry_type in layers:
        if geometry_type and "polygon" not in str(geometry_type).lower():
            continue
        info = vector_files.read_info(path, name, layer=layer)
        srid = _srid(info.get("crs"))
        bbox = ctx.conn.execute(text("""SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM
            (SELECT ST_Transform(ST_Envelope(ST_Union(geom)), :srid) AS b FROM territory) e"""),
            {"srid": srid}).one()
        ctx.report.read += int(info.get("features") or 0)
        skip = 0
        while True:
            meta, fids, geometries, values = vector_files.read_features(
                path, name, layer=layer, bbox=tuple(bbox), skip_features=skip, max_features=CHUNK_FEATURES,
                return_fids=True)
            if len(geometries) == 0:
                break
            skip += len(geometries)
            fields = [f.lower() for f in meta["fields"]]
            rows = []
            for i, wkb in enumerate(geometries):
                attrs = {fields[j]: values[j][i] for j in range(len(fields))}
                row = _feature(ctx, validator, name, int(fids[i]), attrs)
                if row is not None and wkb is not None:
                    geom = shapely.set_srid(shapely.from_wkb(wkb), srid)
                    rows.append((*row, shapely.to_wkb(geom, hex=True, include_srid=True)))
            _copy(ctx, rows)
            bar(len(geometries))


def _srid(crs: str | None) -> int:
    if not crs:
        return 2154  # ARCEP's metropolitan files are in Lambert-93 (back_mrm/data/srid.json)
    match = re.search(r"(\d+)$", crs)
    if match and crs.upper().startswith("EPSG:"):
        return int(match[1])
    raise ImportFileError(f"système de coordonnées non reconnu : {crs}")


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _feature(ctx: ImportContext, validator: Validator, name: str, fid: int, attrs: dict) -> tuple | None:
    """(fid, key, operator, technology, usage, level, date) of one feature, or None (rejected)."""
    from_name = _NAME.search(name)
    code = _text(attrs.get("operateur")).split(".")[0]
    operator = (MCC_MNC.get(code) or OPERATOR_NAMES.get(plain(_text(attrs.get("operateur_commercial"))))
                or (FILE_OPERATORS.get(from_name["op"].lower()) if from_name else None))
    techno = _text(attrs.get("techno")).upper() or (from_name["techno"].upper() if from_name else "")
    usage = _text(attrs.get("usage")).lower() or (from_name["usage"].lower() if from_name else None)
    niveau = _text(attrs.get("niveau")).upper() or "CL"
    techno = "2G" if techno == "2G3G" else techno
    values, problems = validator.check({"operateur": operator or code or _text(attrs.get("operateur_commercial")),
                                        "technologie": techno, "niveau": niveau, "usage": usage})
    for field, reason in problems:
        ctx.reject(name, fid, field, values.get(field), f"entité {fid} : {reason}")
    if problems:
        return None
    when = ctx.report.source_date
    if _text(attrs.get("date")):
        try:
            when = parse_date(_text(attrs.get("date")))
        except ValueError:
            ctx.warn(name, fid, "date", attrs.get("date"), "date illisible : date des données utilisée")
    key = f"{values['operateur']}-{values['technologie']}-{values['usage'] or 'na'}-{values['niveau']}"
    return (fid, key, values["operateur"], values["technologie"], values["usage"], values["niveau"], when)


def _copy(ctx: ImportContext, rows: list[tuple]) -> None:
    if not rows:
        return
    raw = ctx.conn.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(
            f"COPY {_RAW} (fid, couverture_id, operateur, technologie, usage, niveau, date_reference, geom) "
            "FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _white_zones(ctx: ImportContext, technologies: list[str]) -> None:
    counts = ctx.report.table("white_zones")
    for techno in technologies:
        niveau = str(ctx.options.get("niveau") or white_zone_compute.last_level(ctx.conn, techno) or "BC")
        ctx.progress.step(f"Zones blanches {techno} (niveau {niveau})…")
        result = white_zone_compute.compute(ctx.conn, techno, niveau, provenance={
            "source": white_zone_compute.SOURCE, "licence": ctx.licence, "updated_by": ctx.user,
            "import_id": ctx.report.import_id})
        counts.inserted += result.rows
        counts.deleted += result.deleted
        ctx.report.notes.append(result.summary())


KIND = Kind(
    name="arcep-couverture",
    description="Couverture mobile théorique de l'ARCEP (GeoPackage par opérateur et technologie), découpée au "
                "territoire, puis calcul des zones blanches",
    targets="mobile_coverage, white_zones",
    dataset="ARCEP — Mon réseau mobile, couverture théorique",
    publisher="ARCEP",
    licence="Licence Ouverte (Etalab)",
    run=run,
)
