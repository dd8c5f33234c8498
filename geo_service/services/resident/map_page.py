"""The resident map page model: panel, legend and map configuration, all derived from the layer registry.

No layer is named here: a new file in ``layers/`` gets its toggle, legend, style and popup on ``/map``
without code. The features themselves are not in the page; ``web/static/js/map.js`` fetches them from
``/api/layers/{id}`` (dense layers by bounding box), so the HTML stays small and cacheable.

The Leaflet map object is built with Folium, the project's map library (``folium_map.py``, imported on the first
map page only: Folium and pandas weigh ≈ 75 MB in every process that merely imports them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from geo_service.layers import LayerDecl
from geo_service.services.app_caches import AppCaches
from geo_service.services.basemap import basemap_choice
from geo_service.services.basemap.basemap_choice import BasemapChoice
from geo_service.services.publish import layer_geojson, layer_state
from geo_service.services.publish.visibility import visible_rows_sql
from geo_service.services.resident.hours_in_words import in_words
from geo_service.services.sql_build import quote_ident
from geo_service.settings import MapSettings

POLYGONS = ("Polygon", "MultiPolygon")
LINES = ("LineString", "MultiLineString")
# Whole of metropolitan France: the view when no boundary is loaded yet.
FALLBACK_BOUNDS: Bounds = ((41.3, -5.2), (51.1, 9.6))
MIN_ZOOM, MAX_ZOOM = 6, 19

Bounds = tuple[tuple[float, float], tuple[float, float]]  # (south, west), (north, east) in degrees
POINT_ZOOM = 16  # the view of an address or a clicked point: its street and neighbours

# The map's own texts (controls, messages) in the languages an embed may ask for; the data stays in French.
CHROME_STRINGS: dict[str, dict[str, str]] = {
    "fr": {},  # map.js carries the French texts as its defaults
    "en": {
        "zoomIn": "Zoom in", "zoomOut": "Zoom out", "closeCard": "Close", "sources": "Data sources",
        "mapping": "Map: Leaflet", "backgroundFailed": "The background could not be loaded.",
        "demoFeature": "Demonstration data (fictitious)", "layerFailed": "Layer not loaded, try again later:",
        "locate": "Locate me", "locating": "Finding your position…", "here": "Your position",
        "located": "Map centred on your position.",
        "noPosition": "Your position is not available. Check your browser's location permission.",
    },
}
LANGUAGES = tuple(CHROME_STRINGS)


@dataclass(frozen=True)
class LegendEntry:
    label: str
    color: str


@dataclass(frozen=True)
class PartView:
    """One toggle of a layer split by ``style.toggle_by`` (one operator's white zones): its checkbox is its legend."""

    id: str  # "white_zones:orange", as ``layers=`` names it
    dom_id: str  # "white_zones--orange", for the checkbox's id
    label: str
    color: str
    visible: bool


@dataclass(frozen=True)
class LayerView:
    """One layer as the panel shows it: toggle (or toggles, ``parts``), count, legend and the hint of a dense
    layer."""

    id: str
    title: str
    shape: str  # "point", "line" or "polygon": how the legend draws its swatches
    visible: bool  # drawn at the first view (for a split layer: one of its parts is)
    color: str
    fill_opacity: float
    legend: list[LegendEntry]
    count: int
    dense: bool
    zoom_hint: str | None
    parts: tuple[PartView, ...] = ()


def parts_of(layer: LayerDecl) -> tuple[PartView, ...]:
    """The panel's toggles of a layer split by ``style.toggle_by``; none for a layer switched as a whole."""
    if layer.style.toggle_by is None:
        return ()
    return tuple(PartView(t.id, t.id.replace(":", "--"), t.label, t.color, t.visible) for t in layer.toggles())


@dataclass(frozen=True)
class LayerGroupView:
    title: str
    layers: list[LayerView]


@dataclass(frozen=True)
class FoliumParts:
    """The rendered pieces of the Folium map, placed by the page template."""

    map_name: str
    header: str
    html: str
    script: str


@dataclass(frozen=True)
class MapPage:
    title: str
    of_territory: str  # the territory with « de » and its article: « du Lot », « de l'Aveyron »
    groups: list[LayerGroupView]
    folium: FoliumParts
    config: dict[str, Any]


def shape_of(layer: LayerDecl) -> str:
    if layer.geometry in POLYGONS:
        return "polygon"
    return "line" if layer.geometry in LINES else "point"


def legend_of(layer: LayerDecl) -> list[LegendEntry]:
    """Legend entries: one per code of the ``style.by`` field (French labels), else the layer's single colour."""
    if layer.style.by is None:
        return [LegendEntry(layer.title, layer.style.color)]
    codes = layer.field(layer.style.by).codes or []
    return [LegendEntry(code.label, code.color or layer.style.color) for code in codes]


def zoom_hint(layer: LayerDecl) -> str:
    """The French hint shown while a dense layer waits for the user to zoom in ("Zoomez pour afficher les locaux…")."""
    title = layer.title[:1].lower() + layer.title[1:]
    return f"Zoomez pour afficher les {title}"


def _quote(conn: Connection, identifier: str) -> str:
    return conn.dialect.identifier_preparer.quote(identifier)


def territory_bounds(conn: Connection, layers: Iterable[LayerDecl]) -> Bounds:
    """South-west and north-east corners (lat, lon) of the base polygon layers (communes, EPCI), or France."""
    tables = [_quote(conn, layer.id) for layer in layers]
    if not tables:
        return FALLBACK_BOUNDS
    union = " UNION ALL ".join(f"SELECT geom FROM {table}" for table in tables)
    row = conn.execute(text(
        f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) AS e FROM ({union}) g) x"
    )).one()
    if row[0] is None:
        return FALLBACK_BOUNDS
    return (row[1], row[0]), (row[3], row[2])


