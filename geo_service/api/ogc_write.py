"""OGC API – Features – Part 4 (Create, Replace, Update, Delete) on ``/ogc/collections/{id}/items``.

Handlers only read HTTP (body, ``Content-Type``, ``Content-Crs``, ``If-Match``), call
``services/editing/feature_writes.py`` in one transaction and shape the answer; rights, checks, history and proposals
are the service's. Every feature carries an ``ETag`` made of its version; ``If-Match`` is required to
replace, patch or delete (428 without it, 412 when stale), so two editors never overwrite each other
silently. An EPCI contributor's change answers 202 (a proposal waiting for validation), others 201/200/204.
``OPTIONS`` lists the allowed methods in ``Allow``: that is how QGIS's OAPIF provider discovers editing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from geo_service.api.deps import ReaderDep, RegistryDep, SettingsDep, WriterDep, caches_of, transaction
from geo_service.api.problems import version_etag
from geo_service.api.router_helpers import OGC_PREFIX, RawBody, content_crs, edit_context, expected_version, json_body
from geo_service.api.urls import absolute_url
from geo_service.errors import (
    NotFound,
)
from geo_service.layers import LayerRegistry
from geo_service.services.editing import feature_writes
from geo_service.services.editing.accounts import Principal
from geo_service.services.editing.feature_writes import EditContext, EditResult
from geo_service.services.publish import ogc_items
from geo_service.services.publish.crs import CRS84
from geo_service.services.publish.feature_reader import Collection, open_collection
from geo_service.services.publish.ogc_documents import GEOJSON
from geo_service.services.publish.read_access import Reader
from geo_service.settings import Settings

if TYPE_CHECKING:  # types only: routers reach the database through deps.py and the services
    from sqlalchemy import Connection

router = APIRouter(prefix=OGC_PREFIX, tags=["OGC API – Features – Part 4 (écriture)"])
FEATURE_TYPES = ("application/geo+json", "application/json")
PATCH_TYPES = ("application/merge-patch+json", *FEATURE_TYPES)
_WRITE_RESPONSES = {
    400: {"description": "Corps ou paramètre invalide"}, 401: {"description": "Authentification requise"},
    403: {"description": "Droits insuffisants (rôle, convention, périmètre)"},
    409: {"description": "Clé naturelle déjà utilisée"}, 413: {"description": "Contenu trop volumineux"},
    415: {"description": "Type de contenu non pris en charge"},
    422: {"description": "Entité invalide (propriété ou géométrie)"},
}
_LOCK_RESPONSES = {**_WRITE_RESPONSES, 412: {"description": "Version périmée (If-Match)"},
                   428: {"description": "If-Match requis"}}
# The bodies and headers the handlers read by hand, described for clients and for the fuzzing of
# tests/robustness (without them a generated request would carry no body at all).
_GEOMETRY = {"type": "object", "required": ["type", "coordinates"],
             "properties": {"type": {"type": "string", "enum": ["Point", "MultiPoint", "LineString",
                                                                "MultiLineString", "Polygon", "MultiPolygon"]},
                            "coordinates": {"type": "array", "items": {}}}}
_FEATURE = {"type": "object", "required": ["type", "geometry", "properties"],
            "properties": {"type": {"type": "string", "enum": ["Feature"]}, "id": {},
                           "geometry": {"anyOf": [_GEOMETRY, {"type": "null"}]},
                           "properties": {"type": "object", "additionalProperties": True}}}
_MERGE_PATCH = {"type": "object", "properties": {"geometry": _GEOMETRY,
                                                 "properties": {"type": "object", "additionalProperties": True}}}
_IF_MATCH = {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
             "description": "ETag de la version modifiée (obligatoire sauf jeton QGIS)"}
_CONTENT_CRS = {"name": "Content-Crs", "in": "header", "required": False, "schema": {"type": "string"},
                "description": "CRS des géométries du corps, entre chevrons (CRS84 par défaut)"}


def _body(schema: dict, *types: str) -> dict:
    return {"requestBody": {"required": True, "content": {media: {"schema": schema} for media in types}}}


def _collection(request: Request, collection_id: str, reader: Reader) -> Collection:
    # A layer the account cannot read does not exist for it (404), as for reads.
    return open_collection(caches_of(request), collection_id, reader)


def _fid(feature_id: str, coll: Collection) -> int:
    if not feature_id.isdigit() or len(feature_id) > 18:
        raise NotFound(f"Aucune entité « {feature_id} » dans « {coll.id} »")
    return int(feature_id)


def _context(request: Request, principal: Principal, registry: LayerRegistry, settings: Settings) -> EditContext:
    # The web editor writes through this API with its session: its changes are recorded as "web".
    return edit_context(principal, registry, settings, crs=content_crs(request))


def _answer(request: Request, conn: Connection, coll: Collection, result: EditResult, status: int) -> Response:
    """201/200 with the feature and its ETag; 202 for a proposal; 204 for a deletion."""
    url = absolute_url(request, f"{router.prefix}/collections/{coll.id}/items/{result.fid}")
    if result.status == "proposed":
        # Location names the proposed feature: QGIS reads the new feature's id there (and only there), so a proposed
        # creation is not reported as failed and sent again at the next save.
        return JSONResponse(
            {"status": "proposed", "collection": coll.id, "featureId": result.fid,
             "changeRequest": result.change_request_id,
             "detail": "Proposition enregistrée : elle sera visible après validation par un administrateur"},
            status_code=202, headers={"Location": url} if result.fid is not None else None)
    if result.status == "deleted":
        return Response(status_code=204)
    feature = ogc_items.fetch_feature(conn, coll, str(result.fid), CRS84)
    headers = {"ETag": version_etag(result.version), "Location": url}
    return JSONResponse(feature, status_code=status, media_type=GEOJSON, headers=headers)


@router.post("/collections/{collectionId}/items", status_code=201, summary="Créer une entité",
             responses={**_WRITE_RESPONSES, 202: {"description": "Proposition enregistrée (contributeur EPCI)"}},
             openapi_extra={**_body(_FEATURE, *FEATURE_TYPES), "parameters": [_CONTENT_CRS]})
def create_item(request: Request, collectionId: str, principal: WriterDep, reader: ReaderDep,  # noqa: N803
                registry: RegistryDep, settings: SettingsDep, raw: RawBody) -> Response:
    coll = _collection(request, collectionId, reader)
    body = json_body(request, raw, FEATURE_TYPES)
    with transaction(request) as conn:
        result = feature_writes.create_feature(conn, _context(request, principal, registry, settings), coll.id, body)
        return _answer(request, conn, coll, result, 201)


@router.put("/collections/{collectionId}/items/{featureId}", summary="Remplacer une entité (If-Match requis)",
            responses=_LOCK_RESPONSES,
            openapi_extra={**_body(_FEATURE, *FEATURE_TYPES), "parameters": [_IF_MATCH, _CONTENT_CRS]})
def replace_item(request: Request, collectionId: str, featureId: str, principal: WriterDep,  # noqa: N803
                 reader: ReaderDep, registry: RegistryDep, settings: SettingsDep, raw: RawBody) -> Response:
    coll = _collection(request, collectionId, reader)
    fid, version = _fid(featureId, coll), expected_version(request, principal)
    body = json_body(request, raw, FEATURE_TYPES)
    with transaction(request) as conn:
        result = feature_writes.replace_feature(conn, _context(request, principal, registry, settings), coll.id,
                                                fid, body, version)
        return _answer(request, conn, coll, result, 200)


@router.patch("/collections/{collectionId}/items/{featureId}", summary="Modifier une entité (merge patch)",
              responses=_LOCK_RESPONSES,
              openapi_extra={**_body(_MERGE_PATCH, *PATCH_TYPES), "parameters": [_IF_MATCH, _CONTENT_CRS]})
def patch_item(request: Request, collectionId: str, featureId: str, principal: WriterDep,  # noqa: N803
               reader: ReaderDep, registry: RegistryDep, settings: SettingsDep, raw: RawBody) -> Response:
    coll = _collection(request, collectionId, reader)
    fid, version = _fid(featureId, coll), expected_version(request, principal)
    body = json_body(request, raw, PATCH_TYPES)
    with transaction(request) as conn:
        result = feature_writes.patch_feature(conn, _context(request, principal, registry, settings), coll.id,
                                              fid, body, version)
        return _answer(request, conn, coll, result, 200)


@router.delete("/collections/{collectionId}/items/{featureId}", status_code=204,
               summary="Supprimer une entité (suppression logique, If-Match requis)", responses=_LOCK_RESPONSES,
               openapi_extra={"parameters": [_IF_MATCH]})
def delete_item(request: Request, collectionId: str, featureId: str, principal: WriterDep,  # noqa: N803
                reader: ReaderDep, registry: RegistryDep, settings: SettingsDep) -> Response:
    coll = _collection(request, collectionId, reader)
    fid, version = _fid(featureId, coll), expected_version(request, principal)
    with transaction(request) as conn:
        result = feature_writes.delete_feature(conn, _context(request, principal, registry, settings), coll.id, fid,
                                        version)
        return _answer(request, conn, coll, result, 204)


def _allow(coll: Collection, item: bool) -> Response:
    methods = ["GET", "HEAD", "OPTIONS"]
    if coll.layer.editable:
        methods += ["PUT", "PATCH", "DELETE"] if item else ["POST"]
    return Response(status_code=204, headers={"Allow": ", ".join(methods)})


@router.options("/collections/{collectionId}/items", include_in_schema=False)
def items_options(request: Request, collectionId: str, reader: ReaderDep) -> Response:  # noqa: N803
    return _allow(_collection(request, collectionId, reader), item=False)


@router.options("/collections/{collectionId}/items/{featureId}", include_in_schema=False)
def item_options(request: Request, collectionId: str, featureId: str,  # noqa: N803
                 reader: ReaderDep) -> Response:
    return _allow(_collection(request, collectionId, reader), item=True)
