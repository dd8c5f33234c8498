"""A layer's map style for desktop GIS: SLD 1.0 and 1.1 (GeoServer, QGIS, uDig) and QGIS's own QML.

Everything comes from the layer file: one colour, or one class per code of ``style.by`` with its colour and
French label (the map's legend), the label field, the fields' French names and units, the code lists. The same
QGIS elements (renderer, labels, value maps, aliases) make the QML file and each layer of the QGIS project
(``qgis_project.py``), so a layer opened alone and the project look the same. Built with ElementTree.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree import ElementTree as ET

from geo_service.layers import FieldDecl, LayerDecl

STYLE_NAME = "carte"
STYLE_TITLE = "Style de la carte « Services près de chez vous »"
SLD_NS = "http://www.opengis.net/sld"
SE_NS = "http://www.opengis.net/se"
OGC_NS = "http://www.opengis.net/ogc"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
for _prefix, _uri in (("sld", SLD_NS), ("se", SE_NS), ("ogc", OGC_NS), ("xlink", XLINK_NS), ("xsi", XSI_NS)):
    ET.register_namespace(_prefix, _uri)
# The version QGIS writes in a QML file; older QGIS versions read it too (they ignore what they do not know).
QGIS_STYLE_VERSION = "3.40.0-Bratislava"
# Labels are drawn from this scale down (larger scales only): at the territory's scale they would cover the map.
LABEL_MAX_SCALE = 50_000
POINT_LAYERS = ("Point", "MultiPoint")
LINE_LAYERS = ("LineString", "MultiLineString")
OTHER_LABEL = "Autre valeur"


@dataclass(frozen=True)
class StyleClass:
    """One class of the legend: the features whose ``style.by`` field holds ``value`` (all of them when the
    style has no field; the features of no listed code when ``value`` is None and the style has one)."""

    value: str | int | None
    label: str
    colour: str


def style_classes(layer: LayerDecl) -> list[StyleClass]:
    """The legend of the map: one class per code of ``style.by`` (its colour, or the layer's), then the rest."""
    style = layer.style
    if style.by is None:
        return [StyleClass(None, layer.title, style.color)]
    codes = layer.field(style.by).codes or []
    return [*(StyleClass(c.value, c.label, c.color or style.color) for c in codes),
            StyleClass(None, OTHER_LABEL, style.color)]


def field_alias(field: FieldDecl) -> str:
    """The French name a desktop GIS shows for a field, with its unit: « Portée du signal (m) »."""
    return f"{field.label} ({field.unit})" if field.unit else field.label


def value_map_fields(layer: LayerDecl) -> list[FieldDecl]:
    """Fields edited as a list of codes (a single value each: a list field stays free text in QGIS forms)."""
    return [f for f in layer.public_fields() if f.codes and f.type in ("string", "integer")]


def _rgba(colour: str, alpha: float = 1.0) -> str:
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"{red},{green},{blue},{round(alpha * 255)}"


# -- SLD -------------------------------------------------------------------------------------------------------
class _Sld:
    """Names of one SLD version: 1.0 (SLD namespace, CssParameter) or 1.1 (Symbology Encoding)."""

    def __init__(self, version: str):
        self.version = version
        self.se = SE_NS if version == "1.1.0" else SLD_NS
        self.parameter = "SvgParameter" if version == "1.1.0" else "CssParameter"

    def el(self, parent: ET.Element, tag: str, text: str | None = None, ns: str | None = None,
           **attributes: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ns or self.se}}}{tag}", attributes)
        if text is not None:
            element.text = text
        return element

    def param(self, parent: ET.Element, name: str, value: str) -> None:
        self.el(parent, self.parameter, value, name=name)


