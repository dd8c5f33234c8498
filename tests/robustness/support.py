"""Shared pieces of the robustness suite: a database of its own for the tests that write at random, a checksum
of the tables a hostile request must leave unchanged, and the few known rows those tests aim at."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg
from factories import Factory, account, build_ogc_fixtures, convention, epci_points
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from geo_service.db import make_engine, migrate
from geo_service.layers import LayerRegistry
from geo_service.services.editing import conventions
from geo_service.services.importers import boundaries
from geo_service.settings import Settings

# The tables a refused request must not touch: every layer's, and what editing writes beside them.
EDITING_TABLES = ("feature_history", "change_requests", "accounts", "account_tokens", "conventions")


def _conninfo(url) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def scratch_database(settings: Settings, suffix: str) -> Iterator[Settings]:
    """A new database beside the session's (same server), migrated, dropped afterwards; yields its settings."""
    url = make_url(settings.sqlalchemy_url)
    name = f"{url.database}_{suffix}"
    with psycopg.connect(_conninfo(url.set(database="postgres")), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(_conninfo(url.set(database=name)), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    scratch = settings.model_copy(update={"database_url": _conninfo(url.set(database=name))})
    try:
        migrate(scratch)
        yield scratch
    finally:
        with psycopg.connect(_conninfo(url.set(database="postgres")), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def table_checksum(engine: Engine, registry: LayerRegistry, tables: tuple[str, ...] = ()) -> dict[str, str]:
    """A digest of every row of each layer table and of ``EDITING_TABLES`` (or of ``tables``): equal digests,
    unchanged data (``updated_at`` and ``version`` included)."""
    names = tables or (*(layer.id for layer in registry), *EDITING_TABLES)
    digests = {}
    with engine.connect() as conn:
        for name in names:
            # The table name comes from the registry or the list above, never from a request.
            # A token's last use is noted when it is presented: that is not a change of the data.
            rows = conn.execute(text(f"SELECT md5(string_agg(r, '|' ORDER BY r)) FROM "
                                     f"(SELECT (to_jsonb(t) - 'last_used_at')::text AS r FROM {name} t) s"))
            digests[name] = rows.scalar() or hashlib.md5(b"").hexdigest()
    return digests


@dataclass
class World:
    """A small territory for the tests that write: boundaries, a few known features, accounts and their tokens."""

    settings: Settings
    engine: Engine
    registry: LayerRegistry
    tokens: dict[str, str]
    features: dict[str, int]
    mine: str
    other: str
    inside: tuple[float, float]
    outside: tuple[float, float]


def build_world(settings: Settings, registry: LayerRegistry, boundaries_dir: Path) -> World:
    """Boundaries, the OGC fixtures (Wi-Fi bornes, third places, premises), an admin, an editor and an EPCI
    contributor with its ascending convention, written into the database of ``settings``."""
    engine = make_engine(settings, pool_size=2, max_overflow=2)
    today = conventions.local_day()
    with engine.begin() as conn:
        boundaries.load_from_dir(conn, settings.territory, boundaries_dir)
        fx = build_ogc_fixtures(conn, registry)
        points = epci_points(conn)
        features = dict(fx.ids)
        factory = Factory(registry)
        features["borne_other_epci"] = factory.feature(conn, "wifi_hotspots", points.outside, code_insee="46102",
                                                       lieu="Borne de l'autre EPCI", statut="installee")
        tokens = {"admin": account(conn, "rb-admin", "admin"), "editor": account(conn, "rb-editor", "editor"),
                  "contributor": account(conn, "rb-contrib", "epci_contributor", epci=points.mine)}
        convention(conn, registry, points.mine, "ascendante", ["wifi_hotspots", "third_places"],
                   starts_on=today - timedelta(days=30))
    return World(settings, engine, registry, tokens, features, points.mine, points.other, points.inside,
                 points.outside)
