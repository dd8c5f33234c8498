"""The QGIS project of the service (``/qgis/lot-numerique.qgz``, ``geo-service qgis project``).

Every public layer is an OGC API – Features layer of this service (QGIS's ``oapif`` provider), grouped as on
the map, styled as the map (``layer_styles``: categories, labels, value maps, French aliases with units), in
Lambert-93 over the territory's extent. The premises, too many to fetch at the territory's scale, are drawn from
the service's vector tiles at small scales and read as features from 1:25,000. The editing variant names an
authentication configuration (``AUTHCFG_ID``) that each user creates in QGIS with their own token: the file
never holds a secret. Built with ElementTree and zipped as QGIS does (a ``.qgs`` inside a ``.qgz``).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from urllib.parse import quote
from xml.etree import ElementTree as ET

from pyproj import CRS, Transformer
from sqlalchemy import Connection

from geo_service.layers import LayerDecl, LayerRegistry
from geo_service.services.qgis import layer_styles
from geo_service.services.resident import map_page

PROJECT_FILE = "lot-numerique.qgz"
EDITING_PROJECT_FILE = "lot-numerique-edition.qgz"
PROJECT_CRS = 2154  # Lambert-93, the official projection of metropolitan France
LAYER_CRS = 4326
# The id of the authentication configuration the editing project's layers name: 7 characters, as QGIS's own.
AUTHCFG_ID = "lotnum1"
# Premises: features from this scale down (1:25,000), vector tiles above it.
PREMISES_FEATURES_MIN_SCALE = 25_000
TILED_LAYERS = ("premises",)
QGIS_VERSION = "3.40.0-Bratislava"


@dataclass(frozen=True)
class ProjectOptions:
    """What varies between projects: the service's public address, the territory's name, editing or reading."""

    base_url: str
    title: str
    editing: bool = False


def _spatialrefsys(parent: ET.Element, epsg: int) -> None:
    """A CRS as QGIS writes it; WKT first (what QGIS reads first), the authority id for people."""
    crs = CRS.from_epsg(epsg)
    srs = ET.SubElement(parent, "spatialrefsys")
    ET.SubElement(srs, "wkt").text = crs.to_wkt()
    ET.SubElement(srs, "authid").text = f"EPSG:{epsg}"
    ET.SubElement(srs, "description").text = crs.name
    ET.SubElement(srs, "geographicflag").text = "true" if crs.is_geographic else "false"


def oapif_source(options: ProjectOptions, layer: LayerDecl) -> str:
    """The data source of an OGC API – Features layer, as QGIS writes it (``key='value'`` pairs)."""
    parts = {"pagingEnabled": "true", "preferCoordinatesForWfsT11": "false", "restrictToRequestBBOX": "1",
             "typename": layer.id, "url": f"{options.base_url}/ogc"}
    if options.editing:
        parts["authcfg"] = AUTHCFG_ID
    return " ".join(f"{key}='{value}'" for key, value in sorted(parts.items()))


def tiles_source(options: ProjectOptions, layer: LayerDecl) -> str:
    """The data source of a vector tile layer: the collection's tiles, ``{z}/{y}/{x}`` URL-encoded as QGIS does."""
    url = f"{options.base_url}/ogc/collections/{layer.id}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}"
    return f"type=xyz&url={quote(url, safe=':/')}&zmax=16&zmin=0"


def territory_extent(conn: Connection, registry: LayerRegistry) -> tuple[float, float, float, float]:
    """The territory's box in Lambert-93 (xmin, ymin, xmax, ymax), from the loaded boundaries."""
    boundaries = [layer for layer in registry if layer.kind == "base" and layer.geometry in map_page.POLYGONS]
    (south, west), (north, east) = map_page.territory_bounds(conn, boundaries)
    to_project = Transformer.from_crs(LAYER_CRS, PROJECT_CRS, always_xy=True)
    xmin, ymin, xmax, ymax = to_project.transform_bounds(west, south, east, north)
    return round(xmin), round(ymin), round(xmax), round(ymax)


