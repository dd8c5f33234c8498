"""Residents' report pages that work without JavaScript: ``/map/signaler`` (the form, then the follow-up link) and
``/signalement/{token}`` (the private follow-up page, and its photo)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from geo_service.api.deps import connection, settings_of, transaction
from geo_service.api.problems import status_of
from geo_service.api.router_helpers import follow_up_url, take_report, templates_for
from geo_service.errors import InvalidParameter, ServiceError
from geo_service.services.reports import follow_up, report_photos
from geo_service.services.reports.report_categories import CATEGORIES
from geo_service.services.reports.submission import Submission
from geo_service.services.resident import geocoder

router = APIRouter(include_in_schema=False)
# The follow-up URL holds its secret: never kept by a cache (and the page's <meta name="referrer"> keeps it out of
# Referer headers; the middleware's Referrer-Policy already sends no path to another site).
PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


def _render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    settings = settings_of(request)
    base = request.scope.get("root_path", "").rstrip("/")
    return templates_for(settings.web_dir).TemplateResponse(
        request, template, {"base": base, "categories": CATEGORIES,
                            "retention_days": settings.reports.email_retention_days,
                            "max_text": settings.reports.max_text_chars,
                            "max_photo_mb": settings.reports.max_photo_bytes // (1024 * 1024), **context},
        status_code=status, headers=PRIVATE)


def _where(request: Request, lon: str | None, lat: str | None, address: str | None) -> dict[str, Any]:
    """The point of the form: the coordinates given, else the best match of the address typed."""
    if lon and lat:
        return {"lon": lon[:20], "lat": lat[:20], "label": (address or "")[:200] or None}
    if address and address.strip():
        with connection(request) as conn:
            match = geocoder.best_match(conn, address)
        if match.best is None:
            raise InvalidParameter(f"Aucune adresse ne correspond à « {address[:80]} »", parameter="address")
        return {"lon": f"{match.best.lon:.6f}", "lat": f"{match.best.lat:.6f}", "label": match.best.label}
    return {"lon": "", "lat": "", "label": None}


@router.get("/map/signaler", response_class=HTMLResponse)
def report_form(request: Request, lon: str | None = None, lat: str | None = None, address: str | None = None,
                layer: str | None = None, fid: str | None = None, category: str | None = None) -> HTMLResponse:
    values = {"layer": (layer or "")[:64], "feature_id": (fid or "")[:20], "category": (category or "")[:20],
              "address": (address or "")[:200]}
    try:
        values.update(_where(request, lon, lat, address))
    except ServiceError as exc:
        return _render(request, "map/report_problem.html", {"values": values, "error": exc.detail},
                       status=status_of(exc))
    return _render(request, "map/report_problem.html", {"values": values, "error": None})


@router.post("/map/signaler", response_class=HTMLResponse)
def send_report(request: Request, category: Annotated[str, Form()] = "", lon: Annotated[str, Form()] = "",
                lat: Annotated[str, Form()] = "", address: Annotated[str, Form()] = "",
                description: Annotated[str, Form()] = "", operator: Annotated[str, Form()] = "",
                technology: Annotated[str, Form()] = "", layer: Annotated[str, Form()] = "",
                feature_id: Annotated[str, Form()] = "", email: Annotated[str, Form()] = "",
                consent: Annotated[str, Form()] = "", website: Annotated[str, Form()] = "",
                photo: Annotated[UploadFile | None, File()] = None) -> HTMLResponse:
    values = {"category": category, "lon": lon, "lat": lat, "address": address, "description": description,
              "operator": operator, "technology": technology, "layer": layer, "feature_id": feature_id,
              "email": email, "consent": bool(consent), "label": address or None}
    try:
        if not (lon and lat):
            values.update(_where(request, lon, lat, address))
        data = photo.file.read() if photo is not None and photo.filename else None
        received = take_report(request, Submission(
            category, values["lon"], values["lat"], description, {"operator": operator, "technology": technology},
            layer or None, feature_id or None, email, bool(consent), website), photo=data)
    except ServiceError as exc:
        return _render(request, "map/report_problem.html", {"values": values, "error": exc.detail},
                       status=status_of(exc))
    return _render(request, "map/report_sent.html", {"received": received,
                                                     "link": follow_up_url(request, received.token)})


@router.get("/signalement/{token}", response_class=HTMLResponse)
def follow_up_page(request: Request, token: str) -> HTMLResponse:
    try:
        with connection(request) as conn:
            shown = follow_up.by_token(conn, token)
    except ServiceError as exc:
        return _render(request, "map/follow_up.html", {"report": None, "error": exc.detail}, status=status_of(exc))
    return _render(request, "map/follow_up.html", {"report": shown, "error": None, "token": token})


@router.post("/signalement/{token}/photo", status_code=201, include_in_schema=False)
def add_photo(request: Request, token: str, photo: Annotated[UploadFile, File()]) -> JSONResponse:
    """The map's panel sends the report as JSON, then its photo here with the follow-up token it was given."""
    settings = settings_of(request)
    # Checked and re-encoded before the database is touched: a bad file changes nothing.
    jpeg = report_photos.reencode(photo.file.read(settings.reports.max_photo_bytes + 1), settings.reports)
    with transaction(request) as conn:
        follow_up.attach_photo(conn, settings.resolved_photo_dir(), token, jpeg)
    return JSONResponse({"photo": True, "message": "Photo jointe au signalement"}, status_code=201,
                        headers={"Cache-Control": "no-store"})


@router.get("/signalement/{token}/photo")
def follow_up_photo(request: Request, token: str) -> Response:
    with connection(request) as conn:
        name = follow_up.photo_of(conn, token)
    path = report_photos.photo_path(settings_of(request).resolved_photo_dir(), name)
    return FileResponse(path, media_type="image/jpeg", headers=PRIVATE)
