"""The SQL this service runs for a request, recorded from its own domain services (not rewritten by hand).

Each service call is stopped at its first statement: the statement and its parameters are kept and
converted to asyncpg's ``$n`` form for ``floor.py``. Nothing is executed while capturing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import Connection, Engine, event
from workload import Sample, cql2

from geo_service.layers import LayerRegistry
from geo_service.services.app_caches import AppCaches
from geo_service.services.publish import ogc_items, vector_tiles
from geo_service.services.publish.crs import CRS84
from geo_service.services.publish.feature_reader import Collection, open_collection
from geo_service.services.publish.read_access import ANONYMOUS
from geo_service.settings import Settings

_PARAM = re.compile(r"%\((\w+)\)s")


class _Captured(Exception):
    """Raised by the hook once the statement is recorded, so it never reaches the database."""


def to_asyncpg(statement: str, params: dict) -> list:
    """``%(name)s`` → ``$n`` (a repeated name keeps its number), and the values in that order."""
    names: list[str] = []

    def number(match: re.Match) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return [_PARAM.sub(number, statement).replace("%%", "%"), [params[n] for n in names]]


def _first_statement(conn: Connection, call: Callable[[Connection], object]) -> list:
    seen: list[tuple[str, dict]] = []

    def hook(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, dict(parameters or {})))
        raise _Captured

    event.listen(conn, "before_cursor_execute", hook)
    try:
        result = call(conn)
        if hasattr(result, "__next__"):
            next(result)  # a generator (streamed pages) runs its statement on first use
    except _Captured:
        pass
    finally:
        event.remove(conn, "before_cursor_execute", hook)
    if not seen:
        raise RuntimeError("aucune requête SQL capturée")
    return to_asyncpg(*seen[0])


def _items(conn: Connection, coll: Collection, settings: Settings, pairs: list[tuple[str, str]]) -> list:
    """A page: one statement (count, page and layer state, as ``api/ogc_read.py`` asks for them)."""
    q = ogc_items.parse_items_query(coll, pairs, default_limit=settings.api.ogc_default_limit,
                                max_limit=settings.api.ogc_max_limit)
    if q.reusable:  # run on the driver connection, out of SQLAlchemy's sight: ask for its SQL
        return [to_asyncpg(*ogc_items.page_statement(coll, q, True, conn.dialect))]
    # A filter's first page (counted; the next pages of the same filter reuse the count).
    filtered = ogc_items.filtered_statement(coll, q, conn.dialect, counted=True)
    if filtered is not None:
        return [to_asyncpg(*filtered)]
    return [_first_statement(conn, lambda c: ogc_items.read_page(c, coll, q, with_state=True))]


def _tile(conn: Connection, coll: Collection, settings: Settings, address: vector_tiles.TileAddress) -> list:
    # Tiles run on the driver connection (binary result), out of SQLAlchemy's sight: ask for their SQL.
    return to_asyncpg(*vector_tiles.tile_query([coll], address, settings.tiles, conn.dialect))


def floor_cases(engine: Engine, registry: LayerRegistry, settings: Settings, sample: Sample) -> dict[str, list]:
    """Per case, the list of requests, each the statements the service runs for it (data queries only)."""
    coll = open_collection(AppCaches(registry), "premises", ANONYMOUS)
    cases: dict[str, list] = {}
    with engine.connect() as conn:
        cases["items_bbox"] = [_items(conn, coll, settings, [("bbox", ",".join(map(str, b))), ("limit", "100")])
                               for b in sample.bboxes]
        cases["feature"] = [[to_asyncpg(*ogc_items.feature_statement(coll, int(fid), CRS84, conn.dialect))]
                            for fid in sample.fids]
        cases["cql2_filter"] = [_items(conn, coll, settings, [("filter", cql2(code, etat)), ("limit", "100")])
                                for code, etat in sample.filters]
        for z, coords in sample.tiles.items():
            cases[f"tile_z{z}"] = [[_tile(conn, coll, settings, vector_tiles.TileAddress(z, x, y))] for x, y in coords]
    return cases
