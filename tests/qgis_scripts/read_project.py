"""Open the service's QGIS project as a GIS officer would, and report what QGIS made of it: every layer (valid,
provider, renderer and its categories, aliases, form widgets, labels) and the features it reads in a box."""

from __future__ import annotations

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsFeatureRequest,
    QgsLayerTreeGroup,
    QgsMapLayerType,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis_session import finish, start

app, arguments = start()
project = QgsProject.instance()
result: dict = {"read": project.read(arguments["project"]), "crs": project.crs().authid(), "layers": {}}
extent = project.viewSettings().defaultViewExtent()
result["extent"] = [extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()]
result["extent_crs"] = extent.crs().authid()
result["groups"] = {node.name(): [child.layerId() for child in node.findLayers()]
                    for node in project.layerTreeRoot().children() if isinstance(node, QgsLayerTreeGroup)}
box = QgsRectangle(*arguments["bbox"])
for layer in project.mapLayers().values():
    info: dict = {"valid": layer.isValid(), "provider": layer.providerType(), "name": layer.name(),
                  "source": layer.source(), "scale_based": layer.hasScaleBasedVisibility(),
                  "min_scale": layer.minimumScale(), "max_scale": layer.maximumScale()}
    if not layer.isValid():
        info["error"] = layer.error().summary() or (layer.dataProvider().error().summary()
                                                    if layer.dataProvider() else None)
        result["layers"][layer.id()] = info
        continue
    if layer.type() == QgsMapLayerType.VectorTileLayer:
        info["styles"] = [(s.styleName(), s.filterExpression(), s.symbol().color().name())
                          for s in layer.renderer().styles()]
    if isinstance(layer, QgsVectorLayer):
        renderer = layer.renderer()  # none for a layer without geometry
        info["renderer"] = renderer.type() if renderer else None
        if renderer is None:
            pass
        elif isinstance(renderer, QgsCategorizedSymbolRenderer):
            info["attribute"] = renderer.classAttribute()
            info["categories"] = [(str(c.value()), c.label(), c.symbol().color().name()) for c in renderer.categories()]
        else:
            info["colour"] = renderer.symbol().color().name()
        fields = layer.fields()
        info["aliases"] = {f.name(): layer.attributeAlias(i) for i, f in enumerate(fields)}
        info["widgets"] = {f.name(): layer.editorWidgetSetup(i).type() for i, f in enumerate(fields)}
        info["value_maps"] = {f.name(): layer.editorWidgetSetup(i).config().get("map")
                              for i, f in enumerate(fields) if layer.editorWidgetSetup(i).type() == "ValueMap"}
        info["labels"] = layer.labelsEnabled()
        if layer.labelsEnabled():
            info["label_field"] = layer.labeling().settings().fieldName
        request = QgsFeatureRequest().setFilterRect(box).setFlags(QgsFeatureRequest.ExactIntersect)
        info["count_in_bbox"] = sum(1 for _ in layer.getFeatures(request))
        info["error"] = layer.dataProvider().error().summary() if layer.dataProvider() else None
    result["layers"][layer.id()] = info
finish(app, result)
