"""Base Adresse Nationale ``adresses-46.csv(.gz)`` → ``addresses``, the table the geocoder searches.

``;``-separated UTF-8, 23 columns, one row per address; keyed by the interoperability key ``id``
(``46042_0250_00012``, the ``addr_code`` of ARCEP's « Ma connexion internet »). Positions come from
``lon``/``lat`` (WGS84), or from the legal projection ``x``/``y`` (Lambert-93 in metropolitan France)
when those are missing. A toponym without a street (``nom_voie`` empty) takes its lieu-dit (``nom_ld``).
"""

from __future__ import annotations

from geo_service.layers import FieldDecl
from geo_service.services.importers.framework import coordinates
from geo_service.services.importers.framework.import_run import ImportContext, Kind
from geo_service.services.importers.framework.validation import Validator, table_decl
from geo_service.services.importers.framework.values import postal_code

ADDRESSES = table_decl("addresses", "Adresses BAN", [
    FieldDecl(name="id", type="string", label="Clé d'interopérabilité", required=True,
              pattern=r"^[0-9][0-9AB][0-9]{3}_[0-9a-zA-Z]+_[0-9]{5}(_[0-9a-zA-Z]+)?$"),
    FieldDecl(name="numero", type="integer", label="Numéro", minimum=0, maximum=99999),
    FieldDecl(name="rep", type="string", label="Indice de répétition", max_length=16),
    FieldDecl(name="nom_voie", type="string", label="Voie ou lieu-dit", required=True),
    FieldDecl(name="code_postal", type="string", label="Code postal", pattern=r"^[0-9]{5}$"),
    FieldDecl(name="code_insee", type="string", label="Code INSEE", required=True, pattern=r"^[0-9][0-9AB][0-9]{3}$"),
    FieldDecl(name="nom_commune", type="string", label="Commune"),
])
COLUMNS = ("numero", "rep", "nom_voie", "code_postal", "code_insee", "nom_commune")


def _position(rec: dict[str, str]) -> tuple[float, float, str]:
    """(lon, lat) and the columns they came from."""
    if rec.get("lon") or rec.get("lat") or not rec.get("x"):
        return (*coordinates.point(rec.get("lon"), rec.get("lat"), coordinates.WGS84), "lon, lat")
    return (*coordinates.point(rec.get("x"), rec.get("y"), coordinates.LAMBERT93), "x, y")


def run(ctx: ImportContext) -> None:
    """Every address of the territory's communes, upserted by its key."""
    validator = Validator(ADDRESSES, list_separator="|")
    with ctx.csv() as table:
        table.require("id", "numero", "nom_voie", "code_insee", ("lon", "x"), ("lat", "y"))
        file = table.label
        stage = ctx.stage(ctx.target("addresses", COLUMNS, key=("id",)), file)
        for line, code, rec in ctx.territory_rows(table, "code_insee"):
            values, problems = validator.check({
                "id": rec.get("id"), "numero": rec.get("numero"), "rep": rec.get("rep") or None,
                "nom_voie": rec.get("nom_voie") or rec.get("nom_ld") or None,
                "code_postal": postal_code(rec.get("code_postal")), "code_insee": code,
                "nom_commune": rec.get("nom_commune") or None})
            ctx.reject_problems(file, line, problems, rec, values)
            try:
                lon, lat, _ = _position(rec)
            except ValueError as exc:
                ctx.reject(file, line, "lon, lat", f"{rec.get('lon')}, {rec.get('lat')}", str(exc))
                continue
            if not problems:
                stage.add(line, values, coordinates.point_ewkb(lon, lat))
    ctx.write(stage, "id", "lon, lat")
    stage.drop()


KIND = Kind(
    name="ban",
    description="Base Adresse Nationale du département (adresses-46.csv.gz) : adresses cherchées par le géocodeur",
    targets="addresses",
    dataset="Base Adresse Nationale (BAN)",
    publisher="IGN, DINUM (adresse.data.gouv.fr)",
    licence="Licence Ouverte 2.0 (Etalab)",
    run=run,
    refresh_geocoder=True,
)
