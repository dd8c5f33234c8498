"""Faults: PostgreSQL stopped and started again under load, a disk that fills up in the middle of an import, and
200 simultaneous edits of the same few features.

These run on a PostgreSQL cluster of their own (a throw-away ``PrivateCluster`` in a temporary folder, on a free
port): it is the one stopped. The shared cluster is never touched. The service runs under uvicorn on 127.0.0.1
and is reached over real HTTP by several threads at once.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from browser_support import serve_app
from sqlalchemy import text

from geo_service.cluster import PrivateCluster
from geo_service.db import migrate
from geo_service.main import create_app
from geo_service.settings import ClusterSettings, Settings
from robustness.support import World, build_world, table_checksum

CLI = str(Path(sys.executable).with_name("geo-service"))
ITEMS = "/ogc/collections/wifi_hotspots/items"
# What the map and GIS clients ask most: each needs the database.
READS = ["/api/nearby?lon={lon}&lat={lat}", "/api/geocode?q=Cahors", ITEMS + "?limit=5",
         "/ogc/collections/wifi_hotspots/items?bbox=1.3,44.3,1.6,44.6", "/tiles/wifi_hotspots/8/128/93.mvt",
         "/healthz"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    """The throw-away cluster, the world written into it and the service running on it."""

    cluster: PrivateCluster
    world: World
    url: str


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory, registry, boundaries_dir) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("faults")
    cluster = PrivateCluster(ClusterSettings(data_dir=folder / "pgdata", port=_free_port(), database="faults"))
    try:
        cluster.up()
        settings = Settings(mode="test", database_url=f"postgresql://{cluster.owner}@/faults?"
                                                      f"host={cluster.data_dir.resolve()}&port={cluster.port}")
        migrate(settings)
        world = build_world(settings, registry, boundaries_dir)
        with serve_app(create_app(settings)) as url:
            yield Cluster(cluster, world, url)
        world.engine.dispose()
    finally:
        try:
            cluster.down()
        finally:
            shutil.rmtree(cluster.data_dir.resolve(), ignore_errors=True)


# -- PostgreSQL stopped and started again under load ---------------------------------------------------------------
@dataclass(frozen=True)
class Seen:
    path: str
    status: int
    content_type: str
    retry_after: str | None
    during_outage: bool


def _hammer(base: str, paths: list[str], stop: threading.Event, outage: threading.Event, seen: list[Seen]) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        i = 0
        while not stop.is_set():
            path = paths[i % len(paths)]
            i += 1
            down = outage.is_set()
            try:
                response = client.get(path)
            except httpx.HTTPError as exc:  # the service itself must never drop a request
                seen.append(Seen(path, 0, type(exc).__name__, None, down))
                continue
            seen.append(Seen(path, response.status_code, response.headers.get("content-type", ""),
                             response.headers.get("retry-after"), down or outage.is_set()))


def _all_ok(base: str, paths: list[str]) -> bool:
    with httpx.Client(base_url=base, timeout=30) as client:
        return all(client.get(path).status_code in (200, 204) for path in paths)


def test_the_database_stopped_under_load_gives_503_then_the_service_recovers(own_cluster: Cluster):
    world = own_cluster.world
    paths = [p.format(lon=world.inside[0], lat=world.inside[1]) for p in READS]
    assert _all_ok(own_cluster.url, paths)
    before = table_checksum(world.engine, world.registry)
    stop, outage, seen = threading.Event(), threading.Event(), []
    clients = [threading.Thread(target=_hammer, args=(own_cluster.url, paths[i:] + paths[:i], stop, outage, seen))
               for i in range(4)]
    for thread in clients:
        thread.start()
    try:
        _wait_for(lambda: len(seen) >= 40, "the clients never got going")
        outage.set()
        own_cluster.cluster.down()
        count = len(seen)
        _wait_for(lambda: sum(s.status == 503 for s in seen[count:]) >= 20, "no 503 while the database was down")
        own_cluster.cluster.up()
        outage.clear()
        # Recovery without restarting the service: every kind of request answers again.
        _wait_for(lambda: _all_ok(own_cluster.url, paths), "the service did not recover once PostgreSQL was back")
        count = len(seen)
        _wait_for(lambda: len(seen) >= count + 40, "the clients stopped")
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=60)
    statuses = Counter(s.status for s in seen)
    assert set(statuses) <= {200, 204, 503}, statuses
    for s in seen:
        if s.status == 503:
            assert s.retry_after and int(s.retry_after) > 0, s
            if s.path != "/healthz":
                assert s.content_type.startswith("application/problem+json"), s
    assert statuses[503] >= 20 and statuses[200] >= 80, statuses
    assert table_checksum(world.engine, world.registry) == before  # no data lost or changed


def _wait_for(condition, message: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.1)


# -- a disk that fills up in the middle of an import -----------------------------------------------------------------
@pytest.fixture
def small_disk(own_cluster: Cluster) -> Iterator[str]:
    """A tablespace on a 256 KiB tmpfs, holding the Wi-Fi bornes' table for the length of the test (root only)."""
    if os.geteuid() != 0:
        pytest.skip("monter un tmpfs demande d'être root")
    # Beside the cluster's own folder: a place its system user can reach.
    data = own_cluster.cluster.data_dir.resolve()
    mount = data.with_name(data.name + "-small-disk")
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        shutil.chown(mount, user=own_cluster.cluster.owner)
        with own_cluster.cluster.connect("faults") as conn:
            conn.execute(f"CREATE TABLESPACE small_disk LOCATION '{mount}'")
            conn.execute("ALTER TABLE wifi_hotspots SET TABLESPACE small_disk")
        yield str(mount)
        with own_cluster.cluster.connect("faults") as conn:
            conn.execute("ALTER TABLE wifi_hotspots SET TABLESPACE pg_default")
            conn.execute("DROP TABLESPACE small_disk")
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


