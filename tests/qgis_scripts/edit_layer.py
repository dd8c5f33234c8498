"""Edit a layer of the service's editing project through QGIS's own editing API, as a GIS officer does in QGIS:
the authentication configuration the project names is created with the token, then a feature is added, moved
and deleted, each change committed on its own (what the service answered is in the commit errors)."""

from __future__ import annotations

from qgis.core import (
    QgsApplication,
    QgsAuthMethodConfig,
    QgsFeature,
    QgsFeatureRequest,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsVectorDataProvider,
)
from qgis_session import finish, start

app, arguments = start()
auth = QgsApplication.authManager()
result: dict = {"master_password": auth.setMasterPassword("essai-des-tests", True)}
config = QgsAuthMethodConfig("Basic")
config.setId(arguments["authcfg"])
config.setName("Lot numérique")
config.setConfig("username", "sig")
config.setConfig("password", arguments["token"])
result["auth_stored"] = auth.storeAuthenticationConfig(config, True)
project = QgsProject.instance()
result["read"] = project.read(arguments["project"])
layer = project.mapLayer(arguments["layer"])
provider = layer.dataProvider()
capabilities = provider.capabilities()
result["valid"] = layer.isValid()
result["can"] = {name: bool(capabilities & flag) for name, flag in (
    ("add", QgsVectorDataProvider.AddFeatures), ("move", QgsVectorDataProvider.ChangeGeometries),
    ("change", QgsVectorDataProvider.ChangeAttributeValues), ("delete", QgsVectorDataProvider.DeleteFeatures))}


def commit(step: str) -> None:
    result[step] = {"committed": layer.commitChanges(), "errors": list(layer.commitErrors())}


def find(key_field: str, key: str) -> QgsFeature | None:
    request = QgsFeatureRequest().setFilterExpression(f"\"{key_field}\" = '{key}'")
    return next(layer.getFeatures(request), None)


key_field, key = arguments["key_field"], arguments["properties"][arguments["key_field"]]
layer.startEditing()
feature = QgsFeature(layer.fields())
for name, value in arguments["properties"].items():
    feature.setAttribute(name, value)
feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(*arguments["at"])))
result["added"] = layer.addFeature(feature)
commit("create")
if arguments.get("steps", ["create", "move", "delete"]) != ["create"]:
    created = find(key_field, key)
    result["found_after_create"] = created is not None
    if created is not None:
        layer.startEditing()
        result["moved"] = layer.changeGeometry(created.id(), QgsGeometry.fromPointXY(QgsPointXY(*arguments["move_to"])))
        commit("move")
        moved = find(key_field, key)
        result["position_after_move"] = [moved.geometry().asPoint().x(), moved.geometry().asPoint().y()] \
            if moved is not None else None
        layer.startEditing()
        result["deleted"] = layer.deleteFeature(created.id())
        commit("delete")
finish(app, result)
