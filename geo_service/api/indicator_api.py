"""``/api/indicators``: the observatory's figures per département, EPCI and current commune, as JSON or CSV."""

from __future__ import annotations

import io
from datetime import date
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from pydantic_core import to_json

from geo_service.api.deps import caches_of, connection, registry_of, settings_of
from geo_service.services import csv_safe
from geo_service.services.observatory import indicator_values

router = APIRouter(tags=["observatoire"])

PROBLEM = {"description": "Problème (RFC 9457), message en français",
           "content": {"application/problem+json": {}}}
CSV_COLUMNS = ("indicator", "label", "unit", "level", "code", "name", "category", "value", "as_of", "sources")


INDICATOR_QUERY = Query(None, description="Identifiants d'indicateurs (répétés ou séparés par des virgules)",
                        json_schema_extra={"maxItems": 50})


class IndicatorValueOut(BaseModel):
    indicator: str = Field(description="Identifiant de l'indicateur (docs/indicators.md)")
    label: str = Field(description="Libellé")
    unit: str = Field(description="Unité")
    level: Literal["departement", "epci", "commune"] = Field(description="Échelon")
    code: str = Field(description="Code du département, SIREN de l'EPCI ou code INSEE de la commune actuelle")
    name: str = Field(description="Nom du territoire")
    category: str | None = Field(description="Catégorie (état FTTH, trimestre, opérateur…) ou null")
    value: float | None = Field(description="Valeur ; null quand le dénominateur est nul")
    as_of: date = Field(description="Date des données : dernière modification des couches sources")
    sources: list[str] = Field(description="Attributions des couches sources")


class IndicatorsResponse(BaseModel):
    computed_in_s: float = Field(description="Durée du calcul (secondes) des valeurs servies, en cache ensuite")
    values: list[IndicatorValueOut]


def _table(request: Request) -> indicator_values.IndicatorTable:
    settings, registry, caches = settings_of(request), registry_of(request), caches_of(request)
    territory = settings.territory
    # The service's engine (not the read engine), in a transaction that has its own, longer time limit: the
    # computation takes seconds, then is reused until a source layer changes.
    with connection(request) as conn:
        state = indicator_values.cache_state(conn)
        return caches.indicators.get(territory.departement, state, lambda: indicator_values.compute(
            conn, registry, (territory.departement, territory.name), settings.api.indicators_timeout_ms))


@router.get("/api/indicators", response_model=IndicatorsResponse,
            summary="Indicateurs de l'observatoire par département, EPCI et commune",
            responses={200: {"content": {"text/csv": {}}, "description": "JSON, ou CSV avec format=csv"},
                       400: PROBLEM, 404: PROBLEM})
def indicators(request: Request,
               level: Literal["departement", "epci", "commune"] | None = Query(
                   None, description="Échelon : departement, epci ou commune"),
               code: str | None = Query(None, pattern=r"^[0-9AB]{2,9}$",
                                        description="Code du département, SIREN de l'EPCI ou code INSEE"),
               indicator: list[str] | None = INDICATOR_QUERY,
               format: Literal["json", "csv"] = Query("json", description="json ou csv")) -> Response:
    """Chaque valeur avec son indicateur, son libellé, son unité, son territoire, sa date et ses sources ; les
    valeurs sont recalculées quand une couche source change (docs/indicators.md)."""
    chosen = indicator_values.chosen_indicators(indicator)
    table = _table(request)
    indicator_values.check_area(table, level, code)
    found = indicator_values.values(table, chosen, level, code)
    max_age = settings_of(request).api.cache_max_age_s
    headers = {"Cache-Control": f"public, max-age={max_age}"}
    if format == "csv":
        out = io.StringIO()
        writer = csv_safe.writer(out)
        writer.writerow(CSV_COLUMNS)
        writer.writerows((v.indicator, v.label, v.unit, v.level, v.code, v.name, v.category or "",
                          "" if v.value is None else v.value, v.as_of.isoformat(), " ; ".join(v.sources))
                         for v in found)
        headers["Content-Disposition"] = 'attachment; filename="indicateurs.csv"'
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
    body = {"computed_in_s": table.computed_in_s,
            "values": [{"indicator": v.indicator, "label": v.label, "unit": v.unit, "level": v.level, "code": v.code,
                        "name": v.name, "category": v.category, "value": v.value, "as_of": v.as_of,
                        "sources": list(v.sources)} for v in found]}
    return Response(to_json(body), media_type="application/json", headers=headers)
