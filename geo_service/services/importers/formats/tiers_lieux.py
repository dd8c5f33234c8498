"""National third places (CGET/ANCT « Mission Coworking » base, the only national open dataset) → ``third_places``.

``,``-separated UTF-8, WGS84 ``LAT``/``LONG``. Some rows have ``INSEECOM`` = 0 and no commune: they are
kept when ``INSEEDEP`` is the territory's and placed in the commune under their point. ``TYPO`` gives
the service (« à dominante coworking » / « fablab »). Keyed ``tiers-lieux-<ID>``.
"""

from __future__ import annotations

from geo_service.services.importers.formats.place_values import phone
from geo_service.services.importers.framework import coordinates
from geo_service.services.importers.framework.import_run import ImportContext, Kind
from geo_service.services.importers.framework.validation import Validator
from geo_service.services.importers.framework.values import insee_code, plain, postal_code

FIELDS = ("tl_id", "nom", "adresse", "code_postal", "code_insee", "commune", "services", "telephone", "courriel",
          "site_web")
SOURCE_COLUMN = {"tl_id": "ID", "nom": "NOM_TL", "adresse": "ADRESSE", "code_postal": "CP", "code_insee": "INSEECOM",
                 "commune": "NOMCOM", "services": "TYPO", "courriel": "MAIL", "site_web": "WEB"}


def _services(typo: str | None) -> list[str] | None:
    text = plain(typo or "")
    found = [name for name in ("coworking", "fablab") if name in text]
    return found or None


def run(ctx: ImportContext) -> None:
    """Every third place of the territory (by commune code, or by département and position)."""
    validator = Validator(ctx.layer("third_places"), only=FIELDS)
    with ctx.csv() as table:
        table.require("id", "nom_tl", "inseecom", "lat", "long")
        file, code_at, dep_at = table.label, table.index("inseecom"), table.index("inseedep")
        stage = ctx.stage(ctx.target("third_places", FIELDS), file)
        for line, row in table.rows(ctx.bad_width(file, table.width)):
            ctx.report.read += 1
            code = insee_code(row[code_at])
            code = None if code in (None, "00000") else code
            department = row[dep_at].strip().zfill(2) if dep_at is not None else ""
            if not (ctx.in_territory(code) or (code is None and department == ctx.territory.departement)):
                ctx.report.outside += 1
                continue
            rec = table.record(row)
            values, problems = validator.check({
                "tl_id": f"tiers-lieux-{rec['id']}" if rec.get("id") else None, "nom": rec.get("nom_tl"),
                "adresse": rec.get("adresse") or rec.get("nomcom") or rec.get("cominit") or None,
                "code_postal": postal_code(rec.get("cp")), "code_insee": code, "commune": rec.get("nomcom") or None,
                "services": _services(rec.get("typo")), "telephone": phone(rec.get("telephone")),
                "courriel": rec.get("mail") or None, "site_web": rec.get("web") or None},
                skip_required=frozenset({"code_insee"}))
            ctx.reject_problems(file, line, problems, rec, values, SOURCE_COLUMN)
            position = ctx.point(file, line, rec, "long", "lat", label="LONG, LAT")
            if position is not None and not problems:
                # Kept for its commune or its département: outside the outline it is an error, not elsewhere.
                stage.add(line, values, coordinates.point_ewkb(*position))
    ctx.write(stage, "ID", "LONG, LAT", locate=True, commune_name="commune")
    stage.drop()


KIND = Kind(
    name="tiers-lieux",
    description="Tiers-lieux de la base nationale CGET/ANCT (Mission Coworking, 2019) : coworkings et fablabs",
    targets="third_places",
    dataset="CGET/ANCT — Tiers-lieux (Mission Coworking 2019)",
    publisher="ANCT (ex-CGET)",
    licence="Licence Ouverte 2.0 (Etalab)",
    run=run,
)
