"""``/admin/api``: the validation queue, feature history (revert, restore) and the audit export, as JSON/CSV.

For scripts (personal access token) and the /admin pages (session + ``X-CSRF-Token``); the same services as
the CLI (``services/editing/moderation_queue.py``, ``history.py``, ``feature_writes.py``). Changes made here are
recorded with the path ``web`` when they come from a session and ``api`` when they come with a token.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from geo_service.api.deps import PrincipalDep, RegistryDep, SettingsDep, WriterDep, connection, transaction
from geo_service.api.problems import version_etag
from geo_service.api.router_helpers import RawBody, edit_context, expected_version, json_body
from geo_service.errors import Forbidden, InvalidParameter, NotFound
from geo_service.services.editing import feature_writes, history, moderation_queue, rights
from geo_service.services.editing.accounts import Principal
from geo_service.services.editing.conventions import LOCAL_TIME
from geo_service.services.editing.feature_writes import EditResult

router = APIRouter(prefix="/admin/api", tags=["Administration"])
JSON_TYPES = ("application/json",)


def _staff(principal: Principal) -> None:
    """Reading the queue and the history: the département's GIS staff (admin, editor)."""
    rights.require_account(principal)
    if principal.role not in ("admin", "editor"):
        raise Forbidden("Réservé aux administrateurs et éditeurs du Département")


def _object(request: Request, raw: bytes) -> dict:
    if not raw.strip():
        return {}
    body = json_body(request, raw, JSON_TYPES)
    if not isinstance(body, dict):
        raise InvalidParameter("Corps attendu : un objet JSON", parameter="body")
    return body


def _jsonable(value: object) -> object:
    return json.loads(json.dumps(value, default=str))


def _result(result: EditResult) -> JSONResponse:
    return JSONResponse({"collection": result.layer_id, "featureId": result.fid, "version": result.version,
                         "status": result.status, "changeRequest": result.change_request_id},
                        headers={"ETag": version_etag(result.version)})


# -- validation queue -------------------------------------------------------------------------------------------
@router.get("/proposals", summary="Propositions des contributeurs EPCI")
def proposals(request: Request, principal: PrincipalDep, status: str | None = "pending",
              layer: str | None = None) -> JSONResponse:
    _staff(principal)
    with connection(request) as conn:
        rows = moderation_queue.list_requests(conn, None if status == "all" else status, layer)
    return JSONResponse({"proposals": [_jsonable(asdict(r)) for r in rows]})


@router.post("/proposals/{request_id}/accept", summary="Accepter une proposition")
def accept(request: Request, request_id: int, principal: WriterDep, registry: RegistryDep, settings: SettingsDep,
           raw: RawBody) -> JSONResponse:
    comment = _object(request, raw).get("comment")
    with transaction(request) as conn:
        result = moderation_queue.accept(conn, edit_context(principal, registry, settings), request_id,
                                   str(comment) if comment else None)
    return _result(result)


@router.post("/proposals/{request_id}/reject", summary="Refuser une proposition (commentaire obligatoire)")
def reject(request: Request, request_id: int, principal: WriterDep, registry: RegistryDep, settings: SettingsDep,
           raw: RawBody) -> JSONResponse:
    comment = _object(request, raw).get("comment")
    with transaction(request) as conn:
        ctx = edit_context(principal, registry, settings)
        decided = moderation_queue.reject(conn, ctx, request_id, str(comment or ""))
    return JSONResponse(_jsonable(asdict(decided)))


# -- history ------------------------------------------------------------------------------------------------------
@router.get("/history.csv", summary="Export d'audit (CSV)", responses={200: {"content": {"text/csv": {}}}})
def audit_csv(request: Request, principal: PrincipalDep, registry: RegistryDep, layer: str | None = None,
              since: Annotated[datetime | None, Query(description="Depuis (ISO 8601)")] = None,
              until: Annotated[datetime | None, Query(description="Jusqu'à, exclu (ISO 8601)")] = None) -> Response:
    rights.require_admin(principal)
    # The layer names the file (Content-Disposition): a name that is not a layer's would reach the header as is.
    if layer is not None and layer not in registry:
        raise InvalidParameter(f"Aucune couche « {layer} »", parameter="layer")
    since, until = (d.replace(tzinfo=LOCAL_TIME) if d and d.tzinfo is None else d for d in (since, until))

    def rows():
        # Its own connection: it lives as long as the response streams.
        with connection(request) as conn:
            yield from history.export_csv(conn, layer_id=layer, since=since, until=until)

    name = f"historique-{layer or 'toutes-couches'}.csv"
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/history/{layer_id}/{fid}", summary="Historique d'une entité")
def feature_history(request: Request, layer_id: str, fid: int, principal: PrincipalDep,
                    registry: RegistryDep) -> JSONResponse:
    _staff(principal)
    if layer_id not in registry:
        raise NotFound(f"Aucune couche « {layer_id} »")
    with connection(request) as conn:
        entries = history.entries(conn, layer_id, fid)
    if not entries:
        raise NotFound(f"Aucun historique pour l'entité {fid} de « {layer_id} »")
    return JSONResponse({"collection": layer_id, "featureId": fid,
                         "entries": [_jsonable(asdict(e)) for e in entries]})


def _if_match(request: Request, principal: Principal) -> int | None:
    # Optional here (a revert names its target version explicitly), but honoured when sent.
    return expected_version(request, principal) if request.headers.get("if-match") else None


@router.post("/history/{layer_id}/{fid}/revert", summary="Revenir à une version (exactement)")
def revert(request: Request, layer_id: str, fid: int, principal: WriterDep, registry: RegistryDep,
           settings: SettingsDep, raw: RawBody) -> JSONResponse:
    version = _object(request, raw).get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidParameter("« version » : numéro de version entier attendu", parameter="version")
    with transaction(request) as conn:
        ctx = edit_context(principal, registry, settings)
        result = feature_writes.revert_feature(conn, ctx, layer_id, fid, version, _if_match(request, principal))
    return _result(result)


@router.post("/history/{layer_id}/{fid}/restore", summary="Restaurer une entité supprimée")
def restore(request: Request, layer_id: str, fid: int, principal: WriterDep, registry: RegistryDep,
            settings: SettingsDep) -> JSONResponse:
    with transaction(request) as conn:
        result = feature_writes.restore_feature(conn, edit_context(principal, registry, settings), layer_id, fid)
    return _result(result)
