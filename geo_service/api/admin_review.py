"""``/admin`` screens of the GIS staff: the validation queue (before/after, map) and each feature's history.

Forms post back here with the session's CSRF token; handlers call ``services/editing/moderation_queue.py`` and
``services/editing/feature_writes.py`` (path ``web``) and redirect with a fixed message, or show the page again with the
service's French error.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from geo_service.api.deps import PrincipalDep, RegistryDep, SettingsDep, connection, transaction
from geo_service.api.problems import status_of
from geo_service.api.router_helpers import (
    STAFF,
    check_csrf,
    edit_context,
    error_page,
    login_redirect,
    page,
    require_role,
)
from geo_service.errors import NotFound, ServiceError
from geo_service.layers import LayerRegistry
from geo_service.services.editing import (
    conventions,
    feature_writes,
    history,
    moderation_queue,
    review_display,
)
from geo_service.services.editing.accounts import Principal
from geo_service.settings import Settings

router = APIRouter(prefix="/admin", include_in_schema=False)
MESSAGES = {
    "accepted": "Proposition acceptée : la modification est publiée.",
    "rejected": "Proposition refusée ; le contributeur verra votre commentaire.",
    "reverted": "Version rétablie.",
    "restored": "Entité restaurée.",
}










def _message(request: Request) -> str | None:
    return MESSAGES.get(request.query_params.get("done", ""))


# -- validation queue --------------------------------------------------------------------------------------------
@router.get("/proposals", response_class=HTMLResponse)
def proposals(request: Request, settings: SettingsDep, principal: PrincipalDep, registry: RegistryDep,
              status: str = "pending") -> Response:
    if not principal.authenticated:
        return login_redirect(request)
    try:
        require_role(principal, STAFF)
    except ServiceError as exc:
        return error_page(request, settings, principal, exc)
    with connection(request) as conn:
        rows = moderation_queue.list_requests(conn, None if status == "all" else status)
        epcis = dict(conventions.epci_choices(conn))
    titles = {layer.id: layer.title for layer in registry}
    return page(request, settings, principal, "admin/proposals.html",
                {"rows": rows, "titles": titles, "epcis": epcis, "kinds": review_display.KIND_LABELS, "status": status,
                 "message": _message(request)})


def _review_page(request: Request, settings: Settings, principal: Principal, registry: LayerRegistry,
                 request_id: int, error: str | None = None, status: int = 200) -> Response:
    try:
        require_role(principal, STAFF)
        with connection(request) as conn:
            shown = review_display.review(conn, registry, request_id)
    except ServiceError as exc:
        return error_page(request, settings, principal, exc)
    return page(request, settings, principal, "admin/proposal.html", {"r": shown, "error": error}, status=status)


@router.get("/proposals/{request_id}", response_class=HTMLResponse)
def proposal(request: Request, request_id: int, settings: SettingsDep, principal: PrincipalDep,
             registry: RegistryDep) -> Response:
    if not principal.authenticated:
        return login_redirect(request)
    return _review_page(request, settings, principal, registry, request_id)


@router.post("/proposals/{request_id}", response_class=HTMLResponse)
def decide(request: Request, request_id: int, settings: SettingsDep, principal: PrincipalDep, registry: RegistryDep,
           decision: Annotated[str, Form()] = "", comment: Annotated[str, Form()] = "",
           csrf_token: Annotated[str, Form()] = "") -> Response:
    try:
        check_csrf(request, principal, csrf_token)
        ctx = edit_context(principal, registry, settings, path="web")
        with transaction(request) as conn:
            if decision == "accept":
                moderation_queue.accept(conn, ctx, request_id, comment.strip() or None)
            elif decision == "reject":
                moderation_queue.reject(conn, ctx, request_id, comment)
            else:
                raise NotFound("Décision inconnue")
    except ServiceError as exc:
        return _review_page(request, settings, principal, registry, request_id, error=exc.detail, status=status_of(exc))
    done = "accepted" if decision == "accept" else "rejected"
    return RedirectResponse(f"/admin/proposals?done={done}", status_code=303)


# -- history ---------------------------------------------------------------------------------------------------
def _history_page(request: Request, settings: Settings, principal: Principal, registry: LayerRegistry,
                  layer_id: str, fid: int, error: str | None = None, status: int = 200) -> Response:
    try:
        require_role(principal, STAFF)
        if layer_id not in registry:
            raise NotFound(f"Aucune couche « {layer_id} »")
        layer = registry.get(layer_id)
        with connection(request) as conn:
            entries = history.entries(conn, layer_id, fid)
            current = history.snapshot(conn, layer, fid)
    except ServiceError as exc:
        return error_page(request, settings, principal, exc)
    if current is None and not entries:
        return error_page(request, settings, principal, NotFound(f"Aucune entité {fid} dans « {layer.title} »"))
    return page(request, settings, principal, "admin/history.html",
                {"layer": layer, "fid": fid, "current": current, "lines": review_display.history_lines(layer, entries),
                 "error": error, "message": _message(request)}, status=status)


@router.get("/history/{layer_id}/{fid}", response_class=HTMLResponse)
def feature_history(request: Request, layer_id: str, fid: int, settings: SettingsDep, principal: PrincipalDep,
                    registry: RegistryDep) -> Response:
    if not principal.authenticated:
        return login_redirect(request)
    return _history_page(request, settings, principal, registry, layer_id, fid)


@router.post("/history/{layer_id}/{fid}", response_class=HTMLResponse)
def change_history(request: Request, layer_id: str, fid: int, settings: SettingsDep, principal: PrincipalDep,
                   registry: RegistryDep, action: Annotated[str, Form()] = "", version: Annotated[int, Form()] = 0,
                   csrf_token: Annotated[str, Form()] = "") -> Response:
    try:
        check_csrf(request, principal, csrf_token)
        ctx = edit_context(principal, registry, settings, path="web")
        with transaction(request) as conn:
            if action == "revert":
                feature_writes.revert_feature(conn, ctx, layer_id, fid, version)
            elif action == "restore":
                feature_writes.restore_feature(conn, ctx, layer_id, fid)
            else:
                raise NotFound("Action inconnue")
    except ServiceError as exc:
        return _history_page(request, settings, principal, registry, layer_id, fid, error=exc.detail,
                             status=status_of(exc))
    done = "reverted" if action == "revert" else "restored"
    return RedirectResponse(f"/admin/history/{layer_id}/{fid}?done={done}", status_code=303)