def _layer_tree_order(layers: list[LayerDecl]) -> list[tuple[str, list[LayerDecl]]]:
    """Groups in the map's order (the first layer of each), points above polygons within a group."""
    groups: dict[str, list[LayerDecl]] = {}
    for layer in layers:  # the registry's order: the map's
        groups.setdefault(layer.group, []).append(layer)
    return [(name, sorted(members, key=lambda la: la.geometry in map_page.POLYGONS))
            for name, members in groups.items()]


def layer_id(layer: LayerDecl) -> str:
    """The id of a layer in the project: QGIS keeps only ids longer than 10 characters (else it makes one up)."""
    return f"{layer.id}_collection"


def tiles_layer_id(layer: LayerDecl) -> str:
    return f"{layer.id}_tuiles"


def _visible(layer: LayerDecl) -> bool:
    return layer.style.visible is not False


def _maplayer(options: ProjectOptions, layer: LayerDecl) -> ET.Element:
    element = ET.Element("maplayer", {"type": "vector", "geometry": _geometry_kind(layer), "wkbType": layer.geometry,
                                      "labelsEnabled": "1" if layer.label_field else "0", "readOnly": "0",
                                      "autoRefreshEnabled": "0", "simplifyDrawingHints": "0"})
    if layer.id in TILED_LAYERS:
        element.attrib.update({"hasScaleBasedVisibilityFlag": "1", "maxScale": "0",
                               "minScale": str(PREMISES_FEATURES_MIN_SCALE)})
    ET.SubElement(element, "id").text = layer_id(layer)
    ET.SubElement(element, "datasource").text = oapif_source(options, layer)
    ET.SubElement(element, "layername").text = layer.title
    _spatialrefsys(ET.SubElement(element, "srs"), LAYER_CRS)
    ET.SubElement(element, "abstract").text = f"{layer.description.strip()}\n{layer.attribution} — {layer.licence}"
    ET.SubElement(element, "provider", {"encoding": "UTF-8"}).text = "OAPIF"
    element.extend(layer_styles.qgis_style_elements(layer))
    ET.SubElement(element, "previewExpression").text = f'"{layer.label_field}"' if layer.label_field else '"fid"'
    return element


def _literal(value: str | int) -> str:
    """A code as a QGIS expression literal (quotes doubled)."""
    return "'" + str(value).replace("'", "''") + "'"


def _tiles_maplayer(options: ProjectOptions, layer: LayerDecl) -> ET.Element:
    """The layer's vector tiles, above 1:25,000: one style per class of the map's legend."""
    element = ET.Element("maplayer", {"type": "vector-tile", "hasScaleBasedVisibilityFlag": "1",
                                      "minScale": "100000000", "maxScale": str(PREMISES_FEATURES_MIN_SCALE)})
    ET.SubElement(element, "id").text = tiles_layer_id(layer)
    ET.SubElement(element, "datasource").text = tiles_source(options, layer)
    ET.SubElement(element, "layername").text = f"{layer.title} (tuiles)"
    _spatialrefsys(ET.SubElement(element, "srs"), 3857)
    ET.SubElement(element, "provider").text = "xyzvectortiles"
    renderer = ET.SubElement(element, "renderer", {"type": "basic"})
    styles = ET.SubElement(renderer, "styles")
    for cls in layer_styles.style_classes(layer):
        by = layer.style.by
        if by is None:
            expression = ""
        elif cls.value is None:
            listed = ", ".join(_literal(c.value) for c in layer.field(by).codes or ())
            expression = f'"{by}" IS NULL OR "{by}" NOT IN ({listed})'
        else:
            expression = f'"{by}" = {_literal(cls.value)}'
        style = ET.SubElement(styles, "style", {"name": cls.label, "layer": layer.id,
                                                "geometry": _TILE_GEOMETRY[_geometry_kind(layer)],
                                                "enabled": "1", "min-zoom": "-1", "max-zoom": "-1",
                                                "expression": expression})
        layer_styles.symbol(ET.SubElement(style, "symbols"), "0", layer, cls.colour)  # one symbol per style, "0"
    return element


