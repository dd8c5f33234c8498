"""QGIS and other desktop GIS as clients: styles (SLD, QML) and the QGIS project, derived from the layer files."""
