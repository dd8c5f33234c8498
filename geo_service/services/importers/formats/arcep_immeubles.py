"""ARCEP « Cartefibre » buildings (FTTH state per building) → ``premises``, and their PM → ``ftth_cabinets``.

The national file has ~25 million rows, comma-separated, ``x``/``y`` in WGS84 degrees despite their names;
rows are filtered on ``code_insee`` before anything else is parsed. The file gives a size class, not a
count of premises: ``nb_logements`` is set to the class's lower bound when a building is created and then
left alone, so the exact count of « Ma connexion internet » (``arcep-mci``) is not overwritten.

Cabinets (PM, ``pm_ref``) have no coordinates in the file. Each is placed on the **premise nearest the
centroid of all the premises it serves** (a real address, on the cabinet's own ground), with the number
of premises, the infrastructure operator most cited and the PM state (``pm_etat``; when unknown, deduced
from the buildings' states).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import text

from geo_service.services.importers.framework import coordinates
from geo_service.services.importers.framework.import_run import ImportContext, Kind
from geo_service.services.importers.framework.validation import Validator
from geo_service.services.importers.framework.values import parse_date, plain, postal_code

# Lower bound of each size class (catg_loc_imb): what we know for sure about the number of premises.
SIZE_CLASSES = {"individuel": 1, "entre 2 et 11": 2, "entre 12 et 35": 12, "entre 36 et 99": 36, "100 et plus": 100}
# pm_etat: only « deploye » is confirmed in real files; the others are tolerated spellings.
PM_STATES = {"deploye": "deploye", "en cours de deploiement": "en cours de deploiement",
             "en cours": "en cours de deploiement", "cible": "prevu", "signe": "prevu", "prevu": "prevu",
             "planifie": "prevu", "a deployer": "prevu"}
PREMISE_FIELDS = ("imb_id", "numero", "nom_voie", "adresse", "code_postal", "code_insee", "nom_commune",
                  "nb_logements", "type_imb", "etat", "pm_ref", "code_l331")
# Where each field comes from, for the report.
SOURCE_COLUMN = {"imb_id": "imb_id", "numero": "num_voie", "nom_voie": "nom_voie", "adresse": "nom_voie",
                 "code_postal": "code_poste", "code_insee": "code_insee", "nom_commune": "nom_com",
                 "nb_logements": "catg_loc_imb", "type_imb": "type_imb", "etat": "imb_etat", "pm_ref": "pm_ref",
                 "code_l331": "code_l331"}
CABINET_FIELDS = ("pm_ref", "nom", "code_insee", "statut", "nb_prises", "date_mise_en_service", "operateur")


@dataclass
class _Pm:
    """What the buildings of one PM say about it."""

    line: int
    states: Counter = field(default_factory=Counter)
    operators: Counter = field(default_factory=Counter)
    dates: set = field(default_factory=set)


def _street(kind: str | None, name: str | None) -> str | None:
    if not name:
        return kind or None
    if kind and not plain(name).startswith(plain(kind)):
        return f"{kind} {name}"
    return name


def _premise(rec: dict[str, str], code: str, ctx: ImportContext, file: str, line: int) -> dict[str, object]:
    numero = " ".join(v for v in (rec.get("num_voie"), rec.get("cp_no_voie")) if v) or None
    voie = _street(rec.get("type_voie"), rec.get("nom_voie")) or rec.get("batiment") or None
    cp, commune = postal_code(rec.get("code_poste")), rec.get("nom_com") or None
    street = " ".join(v for v in (numero, voie) if v)
    town = " ".join(v for v in (cp, commune) if v)
    size = plain(rec.get("catg_loc_imb", ""))
    count = SIZE_CLASSES.get(size)
    if size and count is None:
        ctx.warn(file, line, "catg_loc_imb", rec.get("catg_loc_imb"), "classe de taille inconnue : 1 local compté")
    return {"imb_id": rec.get("imb_id"), "numero": numero, "nom_voie": voie,
            "adresse": ", ".join(v for v in (street, town) if v) or None, "code_postal": cp, "code_insee": code,
            "nom_commune": commune, "nb_logements": count or 1, "type_imb": (rec.get("type_imb") or "").upper(),
            "etat": plain(rec.get("imb_etat", "")), "pm_ref": rec.get("pm_ref"), "code_l331": rec.get("code_l331")}


def run(ctx: ImportContext) -> None:
    """Premises of the territory's buildings, then one cabinet per PM they cite."""
    validator = Validator(ctx.layer("premises"), only=PREMISE_FIELDS)
    target = ctx.target("premises", PREMISE_FIELDS, insert_only=frozenset({"nb_logements"}))
    pms: dict[str, _Pm] = {}
    with ctx.csv() as table:
        table.require("x", "y", "imb_id", "code_insee", "imb_etat")
        file = table.label
        stage = ctx.stage(target, file)
        for line, code, rec in ctx.territory_rows(table, "code_insee"):
            values, problems = validator.check(_premise(rec, code or "", ctx, file, line))
            ctx.reject_problems(file, line, problems, rec, values, SOURCE_COLUMN)
            position = ctx.point(file, line, rec, "x", "y")
            if position is None or problems:
                continue
            stage.add(line, values, coordinates.point_ewkb(*position))
            if values["pm_ref"]:
                _note_pm(pms, values, rec, ctx, file, line)
    ctx.write(stage, "imb_id", "x, y")
    stage.drop()
    if pms:
        _cabinets(ctx, pms, file)


