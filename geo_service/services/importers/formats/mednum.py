"""National « lieux de médiation numérique » (schema LaMednum/standard-mediation-num) → ``digital_help_places``.

``,``-separated UTF-8, WGS84 ``latitude``/``longitude``, multiple values separated by ``|``, opening hours
already in OSM syntax (checked; dropped with a warning when invalid). Keyed by the schema's ``id``.
The kind of place (``categorie``) is read from ``typologie`` (data.inclusion codes) and the national
programmes: RFS/FRANCE_SERVICE or the « France Services » programme → France Services, BIB → médiathèque,
ASSO → association, CYBER → cyber-base, otherwise an espace public multimédia (EPN).
A place without a commune code is placed in the commune under its point.
"""

from __future__ import annotations

from geo_service.services.importers.formats.place_values import checked_hours, first, phone
from geo_service.services.importers.framework import coordinates
from geo_service.services.importers.framework.import_run import ImportContext, Kind
from geo_service.services.importers.framework.validation import Validator
from geo_service.services.importers.framework.values import postal_code, split_list

FIELDS = ("lieu_id", "pivot", "nom", "adresse", "code_postal", "code_insee", "commune", "categorie", "services",
          "publics", "horaires", "dispositifs", "modalites_acces", "frais", "telephone", "courriel", "site_web",
          "date_maj")
SOURCE_COLUMN = {"lieu_id": "id", "publics": "publics_specifiquement_adresses",
                 "dispositifs": "dispositif_programmes_nationaux", "frais": "frais_a_charge", "courriel": "courriels",
                 "categorie": "typologie"}
# data.inclusion typology codes → the layer's categories, first match wins.
TYPOLOGIES = (("RFS", "france services"), ("FRANCE_SERVICE", "france services"), ("MSAP", "france services"),
              ("BIB", "mediatheque"), ("CYBER", "cyber-base"), ("ASSO", "association"))


def _category(typologies: list[str] | None, programmes: list[str] | None) -> str:
    if programmes and "France Services" in programmes:
        return "france services"
    for code, category in TYPOLOGIES:
        if code in (typologies or ()):
            return category
    return "epm"


def run(ctx: ImportContext) -> None:
    """Every place of the territory (by commune code, or by position when the code is missing)."""
    validator = Validator(ctx.layer("digital_help_places"), only=FIELDS)
    with ctx.csv() as table:
        table.require("id", "nom", "adresse", "code_postal", "latitude", "longitude")
        file = table.label
        stage = ctx.stage(ctx.target("digital_help_places", FIELDS), file)
        for line, code, rec in ctx.territory_rows(table, "code_insee", keep_without_code=True):
            frais = split_list(rec.get("frais_a_charge"))
            if frais and len(frais) > 1:
                ctx.warn(file, line, "frais_a_charge", rec.get("frais_a_charge"), "plusieurs valeurs : la première "
                                                                                  "est gardée")
            programmes = split_list(rec.get("dispositif_programmes_nationaux"))
            values, problems = validator.check({
                "lieu_id": rec.get("id"), "pivot": rec.get("pivot") or None, "nom": rec.get("nom"),
                "adresse": " ".join(v for v in (rec.get("adresse"), rec.get("complement_adresse")) if v) or None,
                "code_postal": postal_code(rec.get("code_postal")), "code_insee": code, "commune": rec.get("commune"),
                "categorie": _category(split_list(rec.get("typologie")), programmes),
                "services": split_list(rec.get("services")),
                "publics": split_list(rec.get("publics_specifiquement_adresses")),
                "horaires": checked_hours(ctx, file, line, "horaires", rec.get("horaires")),
                "dispositifs": programmes, "modalites_acces": split_list(rec.get("modalites_acces")),
                "frais": first(frais), "telephone": phone(rec.get("telephone")),
                "courriel": first(split_list(rec.get("courriels"))), "site_web": first(split_list(rec.get("site_web"))),
                "date_maj": rec.get("date_maj") or None}, skip_required=frozenset({"code_insee"}))
            ctx.reject_problems(file, line, problems, rec, values, SOURCE_COLUMN)
            position = ctx.point(file, line, rec, "longitude", "latitude")
            if position is not None and not problems:
                stage.add(line, values, coordinates.point_ewkb(*position), by_code=code is not None)
    ctx.write(stage, "id", "longitude, latitude", locate=True, commune_name="commune")
    stage.drop()


KIND = Kind(
    name="mednum",
    description="Lieux de médiation numérique (schéma national La MedNum / ANCT) : services, publics, horaires, "
                "dispositifs",
    targets="digital_help_places",
    dataset="Lieux de médiation numérique (schéma national)",
    publisher="ANCT, La MedNum (data.gouv.fr)",
    licence="Licence Ouverte 2.0 (Etalab)",
    run=run,
)
