"""``/ogc/api``: the OpenAPI 3.0 description of the OGC routes, as GIS clients read it.

FastAPI writes OpenAPI 3.1; the OGC ``oas30`` class and GDAL expect 3.0, so the few 3.1-only constructs
FastAPI emits (``anyOf`` with ``null``, ``const``) are rewritten. Each collection also gets its own
``/items`` path listing its queryables as query parameters: GDAL's OAPIF driver reads them there to send
simple attribute filters (``-where "statut = 'installee'"``) to the server instead of filtering locally.
"""

from __future__ import annotations

import copy

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from geo_service.services.publish.feature_reader import Collection
from geo_service.services.publish.ogc_documents import property_schema
from geo_service.settings import ApiSettings

PREFIX = "/ogc"
ITEMS_PATH = "/collections/{collectionId}/items"


def _to_oas30(node: object) -> object:
    """Rewrite a FastAPI (JSON Schema 2020-12) fragment into its OpenAPI 3.0 equivalent."""
    if isinstance(node, list):
        return [_to_oas30(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _to_oas30(v) for k, v in node.items()}
    variants = node.get("anyOf")
    if isinstance(variants, list) and {"type": "null"} in variants:
        rest = [v for v in variants if v != {"type": "null"}]
        node.pop("anyOf")
        node.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
        node["nullable"] = True
    if "const" in node:
        node["enum"] = [node.pop("const")]
    return node


def _query_schema(collection: Collection, name: str) -> dict:
    schema = property_schema(collection.props[name])
    if schema.get("type") == "array":
        # A list property is filtered one value at a time (?services=visio): the parameter is a string.
        schema = {"title": schema["title"], **schema["items"]}
    return schema


def ogc_openapi(app: FastAPI, api: ApiSettings, collections: list[Collection], server_url: str) -> dict:
    """The OpenAPI 3.0 document of the ``/ogc`` routes, with limits from the settings.

    Paths are relative to ``server_url`` (the landing page), as in the OGC examples: clients such as
    GDAL look up ``/collections/{id}/items`` there.
    """
    # Routes of included routers are not flat in app.routes: describe them all, keep the /ogc paths.
    doc = _to_oas30(get_openapi(title=f"{app.title} — OGC API – Features", version=app.version,
                                openapi_version="3.0.3", description=app.description, routes=app.routes))
    assert isinstance(doc, dict)
    doc["servers"] = [{"url": server_url, "description": "OGC API – Features"}]
    doc["paths"] = {path.removeprefix(PREFIX) or "/": item for path, item in doc["paths"].items()
                    if path == PREFIX or path.startswith(PREFIX + "/")}
    generic = doc["paths"].get(ITEMS_PATH, {}).get("get")
    if generic is None:
        return doc
    # The canonical OGC fragment: GDAL sizes its pages from components/parameters/limit.
    limit = {"name": "limit", "in": "query", "required": False, "style": "form", "explode": False,
             "description": "Nombre maximal d'entités de la page",
             "schema": {"type": "integer", "minimum": 1, "maximum": api.ogc_max_limit,
                        "default": api.ogc_default_limit}}
    doc.setdefault("components", {}).setdefault("parameters", {})["limit"] = limit
    for i, parameter in enumerate(generic.get("parameters", [])):
        if parameter["name"] == "limit":
            generic["parameters"][i] = {"$ref": "#/components/parameters/limit"}
        elif parameter["name"] == "offset":
            parameter["schema"] = {"type": "integer", "minimum": 0, "default": 0}
    for collection in collections:
        operation = copy.deepcopy(generic)
        operation["operationId"] = f"getItems_{collection.id}"
        operation["summary"] = f"Entités de « {collection.layer.title} »"
        operation["parameters"] = [p for p in operation["parameters"] if p.get("name") != "collectionId"] + [
            {"name": name, "in": "query", "required": False, "style": "form", "explode": False,
             "description": prop.title, "schema": _query_schema(collection, name)}
            for name, prop in collection.props.items()
        ]
        doc["paths"][f"/collections/{collection.id}/items"] = {"get": operation}
    return doc