def test_a_disk_full_in_the_middle_of_an_import_leaves_nothing_half_written(own_cluster: Cluster, small_disk,
                                                                           tmp_path):
    world = own_cluster.world
    lon, lat = world.inside
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon + (i % 50) * 2e-4,
                                                                                  lat + (i // 50) * 2e-4]},
                 # Random text just under PostgreSQL's compression threshold: each row takes its full size.
                 "properties": {"borne_id": f"FULL-{i}", "lieu": os.urandom(900).hex(), "ssid": "WIFI public lotois",
                                "statut": "installee"}} for i in range(1500)]
    path = tmp_path / "bornes.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    before = table_checksum(world.engine, world.registry)
    env = {**os.environ, "GEO_SERVICE_DATABASE_URL": world.settings.database_url}
    result = subprocess.run([CLI, "edit", "import", str(path), "--layer", "wifi_hotspots", "--as", "rb-admin"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0, result.stdout[-500:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "disque plein" in result.stderr and "rien n'a été écrit" in result.stderr, result.stderr[-500:]
    assert table_checksum(world.engine, world.registry) == before
    with world.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM wifi_hotspots WHERE borne_id LIKE 'FULL-%'")).scalar() == 0


# -- 200 simultaneous edits of the same features -------------------------------------------------------------------
def _edit(base: str, token: str, fid: int, n: int) -> tuple[int, int, str | None]:
    """Read the feature, then patch its ``lieu`` to « édition n » with the ETag read; returns (feature, status,
    new ETag)."""
    with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
        etag = client.get(f"{ITEMS}/{fid}").headers["etag"]
        response = client.patch(f"{ITEMS}/{fid}", json={"properties": {"lieu": f"édition {n}"}},
                                headers={"If-Match": etag, "Content-Type": "application/merge-patch+json"})
        return fid, response.status_code, response.headers.get("etag") if response.status_code == 200 else None


def test_200_simultaneous_edits_lose_no_update(own_cluster: Cluster):
    world = own_cluster.world
    fids = [world.features[k] for k in ("wifi_cahors_mairie", "wifi_cahors_eglise", "wifi_figeac")]
    with world.engine.connect() as conn:
        start = {fid: conn.execute(text("SELECT version FROM wifi_hotspots WHERE fid = :f"), {"f": fid}).scalar_one()
                 for fid in fids}
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda n: _edit(own_cluster.url, world.tokens["admin"], fids[n % 3], n), range(200)))
    written = {(fid, etag): f"édition {n}" for n, (fid, status, etag) in enumerate(results) if status == 200}
    statuses = Counter(status for _, status, _ in results)
    assert set(statuses) <= {200, 409, 412, 428}, statuses
    assert statuses[200] >= len(fids), statuses  # at least the first edit of each feature went through
    with world.engine.connect() as conn:
        for fid in fids:
            won = [etag for f, status, etag in results if f == fid and status == 200]
            versions = sorted(int(e.strip('"v')) for e in won)
            # Every successful change is a version of its own, one after the other, none lost, none twice.
            assert versions == list(range(start[fid] + 1, start[fid] + 1 + len(won))), (fid, versions)
            history = [row[0] for row in conn.execute(text(
                "SELECT version_after FROM feature_history WHERE layer_id = 'wifi_hotspots' AND fid = :f "
                "AND version_after > :v ORDER BY version_after"), {"f": fid, "v": start[fid]})]
            assert history == versions, (fid, history, versions)
            lieu, version = conn.execute(text("SELECT lieu, version FROM wifi_hotspots WHERE fid = :f"),
                                         {"f": fid}).one()
            assert version == versions[-1]
            assert lieu == written[(fid, f'"v{version}"')]  # the final state is the last successful write
