"""Rendered tiles kept by their ETag (``services/tile_cache.py``): a tile asked again while its layers are unchanged
is not rendered again, a change to its layer gives a new tile at once, memory and the shared folder stay bounded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import mapbox_vector_tile
import morecantile
import pytest
from factories import Factory, account, wipe_editing
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services.tile_cache import TileCache
from geo_service.settings import Settings

TMS = morecantile.tms.get("WebMercatorQuad")
# A z14 tile in the Bay of Biscay, apart from every other test's fixtures (tests/test_tiles.py uses -3.0, 44.0).
LON, LAT = -2.5, 45.5
TILE = TMS.tile(LON, LAT, 14)
URL = f"/tiles/wifi_hotspots/14/{TILE.x}/{TILE.y}.mvt"


def _names(response) -> list[str]:
    decoded = mapbox_vector_tile.decode(response.content) if response.content else {}
    return sorted(f["properties"]["lieu"] for f in decoded.get("wifi_hotspots", {}).get("features", []))


@pytest.fixture
def borne(engine: Engine, registry: LayerRegistry) -> Iterator[tuple[Factory, int]]:
    factory = Factory(registry)
    with engine.begin() as conn:
        fid = factory.feature(conn, "wifi_hotspots", (LON, LAT), lieu="Borne du large", code_insee="46042")
    yield factory, fid
    with engine.begin() as conn:
        factory.cleanup(conn)


def test_a_tile_asked_again_is_not_rendered_again_until_its_layer_changes(settings: Settings, engine: Engine,
                                                                          borne) -> None:
    factory, fid = borne
    with TestClient(create_app(settings)) as client:
        rendered = client.app.state.caches.tiles
        first = client.get(URL)
        assert first.status_code == 200 and _names(first) == ["Borne du large"]
        assert (rendered.hits, rendered.misses) == (0, 1)
        # The row goes away behind the service's back, without its change trigger (replica role): a tile still
        # holding it proves the second answer came from the cache, not from PostgreSQL.
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text("DELETE FROM wifi_hotspots WHERE fid = :fid"), {"fid": fid})
        again = client.get(URL)
        assert again.headers["etag"] == first.headers["etag"], (again.status_code, rendered.hits, rendered.misses)
        assert again.content == first.content, (again.status_code, again.headers)
        assert (rendered.hits, rendered.misses) == (1, 1)
        # Any change to the layer (here a row elsewhere, through the trigger) gives its tiles a new ETag: the
        # tile is rendered again and the deleted borne is gone.
        with engine.begin() as conn:
            factory.feature(conn, "wifi_hotspots", (1.44, 44.45), lieu="Borne de Cahors", code_insee="46042")
        # The change reaches the process by its notification (services/publish/layer_versions.py), a moment after
        # the commit: asked again until then.
        deadline = time.monotonic() + 20
        while (fresh := client.get(URL)).status_code != 204 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fresh.status_code == 204 and fresh.headers["etag"] != first.headers["etag"]
        assert rendered.misses == 2


def test_readers_never_share_a_cached_tile(settings: Settings, engine: Engine, registry: LayerRegistry,
                                          borne) -> None:
    """The reader is part of the ETag: what an editor's tile holds (proposals, restricted fields) is kept apart
    from the public's tile, each rendered once."""
    with engine.begin() as conn:
        token = account(conn, "tuiles-agent", "editor")
    try:
        with TestClient(create_app(settings)) as client:
            rendered = client.app.state.caches.tiles
            public = client.get(URL)
            agent = client.get(URL, headers={"Authorization": f"Bearer {token}"})
            assert agent.status_code == 200 and agent.headers["etag"] != public.headers["etag"]
            assert agent.headers["cache-control"].startswith("private")
            assert client.get(URL).headers["etag"] == public.headers["etag"]
            assert (len(rendered), rendered.hits, rendered.misses) == (2, 1, 2)
    finally:
        with engine.begin() as conn:
            wipe_editing(conn, registry)


def test_memory_is_bounded_least_recently_used_first_out() -> None:
    cache = TileCache(max_bytes=100)
    for name in "abcd":
        cache.put(name, name.encode() * 30)
    assert cache.get("a") is None and cache.memory_bytes == 90 and len(cache) == 3
    assert cache.get("b") == b"b" * 30
    cache.put("e", b"e" * 30)  # "c" is now the least recently used
    assert cache.get("c") is None and cache.get("b") is not None and cache.memory_bytes <= 100
    cache.put("huge", b"x" * 101)  # larger than the whole cache: not kept, nothing evicted for it
    assert cache.get("huge") is None and len(cache) == 3


def test_the_folder_is_shared_between_processes_and_pruned(tmp_path: Path) -> None:
    one, other = (TileCache(1000, tmp_path, directory_max_bytes=1000) for _ in range(2))
    one.put('"0123abcd"', b"tile")
    assert other.get('"0123abcd"') == b"tile" and other.hits == 1
    assert not list(tmp_path.rglob(".tmp-*"))
    for i in range(12):
        one.put(f'"{i:02d}ffff"', b"z" * 100)
    kept = sum(f.stat().st_size for f in tmp_path.rglob("*.mvt"))
    assert kept <= 1000 and one.get('"11ffff"') == b"z" * 100
    assert TileCache(0, tmp_path).get('"00ffff"') is None  # the oldest were deleted first


def test_a_folder_that_cannot_be_written_costs_the_cache_not_the_tile(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    cache = TileCache(1000, blocked)
    cache.put('"abcd"', b"tile")
    assert cache.get('"abcd"') == b"tile"
