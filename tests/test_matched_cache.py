"""``numberMatched`` of a filtered page counted once per layer version, reader and filter, and CQL2 filters parsed
once (``AppCaches.matched``, ``AppCaches.filters``): never stale, since a change to the layer counts again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from factories import Factory
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.settings import Settings

ITEMS = "/ogc/collections/wifi_hotspots/items"
LIEU = "Borne du compte"  # a name no other fixture uses
FILTER = {"filter": f"lieu = '{LIEU}' AND statut = 'installee'", "limit": "2"}


@pytest.fixture
def bornes(engine: Engine, registry: LayerRegistry) -> Iterator[tuple[Factory, list[int]]]:
    factory = Factory(registry)
    with engine.begin() as conn:
        fids = [factory.feature(conn, "wifi_hotspots", (1.44 + i / 1000, 44.45), lieu=LIEU, statut="installee",
                                code_insee="46042") for i in range(3)]
    yield factory, fids
    with engine.begin() as conn:
        factory.cleanup(conn)


def test_a_filter_asked_again_is_not_counted_again_until_its_layer_changes(settings: Settings, engine: Engine,
                                                                           registry: LayerRegistry, bornes) -> None:
    factory, fids = bornes
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        first = client.get(ITEMS, params=FILTER).json()
        assert (first["numberMatched"], first["numberReturned"]) == (3, 2)
        # A row goes away without its change trigger: the page (read each time) shows it, the count kept with
        # the layer's version does not — proof it was not counted again.
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text("DELETE FROM wifi_hotspots WHERE fid = :fid"), {"fid": fids[0]})
        again = client.get(ITEMS, params={**FILTER, "offset": "1"}).json()
        assert (again["numberMatched"], again["numberReturned"]) == (3, 1)
        # Any change through the trigger (here another layer row) counts again: exact once more.
        with engine.begin() as conn:
            factory.feature(conn, "wifi_hotspots", (1.5, 44.5), lieu="Autre borne", code_insee="46042")
        fresh = client.get(ITEMS, params=FILTER).json()
        assert (fresh["numberMatched"], fresh["numberReturned"]) == (2, 2)
        # Another filter is its own entry.
        other = client.get(ITEMS, params={"filter": f"lieu = '{LIEU}'", "statut": "programmee"}).json()
        assert other["numberMatched"] == 0


def test_a_refused_filter_is_refused_every_time(settings: Settings) -> None:
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        for _ in range(2):
            response = client.get(ITEMS, params={"filter": "lieu = "})
            assert response.status_code == 400 and "filter" in response.json()["detail"]
        assert len(client.app.state.caches.filters) == 0
        assert client.get(ITEMS, params={"filter": "statut = 'installee'"}).status_code == 200
        assert len(client.app.state.caches.filters) == 1
