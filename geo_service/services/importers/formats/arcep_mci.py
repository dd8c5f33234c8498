"""ARCEP « Ma connexion internet »: the building base (``base_imb``) and the eligibility per building.

One kind, two files, told apart by their header:

* ``base_imb_46.csv.gz`` (``;``, Web-Mercator ``imb_x``/``imb_y``): gives each premise its BAN address key
  (``addr_code`` → ``premises.id_ban``) and its exact number of dwellings and premises (``imb_nbr_logloc``).
  Buildings are matched on ``imb_id``; the file never creates premises (it lists every building, FTTH or
  not): those absent from ``premises`` are counted, not imported.
* ``actuel_46.csv.gz``: one row per building × operator × technology → ``premise_eligibility``. The file
  is the whole truth for the buildings it lists: offers it no longer lists for them are deleted.

Technology and speed-class codes are only checked for their form: the lists in circulation are not
confirmed (``HDR``, ``WMX``…), so an unknown code is kept rather than lost.
"""

from __future__ import annotations

import re

from sqlalchemy import text

from geo_service.errors import ImportFileError
from geo_service.layers import FieldDecl
from geo_service.services.importers.framework import coordinates
from geo_service.services.importers.framework.csv_table import CsvTable
from geo_service.services.importers.framework.import_run import ImportContext, Kind
from geo_service.services.importers.framework.validation import Validator, table_decl
from geo_service.services.importers.framework.values import insee_code

_CODE = r"^[A-Z0-9_]{1,12}$"
ELIGIBILITY = table_decl("premise_eligibility", "Éligibilité par immeuble", [
    FieldDecl(name="imb_id", type="string", label="Identifiant immeuble", required=True, max_length=64),
    FieldDecl(name="code_operateur", type="string", label="Opérateur", required=True, pattern=_CODE),
    FieldDecl(name="code_techno", type="string", label="Technologie", required=True, pattern=_CODE),
    FieldDecl(name="id_ban", type="string", label="Clé BAN", max_length=64),
    FieldDecl(name="classe_debit_descendant", type="string", label="Débit descendant", pattern=_CODE),
    FieldDecl(name="classe_debit_montant", type="string", label="Débit montant", pattern=_CODE),
    FieldDecl(name="limitation_go", type="integer", label="Limitation", minimum=0),
    FieldDecl(name="saturation", type="boolean", label="Saturation"),
])
ELIGIBILITY_COLUMNS = {"imb_id": "imb_id", "code_operateur": "code_operateur", "code_techno": "code_techno",
                       "id_ban": "addr_code", "classe_debit_descendant": "classe_debit_descendant",
                       "classe_debit_montant": "classe_debit_montant", "limitation_go": "limitation",
                       "saturation": "saturation"}
_BAN_KEY = re.compile(r"^[0-9][0-9AB][0-9]{3}_")


def run(ctx: ImportContext) -> None:
    """Read every member of the input (a file, or an archive holding both files) by what its header says."""
    done = False
    for member in ctx.source.tables():
        with ctx.csv(member) as table:
            if table.has("code_techno"):
                _eligibility(ctx, table)
            elif table.has("imb_nbr_logloc") or table.has("addr_code"):
                _buildings(ctx, table)
            elif len(ctx.source.tables()) == 1:
                raise ImportFileError(f"{table.label} : ni « base_imb » (colonne addr_code) ni « actuel » "
                                      "(colonne code_techno) de Ma connexion internet")
            else:
                continue
            done = True
    if not done:
        raise ImportFileError(f"{ctx.source.name} : aucun fichier de Ma connexion internet reconnu")


