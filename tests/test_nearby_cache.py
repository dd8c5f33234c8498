"""What the report and the map keep in memory follows every change of its layer (``layer_changes``).

The small layers of the report (places, masts, MED sites, white zones) and the map's feature counts are read
once and kept until the layer's change counter moves: a row written, moved or deleted shows in the very next
answer, and a rolled-back change leaves no trace. The nearest-k search in memory is checked against brute force.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from factories import CAHORS, Factory, square
from pyproj import Geod
from sqlalchemy import Connection, Engine, text

from geo_service.layers import LayerRegistry
from geo_service.services.app_caches import AppCaches
from geo_service.services.resident import map_page, nearby_report
from geo_service.settings import MapSettings, Settings

AT = datetime(2026, 7, 15, 10, 0, 30, tzinfo=UTC)  # a Wednesday, mid-morning
# In a field near Cahors, away from the demo's places.
HERE = (CAHORS[0] + 0.05, CAHORS[1] + 0.03)


def _report(conn: Connection, caches: AppCaches, settings: Settings) -> dict:
    return nearby_report.report(conn, caches, settings.territory, *HERE, at=AT)


def test_a_new_place_is_in_the_next_report_and_gone_after_rollback(engine: Engine, registry: LayerRegistry,
                                                                   caches: AppCaches, settings: Settings,
                                                                   demo_territory):
    factory = Factory(registry)
    with engine.connect() as conn:
        before = _report(conn, caches, settings)
        conn.rollback()  # ends the transaction the report began
        transaction = conn.begin()
        factory.feature(conn, "third_places", HERE, tl_id="test-cache-tl", nom="Tiers-lieu du test",
                        horaires="Mo-Su 09:00-18:00")
        during = _report(conn, caches, settings)
        transaction.rollback()
        after = _report(conn, caches, settings)
    first = during["third_places"]["items"][0]
    assert (first["id"], first["name"], first["distance_m"]) == ("test-cache-tl", "Tiers-lieu du test", 0.0)
    assert first["opening"]["label"] == "Ouvert maintenant, ferme à 18 h"
    assert [p["id"] for p in during["third_places"]["items"][1:]] == \
        [p["id"] for p in before["third_places"]["items"][:2]]
    assert after["third_places"] == before["third_places"]


def test_moved_and_deleted_masts_and_a_new_white_zone_show_at_once(conn: Connection, registry: LayerRegistry,
                                                                   caches: AppCaches, settings: Settings,
                                                                   demo_territory):
    before = _report(conn, caches, settings)
    nearest = before["mobile"]["masts"][0]
    conn.execute(text("UPDATE mobile_masts SET geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) "
                      "WHERE id_station_anfr = :id"),
                 {"lon": HERE[0], "lat": HERE[1], "id": nearest["id_station_anfr"]})
    moved = _report(conn, caches, settings)
    assert moved["mobile"]["masts"][0]["id_station_anfr"] == nearest["id_station_anfr"]
    assert moved["mobile"]["masts"][0]["distance_m"] == 0.0
    conn.execute(text("DELETE FROM mobile_masts WHERE id_station_anfr = :id"), {"id": nearest["id_station_anfr"]})
    deleted = _report(conn, caches, settings)
    assert nearest["id_station_anfr"] not in {m["id_station_anfr"] for m in deleted["mobile"]["masts"]}

    Factory(registry).feature(conn, "white_zones", square(*HERE, 0.001), kind="mobile", technologie="4G",
                              operateur="tous")
    zones = {(t["kind"], t["technologie"]): t for t in _report(conn, caches, settings)["mobile"]["white_zones"]
             ["technologies"]}
    assert zones[("mobile", "4G")]["tous"] is True


def test_the_map_counts_follow_the_layer(conn: Connection, registry: LayerRegistry, caches: AppCaches,
                                         loaded_boundaries: Engine):
    first = map_page.build_map_page(conn, caches, MapSettings(), "du Lot")
    count = {layer.id: layer.count for group in first.groups for layer in group.layers}["wifi_hotspots"]
    Factory(registry).feature(conn, "wifi_hotspots", HERE)
    again = map_page.build_map_page(conn, caches, MapSettings(), "du Lot")
    assert {layer.id: layer.count for group in again.groups for layer in group.layers}["wifi_hotspots"] == count + 1
    assert again.config["layers"] and first.folium.html.count("folium-map") == again.folium.html.count("folium-map")


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_nearest_in_memory_is_exact_against_brute_force(count: int):
    """Points in clusters and at equal distances (ties by key): the answer is the brute-force one."""
    rng = np.random.default_rng(count)
    lon = np.concatenate([rng.uniform(1.0, 2.2, 150), np.full(4, 1.5)])
    lat = np.concatenate([rng.uniform(44.2, 45.0, 150), np.full(4, 44.6)])
    keys = [f"k{i:03d}" for i in range(len(lon))][::-1]
    points = nearby_report.PointSet(rows=[{"k": k} for k in keys], keys=keys, lon=lon, lat=lat)
    geod = Geod(ellps="WGS84")
    for x, y in [(1.5, 44.6), *zip(rng.uniform(1.0, 2.2, 40), rng.uniform(44.2, 45.0, 40), strict=True)]:
        d = geod.inv(np.full(len(lon), x), np.full(len(lon), y), lon, lat)[2]
        expected = sorted((float(d[i]), keys[i]) for i in range(len(lon)))[:count]
        [found] = nearby_report.search_points(x, y, [(points, nearby_report.Search(count=count))])
        assert [(round(dist, 6), row["k"]) for row, dist in found] == [(round(e, 6), k) for e, k in expected]