def _note_pm(pms: dict[str, _Pm], values: dict, rec: dict[str, str], ctx: ImportContext, file: str,
             line: int) -> None:
    pm = pms.setdefault(str(values["pm_ref"]), _Pm(line))
    if rec.get("pm_etat"):
        pm.states[plain(rec["pm_etat"])] += 1
    if values.get("code_l331"):
        pm.operators[values["code_l331"]] += 1
    if rec.get("pm_date_mad"):
        try:
            pm.dates.add(parse_date(rec["pm_date_mad"]))
        except ValueError as exc:
            ctx.warn(file, line, "pm_date_mad", rec["pm_date_mad"], f"{exc} : date ignorée")


def _statut(pm: _Pm, deployed: bool, in_progress: bool) -> tuple[str, str | None]:
    """The cabinet state, and the unknown pm_etat value that forced a deduction from its buildings (if any)."""
    known = Counter({PM_STATES[s]: n for s, n in pm.states.items() if s in PM_STATES})
    unknown = next((s for s in pm.states if s not in PM_STATES), None)
    if known:
        return known.most_common(1)[0][0], unknown
    if deployed:
        return "deploye", unknown
    return ("en cours de deploiement" if in_progress else "prevu"), unknown


_PLACES = """
WITH p AS (SELECT pm_ref, imb_id, code_insee, geom, etat, coalesce(nb_logements, 1) AS n FROM premises
           WHERE NOT demo AND {alive} pm_ref = ANY(CAST(:refs AS text[]))),
     c AS (SELECT pm_ref, ST_Transform(ST_Centroid(ST_Collect(geom)), 2154) AS centre, sum(n) AS prises,
                  bool_or(etat IN ('deploye', 'raccordable demande', 'raccorde')) AS deployed,
                  bool_or(etat = 'en cours de deploiement') AS in_progress
           FROM p GROUP BY pm_ref)
SELECT DISTINCT ON (c.pm_ref) c.pm_ref, p.code_insee, encode(ST_AsEWKB(p.geom), 'hex'), c.prises, c.deployed,
       c.in_progress
FROM c JOIN p USING (pm_ref)
ORDER BY c.pm_ref, ST_Distance(ST_Transform(p.geom, 2154), c.centre), p.imb_id
"""


def _cabinets(ctx: ImportContext, pms: dict[str, _Pm], file: str) -> None:
    """One cabinet per PM, placed on the premise nearest the centroid of its premises (all imports included)."""
    alive = "deleted_at IS NULL AND" if "deleted_at" in ctx.table("premises").c else ""
    places = ctx.conn.execute(text(_PLACES.format(alive=alive)), {"refs": sorted(pms)}).all()
    validator = Validator(ctx.layer("ftth_cabinets"), only=CABINET_FIELDS)
    target = ctx.target("ftth_cabinets", CABINET_FIELDS, insert_only=frozenset({"nom"}))
    stage = ctx.stage(target, file)
    for pm_ref, code, ewkb, prises, deployed, in_progress in places:
        pm = pms[pm_ref]
        statut, unknown = _statut(pm, deployed, in_progress)
        if unknown:
            ctx.warn(file, pm.line, "pm_etat", unknown, f"état de PM inconnu : « {statut} » déduit des immeubles")
        dates: list[date] = sorted(pm.dates)
        values, problems = validator.check({
            "pm_ref": pm_ref, "nom": f"PM {pm_ref}", "code_insee": code, "statut": statut, "nb_prises": int(prises),
            "date_mise_en_service": dates[-1] if dates else None,
            "operateur": pm.operators.most_common(1)[0][0] if pm.operators else None})
        for name, reason in problems:
            ctx.reject(file, pm.line, name, values.get(name), f"point de mutualisation {pm_ref} : {reason}")
        if not problems:
            stage.add(pm.line, values, ewkb)
    ctx.write(stage, "pm_ref", "(position déduite des immeubles)", rows=False)
    stage.drop()


KIND = Kind(
    name="arcep-immeubles",
    description="Immeubles FTTH de l'ARCEP (Cartefibre) : état du déploiement par immeuble et points de "
                "mutualisation",
    targets="premises, ftth_cabinets",
    dataset="ARCEP — Cartefibre, déploiements FTTH par immeuble",
    publisher="ARCEP",
    licence="Licence Ouverte (Etalab)",
    run=run,
    refresh_geocoder=True,
)