def sld(layer: LayerDecl, version: str = "1.0.0") -> bytes:
    """The map style of ``layer`` as an SLD document (``version`` 1.0.0 or 1.1.0)."""
    if version not in ("1.0.0", "1.1.0"):
        raise ValueError(version)
    s = _Sld(version)
    root = ET.Element(f"{{{SLD_NS}}}StyledLayerDescriptor", {"version": version})
    if version == "1.1.0":
        root.set(f"{{{XSI_NS}}}schemaLocation",
                 "http://www.opengis.net/sld http://schemas.opengis.net/sld/1.1.0/StyledLayerDescriptor.xsd")
    named = s.el(root, "NamedLayer", ns=SLD_NS)
    s.el(named, "Name", layer.id)
    user_style = s.el(named, "UserStyle", ns=SLD_NS)
    s.el(user_style, "Name", STYLE_NAME)
    if version == "1.1.0":
        description = s.el(user_style, "Description")
        s.el(description, "Title", f"{layer.title} — {STYLE_TITLE}")
    else:
        s.el(user_style, "Title", f"{layer.title} — {STYLE_TITLE}")
    feature_style = s.el(user_style, "FeatureTypeStyle")
    for cls in style_classes(layer):
        rule = s.el(feature_style, "Rule")
        s.el(rule, "Name", str(cls.value) if cls.value is not None else "autre")
        if version == "1.1.0":
            s.el(s.el(rule, "Description"), "Title", cls.label)
        else:
            s.el(rule, "Title", cls.label)
        if layer.style.by is not None:
            _sld_filter(s, rule, layer.style.by, cls.value)
        _sld_symbolizer(s, rule, layer, cls.colour)
    if layer.label_field:
        rule = s.el(feature_style, "Rule")
        s.el(rule, "Name", "etiquettes")
        s.el(rule, "MaxScaleDenominator", str(LABEL_MAX_SCALE))
        _sld_text(s, rule, layer)
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def _sld_filter(s: _Sld, rule: ET.Element, by: str, value: str | int | None) -> None:
    if value is None:
        s.el(rule, "ElseFilter", ns=SLD_NS if s.version == "1.0.0" else SE_NS)
        return
    equal = ET.SubElement(ET.SubElement(rule, f"{{{OGC_NS}}}Filter"), f"{{{OGC_NS}}}PropertyIsEqualTo")
    ET.SubElement(equal, f"{{{OGC_NS}}}PropertyName").text = by
    ET.SubElement(equal, f"{{{OGC_NS}}}Literal").text = str(value)


def _sld_symbolizer(s: _Sld, rule: ET.Element, layer: LayerDecl, colour: str) -> None:
    style = layer.style
    if layer.geometry in POINT_LAYERS:
        graphic = s.el(s.el(rule, "PointSymbolizer"), "Graphic")
        mark = s.el(graphic, "Mark")
        s.el(mark, "WellKnownName", "circle")
        s.param(s.el(mark, "Fill"), "fill", colour)
        stroke = s.el(mark, "Stroke")
        s.param(stroke, "stroke", "#ffffff")
        s.param(stroke, "stroke-width", "1")
        s.el(graphic, "Size", str(style.radius * 2))
    elif layer.geometry in LINE_LAYERS:
        stroke = s.el(s.el(rule, "LineSymbolizer"), "Stroke")
        s.param(stroke, "stroke", colour)
        s.param(stroke, "stroke-width", "2")
    else:
        symbolizer = s.el(rule, "PolygonSymbolizer")
        if style.fill_opacity > 0:
            fill = s.el(symbolizer, "Fill")
            s.param(fill, "fill", colour)
            s.param(fill, "fill-opacity", f"{style.fill_opacity:g}")
        stroke = s.el(symbolizer, "Stroke")
        s.param(stroke, "stroke", colour)
        s.param(stroke, "stroke-width", "1")


def _sld_text(s: _Sld, rule: ET.Element, layer: LayerDecl) -> None:
    text = s.el(rule, "TextSymbolizer")
    ET.SubElement(s.el(text, "Label"), f"{{{OGC_NS}}}PropertyName").text = layer.label_field
    font = s.el(text, "Font")
    s.param(font, "font-family", "Sans-Serif")
    s.param(font, "font-size", "11")
    halo = s.el(text, "Halo")
    s.el(halo, "Radius", "1.5")
    s.param(s.el(halo, "Fill"), "fill", "#ffffff")
    s.param(s.el(text, "Fill"), "fill", "#323232")


# -- QGIS (QML and the project's layers) --------------------------------------------------------------------------
def _option(parent: ET.Element, name: str | None, value: str | None = None, type_: str = "QString") -> ET.Element:
    attributes = {"type": type_}
    if name is not None:
        attributes["name"] = name
    if value is not None:
        attributes["value"] = value
    return ET.SubElement(parent, "Option", attributes)


def _options(parent: ET.Element, values: dict[str, str]) -> None:
    block = _option(parent, None, type_="Map")
    for name, value in values.items():
        _option(block, name, value)


def symbol(parent: ET.Element, name: str, layer: LayerDecl, colour: str) -> None:
    """A QGIS symbol of one class: a dot, a line or a filled outline in the map's colour and sizes."""
    style = layer.style
    if layer.geometry in POINT_LAYERS:
        kind, symbol_class = "marker", "SimpleMarker"
        options = {"color": _rgba(colour), "name": "circle", "outline_color": "255,255,255,255",
                   "outline_style": "solid", "outline_width": "1", "outline_width_unit": "Pixel",
                   "size": str(style.radius * 2), "size_unit": "Pixel", "scale_method": "diameter"}
    elif layer.geometry in LINE_LAYERS:
        kind, symbol_class = "line", "SimpleLine"
        options = {"line_color": _rgba(colour), "line_style": "solid", "line_width": "2",
                   "line_width_unit": "Pixel"}
    else:
        kind, symbol_class = "fill", "SimpleFill"
        options = {"color": _rgba(colour, style.fill_opacity), "style": "solid" if style.fill_opacity > 0 else "no",
                   "outline_color": _rgba(colour), "outline_style": "solid", "outline_width": "1",
                   "outline_width_unit": "Pixel"}
    symbol_el = ET.SubElement(parent, "symbol", {"type": kind, "name": name, "alpha": "1", "clip_to_extent": "1",
                                                 "force_rhr": "0"})
    layer_el = ET.SubElement(symbol_el, "layer", {"class": symbol_class, "enabled": "1", "locked": "0", "pass": "0"})
    _options(layer_el, options)


