"""HTML pages for residents: ``/map`` ("Services près de chez vous") and ``/map/report`` (the same report as a
text page that works without JavaScript), rendered from ``web/templates/``."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from geo_service.api.deps import ConnectionDep, RegistryDep, SettingsDep, basemap_of, caches_of
from geo_service.api.problems import status_of
from geo_service.api.router_helpers import templates_for
from geo_service.errors import InvalidParameter, ServiceError
from geo_service.services.resident import map_page, nearby_report
from geo_service.services.resident.geocoder import MAX_QUERY_LENGTH

router = APIRouter(include_in_schema=False)








@router.get("/map", response_class=HTMLResponse)
def resident_map(request: Request, conn: ConnectionDep, registry: RegistryDep, settings: SettingsDep) -> HTMLResponse:
    """The resident map: layer toggles and legend from the registry; map.js fetches the features."""
    # Root-relative URLs that still work when the service is mounted under a prefix by a proxy.
    base = request.scope.get("root_path", "").rstrip("/")
    page = map_page.build_map_page(conn, caches_of(request), settings.map, settings.territory.of_name, base_path=base,
                                   basemap=basemap_of(request))
    return templates_for(settings.web_dir).TemplateResponse(request, "map/index.html", {
        "page": page, "base": base, "report_retention_days": settings.reports.email_retention_days,
        "report_max_text": settings.reports.max_text_chars,
        "report_max_photo_mb": settings.reports.max_photo_bytes // (1024 * 1024)})


def parse_coordinate(value: str | None, name: str, bound: float) -> float | None:
    """A coordinate typed in a URL, or a French ``InvalidParameter`` (text, NaN, out of range)."""
    if value is None or value.strip() == "":
        return None
    try:
        number = float(value.replace(",", "."))
    except ValueError:
        raise InvalidParameter(f"« {value[:40]} » n'est pas un nombre : {name} attend des degrés (ex. 44.45).",
                               parameter=name) from None
    if not math.isfinite(number) or not -bound <= number <= bound:
        raise InvalidParameter(f"{name} doit être un nombre entre -{bound:g} et {bound:g}.", parameter=name)
    return number


@router.get("/map/report", response_class=HTMLResponse)
def report_page(request: Request, conn: ConnectionDep, registry: RegistryDep, settings: SettingsDep,
                address: str | None = Query(None), lon: str | None = Query(None),
                lat: str | None = Query(None)) -> HTMLResponse:
    """The report as a plain page: a GET form, headings, lists and tables; a choice list when ambiguous."""
    base = request.scope.get("root_path", "").rstrip("/")
    context: dict[str, Any] = {"base": base, "address": (address or "")[:MAX_QUERY_LENGTH + 50],
                               "max_length": MAX_QUERY_LENGTH, "report": None, "choices": None, "problem": None,
                               "label": None}
    status = 200
    try:
        x, y = parse_coordinate(lon, "lon", 180), parse_coordinate(lat, "lat", 90)
        if address and address.strip():
            match, report = nearby_report.report_for_address(conn, caches_of(request), settings.territory, address)
            if match.ambiguous:
                context["choices"] = [match.best, *match.alternatives]
            else:
                context.update(report=report, label=match.best.label)
        elif x is not None or y is not None:
            if x is None or y is None:
                raise InvalidParameter("Indiquez à la fois lon et lat.", parameter="lon" if x is None else "lat")
            context.update(report=nearby_report.report(conn, caches_of(request), settings.territory, x, y),
                           label=f"Point {y:.5f}, {x:.5f}")
    except ServiceError as exc:
        status = status_of(exc)
        context["problem"] = {"title": exc.title, "detail": exc.detail}
    response = templates_for(settings.web_dir).TemplateResponse(request, "map/report.html", context,
                                                                status_code=status)
    response.headers["Cache-Control"] = f"public, max-age={settings.api.cache_max_age_s}"
    return response
