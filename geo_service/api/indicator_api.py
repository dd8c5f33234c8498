"""``/api/indicators``: the observatory's figures per département, EPCI and current commune, as JSON or CSV.

Values come from the stored snapshots (``services/observatory/snapshots.py``), never from a computation started
by a request: the latest one, or the one of the date asked for (the nearest earlier, said in ``note``).
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from pydantic_core import to_json

from geo_service.api.deps import caches_of, read_only, registry_of, settings_of
from geo_service.services import csv_safe
from geo_service.services.observatory import indicator_values, snapshots

router = APIRouter(tags=["observatoire"])

PROBLEM = {"description": "Problème (RFC 9457), message en français",
           "content": {"application/problem+json": {}}}
CSV_COLUMNS = ("indicator", "label", "unit", "level", "code", "name", "category", "value", "as_of", "sources")
TABLE_RESPONSES = {200: {"content": {"text/csv": {}}, "description": "JSON, ou CSV avec format=csv"},
                   400: PROBLEM, 404: PROBLEM}

LEVEL_QUERY = Query(None, description="Échelon : departement, epci ou commune")
CODE_QUERY = Query(None, pattern=r"^[0-9AB]{2,9}$", description="Code du département, SIREN de l'EPCI ou code INSEE")
FORMAT_QUERY = Query("json", description="json ou csv")
SEPARATOR_QUERY = Query(",", description="Séparateur du CSV : « , » ou « ; » (tableurs en français)")
INDICATORS_QUERY = Query(None, description="Identifiants d'indicateurs (répétés ou séparés par des virgules)",
                         json_schema_extra={"maxItems": 50})
HISTORY_INDICATORS_QUERY = Query(..., description="Un à dix identifiants d'indicateurs (répétés ou séparés par des "
                                                  "virgules)", json_schema_extra={"maxItems": 10})
DATE_QUERY = Query(None, description="Date (AAAA-MM-JJ) : l'instantané de ce jour ou le plus proche avant ; le "
                                     "dernier par défaut")
Level = Literal["departement", "epci", "commune"]


class IndicatorValueOut(BaseModel):
    indicator: str = Field(description="Identifiant de l'indicateur (docs/indicators.md)")
    label: str = Field(description="Libellé")
    unit: str = Field(description="Unité")
    level: Level = Field(description="Échelon")
    code: str = Field(description="Code du département, SIREN de l'EPCI ou code INSEE de la commune actuelle")
    name: str = Field(description="Nom du territoire")
    category: str | None = Field(description="Catégorie (état FTTH, trimestre, opérateur…) ou null")
    value: int | float | None = Field(description="Valeur (entière pour un compte) ; null quand le dénominateur "
                                                  "est nul")
    as_of: dt.date = Field(description="Date des données : dernière modification des couches sources")
    sources: list[str] = Field(description="Attributions des couches sources")


class IndicatorsResponse(BaseModel):
    snapshot_date: dt.date = Field(description="Date de l'instantané dont viennent les valeurs")
    snapshot_kind: Literal["computed", "backfilled"] = Field(
        description="computed : calculé sur les couches ; backfilled : reconstitué d'après les dates des locaux")
    requested_date: dt.date | None = Field(description="Date demandée (paramètre date), ou null")
    note: str | None = Field(description="Remarque en français (instantané antérieur à la date demandée)")
    values: list[IndicatorValueOut]


class HistoryValueOut(IndicatorValueOut):
    date: dt.date = Field(description="Date de l'instantané")


class HistoryResponse(BaseModel):
    values: list[HistoryValueOut]


class SnapshotOut(BaseModel):
    date: dt.date
    kind: Literal["computed", "backfilled"]


class SnapshotsResponse(BaseModel):
    snapshots: list[SnapshotOut] = Field(description="Instantanés enregistrés, du plus ancien au plus récent")


def _row(value: indicator_values.IndicatorValue) -> dict:
    return {"indicator": value.indicator, "label": value.label, "unit": value.unit, "level": value.level,
            "code": value.code, "name": value.name, "category": value.category, "value": value.value,
            "as_of": value.as_of, "sources": list(value.sources)}


def _answer(request: Request, body: dict, rows: list[dict], format: str, separator: str, filename: str,
            columns: tuple[str, ...] = CSV_COLUMNS) -> Response:
    headers = {"Cache-Control": f"public, max-age={settings_of(request).api.cache_max_age_s}"}
    if format == "json":
        return Response(to_json(body), media_type="application/json", headers=headers)
    out = io.StringIO()
    writer = csv_safe.writer(out, delimiter=separator)
    writer.writerow(columns)
    for row in rows:
        writer.writerow("" if row[c] is None else " ; ".join(row[c]) if c == "sources"
                        else row[c].isoformat() if isinstance(row[c], dt.date) else row[c] for c in columns)
    headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/api/indicators", response_model=IndicatorsResponse, responses=TABLE_RESPONSES,
            summary="Indicateurs de l'observatoire par département, EPCI et commune")
def indicators(request: Request, level: Level | None = LEVEL_QUERY, code: str | None = CODE_QUERY,
               indicator: list[str] | None = INDICATORS_QUERY, date: dt.date | None = DATE_QUERY,
               format: Literal["json", "csv"] = FORMAT_QUERY,
               sep: Literal[",", ";"] = SEPARATOR_QUERY) -> Response:
    """Chaque valeur avec son indicateur, son libellé, son unité, son territoire, sa date et ses sources, lue
    dans un instantané enregistré par « geo-service snapshot » (docs/indicators.md)."""
    chosen = indicator_values.chosen_indicators(indicator)
    registry, departement = registry_of(request), _departement(request)

    def read(conn):
        ref = snapshots.chosen(conn, date)
        table = caches_of(request).indicators.get_or_build(
            (departement, ref.taken_on, ref.taken_at), lambda: snapshots.load(conn, registry, ref))
        return ref, table

    ref, table = read_only(request, read)
    indicator_values.check_area(table, level, code)
    rows = [_row(v) for v in indicator_values.values(table, chosen, level, code)]
    note = None
    if date is not None and ref.taken_on != date:
        note = (f"Pas d'instantané au {date:%d/%m/%Y} : valeurs de l'instantané du {ref.taken_on:%d/%m/%Y}, "
                "le plus proche avant cette date.")
    body = {"snapshot_date": ref.taken_on, "snapshot_kind": ref.kind, "requested_date": date, "note": note,
            "values": rows}
    return _answer(request, body, rows, format, sep, f"indicateurs-{ref.taken_on.isoformat()}.csv")


@router.get("/api/indicators/history", response_model=HistoryResponse, responses=TABLE_RESPONSES,
            summary="Évolution d'indicateurs de l'observatoire, instantané par instantané")
def indicator_history(request: Request,
                      indicator: list[str] = HISTORY_INDICATORS_QUERY,
                      level: Level | None = LEVEL_QUERY, code: str | None = CODE_QUERY,
                      format: Literal["json", "csv"] = FORMAT_QUERY,
                      sep: Literal[",", ";"] = SEPARATOR_QUERY) -> Response:
    """Les valeurs de chaque instantané qui contient ces indicateurs, du plus ancien au plus récent (les
    instantanés reconstitués ne portent que les indicateurs des locaux)."""
    chosen = indicator_values.chosen_indicators(indicator, at_most=10)
    registry = registry_of(request)

    def read(conn):
        latest = snapshots.chosen(conn, None)
        table = caches_of(request).indicators.get_or_build(
            (_departement(request), latest.taken_on, latest.taken_at), lambda: snapshots.load(conn, registry, latest))
        indicator_values.check_area(table, level, code)
        return snapshots.history(conn, registry, chosen, level, code)

    found = read_only(request, read)
    rows = [{**_row(value), "date": taken_on} for taken_on, value in found]
    return _answer(request, {"values": rows}, rows, format, sep, "indicateurs-historique.csv",
                   ("date", *CSV_COLUMNS))


@router.get("/api/indicators/snapshots", response_model=SnapshotsResponse,
            summary="Dates des instantanés enregistrés de l'observatoire")
def snapshot_dates(request: Request) -> Response:
    found = read_only(request, snapshots.dates)
    body = {"snapshots": [{"date": day, "kind": kind} for day, kind in found]}
    return Response(to_json(body), media_type="application/json",
                    headers={"Cache-Control": f"public, max-age={settings_of(request).api.cache_max_age_s}"})


def _departement(request: Request) -> str:
    return settings_of(request).territory.departement
