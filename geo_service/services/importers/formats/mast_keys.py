"""What the two mast importers (ARCEP sites, ANFR) share: one mast per physical site, keyed by a station.

A mast row stands for a physical site: the stations of all operators on it. Its key (``id_station_anfr``)
is the station already used by the existing mast when one of the site's stations is known (so a new
operator arriving on a site does not create a second mast), else the smallest station number; every
station of the site is kept in ``stations_anfr``, merged (union) on each import so that ARCEP and ANFR
imports complete each other instead of undoing each other.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, text

# ARCEP's MCC-MNC codes and ANFR's operator names → the layers' operator codes.
MCC_MNC = {"20801": "orange", "20810": "sfr", "20815": "free", "20820": "bouygues"}
OPERATOR_NAMES = {"orange": "orange", "orange france": "orange", "sfr": "sfr", "free mobile": "free",
                  "free": "free", "bouygues telecom": "bouygues", "bouygues": "bouygues"}
OPERATORS = ("orange", "sfr", "bouygues", "free")
# stations_anfr: sorted union of what the mast had and what the import saw.
STATIONS_MERGE = ("ARRAY(SELECT DISTINCT s FROM unnest(coalesce({old}.stations_anfr, '{{}}'::text[]) "
                  "|| coalesce({new}.stations_anfr, '{{}}'::text[])) AS u(s) ORDER BY s)")


def resolve_keys(conn: Connection, sites: Iterable[Iterable[str]]) -> list[str]:
    """For each site (its station numbers), the key of the mast that already holds one of them, else the
    smallest station number."""
    sites = [sorted(set(stations)) for stations in sites]
    every = sorted({s for stations in sites for s in stations})
    existing: dict[str, str] = {}
    if every:
        rows = conn.execute(text("""
            SELECT id_station_anfr, coalesce(stations_anfr, '{}'::text[]) FROM mobile_masts
            WHERE id_station_anfr = ANY(CAST(:s AS text[])) OR stations_anfr && CAST(:s AS text[])
            ORDER BY demo, id_station_anfr"""), {"s": every}).all()
        for key, stations in rows:
            for station in [key, *stations]:
                existing.setdefault(station, key)
    return [next((existing[s] for s in stations if s in existing), stations[0]) for stations in sites]


def mast_name(place: str | None, commune: str | None, key: str) -> str:
    """A readable name for a new mast: the ANFR place name when known, else the commune and the station."""
    if place:
        return f"{place.strip().title()} ({commune})" if commune else place.strip().title()
    return f"Site {key} ({commune})" if commune else f"Site {key}"
