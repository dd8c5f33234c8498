"""Imports: the published open data (ARCEP, ANFR, BAN, national schemas) into the layers, the bulk import of
a file through the editing rules, the files people send, the boundaries, and the white zones computed from
imported coverage.

``run_import(conn, registry, territory, kind, file_or_url_or_file_object, …)`` is the one entry point of the
open-data imports, for the command line (``geo-service import``) and the pages alike; ``kinds()`` lists what
can be imported. ``framework/`` knows no file format (sources, file types by their bytes, CSV tables, values,
validation, coordinates, staging and upsert, the report, ``run``); ``formats/`` has one module per kind,
registered by import in ``formats.KINDS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import BinaryIO

from sqlalchemy import Connection

from geo_service.errors import ImportFileError
from geo_service.layers import LayerRegistry
from geo_service.services.importers.framework import file_types, import_run
from geo_service.services.importers.framework.import_report import ImportReport, Issue
from geo_service.services.importers.framework.import_run import Kind, Progress, guess_source_date
from geo_service.services.importers.framework.sources import FileLimits
from geo_service.settings import TerritorySettings

# What an open-data file may hold, by its bytes (tables, GeoPackage coverage maps, JSON lists).
OPEN_DATA_KINDS = frozenset({file_types.TEXT, file_types.GEOPACKAGE, file_types.JSON})


def kinds() -> dict[str, Kind]:
    """Every kind of import, by name, in the order of ``geo-service import --list``."""
    # Imported when asked: the format modules (and what they import) are not needed to start the service.
    from geo_service.services.importers.formats import KINDS

    return KINDS


def run_import(conn: Connection, registry: LayerRegistry, territory: TerritorySettings, kind: str,
               location: str | BinaryIO, *, filename: str | None = None, source_date: date | None = None,
               options: Mapping[str, object] | None = None, user: str = "import", dry_run: bool = False,
               progress: Progress | None = None, limits: FileLimits | None = None,
               lift_time_limit: bool = False) -> ImportReport:
    """Import ``location`` (path, http(s) URL or binary file object) as the kind named ``kind``, in the caller's
    transaction (``import_run.run``); an unknown kind is refused before anything is read."""
    available = kinds()
    if kind not in available:
        raise ImportFileError(f"type d'import inconnu « {kind} » ; types : {', '.join(available)}")
    return import_run.run(conn, registry, territory, available[kind], location, filename=filename,
                          source_date=source_date, options=options, user=user, dry_run=dry_run, progress=progress,
                          limits=limits, lift_time_limit=lift_time_limit)


__all__ = ["OPEN_DATA_KINDS", "ImportReport", "Issue", "Kind", "Progress", "guess_source_date", "kinds",
           "run_import"]
