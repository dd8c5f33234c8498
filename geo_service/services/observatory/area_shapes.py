"""Light outlines of the current communes and of the EPCI for the observatory's maps, built in PostGIS.

A current commune is the union of the 2018 communes merged into it (``code_insee_actuel``); each outline is
simplified with ``ST_SimplifyPreserveTopology`` (≈ 100 m, invisible at the zooms of a département map) and its
coordinates cut to five decimals (≈ 1 m), so that the whole territory weighs a few hundred kilobytes. The
browser joins them with the values by ``code``; the EPCI sheets draw the same outlines with matplotlib. Built
once per version of the communes and EPCI layers (``AppCaches.observatory_areas``).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, text

from geo_service.errors import NotFound
from geo_service.services.app_caches import AppCaches
from geo_service.services.publish import layer_state

AREA_LEVELS = ("commune", "epci")
# Degrees (≈ 100 m at the Lot's latitude).
SIMPLIFY_TOLERANCE = 0.001
_STATEMENTS = {
    "commune": """
        SELECT code_insee_actuel AS code, min(nom_actuel) AS name, min(epci_siren) AS epci,
               ST_AsGeoJSON(ST_SimplifyPreserveTopology(ST_Union(geom), :tolerance), 5) AS shape
        FROM communes WHERE geom IS NOT NULL GROUP BY code_insee_actuel ORDER BY code_insee_actuel""",
    "epci": """
        SELECT siren AS code, nom AS name, siren AS epci,
               ST_AsGeoJSON(ST_SimplifyPreserveTopology(geom, :tolerance), 5) AS shape
        FROM epci WHERE geom IS NOT NULL ORDER BY siren""",
}


def check_level(level: str) -> None:
    if level not in AREA_LEVELS:
        raise NotFound(f"Échelon « {level[:20]} » inconnu : contours disponibles pour commune et epci.",
                       parameter="level")


def collection(conn: Connection, caches: AppCaches, level: str) -> dict[str, Any]:
    """The outlines of ``level`` as a GeoJSON FeatureCollection (properties: code, name, epci)."""
    check_level(level)
    state = layer_state.state(conn, "communes" if level == "commune" else "epci")
    return caches.observatory_areas.get(level, state, lambda: _build(conn, level))


def encoded(conn: Connection, caches: AppCaches, level: str) -> bytes:
    """The same collection as JSON bytes, encoded once per version."""
    check_level(level)
    state = layer_state.state(conn, "communes" if level == "commune" else "epci")
    return caches.observatory_areas.get(("bytes", level), state, lambda: json.dumps(
        collection(conn, caches, level), ensure_ascii=False, separators=(",", ":")).encode())


def _build(conn: Connection, level: str) -> dict[str, Any]:
    rows = conn.execute(text(_STATEMENTS[level]), {"tolerance": SIMPLIFY_TOLERANCE})
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "id": code, "geometry": json.loads(shape),
                          "properties": {"code": code, "name": name, "epci": epci}}
                         for code, name, epci, shape in rows]}