def _buildings(ctx: ImportContext, table: CsvTable) -> None:
    """base_imb: BAN key and number of premises of the buildings already in ``premises``."""
    table.require("imb_id", ("imb_x", "imb_longitude"), ("imb_y", "imb_latitude"), "addr_code",
                  ("imb_code_insee", "addr_code_insee"))
    x_col = table.first("imb_x", "imb_longitude")
    y_col = table.first("imb_y", "imb_latitude")
    # 2021 regional files had degrees in imb_longitude/imb_latitude; current ones Web-Mercator metres.
    crs = coordinates.WEB_MERCATOR if x_col == "imb_x" else coordinates.WGS84
    code_col = table.first("imb_code_insee", "addr_code_insee")
    validator = Validator(ctx.layer("premises"), only=("imb_id", "id_ban", "nb_logements"))
    # The position only checks the territory: premises keep the one Cartefibre gave them.
    target = ctx.target("premises", ("id_ban", "nb_logements"), insert_only=frozenset({"geom"}))
    file, code_at = table.label, table.index(code_col)
    stage = ctx.stage(target, file)
    for line, row in table.rows(ctx.bad_width(file, table.width)):
        ctx.report.read += 1
        if not ctx.in_territory(insee_code(row[code_at])):
            ctx.report.outside += 1
            continue
        rec = table.record(row)
        addr = rec.get("addr_code") or None
        if addr and rec.get("addr_source", "ban").lower() != "ban" and not _BAN_KEY.match(addr):
            addr = None  # an operator's or the cadastre's own address code, not a BAN key
        values, problems = validator.check({"imb_id": rec.get("imb_id"), "id_ban": addr,
                                            "nb_logements": rec.get("imb_nbr_logloc") or None})
        columns = {"imb_id": "imb_id", "id_ban": "addr_code", "nb_logements": "imb_nbr_logloc"}
        for name, reason in problems:
            ctx.reject(file, line, columns[name], rec.get(columns[name]), reason)
        try:
            lon, lat = coordinates.point(rec.get(x_col), rec.get(y_col), crs)
        except ValueError as exc:
            ctx.reject(file, line, f"{x_col}, {y_col}", f"{rec.get(x_col)}, {rec.get(y_col)}", str(exc))
            continue
        if problems:
            continue
        stage.add(line, values, coordinates.point_ewkb(lon, lat))
    _keep_known_counts(ctx, stage)
    ctx.write(stage, "imb_id", f"{x_col}, {y_col}", update_only=True)
    stage.drop()
    unmatched = ctx.report.table("premises").unmatched
    if unmatched:
        ctx.report.notes.append(f"{unmatched} immeubles de la base MCI absents de premises (non importés : "
                                "importez d'abord arcep-immeubles)")


def _keep_known_counts(ctx: ImportContext, stage) -> None:
    """Rows without imb_nbr_logloc keep the premise's current count (an update must not erase it)."""
    stage.flush()
    ctx.conn.execute(text(f"UPDATE {stage.name} s SET nb_logements = p.nb_logements FROM premises p "
                          "WHERE s.nb_logements IS NULL AND p.imb_id = s.imb_id"))


def _eligibility(ctx: ImportContext, table: CsvTable) -> None:
    """actuel: offers per building, operator and technology."""
    table.require("imb_id", "code_operateur", "code_techno")
    known = set(ctx.conn.execute(text("SELECT imb_id FROM premises WHERE NOT demo")).scalars())
    validator = Validator(ELIGIBILITY)
    target = ctx.target("premise_eligibility", tuple(ELIGIBILITY_COLUMNS), key=("imb_id", "code_operateur",
                                                                                 "code_techno"))
    file, dep = table.label, ctx.territory.departement
    imb_at, addr_at = table.index("imb_id"), table.index("addr_code")
    stage = ctx.stage(target, file)
    for line, row in table.rows(ctx.bad_width(file, table.width)):
        ctx.report.read += 1
        addr = row[addr_at].strip() if addr_at is not None else ""
        # No commune column here: the BAN key starts with the commune code, else the building must be known.
        if not (addr.startswith(dep) if addr else row[imb_at].strip() in known):
            ctx.report.outside += 1
            continue
        rec = table.record(row)
        raw = {field: rec.get(column) or None for field, column in ELIGIBILITY_COLUMNS.items()}
        for name in ("code_operateur", "code_techno", "classe_debit_descendant", "classe_debit_montant"):
            raw[name] = raw[name].upper() if raw[name] else None
        values, problems = validator.check(raw)
        for name, reason in problems:
            ctx.reject(file, line, ELIGIBILITY_COLUMNS[name], rec.get(ELIGIBILITY_COLUMNS[name]), reason)
        if not problems:
            stage.add(line, values)
    ctx.write(stage, "imb_id / code_operateur / code_techno")
    stage.delete_missing("imb_id", ctx.report.table("premise_eligibility"))
    stage.drop()


KIND = Kind(
    name="arcep-mci",
    description="« Ma connexion internet » de l'ARCEP : adresse BAN et nombre de locaux des immeubles "
                "(base_imb), offres par opérateur et technologie (actuel)",
    targets="premises (id_ban, nb_logements), premise_eligibility",
    dataset="ARCEP — Ma connexion internet",
    publisher="ARCEP",
    licence="Licence Ouverte v2.0 (Etalab)",
    run=run,
    refresh_geocoder=True,
)