# The page shows each layer's feature count and fits the map to the boundaries: a count(*) per layer and an
# extent of every commune and EPCI polygon on each view (≈70 ms for the 130,000 premises alone). Both are kept
# (AppCaches.map_facts) until the layers' change counters move: a view then reads one row per layer.
def layer_counts(conn: Connection, caches: AppCaches, layers: list[LayerDecl],
                 states: dict[str, layer_state.LayerState]) -> dict[str, int]:
    """The number of public features of each layer, counted again only when the layer has changed."""
    return {layer.id: caches.map_facts.get(("count", layer.id), states[layer.id],
                                           lambda layer=layer: layer_geojson.count(conn, layer)) for layer in layers}


def cached_territory_bounds(conn: Connection, caches: AppCaches, layers: list[LayerDecl],
                            states: dict[str, layer_state.LayerState]) -> Bounds:
    """``territory_bounds``, computed again only when one of the boundary layers has changed."""
    if not layers:
        return FALLBACK_BOUNDS
    # Keyed by the state of every boundary layer: a change to any of them is a new key. The least version
    # stands for them all (0, a layer never seen changing, means "do not cache").
    key = ("bounds", tuple((layer.id, states[layer.id]) for layer in layers))
    least = min((states[layer.id] for layer in layers), key=lambda state: state.version)
    return caches.map_facts.get(key, least, lambda: territory_bounds(conn, layers))


# Popups show opening hours in words, as the report does; the OSM expression stays in the data (API, exports).
HOURS_FIELD = "horaires"


def shows_hours(layer: LayerDecl) -> bool:
    return HOURS_FIELD in layer.popup and any(f.name == HOURS_FIELD for f in layer.public_fields())


def hours_words(conn: Connection, caches: AppCaches, layers: list[LayerDecl],
                states: dict[str, layer_state.LayerState]) -> dict[str, str]:
    """The French words of each opening-hours expression a popup may show (a few hundred places share far fewer
    expressions), read again only when a layer has changed."""
    def expressions(layer: LayerDecl) -> list[str]:
        return list(conn.execute(text(
            f"SELECT DISTINCT {HOURS_FIELD} FROM {quote_ident(layer.id)} "
            f"WHERE {visible_rows_sql(layer)} AND {HOURS_FIELD} IS NOT NULL")).scalars())
    words: dict[str, str] = {}
    for layer in filter(shows_hours, layers):
        for expression in caches.map_facts.get(("hours", layer.id), states[layer.id],
                                                lambda layer=layer: expressions(layer)):
            words[expression] = in_words(expression).text
    return words


