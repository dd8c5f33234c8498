"""The layers' versions in process memory (``services/publish/layer_versions.py``): with the listener up a cached tile
costs no statement, a change through the trigger reaches the next requests, and a listener killed falls back to
reading the counters (still correct) until it reconnects."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import mapbox_vector_tile
import morecantile
import pytest
from factories import Factory
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text

from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services.publish.layer_state import LayerState
from geo_service.services.publish.layer_versions import LayerVersions
from geo_service.settings import Settings

TMS = morecantile.tms.get("WebMercatorQuad")
# A z14 tile at sea off the Vendée, apart from every other test's fixtures.
LON, LAT = -2.7, 46.2
TILE = TMS.tile(LON, LAT, 14)
URL = f"/tiles/wifi_hotspots/14/{TILE.x}/{TILE.y}.mvt"
DEADLINE_S = 20

T = TypeVar("T")


def _until(probe: Callable[[], T], accept: Callable[[T], bool], what: str) -> T:
    """Probe again until ``accept`` holds (a notification travels asynchronously); fail past the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        found = probe()
        if accept(found):
            return found
        assert time.monotonic() < deadline, f"{what}: still {found!r} after {DEADLINE_S} s"
        time.sleep(0.05)


def _names(response) -> list[str]:
    decoded = mapbox_vector_tile.decode(response.content) if response.content else {}
    return sorted(f["properties"]["lieu"] for f in decoded.get("wifi_hotspots", {}).get("features", []))


class StatementCount:
    """Statements the application's engines send (SQLAlchemy ``before_cursor_execute``)."""

    def __init__(self, *engines: Engine):
        self.count = 0
        self._engines = engines
        for engine in engines:
            event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: object) -> None:
        self.count += 1

    def close(self) -> None:
        for engine in self._engines:
            event.remove(engine, "before_cursor_execute", self._seen)


@pytest.fixture
def factory(engine: Engine, registry: LayerRegistry) -> Iterator[Factory]:
    factory = Factory(registry)
    yield factory
    with engine.begin() as conn:
        factory.cleanup(conn)


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        versions: LayerVersions = client.app.state.layer_versions
        _until(lambda: versions.live, bool, "listener connected")
        yield client


def _statements(client: TestClient) -> StatementCount:
    return StatementCount(client.app.state.engine, client.app.state.read_engine)


def test_a_tile_hit_makes_no_statement_while_the_listener_is_live(client: TestClient, engine: Engine,
                                                                  factory: Factory) -> None:
    with engine.begin() as conn:
        factory.feature(conn, "wifi_hotspots", (LON, LAT), lieu="Borne de l'île d'Yeu", code_insee="46042")
    first = _until(lambda: client.get(URL), lambda r: _names(r) == ["Borne de l'île d'Yeu"], "new borne in the tile")
    counted = _statements(client)
    try:
        again = client.get(URL)
        revalidated = client.get(URL, headers={"If-None-Match": first.headers["etag"]})
        assert (again.status_code, again.content, again.headers["etag"]) == (200, first.content, first.headers["etag"])
        assert revalidated.status_code == 304
        assert counted.count == 0
        # Listener stopped: the same hit reads the counters again (one statement), and answers the same.
        client.app.state.layer_versions.stop()
        fallback = client.get(URL)
        assert (fallback.content, fallback.headers["etag"]) == (first.content, first.headers["etag"])
        assert counted.count == 1
    finally:
        counted.close()


def test_the_etag_is_the_same_with_or_without_the_listener(client: TestClient, settings: Settings,
                                                           engine: Engine, factory: Factory) -> None:
    with engine.begin() as conn:
        factory.feature(conn, "wifi_hotspots", (LON, LAT), lieu="Borne des Sables", code_insee="46042")
    heard = _until(lambda: client.get(URL), lambda r: _names(r) == ["Borne des Sables"], "new borne in the tile")
    without = settings.model_copy(update={"db": settings.db.model_copy(update={"listen_layer_changes": False})})
    with TestClient(create_app(without)) as reading:
        assert reading.app.state.layer_versions is None
        read = reading.get(URL)
    assert (read.headers["etag"], read.headers["last-modified"]) == (heard.headers["etag"],
                                                                     heard.headers["last-modified"])


def test_a_change_through_the_trigger_reaches_the_next_requests(client: TestClient, engine: Engine,
                                                                factory: Factory) -> None:
    versions: LayerVersions = client.app.state.layer_versions
    empty = client.get(URL)
    assert empty.status_code == 204
    synced = versions.syncs
    with engine.begin() as conn:
        factory.feature(conn, "wifi_hotspots", (LON, LAT), lieu="Borne de Noirmoutier", code_insee="46042")
    fresh = _until(lambda: client.get(URL), lambda r: r.status_code == 200, "tile after the insert")
    assert _names(fresh) == ["Borne de Noirmoutier"] and fresh.headers["etag"] != empty.headers["etag"]
    assert versions.live and versions.syncs > synced  # heard from the notification, not read by the request


def test_a_killed_listener_stays_correct_then_reconnects(client: TestClient, engine: Engine,
                                                         factory: Factory) -> None:
    versions: LayerVersions = client.app.state.layer_versions
    killed = versions.backend_pid
    assert client.get(URL).status_code == 204
    with engine.begin() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": killed}).scalar()
        # Written while the listener is down: its notification reaches no one.
        factory.feature(conn, "wifi_hotspots", (LON, LAT), lieu="Borne de Ré", code_insee="46042")
    # Its session gone, the listener stops answering (requests read the counters) until it has reconnected and read
    # the whole table again: the change whose notification was lost is seen all the same.
    _until(lambda: _names(client.get(URL)), lambda names: names == ["Borne de Ré"], "change made while down")
    _until(lambda: (versions.live, versions.backend_pid), lambda s: s[0] and s[1] not in (None, killed),
           "listener reconnected")
    counted = _statements(client)
    try:
        assert _names(client.get(URL)) == ["Borne de Ré"] and counted.count == 0
    finally:
        counted.close()


def test_a_tile_is_stored_under_the_state_it_was_drawn_from(client: TestClient, engine: Engine,
                                                            factory: Factory) -> None:
    """The versions in memory may run ahead of the connection that renders (a read replica that has not replayed
    yet what the primary notified): the tile drawn then must not be kept under the newer version."""
    with engine.begin() as conn:
        factory.feature(conn, "wifi_hotspots", (LON, LAT), lieu="Borne du Port-Joinville", code_insee="46042")
    drawn = _until(lambda: client.get(URL), lambda r: _names(r) == ["Borne du Port-Joinville"], "borne in the tile")
    versions: LayerVersions = client.app.state.layer_versions
    ahead = dict(versions._states)
    ahead["wifi_hotspots"] = LayerState(ahead["wifi_hotspots"].version + 1, ahead["wifi_hotspots"].changed_at)
    versions._states = ahead  # as if a change were notified that the rendering connection cannot see yet
    client.app.state.caches.tiles.clear()
    for _ in range(2):  # drawn, then taken from the cache: each time under the state the database showed
        answered = client.get(URL)
        assert answered.status_code == 200 and _names(answered) == ["Borne du Port-Joinville"]
        assert answered.headers["etag"] == drawn.headers["etag"]
