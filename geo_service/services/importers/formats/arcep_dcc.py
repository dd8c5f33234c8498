"""ARCEP New Deal « dispositif de couverture ciblée » (DCC): points to cover and sites → ``targeted_coverage``.

Two files (``…_dcc_Metropole_POI.csv`` and ``…_dcc_Metropole_sites.csv``, ``;``, Lambert-93
``x_lambert_93``/``y_lambert_93``, ``NA`` for missing values, one 0/1 column per operator MCC-MNC), told
apart by their header; import either, or an archive or folder holding both. Points are keyed
``point-<id_point>``, sites ``site-<num_arrete>-<numero_site>``. A site's state comes from its counters
(« en service » first, then waiting, then the deadline requested); sites have no commune code: the
commune is the one under the point.
"""

from __future__ import annotations

from geo_service.errors import ImportFileError
from geo_service.services.importers.formats.mast_keys import MCC_MNC, OPERATORS
from geo_service.services.importers.framework import coordinates
from geo_service.services.importers.framework.csv_table import CsvTable
from geo_service.services.importers.framework.import_run import ImportContext, Kind
from geo_service.services.importers.framework.validation import Validator
from geo_service.services.importers.framework.values import clean, insee_code, parse_int

NULLS = frozenset({"NA", "N/A", "NULL"})
FIELDS = ("dcc_id", "objet", "nom", "code_insee", "commune", "num_arrete", "date_arrete", "dossier", "operateurs",
          "operateur_leader", "etat", "origine_zone", "lien_arrete")
SOURCE_COLUMN = {"date_arrete": "date_publication_arrete", "operateur_leader": "op_leader",
                 "code_insee": "code_insee", "commune": "nom_commune", "dossier": "nom_dossier"}
# Site counters, in the order that decides the state.
STATES = (("sites_mes", "en service"), ("sites_attente_deploiement", "en attente de deploiement"),
          ("sites_6_mois", "demande sous 6 mois"), ("sites_6_24_mois", "demande sous 6 a 24 mois"),
          ("sites_demandes", "demande"))


def run(ctx: ImportContext) -> None:
    """Each member of the input, as points or sites according to its header."""
    done = False
    for member in ctx.source.tables():
        with ctx.csv(member) as table:
            if table.has("id_point"):
                _read(ctx, table, points=True)
            elif table.has("numero_site"):
                _read(ctx, table, points=False)
            else:
                continue
            done = True
    if not done:
        raise ImportFileError(f"{ctx.source.name} : ni points d'intérêt (colonne id_point) ni sites "
                              "(colonne numero_site) du dispositif de couverture ciblée")


def _operators(rec: dict[str, str]) -> list[str] | None:
    chosen = [MCC_MNC[code] for code in MCC_MNC if clean(rec.get(code), NULLS) in ("1", "1.0")]
    return sorted(chosen, key=OPERATORS.index) or None


def _state(ctx: ImportContext, file: str, line: int, rec: dict[str, str]) -> str:
    for column, state in STATES:
        value = clean(rec.get(column), NULLS)
        if value is None:
            continue
        try:
            if parse_int(value) > 0:
                return state
        except ValueError as exc:
            ctx.warn(file, line, column, value, f"{exc} : compteur ignoré")
    return "demande"


def _record(ctx: ImportContext, table: CsvTable, file: str, line: int, rec: dict[str, str], points: bool) -> dict:
    def get(column: str) -> str | None:
        return clean(rec.get(column), NULLS)

    if points:
        return {"dcc_id": f"point-{get('id_point')}" if get("id_point") else None, "objet": "point",
                "nom": get("nom_point_arrete") or get("nom_commune"), "code_insee": insee_code(get("code_insee")),
                "commune": get("nom_commune"), "num_arrete": get("num_arrete"),
                "date_arrete": get("date_publication_arrete"), "dossier": get("nom_dossier"),
                "operateurs": _operators(rec), "operateur_leader": None, "etat": "identifie",
                "origine_zone": get("origine_zone"), "lien_arrete": get("lien_arrete")}
    leader = get("op_leader")
    site = get("numero_site")
    return {"dcc_id": f"site-{get('num_arrete')}-{site}" if site and get("num_arrete") else None, "objet": "site",
            "nom": get("nom_site_arrete") or get("nom_site_operateurs") or get("nom_de_la_zone"), "code_insee": None,
            "commune": None, "num_arrete": get("num_arrete"), "date_arrete": get("date_publication_arrete"),
            "dossier": get("nom_de_la_zone"), "operateurs": _operators(rec),
            "operateur_leader": MCC_MNC.get(leader.split(".")[0], leader) if leader else None,
            "etat": _state(ctx, file, line, rec), "origine_zone": get("origine_zone"), "lien_arrete": None}


def _read(ctx: ImportContext, table: CsvTable, points: bool) -> None:
    table.require("num_arrete", "x_lambert_93", "y_lambert_93", ("insee_dep", "code_insee"),
                  "id_point" if points else "numero_site")
    validator = Validator(ctx.layer("targeted_coverage"), only=FIELDS)
    stage = ctx.stage(ctx.target("targeted_coverage", FIELDS), table.label)
    file, dep = table.label, ctx.territory.departement
    code_at, dep_at = table.index("code_insee"), table.index("insee_dep")
    for line, row in table.rows(ctx.bad_width(file, table.width)):
        ctx.report.read += 1
        code = insee_code(clean(row[code_at], NULLS)) if code_at is not None else None
        department = (clean(row[dep_at], NULLS) or "").zfill(2) if dep_at is not None else ""
        if not (ctx.in_territory(code) or department == dep):
            ctx.report.outside += 1
            continue
        rec = table.record(row)
        values, problems = validator.check(_record(ctx, table, file, line, rec, points),
                                           skip_required=frozenset({"code_insee"}))
        for name, reason in problems:
            column = SOURCE_COLUMN.get(name, name)
            ctx.reject(file, line, column, rec.get(column, values.get(name)), reason)
        try:
            lon, lat = coordinates.point(clean(rec.get("x_lambert_93"), NULLS), clean(rec.get("y_lambert_93"), NULLS),
                                 coordinates.LAMBERT93)
        except ValueError as exc:
            ctx.reject(file, line, "x_lambert_93, y_lambert_93",
                       f"{rec.get('x_lambert_93')}, {rec.get('y_lambert_93')}", str(exc))
            continue
        if not problems:
            stage.add(line, values, coordinates.point_ewkb(lon, lat), by_code=True)
    ctx.write(stage, "id_point" if points else "num_arrete / numero_site", "x_lambert_93, y_lambert_93",
              locate=True, commune_name="commune")
    stage.drop()


KIND = Kind(
    name="arcep-dcc",
    description="New Deal mobile de l'ARCEP, dispositif de couverture ciblée : points à couvrir et sites, "
                "opérateur leader et état",
    targets="targeted_coverage",
    dataset="ARCEP — New Deal mobile, dispositif de couverture ciblée",
    publisher="ARCEP",
    licence="Licence Ouverte (Etalab)",
    run=run,
)
