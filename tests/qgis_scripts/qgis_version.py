"""QGIS's version, and proof that it starts headless."""

from qgis_session import finish, start

app, _ = start()
finish(app, {})