# QGIS's geometry types (point, line, polygon) as a vector tile style names them.
_TILE_GEOMETRY = {"Point": "0", "Line": "1", "Polygon": "2"}


def _geometry_kind(layer: LayerDecl) -> str:
    if layer.geometry in layer_styles.POINT_LAYERS:
        return "Point"
    return "Line" if layer.geometry in layer_styles.LINE_LAYERS else "Polygon"


def _layer_tree(root: ET.Element, options: ProjectOptions, layers: list[LayerDecl]) -> None:
    tree = ET.SubElement(root, "layer-tree-group")
    ET.SubElement(tree, "customproperties")
    for name, members in _layer_tree_order(layers):
        group = ET.SubElement(tree, "layer-tree-group", {"name": name, "checked": "Qt::Checked", "expanded": "1"})
        for layer in members:
            checked = "Qt::Checked" if _visible(layer) else "Qt::Unchecked"
            ET.SubElement(group, "layer-tree-layer", {
                "id": layer_id(layer), "name": layer.title, "providerKey": "OAPIF",
                "source": oapif_source(options, layer), "checked": checked, "expanded": "0"})
            if layer.id in TILED_LAYERS:
                ET.SubElement(group, "layer-tree-layer", {
                    "id": tiles_layer_id(layer), "name": f"{layer.title} (tuiles)", "providerKey": "xyzvectortiles",
                    "source": tiles_source(options, layer), "checked": checked, "expanded": "0"})


def project_xml(options: ProjectOptions, registry: LayerRegistry,
                extent: tuple[float, float, float, float]) -> bytes:
    """The ``.qgs`` document: layer tree, layers, Lambert-93 and the territory's extent."""
    layers = [layer for layer in registry if layer.is_public]
    root = ET.Element("qgis", {"projectname": options.title, "version": QGIS_VERSION})
    ET.SubElement(root, "title").text = options.title
    _spatialrefsys(ET.SubElement(root, "projectCrs"), PROJECT_CRS)
    _layer_tree(root, options, layers)
    project_layers = ET.SubElement(root, "projectlayers")
    for layer in layers:
        project_layers.append(_maplayer(options, layer))
        if layer.id in TILED_LAYERS:
            project_layers.append(_tiles_maplayer(options, layer))
    xmin, ymin, xmax, ymax = (str(v) for v in extent)
    canvas = ET.SubElement(root, "mapcanvas", {"name": "theMapCanvas", "annotationsVisible": "1"})
    ET.SubElement(canvas, "units").text = "meters"
    box = ET.SubElement(canvas, "extent")
    for name, value in (("xmin", xmin), ("ymin", ymin), ("xmax", xmax), ("ymax", ymax)):
        ET.SubElement(box, name).text = value
    ET.SubElement(canvas, "rotation").text = "0"
    _spatialrefsys(ET.SubElement(canvas, "destinationsrs"), PROJECT_CRS)
    # QGIS reads projectCrs only when the project says it uses projections (« on the fly » reprojection).
    properties = ET.SubElement(ET.SubElement(root, "properties"), "SpatialRefSys")
    ET.SubElement(properties, "ProjectionsEnabled", {"type": "int"}).text = "1"
    view = ET.SubElement(root, "ProjectViewSettings", {"UseProjectScales": "0"})
    _spatialrefsys(ET.SubElement(view, "DefaultViewExtent", {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax}),
                   PROJECT_CRS)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body + "\n").encode()


def project_archive(conn: Connection, registry: LayerRegistry, options: ProjectOptions) -> bytes:
    """The ``.qgz`` file: the project document zipped, as QGIS saves it."""
    xml = project_xml(options, registry, territory_extent(conn, registry))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("lot-numerique.qgs", xml)
    return buffer.getvalue()
