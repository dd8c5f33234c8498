"""The observatory's pages: ``/observatory`` (one indicator's map, legend, table and chart, by commune or EPCI),
the printable EPCI sheet ``/observatory/epci/{siren}`` and its PDF, and the light outlines the maps draw
(``/observatory/areas/{level}.geojson``). What they show is decided in ``services/observatory/page_data.py``;
here the query is handed over and the answer rendered, a bad one as a French page with its 4xx status."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from geo_service.api.deps import basemap_of, caches_of, connection, registry_of, settings_of
from geo_service.api.problems import status_of
from geo_service.api.router_helpers import templates_for
from geo_service.errors import ServiceError
from geo_service.services.observatory import area_shapes, page_data, sheet_figures, sheet_pdf
from geo_service.services.observatory.indicator_catalogue import Indicator

router = APIRouter(include_in_schema=False)


def _snapshot(request: Request) -> page_data.Snapshot:
    with connection(request) as conn:
        return page_data.current(conn, registry_of(request), caches_of(request),
                                 settings_of(request).territory.departement)


def _dated_snapshot(request: Request, day: date | None,
                    indicator: Indicator) -> tuple[page_data.Snapshot, list[page_data.SnapshotDay]]:
    with connection(request) as conn:
        snapshot = page_data.current(conn, registry_of(request), caches_of(request),
                                     settings_of(request).territory.departement, day, indicator)
        return snapshot, page_data.snapshot_days(conn, indicator)


def _render(request: Request, template: str, context: dict[str, Any], status: int = 200,
            cache: bool = True) -> HTMLResponse:
    settings = settings_of(request)
    base = request.scope.get("root_path", "").rstrip("/")
    headers = {"Cache-Control": f"public, max-age={settings.api.cache_max_age_s}" if cache and status == 200
               else "no-store"}
    return templates_for(settings.web_dir).TemplateResponse(
        request, template, {"base": base, "static": f"{base}/static",
                            "basemap": basemap_of(request).for_page(base), **context},
        status_code=status, headers=headers)


def _problem(request: Request, exc: ServiceError) -> HTMLResponse:
    return _render(request, "observatory/problem.html", {"problem": exc}, status=status_of(exc))


@router.get("/observatory", response_class=HTMLResponse)
def observatory(request: Request, indicator: str | None = None, level: str | None = None, epci: str | None = None,
                sort: str | None = None, order: str | None = None, date: str | None = None) -> HTMLResponse:
    """One indicator at a time (GET form): map and table by commune or EPCI, the EPCI filter, the chart, and the
    day of the values (a stored snapshot; the nearest earlier one when the day has none, said on the page)."""
    try:
        chosen = page_data.chosen_indicator(indicator)
        asked = page_data.day_asked(date)
        snapshot, days = _dated_snapshot(request, asked, chosen)
        default_level = "commune" if "commune" in chosen.levels else "epci"
        view = page_data.indicator_view(
            snapshot.table, chosen, page_data.chosen(level, page_data.MAP_LEVELS, default_level, "level"),
            page_data.epci_area(snapshot.table, epci), page_data.chosen(sort, page_data.SORTS, "nom", "sort"),
            page_data.chosen(order, page_data.ORDERS, "asc", "order"))
    except ServiceError as exc:
        return _problem(request, exc)
    chart = sheet_figures.indicator_chart(caches_of(request), snapshot, view)
    return _render(request, "observatory/index.html", {
        "themes": page_data.themes(), "view": view, "snapshot": snapshot, "chart": chart,
        "epcis": page_data.epcis(snapshot.table), "levels": page_data.MAP_LEVELS, "days": days,
        "asked": asked, "latest": bool(days) and days[0].day == snapshot.day})


@router.get("/observatory/areas/{level}.geojson")
def areas(request: Request, level: str) -> Response:
    """The outlines of the current communes or of the EPCI, simplified, joined with the values by code."""
    with connection(request) as conn:
        body = area_shapes.encoded(conn, caches_of(request), level)
    max_age = settings_of(request).api.cache_max_age_s
    return Response(body, media_type="application/geo+json", headers={"Cache-Control": f"public, max-age={max_age}"})


def _sheet_context(request: Request, siren: str) -> dict[str, Any]:
    snapshot = _snapshot(request)
    sheet = page_data.sheet(snapshot.table, siren, snapshot.day)
    with connection(request) as conn:
        outlines = area_shapes.collection(conn, caches_of(request), "commune")
        history = page_data.share_history(conn, registry_of(request), caches_of(request), snapshot, "epci", siren)
    drawn = sheet_figures.sheet_figures(caches_of(request), snapshot, sheet, outlines, history)
    return {"sheet": sheet, "snapshot": snapshot, "figures": drawn}


# Declared before the page: ``{siren}`` alone would also match ``200066.pdf``.
@router.get("/observatory/epci/{siren}.pdf")
def epci_sheet_pdf(request: Request, siren: str) -> Response:
    """The sheet printed by the service (WeasyPrint), one A4 page."""
    try:
        context = _sheet_context(request, siren)
    except ServiceError as exc:
        return _problem(request, exc)
    settings = settings_of(request)

    def printed() -> bytes:
        html = templates_for(settings.web_dir).get_template("observatory/epci.html").render(
            {"request": request, "base": "", "static": "/static", "print_only": True, "operator": settings.operator,
             "territory": settings.territory, "csp_nonce": "", **context})
        return sheet_pdf.pdf(html, settings.web_dir / "static")

    # Printing takes a second or more of CPU: once per snapshot and EPCI, not per download.
    data = caches_of(request).observatory_figures.get_or_build(
        (context["snapshot"].key, "pdf", context["sheet"].epci.code), printed)
    name = f"fiche-epci-{context['sheet'].epci.code}-{context['snapshot'].day.isoformat()}.pdf"
    return Response(data, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": f"public, max-age={settings.api.cache_max_age_s}"})


@router.get("/observatory/epci/{siren}", response_class=HTMLResponse)
def epci_sheet(request: Request, siren: str) -> HTMLResponse:
    """What an EPCI brings to its council, on one A4 page when printed."""
    try:
        context = _sheet_context(request, siren)
    except ServiceError as exc:
        return _problem(request, exc)
    return _render(request, "observatory/epci.html", {"print_only": False, **context})
