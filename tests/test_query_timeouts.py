"""Time limits of the web service's database sessions (``settings.db``): a statement that cannot finish in time
is cancelled by PostgreSQL and becomes a 503 problem naming the limit, never a 500; the pools stay usable;
the command line's engine has no limit, so imports and migrations are never cut.

A statement that cannot finish is made for real: a test transaction holds an exclusive lock on the layer the
request reads, so the request waits until its limit cancels it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from factories import Factory
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.cli.state import CliState
from geo_service.db import make_engine, make_read_engine
from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.settings import DatabaseSettings, Settings

ITEMS = "/ogc/collections/wifi_hotspots/items"
# Main engine 0.4 s, read engine 0.3 s: the answer must name the limit of the engine that ran the statement.
LIMITS = DatabaseSettings(statement_timeout_ms=400, read_statement_timeout_ms=300, lock_timeout_ms=0,
                          idle_in_transaction_timeout_ms=10_000)


@pytest.fixture(scope="module")
def fid(engine: Engine, registry: LayerRegistry) -> Iterator[int]:
    factory = Factory(registry)
    with engine.begin() as conn:
        fid = factory.feature(conn, "wifi_hotspots", (1.44, 44.45), lieu="Mairie (délais)")
    yield fid
    with engine.begin() as conn:
        factory.cleanup(conn)


@contextmanager
def layer_locked(engine: Engine, layer: str = "wifi_hotspots") -> Iterator[None]:
    """Hold an ACCESS EXCLUSIVE lock on a layer table: every statement reading it waits."""
    with engine.connect() as blocker:
        transaction = blocker.begin()
        blocker.execute(text(f"LOCK TABLE {layer} IN ACCESS EXCLUSIVE MODE"))
        try:
            yield
        finally:
            transaction.rollback()


def client_with(settings: Settings, limits: DatabaseSettings) -> TestClient:
    return TestClient(create_app(settings.model_copy(update={"db": limits})), raise_server_exceptions=False)


def timed_out(answer, limit: str) -> dict:
    assert answer.status_code == 503, (answer.status_code, answer.text[:300])
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert f"temps maximal accordé ({limit} s)" in problem["detail"], problem
    return problem


def test_a_statement_past_the_limit_is_a_503_naming_it_and_the_pools_recover(settings: Settings, engine: Engine,
                                                                            fid: int):
    with client_with(settings, LIMITS) as client:
        assert client.get(ITEMS, params={"filter": "lieu LIKE 'Mairie%'"}).status_code == 200
        with layer_locked(engine):
            # Main engine, through SQLAlchemy (a filter) and on the driver connection (a plain page, a tile).
            timed_out(client.get(ITEMS, params={"filter": "lieu LIKE 'Mairie%'"}), "0,4")
            timed_out(client.get(ITEMS), "0,4")
            timed_out(client.get(ITEMS, params={"limit": 5000}), "0,4")  # counted before streaming
            timed_out(client.get("/tiles/wifi_hotspots/12/2064/1482.mvt"), "0,4")
            # The read engine (one feature): its own, shorter limit.
            timed_out(client.get(f"{ITEMS}/{fid}"), "0,3")
        # Every connection that was cancelled went back to its pool in a usable state.
        for _ in range(25):
            assert client.get(ITEMS, params={"filter": "lieu LIKE 'Mairie%'"}).status_code == 200
            assert client.get(f"{ITEMS}/{fid}").status_code == 200
            assert client.get(ITEMS).status_code == 200


def test_a_stream_whose_query_is_cancelled_is_a_503_not_a_200_cut_short(settings: Settings, engine: Engine,
                                                                        fid: int):
    lambert = "http://www.opengis.net/def/crs/EPSG/0/2154"
    # /api/layers streams from its first statement on; the layer's lock stops it before any feature.
    with client_with(settings, LIMITS) as client, layer_locked(engine):
        timed_out(client.get("/api/layers/wifi_hotspots"), "0,4")
    # A page of more than a batch is counted, then streamed. Here the count passes and the page waits: it
    # transforms to Lambert-93, so it reads spatial_ref_sys (locked here) on the connection's first use of it.
    with client_with(settings, LIMITS) as client:
        with layer_locked(engine, "spatial_ref_sys"):
            answer = client.get(ITEMS, params={"limit": 2000, "crs": lambert})
            timed_out(answer, "0,4")
        assert client.get(ITEMS, params={"limit": 2000, "crs": lambert}).status_code == 200


def test_a_lock_held_too_long_is_a_503_with_retry_after(settings: Settings, engine: Engine, fid: int):
    limits = DatabaseSettings(statement_timeout_ms=30_000, lock_timeout_ms=200)
    with client_with(settings, limits) as client, layer_locked(engine):
        answer = client.get(ITEMS, params={"filter": "lieu LIKE 'Mairie%'"})
        assert answer.status_code == 503, answer.text[:300]
        assert answer.headers["retry-after"] == "2"
        assert "en cours de modification" in answer.json()["detail"]


def _session_limits(engine: Engine) -> tuple[str, str, str]:
    with engine.connect() as conn:
        return tuple(conn.execute(text(f"SHOW {name}")).scalar_one()
                     for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"))


def test_the_web_engines_are_limited_and_the_command_line_is_not(settings: Settings, engine: Engine):
    configured = settings.model_copy(update={"db": DatabaseSettings(statement_timeout_ms=12_000,
                                                                    read_statement_timeout_ms=3_000,
                                                                    lock_timeout_ms=4_000,
                                                                    idle_in_transaction_timeout_ms=50_000)})
    web, read = make_engine(configured, web=True), make_read_engine(configured)
    state = CliState()
    state._settings = configured
    command_line = state.engine()
    try:
        assert _session_limits(web) == ("12s", "4s", "50s")
        assert _session_limits(read)[0] == "3s"
        assert _session_limits(command_line) == ("0", "0", "0")
    finally:
        for e in (web, read, command_line):
            e.dispose()
