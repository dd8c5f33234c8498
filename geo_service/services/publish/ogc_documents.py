"""The OGC API documents that describe the service: landing page, conformance, collections, queryables.

Collection metadata comes from the layer declarations (title, description, licence, attribution, fields)
and from the table itself (spatial and temporal extent), so a new layer file appears here unchanged.
"""

from __future__ import annotations

import math
from datetime import date

from sqlalchemy import Connection, func, null, select

from geo_service.services.publish import layer_state
from geo_service.services.publish.crs import STORAGE_CRS, SUPPORTED
from geo_service.services.publish.feature_reader import Collection, Prop
from geo_service.services.publish.layer_state import LayerState

GEOJSON = "application/geo+json"
JSON = "application/json"
HTML = "text/html"
SCHEMA_JSON = "application/schema+json"
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"
REL_QUERYABLES = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
REL_TILESETS_VECTOR = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
REL_TILING_SCHEMES = "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"
REL_STYLES = "http://www.opengis.net/def/rel/ogc/1.0/styles"
SLD = "application/vnd.ogc.sld+xml;version=1.0"
# The map's style of each collection (api/qgis_files.py, services/qgis/layer_styles.py: STYLE_NAME).
STYLE_PATH = "styles/carte"

# Only the classes the tests exercise (tests/test_ogc_*.py); each line names what it commits us to.
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    # Part 4 (tests/test_edit_api.py, test_edit_rights.py): POST/PUT/DELETE, PATCH (merge patch), on features.
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
    # OGC API – Tiles Part 1 (tests/test_tiles.py): vector tiles per collection and for all of them.
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/dataset-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
]
# Licence texts of the declarations and where their terms are published.
LICENCE_URLS = {
    "Licence Ouverte": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
    "ODbL": "https://opendatacommons.org/licenses/odbl/1-0/",
}
_GEOMETRY_FORMATS = {
    "Point": "geometry-point", "MultiPoint": "geometry-multipoint", "LineString": "geometry-linestring",
    "MultiLineString": "geometry-multilinestring", "Polygon": "geometry-polygon",
    "MultiPolygon": "geometry-multipolygon",
}


def link(href: str, rel: str, type_: str, title: str) -> dict:
    return {"href": href, "rel": rel, "type": type_, "title": title}


def landing(base: str, title: str, description: str, docs_url: str) -> dict:
    return {
        "title": title,
        "description": description,
        "links": [
            link(base, "self", JSON, "Cette page (JSON)"),
            link(f"{base}?f=html", "alternate", HTML, "Cette page (HTML)"),
            link(f"{base}/api", "service-desc", OPENAPI_JSON, "Description OpenAPI 3.0 de l'API"),
            link(docs_url, "service-doc", HTML, "Documentation interactive de l'API"),
            link(f"{base}/conformance", "conformance", JSON, "Classes de conformité"),
            link(f"{base}/collections", "data", JSON, "Collections (couches)"),
            link(f"{base}/tiles", REL_TILESETS_VECTOR, JSON, "Tuiles vectorielles de toutes les couches publiques"),
            link(f"{base}/tileMatrixSets", REL_TILING_SCHEMES, JSON, "Grilles de tuilage"),
        ],
    }


def conformance(base: str) -> dict:
    return {"links": [link(f"{base}/conformance", "self", JSON, "Classes de conformité"),
                      link(f"{base}/conformance?f=html", "alternate", HTML, "Classes de conformité (HTML)")],
            "conformsTo": CONFORMANCE}


def licence_url(licence: str) -> str | None:
    return next((url for name, url in LICENCE_URLS.items() if licence.startswith(name)), None)


def extent(conn: Connection, collection: Collection, state: LayerState | None = None) -> dict:
    """Spatial extent (CRS84) and, for a layer with a date field, temporal extent of the visible rows."""
    state = state if state is not None else layer_state.state(conn, collection.id)
    key = (collection.id, collection.reader.published_only, collection.layer.date_field)
    # A whole-table scan (ST_Extent): computed once per layer version (AppCaches.extents), not on every request.
    return collection.caches.extents.get(key, state, lambda: _compute_extent(conn, collection))


