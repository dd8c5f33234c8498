"""``/ogc``: OGC API – Features Parts 1 (Core), 2 (CRS) and 3 (Filtering, CQL2), in JSON and HTML.

Handlers parse, call ``geo_service.services.ogc`` and shape the response; the documents themselves, the
SQL and the checks of every parameter live in the services. HTTP manners are here: format negotiation
(``f=`` then ``Accept``), ETag / Last-Modified / 304, Cache-Control, ``Content-Crs``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from geo_service.api import docs
from geo_service.api.caching import cache_headers, etag_of, not_modified
from geo_service.api.deps import (
    ConnectionDep,
    ReaderDep,
    RegistryDep,
    SettingsDep,
    caches_of,
    engine_of,
    get_reader,
    in_hot_path,
    read_only,
    settings_of,
)
from geo_service.api.ogc_openapi import ogc_openapi
from geo_service.api.router_helpers import OGC_PREFIX, feature_etag, ogc_base, templates_for
from geo_service.api.streams import started
from geo_service.api.urls import absolute_url, request_url
from geo_service.errors import InvalidParameter
from geo_service.services.publish import layer_state, ogc_documents, ogc_items
from geo_service.services.publish.cql2_parser import FilterLimits
from geo_service.services.publish.crs import CRS84, parse_crs
from geo_service.services.publish.feature_reader import Collection, open_collection, readable_collections
from geo_service.settings import Settings

if TYPE_CHECKING:  # types only: routers reach the database through deps.py and the services
    from sqlalchemy import Engine

router = APIRouter(prefix=OGC_PREFIX, tags=["OGC API – Features"])
FORMATS = ("json", "html")
_JSON_TYPES = ("application/json", "application/geo+json", "application/schema+json")


class ItemsParams(BaseModel):
    """The standard query parameters of ``/items`` (documented in OpenAPI; checked by the items service)."""

    bbox: str | None = Field(None, description="minx,miny,maxx,maxy dans l'ordre des axes de bbox-crs")
    bbox_crs: str | None = Field(None, alias="bbox-crs", description="CRS de bbox (CRS84 par défaut)")
    crs: str | None = Field(None, description="CRS des géométries renvoyées (CRS84 par défaut)")
    limit: int | None = Field(None, description="Nombre maximal d'entités de la page")
    offset: int | None = Field(None, description="Rang de la première entité (pagination)")
    datetime: str | None = Field(None, description="Instant ou intervalle ISO 8601 (a/b, ../b, a/..)")
    filter: str | None = Field(None, description="Expression CQL2")
    filter_lang: str | None = Field(None, alias="filter-lang", description="cql2-text (défaut) ou cql2-json")
    filter_crs: str | None = Field(None, alias="filter-crs", description="CRS des géométries du filtre")
    sortby: str | None = Field(None, description="+propriété ou -propriété, séparées par des virgules")
    properties: str | None = Field(None, description="Propriétés à renvoyer, séparées par des virgules")
    skipGeometry: str | None = Field(None, description="true pour omettre les géométries")  # noqa: N815 — OGC name
    f: str | None = Field(None, description="json ou html")


def _query_parameters(model: type[BaseModel]) -> list[dict]:
    """The OpenAPI parameters of a model of optional query parameters, as FastAPI writes them for
    ``Annotated[model, Query()]``."""
    schemas = model.model_json_schema(by_alias=True)["properties"]
    parameters = []
    for name, field in model.model_fields.items():
        alias = field.alias or name
        schema = {k: v for k, v in schemas[alias].items() if not (k == "default" and v is None)}
        parameters.append({"name": alias, "in": "query", "required": False, "schema": schema,
                           "description": field.description})
    return parameters


# `ItemsParams` is given to OpenAPI, not to FastAPI's parsing: a parameter model parsed on every request cost
# more than the SQL of a page. Of its fields only limit and offset have a type to check; the rest is text.
_ITEMS_PARAMETERS = _query_parameters(ItemsParams)
_TYPED_PARAMETERS = ("limit", "offset")


def _check_typed_parameters(request: Request) -> None:
    """What FastAPI checked when it parsed ``ItemsParams``: limit and offset read as integers (the last value of
    a repeated one), else the same 400 through the ``RequestValidationError`` handler."""
    raw = {k: request.query_params[k] for k in _TYPED_PARAMETERS if k in request.query_params}
    if raw:
        try:
            ItemsParams.model_validate(raw)
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("query", *e["loc"])} for e in exc.errors()]) from None


async def get_collection(request: Request, collectionId: str) -> Collection:  # noqa: N803
    # async: no I/O here, and a sync dependency would cost a trip to the thread pool on every request. One
    # dependency, not three (registry, reader, principal): FastAPI's resolution of each costs more than its work.
    return open_collection(caches_of(request), collectionId, await get_reader(request))


CollectionDep = Annotated[Collection, Depends(get_collection)]


# -- HTTP manners ------------------------------------------------------------------------------------------
def wants_html(request: Request) -> bool:
    """``f=html|json`` decides; otherwise HTML only when ``Accept`` prefers text/html over JSON."""
    f = request.query_params.get("f")
    if f is not None:
        if f not in FORMATS:
            raise InvalidParameter(f"Format « {f} » inconnu ; formats : {', '.join(FORMATS)}", parameter="f")
        return f == "html"
    best = {"html": 0.0, "json": 0.0}
    for part in request.headers.get("accept", "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = next((float(p[2:]) for p in params if p.startswith("q=") and _is_number(p[2:])), 1.0)
        kind = "html" if media in ("text/html", "application/xhtml+xml") else \
            "json" if media in _JSON_TYPES or media.endswith("+json") else None
        if kind:
            best[kind] = max(best[kind], q)
    return best["html"] > best["json"]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def document(request: Request, settings: Settings, doc: dict, *, media_type: str, template: str,
             context: dict | None = None, headers: dict | None = None, etag: str | None = None) -> Response:
    """A JSON document, or its HTML page, with an ETag (made of its content unless given) and a 304 when it matches."""
    html = wants_html(request)
    etag = etag or etag_of(html, doc)
    cache = {**cache_headers(settings, etag), **(headers or {})}
    if not_modified(request, etag, None):
        return Response(status_code=304, headers=cache)
    if not html:
        return JSONResponse(doc, media_type=media_type, headers=cache)
    page = {"doc": doc, "base": ogc_base(request), "static": request.scope.get("root_path", "").rstrip("/") + "/static",
            **(context or {})}
    return templates_for(settings.web_dir).TemplateResponse(request, template, page, headers=cache)


# -- handlers ----------------------------------------------------------------------------------------------
@router.get("", name="ogc_landing", summary="Page d'accueil OGC API – Features")
def landing(request: Request, settings: SettingsDep) -> Response:
    base = ogc_base(request)
    doc = ogc_documents.landing(base, f"{settings.operator.name} — OGC API – Features ({settings.territory.name})",
                          request.app.description, absolute_url(request, docs.DOCS_PATH))
    return document(request, settings, doc, media_type=ogc_documents.JSON, template="ogc/landing.html")


@router.get("/api", summary="Description OpenAPI 3.0 de l'API OGC",
            responses={200: {"content": {ogc_documents.OPENAPI_JSON: {"schema": {"type": "object"}}}}})
def api_description(request: Request, settings: SettingsDep, registry: RegistryDep, reader: ReaderDep) -> Response:
    doc = ogc_openapi(request.app, settings.api, readable_collections(caches_of(request), reader), ogc_base(request))
    return JSONResponse(doc, media_type=ogc_documents.OPENAPI_JSON)


@router.get("/conformance", summary="Classes de conformité")
def conformance(request: Request, settings: SettingsDep) -> Response:
    return document(request, settings, ogc_documents.conformance(ogc_base(request)), media_type=ogc_documents.JSON,
                    template="ogc/conformance.html")


@router.get("/collections", summary="Collections (couches publiques)")
def collections(request: Request, settings: SettingsDep, registry: RegistryDep, reader: ReaderDep,
                conn: ConnectionDep) -> Response:
    wants_html(request)  # a bad f= is refused before any query
    doc = ogc_documents.collections_document(conn, readable_collections(caches_of(request), reader), ogc_base(request))
    return document(request, settings, doc, media_type=ogc_documents.JSON, template="ogc/collections.html")


@router.get("/collections/{collectionId}", summary="Description d'une collection")
def collection(request: Request, settings: SettingsDep, coll: CollectionDep, conn: ConnectionDep) -> Response:
    wants_html(request)  # a bad f= is refused before any query
    doc = ogc_documents.collection_document(conn, coll, ogc_base(request))
    return document(request, settings, doc, media_type=ogc_documents.JSON, template="ogc/collection.html",
                    context={"queryables": ogc_documents.queryables(coll, ogc_base(request))})


@router.get("/collections/{collectionId}/queryables", summary="Propriétés interrogeables (JSON Schema)",
            responses={200: {"content": {ogc_documents.SCHEMA_JSON: {"schema": {"type": "object"}},
                                         ogc_documents.HTML: {}}}})
def queryables(request: Request, settings: SettingsDep, coll: CollectionDep) -> Response:
    doc = ogc_documents.queryables(coll, ogc_base(request))
    return document(request, settings, doc, media_type=ogc_documents.SCHEMA_JSON, template="ogc/queryables.html",
                    context={"collection": coll})


@router.get("/collections/{collectionId}/items", summary="Entités d'une collection",
            responses={200: {"content": {ogc_documents.GEOJSON: {}, ogc_documents.HTML: {}}}},
            openapi_extra={"parameters": _ITEMS_PARAMETERS})
async def items(request: Request, coll: CollectionDep) -> Response:
    # The standard parameters are documented in OpenAPI (`ItemsParams`); the service reads the raw query
    # string, because property filters (?statut=…) are named by each collection's declaration.
    return await in_hot_path(request, _items_response, request, coll)


def _items_response(request: Request, coll: Collection) -> Response:
    _check_typed_parameters(request)
    settings: Settings = settings_of(request)
    html = wants_html(request)
    pairs = request.query_params.multi_items()
    q = ogc_items.parse_items_query(coll, pairs, default_limit=settings.api.ogc_default_limit,
                                max_limit=settings.api.ogc_max_limit,
                                filter_limits=FilterLimits.from_settings(settings.api))
    if html:
        # Browsers draw CRS84 (Leaflet); the HTML page therefore ignores crs.
        q = replace(q, crs=CRS84)
    engine: Engine = engine_of(request)
    with engine.connect() as conn:
        if "if-none-match" in request.headers or "if-modified-since" in request.headers or ogc_items.is_streamed(q):
            # The layer's change counter (not count/max over the table): a 304 is decided before reading more.
            state = layer_state.state(conn, coll.id)
            headers = _items_headers(settings, coll, q, state, html, pairs)
            if not_modified(request, headers["ETag"], state.changed_at):
                return Response(status_code=304, headers=headers)
            if ogc_items.is_streamed(q):
                matched = ogc_items.count_matched(conn, coll, q)
                members = _items_members(request, coll, q, matched, html)
                return StreamingResponse(started(_stream(engine, coll, q, members)), media_type=ogc_documents.GEOJSON,
                                         headers=headers)
            page = ogc_items.read_page(conn, coll, q, with_state=False)
        else:
            # No conditional header, so no 304 to decide first: the layer's state comes in the page's statement.
            # A single statement (two when a filter's kept count is out of date): autocommit spares the BEGIN
            # and ROLLBACK round trips around it.
            conn.execution_options(isolation_level="AUTOCOMMIT")
            # A page of at most one batch: one statement on this connection, no second connection or streaming.
            page = ogc_items.read_page(conn, coll, q, with_state=True)
            assert page.state is not None
            headers = _items_headers(settings, coll, q, page.state, html, pairs)
    members = _items_members(request, coll, q, page.matched, html)
    if html:
        features = json.loads("[" + page.features + "]")
        doc = {**members, "features": features, "numberReturned": len(features)}
        return document(request, settings, doc, media_type=ogc_documents.GEOJSON, template="ogc/items.html",
                        context={"collection": coll, "query": q}, headers=headers)
    return Response(ogc_items.feature_collection(page, members), media_type=ogc_documents.GEOJSON, headers=headers)


def _items_headers(settings: Settings, coll: Collection, q: ogc_items.ItemsQuery, state: layer_state.LayerState,
                   html: bool, pairs: list[tuple[str, str]]) -> dict[str, str]:
    etag = etag_of(coll.id, state.version, state.changed_at, coll.reader, html, sorted(pairs))
    return {**cache_headers(settings, etag, state.changed_at), "Content-Crs": f"<{q.crs.uri}>"}


def _items_members(request: Request, coll: Collection, q: ogc_items.ItemsQuery, matched: int, html: bool) -> dict:
    return {"numberMatched": matched, "timeStamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "links": _items_links(request, coll, q, matched, html)}


def _stream(engine: Engine, coll: Collection, q: ogc_items.ItemsQuery, members: dict) -> Iterator[str]:
    # Its own connection: it lives as long as the response streams, not as long as the handler.
    with engine.connect() as conn:
        yield from ogc_items.stream_feature_collection(conn, coll, q, members)


def _items_links(request: Request, coll: Collection, q: ogc_items.ItemsQuery, matched: int, html: bool) -> list[dict]:
    url = request_url(request)
    here, other = (ogc_documents.HTML, ogc_documents.GEOJSON) if html else (ogc_documents.GEOJSON, ogc_documents.HTML)
    links = [ogc_documents.link(str(url), "self", here, "Cette page"),
             ogc_documents.link(str(url.include_query_params(f="json" if html else "html")), "alternate", other,
                          "Cette page dans l'autre format"),
             ogc_documents.link(f"{ogc_base(request)}/collections/{coll.id}", "collection", ogc_documents.JSON,
                                coll.layer.title)]
    if q.offset + q.limit < matched:
        links.append(ogc_documents.link(str(url.include_query_params(offset=q.offset + q.limit)), "next", here,
                                  "Page suivante"))
    if q.offset > 0:
        links.append(ogc_documents.link(str(url.include_query_params(offset=max(0, q.offset - q.limit))), "prev", here,
                                  "Page précédente"))
    return links


@router.get("/collections/{collectionId}/items/{featureId}", summary="Une entité",
            responses={200: {"content": {ogc_documents.GEOJSON: {}, ogc_documents.HTML: {}}}})
async def item(request: Request, coll: CollectionDep, featureId: str,  # noqa: N803
               crs: str | None = Query(None, description="CRS de la géométrie renvoyée")) -> Response:
    return await in_hot_path(request, _item_response, request, coll, featureId, crs)


def _item_response(request: Request, coll: Collection, featureId: str, crs: str | None) -> Response:  # noqa: N803
    settings: Settings = settings_of(request)
    html = wants_html(request)
    target = CRS84 if html else parse_crs(crs, "crs")
    # One statement on the read engine (a primary-key lookup): the feature and the version its ETag names.
    text, version = read_only(request, lambda conn: ogc_items.read_feature_text(conn, coll, featureId, target))
    url = f"{ogc_base(request)}/collections/{coll.id}"
    links = [
        ogc_documents.link(f"{url}/items/{featureId}", "self", ogc_documents.GEOJSON, "Cette entité"),
        ogc_documents.link(f"{url}/items/{featureId}?f=html", "alternate", ogc_documents.HTML, "Cette entité (HTML)"),
        ogc_documents.link(url, "collection", ogc_documents.JSON, coll.layer.title),
    ]
    # Part 4 (api/ogc_write.py): an editable feature's ETag names its version, sent back in If-Match to change it.
    etag = None if version is None else \
        feature_etag(version, html, target != CRS84 and target.uri, not coll.reader.is_public)
    headers = {"Content-Crs": f"<{target.uri}>"}
    if etag is not None and not html:
        # PostGIS's GeoJSON passed through with the links added, as the pages pass theirs (no parsing and
        # writing again of every property: a third of the CPU of a feature).
        headers = {**cache_headers(settings, etag), **headers}
        if not_modified(request, etag, None):
            return Response(status_code=304, headers=headers)
        body = text[:text.rindex("}")] + ', "links" : ' + json.dumps(links, ensure_ascii=False) + "}"
        return Response(body, media_type=ogc_documents.GEOJSON, headers=headers)
    feature = {**json.loads(text), "links": links}
    return document(request, settings, feature, media_type=ogc_documents.GEOJSON, template="ogc/item.html",
                    context={"collection": coll}, headers=headers, etag=etag)