def renderer(layer: LayerDecl) -> ET.Element:
    """QGIS's renderer: categorised by ``style.by`` with the map's colours and legend labels, else one symbol."""
    classes = style_classes(layer)
    if layer.style.by is None:
        element = ET.Element("renderer-v2", {"type": "singleSymbol", "forceraster": "0", "symbollevels": "0",
                                             "enableorderby": "0"})
        symbol(ET.SubElement(element, "symbols"), "0", layer, classes[0].colour)
        return element
    element = ET.Element("renderer-v2", {"type": "categorizedSymbol", "attr": layer.style.by, "forceraster": "0",
                                         "symbollevels": "0", "enableorderby": "0"})
    categories, symbols = ET.SubElement(element, "categories"), ET.SubElement(element, "symbols")
    for index, cls in enumerate(classes):
        # The category of an empty value is QGIS's "all other values".
        ET.SubElement(categories, "category", {"value": "" if cls.value is None else str(cls.value),
                                               "label": cls.label, "symbol": str(index), "render": "true"})
        symbol(symbols, str(index), layer, cls.colour)
    return element


def labeling(layer: LayerDecl) -> ET.Element | None:
    """Labels from ``label_field``, shown at large scales only, with a white halo as on the map."""
    if layer.label_field is None:
        return None
    element = ET.Element("labeling", {"type": "simple"})
    settings = ET.SubElement(element, "settings", {"calloutType": "simple"})
    text_style = ET.SubElement(settings, "text-style", {
        "fieldName": layer.label_field, "isExpression": "0", "fontFamily": "Sans Serif", "fontSize": "9",
        "fontSizeUnit": "Point", "textColor": "50,50,50,255", "textOpacity": "1"})
    ET.SubElement(text_style, "text-buffer", {"bufferDraw": "1", "bufferSize": "1", "bufferSizeUnits": "MM",
                                              "bufferColor": "255,255,255,255", "bufferOpacity": "1"})
    placement = "6" if layer.geometry in POINT_LAYERS else "1"  # around the point, else over the polygon
    ET.SubElement(settings, "placement", {"placement": placement, "dist": "1.5", "distUnits": "MM"})
    ET.SubElement(settings, "rendering", {"scaleVisibility": "1", "scaleMin": "1",
                                          "scaleMax": str(LABEL_MAX_SCALE), "obstacle": "1"})
    return element


def field_configuration(layer: LayerDecl) -> ET.Element:
    """Forms: code lists as value maps (French label shown, code stored); other fields keep QGIS's widget."""
    element = ET.Element("fieldConfiguration")
    for field in value_map_fields(layer):
        field_el = ET.SubElement(element, "field", {"name": field.name, "configurationFlags": "NoFlag"})
        widget = ET.SubElement(field_el, "editWidget", {"type": "ValueMap"})
        config = _option(ET.SubElement(widget, "config"), None, type_="Map")
        entries = _option(config, "map", type_="List")
        for code in field.codes or ():
            _option(_option(entries, None, type_="Map"), code.label, str(code.value))
    return element


def aliases(layer: LayerDecl) -> ET.Element:
    """The fields' French names, with their units."""
    element = ET.Element("aliases")
    for index, field in enumerate(layer.public_fields()):
        ET.SubElement(element, "alias", {"field": field.name, "index": str(index), "name": field_alias(field)})
    return element


def constraints(layer: LayerDecl) -> ET.Element:
    """Required fields: QGIS's form refuses to save without them, as the service would (422)."""
    element = ET.Element("constraints")
    for field in layer.public_fields():
        ET.SubElement(element, "constraint", {"field": field.name, "constraints": "1" if field.required else "0",
                                              "notnull_strength": "1" if field.required else "0",
                                              "unique_strength": "0", "exp_strength": "0"})
    return element


def qgis_style_elements(layer: LayerDecl) -> list[ET.Element]:
    """What a QGIS layer holds of the style: renderer, labels, forms (value maps, constraints) and aliases."""
    elements = [renderer(layer)]
    label = labeling(layer)
    if label is not None:
        elements.append(label)
    return [*elements, field_configuration(layer), aliases(layer), constraints(layer)]


def qml(layer: LayerDecl) -> bytes:
    """The layer's QGIS style file (Layer properties → Style → Load style)."""
    root = ET.Element("qgis", {"version": QGIS_STYLE_VERSION, "labelsEnabled": "1" if layer.label_field else "0",
                               "styleCategories": "Symbology|Labeling|Fields|Forms"})
    root.extend(qgis_style_elements(layer))
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body + "\n").encode()
