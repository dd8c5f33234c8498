"""``/admin/edit``: the web editor — a map to place and move features and a form generated from the declaration.

The page only renders the form and the layer's rules; the browser (``web/static/js/editor.js``) lists features
through ``/admin/api/features/{layer}`` and writes through the OGC API Part 4 (session + ``X-CSRF-Token``,
``If-Match``), so the web editor obeys exactly the rights and checks of QGIS and scripts.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from geo_service.api.deps import PrincipalDep, ReaderDep, RegistryDep, SettingsDep, connection
from geo_service.api.router_helpers import error_page, login_redirect, page
from geo_service.errors import NotFound, ServiceError
from geo_service.layers import FieldDecl, LayerDecl
from geo_service.services.editing import conventions, feature_list, rights
from geo_service.services.publish.crs import CRS84, parse_bbox

router = APIRouter(prefix="/admin", include_in_schema=False)


def field_spec(field: FieldDecl) -> dict:
    """What the browser needs to build and read one input (the template renders the same information)."""
    return {"name": field.name, "type": field.type, "label": field.label, "required": field.required,
            "codes": [{"value": c.value, "label": c.label} for c in field.codes or []],
            "unit": field.unit, "minimum": field.minimum, "maximum": field.maximum, "max_length": field.max_length,
            "description": field.description}


def _layer(registry, layer_id: str) -> LayerDecl:
    if layer_id not in registry or not registry.get(layer_id).editable:
        raise NotFound(f"Aucune couche modifiable « {layer_id} »")
    return registry.get(layer_id)


@router.get("/edit", response_class=HTMLResponse)
def editor_index(request: Request, settings: SettingsDep, principal: PrincipalDep, registry: RegistryDep) -> Response:
    if not principal.authenticated:
        return login_redirect(request)
    with connection(request) as conn:
        grants = rights.editable_layers(conn, principal, list(registry))
    return page(request, settings, principal, "admin/edit_index.html", {"grants": grants})


@router.get("/edit/{layer_id}", response_class=HTMLResponse)
def editor(request: Request, layer_id: str, settings: SettingsDep, principal: PrincipalDep, reader: ReaderDep,
           registry: RegistryDep) -> Response:
    if not principal.authenticated:
        return login_redirect(request)
    try:
        layer = _layer(registry, layer_id)
        with connection(request) as conn:
            grant = rights.check_layer(conn, principal, layer, "create")
            epci = rights.epci_name(conn, principal.epci_siren) if principal.epci_siren else None
            epcis = conventions.epci_choices(conn)
    except ServiceError as exc:
        return error_page(request, settings, principal, exc)
    fields = layer.fields if reader.sees_restricted(layer) else layer.public_fields()
    config = {"layer": layer.id, "title": layer.title, "geometry": layer.geometry, "labelField": layer.label_field,
              "fields": [field_spec(f) for f in fields], "moderated": grant.moderated,
              "epci": principal.epci_siren, "tolerance": settings.editing.perimeter_tolerance_m}
    return page(request, settings, principal, "admin/editor.html",
                {"layer": layer, "fields": fields, "config": config, "grant": grant, "epci": epci, "epcis": epcis})


@router.get("/api/features/{layer_id}", summary="Entités pour l'éditeur (recherche, filtres)")
def features(request: Request, layer_id: str, principal: PrincipalDep, reader: ReaderDep, registry: RegistryDep,
             q: str | None = None, commune: str | None = None, epci: str | None = None, state: str = "published",
             bbox: Annotated[str | None, Query(description="minLon,minLat,maxLon,maxLat")] = None,
             limit: int = 500) -> JSONResponse:
    rights.require_account(principal)
    layer = _layer(registry, layer_id)
    if not reader.can_read(layer):
        raise NotFound(f"Aucune couche modifiable « {layer_id} »")
    box = parse_bbox(bbox, CRS84).coords if bbox else None
    filters = feature_list.Filters(q=q or None, commune=commune or None, epci=epci or None, state=state, bbox=box,
                              limit=limit)
    with connection(request) as conn:
        return JSONResponse(feature_list.search(conn, layer, principal, reader, filters),
                            media_type="application/geo+json")
