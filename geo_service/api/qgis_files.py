"""Files for desktop GIS: each collection's map style (SLD 1.0/1.1, QML) and the QGIS project of the service.

The styles are an OGC API – Styles-like list under the collection (``…/styles``, then ``…/styles/carte?f=``); the
project is ``/qgis/lot-numerique.qgz`` (reading) and ``/qgis/lot-numerique-edition.qgz`` (layers naming an
authentication configuration the user fills with a token). Documents come from ``services/qgis``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from geo_service.api.caching import cache_headers, etag_of, not_modified
from geo_service.api.deps import ConnectionDep, ReaderDep, RegistryDep, SettingsDep, caches_of
from geo_service.api.router_helpers import OGC_PREFIX, ogc_base
from geo_service.api.urls import site_url
from geo_service.errors import InvalidParameter, NotFound
from geo_service.services.publish import layer_state
from geo_service.services.publish.feature_reader import open_collection
from geo_service.services.qgis import layer_styles, qgis_project

router = APIRouter(tags=["QGIS et styles"])
# f= of a style: its media type and how it is made.
STYLE_FORMATS = {
    "sld10": ("application/vnd.ogc.sld+xml;version=1.0", "Style SLD 1.0",
              lambda layer: layer_styles.sld(layer, "1.0.0")),
    "sld11": ("application/vnd.ogc.sld+xml;version=1.1", "Style SLD 1.1 (Symbology Encoding)",
              lambda layer: layer_styles.sld(layer, "1.1.0")),
    "qml": ("application/vnd.qgis.qml+xml", "Style QGIS (QML)", layer_styles.qml),
}
REL_STYLESHEET = "stylesheet"
QGZ = "application/vnd.qgis.qgz"


def _styles_url(request: Request, collection_id: str) -> str:
    return f"{ogc_base(request)}/collections/{collection_id}/styles"


@router.get(f"{OGC_PREFIX}/collections/{{collectionId}}/styles", summary="Styles d'une collection")
def styles(request: Request, collectionId: str, reader: ReaderDep,  # noqa: N803 — OGC name
           settings: SettingsDep) -> Response:
    collection = open_collection(caches_of(request), collectionId, reader)
    url = f"{_styles_url(request, collection.id)}/{layer_styles.STYLE_NAME}"
    links = [{"href": f"{url}?f={f}", "rel": REL_STYLESHEET, "type": media, "title": title}
             for f, (media, title, _) in STYLE_FORMATS.items()]
    doc = {"default": layer_styles.STYLE_NAME,
           "styles": [{"id": layer_styles.STYLE_NAME, "title": layer_styles.STYLE_TITLE, "links": links}],
           "links": [{"href": _styles_url(request, collection.id), "rel": "self", "type": "application/json",
                      "title": "Styles de la collection"}]}
    etag = etag_of("styles", doc)
    headers = cache_headers(settings, etag, vary=None)
    if not_modified(request, etag, None):
        return Response(status_code=304, headers=headers)
    return JSONResponse(doc, headers=headers)


@router.get(f"{OGC_PREFIX}/collections/{{collectionId}}/styles/{{styleId}}",
            summary="Un style d'une collection (SLD 1.0, SLD 1.1 ou QML)",
            responses={200: {"content": {media: {} for media, _, _ in STYLE_FORMATS.values()}}})
def style(request: Request, collectionId: str, styleId: str, reader: ReaderDep,  # noqa: N803 — OGC names
          settings: SettingsDep,
          f: Annotated[str, Query(description="sld10 (défaut), sld11 ou qml")] = "sld10") -> Response:
    collection = open_collection(caches_of(request), collectionId, reader)
    if styleId != layer_styles.STYLE_NAME:
        raise NotFound(f"Aucun style « {styleId} » ; style proposé : {layer_styles.STYLE_NAME}")
    if f not in STYLE_FORMATS:
        raise InvalidParameter(f"Format « {f} » inconnu ; formats : {', '.join(STYLE_FORMATS)}", parameter="f")
    media, _, make = STYLE_FORMATS[f]
    body = make(collection.layer)
    etag = etag_of("style", collection.id, f, body.decode())
    headers = cache_headers(settings, etag, vary=None)
    if not_modified(request, etag, None):
        return Response(status_code=304, headers=headers)
    extension = "qml" if f == "qml" else "sld"
    headers["Content-Disposition"] = f'inline; filename="{collection.id}.{extension}"'
    return Response(body, media_type=media, headers=headers)


def _project(request: Request, conn: ConnectionDep, registry: RegistryDep, settings: SettingsDep,
             editing: bool, filename: str) -> Response:
    options = qgis_project.ProjectOptions(base_url=site_url(request), title=settings.operator.name,
                                          editing=editing)
    # The project changes with the code, the address and the boundaries (its extent).
    states = layer_state.states(conn, [layer.id for layer in registry if layer.kind == "base"])
    etag = etag_of("qgis", filename, options, sorted((k, str(v)) for k, v in states.items()),
                   qgis_project.QGIS_VERSION)
    headers = {**cache_headers(settings, etag, vary=None),
               "Content-Disposition": f'attachment; filename="{filename}"'}
    if not_modified(request, etag, None):
        return Response(status_code=304, headers=headers)
    return Response(qgis_project.project_archive(conn, registry, options), media_type=QGZ, headers=headers)


@router.get(f"/qgis/{qgis_project.PROJECT_FILE}", summary="Projet QGIS des couches publiques (lecture)",
            responses={200: {"content": {QGZ: {}}}})
def project(request: Request, conn: ConnectionDep, registry: RegistryDep, settings: SettingsDep) -> Response:
    return _project(request, conn, registry, settings, False, qgis_project.PROJECT_FILE)


@router.get(f"/qgis/{qgis_project.EDITING_PROJECT_FILE}",
            summary="Projet QGIS pour modifier les couches (authentification à créer dans QGIS)",
            responses={200: {"content": {QGZ: {}}}})
def editing_project(request: Request, conn: ConnectionDep, registry: RegistryDep, settings: SettingsDep) -> Response:
    return _project(request, conn, registry, settings, True, qgis_project.EDITING_PROJECT_FILE)
