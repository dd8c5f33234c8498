"""Importers of the published open data (ARCEP, ANFR, BAN, national schemas) into the layers.

``run_import(conn, registry, territory, kind, file_or_url_or_file_object, …)`` is the one entry point, for
the command line (``geo-service import``) and the web API alike; ``kinds()`` lists what can be imported.
The framework is in ``base`` (context, provenance, journal), ``sources`` (files, URLs, archives),
``reader`` (CSV sniffing), ``values`` and ``validate`` (typed, declaration-checked values), ``geo``
(coordinates) and ``writer`` (stage, territory check, upsert); each other module is one kind.
"""

from geo_service.services.importers.framework import file_types
from geo_service.services.importers.framework.import_report import ImportReport, Issue
from geo_service.services.importers.framework.import_run import Kind, Progress, guess_source_date, kinds, run_import

# What an open-data file may hold, by its bytes (tables, GeoPackage coverage maps, JSON lists).
OPEN_DATA_KINDS = frozenset({file_types.TEXT, file_types.GEOPACKAGE, file_types.JSON})

__all__ = ["OPEN_DATA_KINDS", "ImportReport", "Issue", "Kind", "Progress", "guess_source_date", "kinds",
           "run_import"]
