"""Load the service's QML and SLD files into empty layers of the right kind, as « Charger le style » does, and
report what QGIS made of each: the renderer, its classes (value, label, colour) and the labelling."""

from __future__ import annotations

from qgis.core import QgsCategorizedSymbolRenderer, QgsVectorLayer
from qgis_session import finish, start

app, arguments = start()
result: dict = {}
for name, style in arguments["styles"].items():
    fields = "".join(f"&field={field}:string" for field in style["fields"])
    layer = QgsVectorLayer(f"{style['geometry']}?crs=EPSG:4326{fields}", name, "memory")
    if style["format"] == "qml":
        message, ok = layer.loadNamedStyle(style["path"])
    else:
        message, ok = layer.loadSldStyle(style["path"])
    renderer = layer.renderer()
    entry = {"ok": bool(ok), "message": message, "renderer": renderer.type() if renderer else None,
             "labels": layer.labelsEnabled()}
    if isinstance(renderer, QgsCategorizedSymbolRenderer):
        entry["attribute"] = renderer.classAttribute()
        entry["classes"] = [(str(c.value()), c.label(), c.symbol().color().name()) for c in renderer.categories()]
    elif renderer is not None and hasattr(renderer, "rootRule"):  # SLD rules become a rule-based renderer
        entry["classes"] = [(rule.filterExpression(), rule.label(), rule.symbol().color().name())
                            for rule in renderer.rootRule().children() if rule.symbol() is not None]
    result[name] = entry
finish(app, result)
