"""Descriptions of the vector tilesets: OGC API – Tiles tileset lists and metadata, TileJSON 3.0, and the
WebMercatorQuad tile matrix set (from morecantile, the OGC 2D TMS definition).

A tileset is either one collection (``/collections/{id}/tiles``) or every collection the reader may
read (``/tiles``); both are described from the layer declarations and the cached extents.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from functools import cache

import morecantile
from sqlalchemy import Connection

from geo_service.services.publish import ogc_documents, vector_tiles
from geo_service.services.publish.crs import CRS84
from geo_service.services.publish.feature_reader import Collection
from geo_service.settings import TileSettings

WEB_MERCATOR = "http://www.opengis.net/def/crs/EPSG/0/3857"
REL_TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
REL_GEODATA = "http://www.opengis.net/def/rel/ogc/1.0/geodata"
TILEJSON = "application/vnd.mapbox.tilejson+json"
_DIMENSIONS = {"Point": 0, "MultiPoint": 0, "LineString": 1, "MultiLineString": 1, "Polygon": 2, "MultiPolygon": 2}


@cache
def tile_matrix_set() -> morecantile.TileMatrixSet:
    return morecantile.tms.get(vector_tiles.TMS_ID)


@dataclass(frozen=True)
class Tileset:
    """One tileset: what it holds and where it lives (``url`` is its metadata, tiles are below it)."""

    title: str
    description: str
    attribution: str
    collections: list[Collection]
    url: str
    bbox: tuple[float, float, float, float] | None

    @property
    def tile_template(self) -> str:
        return f"{self.url}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"


def _bbox(conn: Connection, collections: list[Collection]) -> tuple[float, float, float, float] | None:
    boxes = [ogc_documents.extent(conn, c).get("spatial", {}).get("bbox", [None])[0] for c in collections]
    boxes = [b for b in boxes if b]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def collection_tileset(conn: Connection, collection: Collection, base: str) -> Tileset:
    layer = collection.layer
    return Tileset(f"{layer.title} — tuiles vectorielles", layer.description.strip(), layer.attribution,
                   [collection], f"{base}/collections/{collection.id}/tiles/{vector_tiles.TMS_ID}",
                   _bbox(conn, [collection]))


def dataset_tileset(conn: Connection, collections: list[Collection], base: str, of_territory: str) -> Tileset:
    """Every public collection in one tileset; ``of_territory`` names the territory with « de » and its article."""
    attributions = list(dict.fromkeys(c.layer.attribution for c in collections))
    return Tileset(f"Couches publiques {of_territory} — tuiles vectorielles",
                   "Toutes les couches publiques, une couche de tuile par collection.", " ; ".join(attributions),
                   collections, f"{base}/tiles/{vector_tiles.TMS_ID}", _bbox(conn, collections))


def _tiling_scheme_link(base: str) -> dict:
    return ogc_documents.link(f"{base}/tileMatrixSets/{vector_tiles.TMS_ID}", REL_TILING_SCHEME, ogc_documents.JSON,
                        "Grille de tuilage WebMercatorQuad")


def tilesets_list(tileset: Tileset, list_url: str, base: str) -> dict:
    """``…/tiles``: the tilesets on offer (one per tile matrix set; WebMercatorQuad only)."""
    return {
        "links": [ogc_documents.link(list_url, "self", ogc_documents.JSON, "Jeux de tuiles")],
        "tilesets": [{
            "title": tileset.title, "dataType": "vector", "crs": WEB_MERCATOR,
            "tileMatrixSetURI": tile_matrix_set().uri,
            "links": [ogc_documents.link(tileset.url, "self", ogc_documents.JSON, "Description du jeu de tuiles"),
                      _tiling_scheme_link(base)],
        }],
    }


def _layer_entry(collection: Collection, settings: TileSettings) -> dict:
    layer = collection.layer
    properties = {p.name: ogc_documents.property_schema(p) for p in vector_tiles.tile_props(collection)}
    for prop in vector_tiles.tile_props(collection):
        if prop.type == "string_list":
            # Tiles cannot hold lists: they carry the JSON text of the list.
            properties[prop.name] = {"title": prop.title, "type": "string", "contentMediaType": "application/json"}
    if layer.style.thin_below_zoom is not None:
        title = f"Nombre d'entités représentées (zoom inférieur à {layer.style.thin_below_zoom})"
        properties[vector_tiles.COUNT_PROPERTY] = {"type": "integer", "title": title}
    return {
        "id": collection.id, "title": layer.title, "description": layer.description.strip(), "dataType": "vector",
        "geometryDimension": _DIMENSIONS[layer.geometry], "featureType": collection.id,
        "minTileMatrix": str(settings.min_zoom), "maxTileMatrix": str(settings.max_zoom),
        "propertiesSchema": {"type": "object", "properties": properties},
    }


def tileset_metadata(tileset: Tileset, base: str, settings: TileSettings) -> dict:
    """``…/tiles/WebMercatorQuad``: OGC 2D Tile Matrix Set tileset metadata with its tile template."""
    links = [
        ogc_documents.link(tileset.url, "self", ogc_documents.JSON, "Ce jeu de tuiles"),
        _tiling_scheme_link(base),
        {**ogc_documents.link(tileset.tile_template, "item", vector_tiles.MVT, "Tuiles Mapbox Vector Tile"),
         "templated": True},
        ogc_documents.link(f"{tileset.url}/tilejson.json", "describedby", TILEJSON, "Le même jeu en TileJSON 3.0"),
    ]
    if len(tileset.collections) == 1:
        collection = tileset.collections[0]
        links.append(ogc_documents.link(f"{base}/collections/{collection.id}", REL_GEODATA, ogc_documents.JSON,
                                  collection.layer.title))
    doc: dict = {
        "title": tileset.title, "description": tileset.description, "attribution": tileset.attribution,
        "dataType": "vector", "crs": WEB_MERCATOR, "tileMatrixSetURI": tile_matrix_set().uri, "links": links,
        "layers": [_layer_entry(c, settings) for c in tileset.collections],
    }
    if tileset.bbox is not None:
        w, s, e, n = tileset.bbox
        doc["boundingBox"] = {"lowerLeft": [w, s], "upperRight": [e, n], "crs": CRS84.uri}
    return doc


def tilejson(tileset: Tileset, settings: TileSettings) -> dict:
    """The TileJSON 3.0.0 document of a tileset, for MapLibre, Leaflet.VectorGrid, QGIS or tippecanoe tools."""
    bounds = list(tileset.bbox) if tileset.bbox else [-180.0, -85.0511, 180.0, 85.0511]
    width = max(bounds[2] - bounds[0], 1e-6)
    zoom = min(max(int(math.log2(360 / width)), settings.min_zoom), settings.max_zoom)
    layers = []
    for collection in tileset.collections:
        entry = _layer_entry(collection, settings)
        layers.append({"id": collection.id, "description": collection.layer.title,
                       "minzoom": settings.min_zoom, "maxzoom": settings.max_zoom,
                       "fields": {name: schema["title"] for name, schema in
                                  entry["propertiesSchema"]["properties"].items()}})
    return {
        "tilejson": "3.0.0", "name": tileset.title, "description": tileset.description,
        "attribution": html.escape(tileset.attribution), "scheme": "xyz",
        "tiles": [f"{tileset.url}/{{z}}/{{y}}/{{x}}"],
        "minzoom": settings.min_zoom, "maxzoom": settings.max_zoom,
        "bounds": bounds, "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, zoom],
        "vector_layers": layers,
    }


def tile_matrix_sets(base: str) -> dict:
    tms = tile_matrix_set()
    return {"tileMatrixSets": [{
        "id": tms.id, "title": tms.title, "uri": tms.uri, "crs": WEB_MERCATOR,
        "links": [ogc_documents.link(f"{base}/tileMatrixSets/{tms.id}", "self", ogc_documents.JSON,
                                     "Définition de la grille")],
    }]}


def tile_matrix_set_document(tms_id: str) -> dict:
    """The full definition of a tile matrix set (OGC 2D TMS 2.0 JSON)."""
    vector_tiles.check_tms(tms_id)
    return tile_matrix_set().model_dump(mode="json", exclude_none=True)