def _compute_extent(conn: Connection, collection: Collection) -> dict:
    box = func.ST_Extent(collection.geom)
    prop = collection.date_prop
    first, last = (func.min(prop.column), func.max(prop.column)) if prop else (null(), null())
    row = conn.execute(select(func.ST_XMin(box), func.ST_YMin(box), func.ST_XMax(box), func.ST_YMax(box),
                              first, last).where(collection.visible_rows())).one()
    result: dict = {}
    if row[0] is not None:
        # Rounded outwards: the box must still contain every feature (tilesets and clients rely on it).
        x0, y0, x1, y1 = (v * 1e6 for v in row[:4])
        box = [math.floor(x0) / 1e6, math.floor(y0) / 1e6, math.ceil(x1) / 1e6, math.ceil(y1) / 1e6]
        result["spatial"] = {"bbox": [box], "crs": STORAGE_CRS.uri}
    if prop is not None:
        result["temporal"] = {"interval": [[_iso(row[4]), _iso(row[5])]],
                              "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}
    return result


def _iso(value: date | None) -> str | None:
    if value is None:
        return None
    text = value.isoformat()
    return text if "T" in text else f"{text}T00:00:00Z"


def collection_document(conn: Connection, collection: Collection, base: str,
                        state: LayerState | None = None) -> dict:
    """``/collections/{id}``: the layer declaration and the table's extent, with Part 2 CRS lists."""
    layer, url = collection.layer, f"{base}/collections/{collection.id}"
    links = [
        link(url, "self", JSON, "Cette collection (JSON)"),
        link(f"{url}?f=html", "alternate", HTML, "Cette collection (HTML)"),
        link(f"{url}/items", "items", GEOJSON, "Entités (GeoJSON)"),
        link(f"{url}/items?f=html", "items", HTML, "Entités (HTML)"),
        link(f"{url}/queryables", REL_QUERYABLES, SCHEMA_JSON, "Propriétés interrogeables"),
        link(f"{url}/tiles", REL_TILESETS_VECTOR, JSON, "Tuiles vectorielles"),
        link(f"{url}/styles", REL_STYLES, JSON, "Styles (SLD, QML)"),
        link(f"{url}/{STYLE_PATH}?f=sld10", "describedby", SLD, "Style de la carte (SLD 1.0)"),
    ]
    href = licence_url(layer.licence)
    if href:
        links.append(link(href, "license", HTML, layer.licence))
    return {
        "id": collection.id, "title": layer.title, "description": layer.description.strip(),
        "itemType": "feature", "attribution": layer.attribution, "license": layer.licence,
        "keywords": [layer.group], "links": links, "extent": extent(conn, collection, state),
        "crs": [crs.uri for crs in SUPPORTED], "storageCrs": STORAGE_CRS.uri,
    }


def collections_document(conn: Connection, collections: list[Collection], base: str) -> dict:
    states = layer_state.states(conn, [c.id for c in collections])
    return {
        "links": [link(f"{base}/collections", "self", JSON, "Collections (JSON)"),
                  link(f"{base}/collections?f=html", "alternate", HTML, "Collections (HTML)")],
        "collections": [collection_document(conn, c, base, states[c.id]) for c in collections],
        "crs": [crs.uri for crs in SUPPORTED],
    }


def property_schema(prop: Prop) -> dict:
    """The JSON Schema of one property: type, French title, code list as enum, bounds."""
    field = prop.field
    schema: dict = {"title": prop.title}
    if prop.type == "string_list":
        item: dict = {"type": "string"}
        if field and field.codes:
            item["enum"] = list(field.code_values or ())
        schema.update(type="array", items=item)
    else:
        schema.update({
            "string": {"type": "string"}, "integer": {"type": "integer"}, "number": {"type": "number"},
            "boolean": {"type": "boolean"}, "date": {"type": "string", "format": "date"},
            "datetime": {"type": "string", "format": "date-time"},
        }[prop.type])
        if field and field.codes:
            schema["enum"] = list(field.code_values or ())
    if field is not None:
        for key, value in (("description", field.description), ("minimum", field.minimum),
                           ("maximum", field.maximum), ("maxLength", field.max_length),
                           ("pattern", field.pattern), ("x-unit", field.unit)):
            if value is not None:
                schema[key] = value
    return schema


def queryables(collection: Collection, base: str) -> dict:
    """The queryables of a collection as a JSON Schema: its visible properties and its geometry."""
    properties: dict = {"geometry": {"title": "Géométrie", "format": _GEOMETRY_FORMATS[collection.layer.geometry],
                                     "x-ogc-role": "primary-geometry"}}
    for prop in collection.props.values():
        properties[prop.name] = property_schema(prop)
    if collection.date_prop is not None:
        properties[collection.date_prop.name]["x-ogc-role"] = "primary-instant"
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{base}/collections/{collection.id}/queryables",
        "type": "object", "title": collection.layer.title,
        "description": f"Propriétés interrogeables de « {collection.layer.title} » (filtres et CQL2)",
        "properties": properties, "additionalProperties": False,
    }


def code_labels(prop: Prop) -> dict:
    """value → French label of a property's code list (for the HTML pages)."""
    return {code.value: code.label for code in (prop.field.codes or [])} if prop.field else {}
