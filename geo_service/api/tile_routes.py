"""Vector tiles: OGC API – Tiles under ``/ogc`` (tileset lists, metadata, tiles, tile matrix sets, TileJSON)
and the short ``/tiles/{id}/{z}/{x}/{y}.mvt`` the map uses.

Handlers check the address, ask ``geo_service.services.publish.vector_tiles`` / ``tilesets`` and shape the response.
A tile's ETag is made of the layer change counters and the address, so a revalidation (304) builds no tile,
and a tile asked again by anyone while its layers are unchanged is taken from ``AppCaches.tiles``
(``services/tile_cache.py``) instead of being rendered again. The counters come from process memory while the
LISTEN/NOTIFY listener is live (``services/publish/layer_versions.py``): then neither costs a statement;
otherwise one primary-key lookup. An empty tile is ``204 No Content`` (OGC API – Tiles).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from geo_service.api.caching import cache_headers, etag_of, not_modified
from geo_service.api.deps import (
    ConnectionDep,
    EngineDep,
    ReaderDep,
    RegistryDep,
    SettingsDep,
    caches_of,
    layer_versions_of,
)
from geo_service.api.router_helpers import ogc_base
from geo_service.errors import InvalidParameter
from geo_service.layers import LayerRegistry
from geo_service.services.publish import layer_state, ogc_documents, tilesets, vector_tiles
from geo_service.services.publish.feature_reader import Collection, open_collection, readable_collections
from geo_service.services.publish.read_access import Reader
from geo_service.settings import Settings

if TYPE_CHECKING:  # types only: routers reach the database through deps.py and the services
    from sqlalchemy import Connection, Engine

router = APIRouter(tags=["Tuiles vectorielles"])
_MVT_RESPONSES = {200: {"content": {vector_tiles.MVT: {}}, "description": "Tuile Mapbox Vector Tile"},
                  204: {"description": "Tuile vide : aucune entité à cet endroit"}}
TMS_PATH = "{tileMatrixSetId}"
# Where rendered tiles are kept, not what they hold: left out of their ETag.
TILE_CACHE_SETTINGS = {"cache_mb", "cache_dir", "cache_dir_mb"}
TILE_PATH = "{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"


def _json(request: Request, settings: Settings, doc: dict, media_type: str = ogc_documents.JSON) -> Response:
    """A metadata document (JSON only), with an ETag of its content and 304 when it matches."""
    f = request.query_params.get("f")
    if f not in (None, "json"):
        raise InvalidParameter(f"Format « {f} » inconnu ; ce document existe en json", parameter="f")
    etag = etag_of(doc)
    headers = cache_headers(settings, etag, vary=None)
    if not_modified(request, etag, None):
        return Response(status_code=304, headers=headers)
    return JSONResponse(doc, media_type=media_type, headers=headers)


async def _tile(request: Request, settings: Settings, engine: Engine, collections: list[Collection],
                address: vector_tiles.TileAddress, reader: Reader) -> Response:
    # A revalidation or a tile already in memory is answered here, on the event loop: no thread, no statement.
    # Otherwise the handlers are async and the database work one trip to the thread pool: a sync handler with a
    # connection dependency costs three trips, a measurable share of a small tile (docs/benchmarks.md).
    known = _known_versions(request, collections, reader)
    validators = None if known is None else _validators(settings, known, address, reader)
    if validators is not None:
        etag, changed = validators
        headers = cache_headers(settings, etag, changed, vary=None)
        if not_modified(request, etag, changed):
            return Response(status_code=304, headers=headers)
        data = caches_of(request).tiles.in_memory(etag)
        if data is not None:
            return _tile_answer(data, headers)
    return await run_in_threadpool(_tile_response, request, settings, engine, collections, address, reader,
                                   validators)


def _known_versions(request: Request, collections: list[Collection], reader: Reader
                    ) -> dict[str, layer_state.LayerState] | None:
    """The layers' versions from memory while the listener is live (services/publish/layer_versions.py): then a
    revalidation or a tile already rendered costs no statement at all. Public tiles only: an editor must see
    the tile of the edit just saved, before its notification reaches this process."""
    versions = layer_versions_of(request) if reader.is_public else None
    return versions.current([c.id for c in collections]) if versions is not None else None


def _tile_response(request: Request, settings: Settings, engine: Engine, collections: list[Collection],
                   address: vector_tiles.TileAddress, reader: Reader,
                   validators: tuple[str, datetime | None] | None) -> Response:
    """``validators``: the ETag and Last-Modified made of the versions in memory (``_tile`` found no tile under them in
    memory), or ``None`` when they are not live or the reader is not the public."""
    caches = caches_of(request)
    if validators is not None:
        # Public, the versions live in memory, and the tile is not in memory under them: maybe in the cache's
        # folder, else drawn — with its layers' states read in its own statement, on the connection that draws
        # it, so that it is stored under the state it was drawn from (a read replica may not have replayed yet
        # what the primary notified). A single statement: no transaction around it.
        etag, changed = validators
        data = caches.tiles.get(etag)
        if data is not None:
            return _tile_answer(data, cache_headers(settings, etag, changed, vary=None))
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            data, states = vector_tiles.render_with_states(conn, collections, address, settings.tiles)
        etag, changed = _validators(settings, states, address, reader)
        caches.tiles.put(etag, data)
        headers = cache_headers(settings, etag, changed, vary=None)
        if not_modified(request, etag, changed):
            return Response(status_code=304, headers=headers)
        return _tile_answer(data, headers)
    # An editor's tile, or no live versions: the states first, so that a current copy (304) or a tile already
    # drawn costs no drawing.
    with engine.connect() as conn:
        etag, changed = _validators(settings, layer_state.states(conn, [c.id for c in collections]), address,
                                    reader)
        headers = cache_headers(settings, etag, changed, vary=None)
        if not_modified(request, etag, changed):
            return Response(status_code=304, headers=headers)
        # Same ETag, same bytes: a tile asked again while its layers are unchanged is not rendered again.
        data = caches.tiles.get(etag)
        if data is None:
            data = vector_tiles.render(conn, collections, address, settings.tiles)
            caches.tiles.put(etag, data)
    return _tile_answer(data, headers)


def _validators(settings: Settings, states: dict[str, layer_state.LayerState], address: vector_tiles.TileAddress,
                reader: Reader) -> tuple[str, datetime | None]:
    """The tile's ETag (its layers' versions, reader, address, tile settings) and Last-Modified."""
    changed = max((s.changed_at for s in states.values() if s.changed_at), default=None)
    etag = etag_of("mvt", vector_tiles.TILE_FORMAT, reader,
                   sorted((k, s.version, s.changed_at) for k, s in states.items()), address,
                   settings.tiles.model_dump(exclude=TILE_CACHE_SETTINGS))
    return etag, changed


def _tile_answer(data: bytes, headers: dict[str, str]) -> Response:
    if not data:
        return Response(status_code=204, headers=headers)
    return Response(data, media_type=vector_tiles.MVT, headers=headers)


# -- tile matrix sets -------------------------------------------------------------------------------------
@router.get("/ogc/tileMatrixSets", summary="Grilles de tuilage proposées")
def tile_matrix_sets(request: Request, settings: SettingsDep) -> Response:
    return _json(request, settings, tilesets.tile_matrix_sets(ogc_base(request)))


@router.get("/ogc/tileMatrixSets/{tileMatrixSetId}", summary="Définition d'une grille de tuilage")
def tile_matrix_set(request: Request, settings: SettingsDep, tileMatrixSetId: str) -> Response:  # noqa: N803
    return _json(request, settings, tilesets.tile_matrix_set_document(tileMatrixSetId))


# -- one collection ---------------------------------------------------------------------------------------
@router.get("/ogc/collections/{collectionId}/tiles", summary="Jeux de tuiles vectorielles d'une collection")
def collection_tilesets(request: Request, settings: SettingsDep, registry: RegistryDep, reader: ReaderDep,
                        conn: ConnectionDep, collectionId: str) -> Response:  # noqa: N803
    base = ogc_base(request)
    tileset = tilesets.collection_tileset(conn, open_collection(caches_of(request), collectionId, reader), base)
    return _json(request, settings, tilesets.tilesets_list(tileset, f"{base}/collections/{collectionId}/tiles", base))


@router.get(f"/ogc/collections/{{collectionId}}/tiles/{TMS_PATH}", summary="Description d'un jeu de tuiles")
def collection_tileset(request: Request, settings: SettingsDep, registry: RegistryDep, reader: ReaderDep,
                       conn: ConnectionDep, collectionId: str, tileMatrixSetId: str) -> Response:  # noqa: N803
    vector_tiles.check_tms(tileMatrixSetId)
    base = ogc_base(request)
    tileset = tilesets.collection_tileset(conn, open_collection(caches_of(request), collectionId, reader), base)
    return _json(request, settings, tilesets.tileset_metadata(tileset, base, settings.tiles))


@router.get(f"/ogc/collections/{{collectionId}}/tiles/{TMS_PATH}/tilejson.json", summary="TileJSON 3.0",
            responses={200: {"content": {tilesets.TILEJSON: {"schema": {"type": "object"}}}}})
def collection_tilejson(request: Request, settings: SettingsDep, registry: RegistryDep, reader: ReaderDep,
                        conn: ConnectionDep, collectionId: str, tileMatrixSetId: str) -> Response:  # noqa: N803
    vector_tiles.check_tms(tileMatrixSetId)
    collection = open_collection(caches_of(request), collectionId, reader)
    tileset = tilesets.collection_tileset(conn, collection, ogc_base(request))
    return _json(request, settings, tilesets.tilejson(tileset, settings.tiles), tilesets.TILEJSON)


@router.get(f"/ogc/collections/{{collectionId}}/tiles/{TILE_PATH}", summary="Une tuile vectorielle",
            response_class=Response, responses=_MVT_RESPONSES)
async def collection_tile(request: Request, settings: SettingsDep, registry: RegistryDep, reader: ReaderDep,
                          engine: EngineDep, collectionId: str, tileMatrixSetId: str,  # noqa: N803
                          tileMatrix: str, tileRow: str, tileCol: str) -> Response:  # noqa: N803
    collection = open_collection(caches_of(request), collectionId, reader)
    address = vector_tiles.parse_tile(tileMatrixSetId, tileMatrix, tileRow, tileCol, settings.tiles)
    return await _tile(request, settings, engine, [collection], address, reader)


# -- every public collection ------------------------------------------------------------------------------
def _dataset(request: Request, settings: Settings, registry: LayerRegistry, reader: Reader,
             conn: Connection) -> tilesets.Tileset:
    return tilesets.dataset_tileset(conn, readable_collections(caches_of(request), reader), ogc_base(request),
                                    settings.territory.of_name)


@router.get("/ogc/tiles", summary="Jeux de tuiles vectorielles de toutes les couches")
def dataset_tilesets(request: Request, settings: SettingsDep, registry: RegistryDep, reader: ReaderDep,
                     conn: ConnectionDep) -> Response:
    base = ogc_base(request)
    tileset = _dataset(request, settings, registry, reader, conn)
    return _json(request, settings, tilesets.tilesets_list(tileset, f"{base}/tiles", base))


@router.get(f"/ogc/tiles/{TMS_PATH}", summary="Description du jeu de tuiles de toutes les couches")
def dataset_tileset(request: Request, settings: SettingsDep, registry: RegistryDep, reader: ReaderDep,
                    conn: ConnectionDep, tileMatrixSetId: str) -> Response:  # noqa: N803
    vector_tiles.check_tms(tileMatrixSetId)
    tileset = _dataset(request, settings, registry, reader, conn)
    return _json(request, settings, tilesets.tileset_metadata(tileset, ogc_base(request), settings.tiles))


@router.get(f"/ogc/tiles/{TMS_PATH}/tilejson.json", summary="TileJSON 3.0 de toutes les couches",
            responses={200: {"content": {tilesets.TILEJSON: {"schema": {"type": "object"}}}}})
def dataset_tilejson(request: Request, settings: SettingsDep, registry: RegistryDep, reader: ReaderDep,
                     conn: ConnectionDep, tileMatrixSetId: str) -> Response:  # noqa: N803
    vector_tiles.check_tms(tileMatrixSetId)
    tileset = _dataset(request, settings, registry, reader, conn)
    return _json(request, settings, tilesets.tilejson(tileset, settings.tiles), tilesets.TILEJSON)


@router.get(f"/ogc/tiles/{TILE_PATH}", summary="Une tuile de toutes les couches (une couche MVT par collection)",
            response_class=Response, responses=_MVT_RESPONSES)
async def dataset_tile(request: Request, settings: SettingsDep, registry: RegistryDep, reader: ReaderDep,
                       engine: EngineDep, tileMatrixSetId: str, tileMatrix: str, tileRow: str,  # noqa: N803
                       tileCol: str) -> Response:  # noqa: N803
    address = vector_tiles.parse_tile(tileMatrixSetId, tileMatrix, tileRow, tileCol, settings.tiles)
    return await _tile(request, settings, engine, readable_collections(caches_of(request), reader), address, reader)


# -- the short form the map uses (x before y, as in most web maps) ----------------------------------------
@router.get("/tiles/{layerId}/{z}/{x}/{y}.mvt", summary="Une tuile vectorielle (forme courte z/x/y)",
            response_class=Response, responses=_MVT_RESPONSES)
async def short_tile(request: Request, settings: SettingsDep, registry: RegistryDep, reader: ReaderDep,
                     engine: EngineDep, layerId: str, z: str, x: str, y: str) -> Response:  # noqa: N803
    collection = open_collection(caches_of(request), layerId, reader)
    address = vector_tiles.parse_tile(vector_tiles.TMS_ID, z, y, x, settings.tiles, names=("z", "y", "x"))
    return await _tile(request, settings, engine, [collection], address, reader)