def _popup_fields(layer: LayerDecl) -> list[dict[str, Any]]:
    public = {f.name for f in layer.public_fields()}
    out = []
    for name in layer.popup:
        if name not in public:
            continue  # a restricted field never reaches the public map
        f = layer.field(name)
        hours = f.name == HOURS_FIELD
        out.append({"name": f.name, "label": "Horaires" if hours else f.label, "type": f.type, "unit": f.unit,
                    "codes": [[c.value, c.label] for c in f.codes] if f.codes else None, "hours": hours})
    return out


def _layer_config(layer: LayerDecl, dense: bool) -> dict[str, Any]:
    style = layer.style
    colours = None
    if style.by is not None:
        colours = [[c.value, c.color or style.color] for c in layer.field(style.by).codes or []]
    label = layer.field(layer.label_field) if layer.label_field else None
    return {
        "id": layer.id, "title": layer.title, "shape": shape_of(layer), "order": layer.order,
        "color": style.color, "by": style.by, "colors": colours, "radius": style.radius,
        "fillOpacity": style.fill_opacity, "cluster": style.cluster, "dense": dense,
        "attribution": layer.attribution, "popup": _popup_fields(layer),
        "labelField": label.name if label else None,
        "labelCodes": [[c.value, c.label] for c in label.codes] if label and label.codes else None,
        "zoomHint": zoom_hint(layer) if dense else None,
        # A layer split by `style.toggle_by`: one toggle per code, each drawing that code's features.
        "toggleBy": style.toggle_by,
        "parts": [{"id": t.id, "domId": t.id.replace(":", "--"), "code": t.code} for t in layer.toggles()]
        if style.toggle_by else None,
    }


def build_map_page(conn: Connection, caches: AppCaches, settings: MapSettings, of_territory: str,
                   base_path: str = "", lang: str = "fr", basemap: BasemapChoice | None = None) -> MapPage:
    """Everything ``map/index.html`` needs: grouped toggles with legends, the Folium map and map.js's config."""
    registry = caches.registry
    public = [layer for layer in registry if layer.is_public]
    states = layer_state.states(conn, [layer.id for layer in public])  # one query, one row per layer
    counts = layer_counts(conn, caches, public, states)
    dense = {layer.id for layer in public if counts[layer.id] > settings.dense_layer_threshold}
    background = [layer for layer in public if layer.kind == "base" and layer.geometry in POLYGONS]

    groups: dict[str, list[LayerView]] = {}
    for layer in public:  # the registry is in map order, so groups appear in the order of their first layer
        groups.setdefault(layer.group, []).append(LayerView(
            id=layer.id, title=layer.title, shape=shape_of(layer),
            visible=any(t.visible for t in layer.toggles()), color=layer.style.color,
            fill_opacity=layer.style.fill_opacity, legend=legend_of(layer), count=counts[layer.id],
            dense=layer.id in dense, zoom_hint=zoom_hint(layer) if layer.id in dense else None,
            parts=parts_of(layer),
        ))

    aria_label = f"Carte {of_territory} : infrastructures et services numériques"
    bounds = cached_territory_bounds(conn, caches, background, states)
    basemap = basemap or basemap_choice.resolve(settings)
    # Folium (and the pandas it loads, ≈ 75 MB) only in a process that draws a map page: docs/benchmarks.md.
    from geo_service.services.resident import folium_map

    parts = folium_map.build_folium(bounds, settings, f"{base_path}/static", aria_label, basemap, base_path)
    config = {
        "mapName": parts.map_name,
        "bounds": [list(corner) for corner in bounds],
        "api": f"{base_path}/api/layers",
        "denseMinZoom": settings.dense_min_zoom,
        # With a base map, the communes are drawn as outlines over it rather than as the land.
        "basemapAttribution": basemap.plan.attribution if basemap.plan else None,
        "background": [{"id": layer.id, "attribution": layer.attribution, "color": layer.style.color}
                       for layer in background],
        "layers": [_layer_config(layer, layer.id in dense) for layer in public],
        "strings": CHROME_STRINGS.get(lang, {}),
        "pointZoom": POINT_ZOOM,
        "hoursWords": hours_words(conn, caches, public, states),
        # resident.js (search, report): the API it calls and the page without JavaScript.
        "resident": {"geocode": f"{base_path}/api/geocode", "nearby": f"{base_path}/api/nearby",
                     "reportPage": f"{base_path}/map/report"},
    }
    return MapPage(title="Services près de chez vous", of_territory=of_territory,
                   groups=[LayerGroupView(title, layers) for title, layers in groups.items()],
                   folium=parts, config=config)
