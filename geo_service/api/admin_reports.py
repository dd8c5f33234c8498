"""``/admin/reports``: the officers' queue of residents' reports (map, filters), one report, its status changes.

Who sees what is ``services/reports/report_queue.py: queue_scope`` (staff everything, an EPCI contributor its EPCI
under a convention in force). Forms post back with the session's CSRF token; the resident's e-mail, if any, is
sent once the change is committed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from geo_service.api.deps import PrincipalDep, RegistryDep, SettingsDep, connection, transaction
from geo_service.api.problems import status_of
from geo_service.api.router_helpers import check_csrf, error_page, login_redirect, page
from geo_service.errors import ServiceError
from geo_service.services.editing import conventions
from geo_service.services.editing.accounts import Principal
from geo_service.services.reports import notifications, report_photos, report_queue
from geo_service.services.reports.report_categories import CATEGORIES, STATUS_LABELS
from geo_service.services.reports.report_queue import AGES, TRANSITIONS, Filters
from geo_service.settings import Settings

router = APIRouter(prefix="/admin", include_in_schema=False)


@router.get("/reports", response_class=HTMLResponse)
def queue(request: Request, settings: SettingsDep, principal: PrincipalDep, category: str = "", commune: str = "",
          epci: str = "", status: str = "", age: str = "") -> Response:
    if not principal.authenticated:
        return login_redirect(request)
    filters = Filters(category or None, commune or None, epci or None, status or None, age or None)
    try:
        with connection(request) as conn:
            scope = report_queue.queue_scope(conn, principal)
            rows = report_queue.list_reports(conn, scope, filters)
            epcis = conventions.epci_choices(conn)
    except ServiceError as exc:
        return error_page(request, settings, principal, exc)
    return page(request, settings, principal, "admin/reports.html",
                {"rows": rows, "filters": filters, "categories": CATEGORIES, "statuses": STATUS_LABELS,
                 "ages": AGES, "epcis": epcis if scope is None else [e for e in epcis if e[0] == scope],
                 "geojson": report_queue.queue_geojson(rows), "scope": scope})


def _report_page(request: Request, settings: Settings, principal: Principal, registry: RegistryDep,
                 public_id: str, error: str | None = None, status: int = 200) -> Response:
    try:
        with connection(request) as conn:
            scope = report_queue.queue_scope(conn, principal)
            report = report_queue.get_report(conn, scope, public_id)
            lines = report_queue.history(conn, report.id)
    except ServiceError as exc:
        return error_page(request, settings, principal, exc)
    layer = registry.get(report.layer_id) if report.layer_id and report.layer_id in registry else None
    return page(request, settings, principal, "admin/report.html",
                {"r": report, "lines": lines, "layer": layer, "statuses": STATUS_LABELS,
                 "next_statuses": TRANSITIONS[report.status], "error": error,
                 "done": request.query_params.get("done") == "1",
                 "geojson": report_queue.queue_geojson([report])}, status=status)


@router.get("/reports/{public_id}", response_class=HTMLResponse)
def one_report(request: Request, public_id: str, settings: SettingsDep, principal: PrincipalDep,
               registry: RegistryDep) -> Response:
    if not principal.authenticated:
        return login_redirect(request)
    return _report_page(request, settings, principal, registry, public_id)


@router.post("/reports/{public_id}", response_class=HTMLResponse)
def change(request: Request, public_id: str, settings: SettingsDep, principal: PrincipalDep, registry: RegistryDep,
           status: Annotated[str, Form()] = "", answer: Annotated[str, Form()] = "",
           duplicate_of: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "") -> Response:
    try:
        check_csrf(request, principal, csrf_token)
        with transaction(request) as conn:
            changed = report_queue.change_status(conn, principal, public_id, status, answer, duplicate_of or None)
    except ServiceError as exc:
        if not principal.authenticated:
            return error_page(request, settings, principal, exc)
        return _report_page(request, settings, principal, registry, public_id, error=exc.detail,
                            status=status_of(exc))
    if changed.email:
        notifications.send(settings.smtp, [notifications.status_changed(
            settings.smtp, changed.email, changed.public_id, changed.category_label, STATUS_LABELS[changed.to_status],
            changed.public_answer)])
    return RedirectResponse(f"/admin/reports/{changed.public_id}?done=1", status_code=303)


@router.get("/reports/{public_id}/photo")
def photo(request: Request, public_id: str, settings: SettingsDep, principal: PrincipalDep) -> Response:
    if not principal.authenticated:
        return login_redirect(request)
    try:
        with connection(request) as conn:
            scope = report_queue.queue_scope(conn, principal)
            name = report_queue.photo_name(conn, scope, public_id)
    except ServiceError as exc:
        return error_page(request, settings, principal, exc)
    return FileResponse(report_photos.photo_path(settings.resolved_photo_dir(), name), media_type="image/jpeg",
                        headers={"Cache-Control": "no-store"})
