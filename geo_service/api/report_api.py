"""``/api/reports``: a resident's report as JSON (the map's panel), and ``/api/reports/stats`` (counts only)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from geo_service.api.deps import connection
from geo_service.api.router_helpers import follow_up_url, take_report
from geo_service.services.reports import report_stats
from geo_service.services.reports.report_categories import STATUS_LABELS
from geo_service.services.reports.submission import Submission

router = APIRouter(tags=["signalements"])
PROBLEM = {"description": "Problème (RFC 9457), message en français", "content": {"application/problem+json": {}}}


class ReportDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operator: Literal["orange", "sfr", "bouygues", "free", "inconnu"] | None = None
    technology: Literal["2G", "3G", "4G", "5G"] | None = None


class ReportIn(BaseModel):
    """A report: what is wrong, where, and (optionally) an e-mail for the follow-up, with consent."""

    model_config = ConfigDict(extra="forbid")
    category: Literal["fibre", "mobile", "wifi", "place", "other"]
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    description: str = Field("", max_length=20000, description="Texte libre (longueur maximale : réglage)")
    details: ReportDetails = ReportDetails()
    layer: str | None = Field(None, max_length=64, description="Couche de l'entité signalée")
    feature_id: int | None = Field(None, ge=1, le=2**63 - 1, description="Entité signalée")
    email: str | None = Field(None, max_length=254, description="Adresse pour le suivi (facultative)")
    consent: bool = Field(False, description="Consentement à l'usage de l'adresse pour le suivi")
    website: str = Field("", max_length=200, description="Laisser vide (champ piège à robots)")


class ReportOut(BaseModel):
    id: str = Field(description="Numéro public du signalement")
    status: str
    status_label: str
    duplicate: bool = Field(description="Déjà signalé : compté, pas enregistré deux fois")
    count: int = Field(description="Personnes ayant signalé ce problème")
    message: str
    follow_up_url: str = Field(description="Lien privé de suivi (à garder pour soi)")


class Count(BaseModel):
    label: str
    count: int


class StatusCount(Count):
    status: str


class CategoryCount(Count):
    category: str


class CommuneCount(BaseModel):
    code_insee: str | None
    nom: str | None
    count: int


class ReportStats(BaseModel):
    total: int
    by_status: list[StatusCount]
    by_category: list[CategoryCount]
    by_commune: list[CommuneCount]


@router.post("/api/reports", status_code=201, response_model=ReportOut, summary="Signaler un problème",
             responses={200: {"model": ReportOut, "description": "Déjà signalé : compté sur le signalement existant"},
                        400: PROBLEM, 413: PROBLEM, 422: PROBLEM, 429: PROBLEM})
def create_report(request: Request, body: ReportIn) -> JSONResponse:
    """Un résident signale un problème (sans compte). Refus en français (4xx) sans rien enregistrer : champ piège
    rempli, hors du territoire, trop de signalements depuis la même connexion ou le même secteur (429). Un problème
    déjà signalé tout près est compté (« déjà signalé, N personnes ») et non enregistré deux fois."""
    submission = Submission(body.category, body.lon, body.lat, body.description,
                            body.details.model_dump(exclude_none=True), body.layer, body.feature_id, body.email,
                            body.consent, body.website)
    received = take_report(request, submission)
    status = received.status
    out = ReportOut(id=received.public_id, status=status, status_label=STATUS_LABELS[status],
                    duplicate=received.duplicate, count=received.count, message=received.message,
                    follow_up_url=follow_up_url(request, received.token))
    return JSONResponse(out.model_dump(), status_code=200 if received.duplicate else 201,
                        headers={"Cache-Control": "no-store"})


@router.get("/api/reports/stats", response_model=ReportStats, summary="Signalements comptés (observatoire)")
def stats(request: Request) -> JSONResponse:
    """Nombre de signalements par état, catégorie et commune ; aucune donnée personnelle, aucun texte."""
    with connection(request) as conn:
        body = report_stats.stats(conn)
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=60"})
