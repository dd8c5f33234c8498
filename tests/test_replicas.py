"""Reads spread over a PostgreSQL hot standby (geo_service/db_routing.py, api/read_routing.py).

A throw-away primary (its own cluster, port and folder) with the territory's boundaries, and a real streaming
replica of it (``pg_basebackup -R``) on another port; the service between them, as ``db.replica_urls`` says.
Which server answered is proven by freezing the replica (``pg_wal_replay_pause()``): a public read then sees the
state before a write, the editor and the writer the state after it.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import morecantile
import pytest
from conftest import TEST_HOSTS, WIFI_ITEMS
from factories import EDIT_SOURCE, account, epci_points
from fastapi.testclient import TestClient
from pydantic import ValidationError

from geo_service.api.read_routing import RECENT_WRITE_COOKIE
from geo_service.cluster import PrivateCluster
from geo_service.db import make_engine, migrate
from geo_service.main import create_app
from geo_service.services.importers import boundaries
from geo_service.settings import ClusterSettings, DatabaseSettings, Settings

DATABASE = "geo_replicas"
# Deadline of every wait for a state (a replica to catch up, leave or come back): generous for a busy machine.
DEADLINE_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _socket_url(cluster: PrivateCluster) -> str:
    return f"postgresql://{cluster.owner}@/{DATABASE}?host={cluster.data_dir.resolve()}&port={cluster.port}"


@dataclass
class Topology:
    primary: PrivateCluster
    standby: PrivateCluster
    token: str  # an administrator's personal access token
    inside: tuple[float, float]  # a point of the territory

    def settings(self, *, replicas: bool = True, **db: object) -> Settings:
        if replicas:
            db = {"replica_urls": [_socket_url(self.standby)], "replica_check_interval_s": 0.2, **db}
        return Settings(mode="test", trusted_hosts=TEST_HOSTS, database_url=_socket_url(self.primary),
                        db=DatabaseSettings(**db))

    def on_standby(self, sql: str) -> object:
        with self.standby.connect(DATABASE) as conn:
            return conn.execute(sql).fetchone()[0]

    @contextmanager
    def replay_paused(self) -> Iterator[None]:
        """The standby stops replaying WAL (it still receives it): its data stay as they are now."""
        self.on_standby("SELECT pg_wal_replay_pause()")
        wait_for(lambda: self.on_standby("SELECT pg_get_wal_replay_pause_state()") == "paused", "replay paused")
        try:
            yield
        finally:
            self.on_standby("SELECT pg_wal_replay_resume()")


def wait_for(condition: Callable[[], object], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` past the deadline."""
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"still not the case after {deadline_s} s: {what}")
        time.sleep(0.05)


def _remove(cluster: PrivateCluster | None) -> None:
    if cluster is None:
        return
    try:
        cluster.down()
    finally:
        shutil.rmtree(cluster.data_dir.resolve(), ignore_errors=True)
        if cluster.data_dir.is_symlink():
            cluster.data_dir.unlink()


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory, boundaries_dir: Path) -> Iterator[Topology]:
    """The primary, migrated, with boundaries and an administrator; its hot standby started. Both removed after."""
    primary = PrivateCluster(ClusterSettings(data_dir=tmp_path_factory.mktemp("replicas") / "primary",
                                             port=_free_port(), database=DATABASE))
    standby = None
    try:
        primary.up()
        settings = Settings(mode="test", database_url=_socket_url(primary))
        migrate(settings)
        engine = make_engine(settings, pool_size=1)
        with engine.begin() as conn:
            boundaries.load_from_dir(conn, settings.territory, boundaries_dir)
            inside = epci_points(conn).inside
            token = account(conn, "replica-admin", "admin")
        engine.dispose()
        standby_port = _free_port()
        standby = primary.make_standby(primary.data_dir.resolve().parent / f"standby-{standby_port}", standby_port)
        standby.start()
        yield Topology(primary, standby, token, inside)
    finally:
        try:
            _remove(standby)
        finally:
            _remove(primary)


@contextmanager
def service(topology: Topology, **db: object) -> Iterator[TestClient]:
    """The service on the primary and its standby, once the standby is in rotation."""
    # localhost: the cookies of a plain-http test are not Secure (router_helpers.secure_cookies).
    with TestClient(create_app(topology.settings(**db)), base_url="http://localhost",
                    raise_server_exceptions=False) as client:
        wait_for(lambda: replica_health(client)["in_rotation"], "the replica in rotation")
        yield client


def replica_health(client: TestClient) -> dict:
    answer = client.get("/healthz")
    assert answer.status_code == 200, answer.text
    [replica] = answer.json()["replicas"]
    return replica


def new_borne(client: TestClient, topology: Topology) -> str:
    """An administrator creates a Wi-Fi borne (through the primary); its address."""
    borne = {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(topology.inside)},
             "properties": {"borne_id": f"rep-{time.monotonic_ns()}", "code_insee": "46042", "lieu": "Mairie",
                            "ssid": "WIFI public lotois", "statut": "installee", "source": EDIT_SOURCE}}
    created = client.post(WIFI_ITEMS, json=borne, headers={"Authorization": f"Bearer {topology.token}"})
    assert created.status_code == 201, created.text
    return created.headers["location"]


# Lag bounds so wide that a frozen replica stays in rotation (to prove public reads are served by it).
TOLERANT = {"replica_max_lag_s": 3600.0, "replica_max_lag_bytes": 2**40, "read_your_writes_s": 3700.0}


def test_public_reads_come_from_the_replica_the_editor_and_the_writer_read_the_primary(topology: Topology):
    with service(topology, **TOLERANT) as client, topology.replay_paused():
        location = new_borne(client, topology)
        editor = {"Authorization": f"Bearer {topology.token}"}
        assert client.get(location, headers=editor).status_code == 200
        assert client.cookies.get(RECENT_WRITE_COOKIE), "a write marks its client for read-your-writes"
        assert client.get(location).status_code == 200  # the writer's own read, by its cookie: the primary
        genuine = client.cookies.get(RECENT_WRITE_COOKIE)
        client.cookies.clear()
        # The public: the frozen replica, which has not seen the borne (and keeps not seeing it).
        assert client.get(location).status_code == 404
        # A cookie made up, or whose deadline is past, sends nobody to the primary.
        deadline, _, signature = genuine.partition(".")
        for forged in (f"{int(deadline) + 3600}.{signature}", f"{int(time.time()) - 1}.{signature}", "1.x", "é",
                       '"'):
            cookie = f"{RECENT_WRITE_COOKIE}={forged}".encode()
            assert client.get(location, headers={"Cookie": cookie}).status_code == 404, forged
        listed = client.get(WIFI_ITEMS, params={"limit": 1000}).json()["features"]
        assert location.rsplit("/", 1)[1] not in [str(f["id"]) for f in listed]
        health = client.get("/healthz")
        assert health.json()["replicas"][0]["lag_bytes"] is not None
        # No address, user or password of a replica in the public health page.
        assert "postgresql" not in health.text and str(topology.standby.port) not in health.text
        assert replica_health(client)["in_rotation"] and replica_health(client)["reads"] >= 2
    # Replay resumed: the replica catches up and the public sees the borne.
    with service(topology, **TOLERANT) as client:
        wait_for(lambda: client.get(location).status_code == 200, "the public sees the borne once replayed")


def test_a_resident_reads_the_report_they_just_sent(topology: Topology):
    with service(topology, **TOLERANT) as resident, topology.replay_paused():
        lon, lat = topology.inside
        sent = resident.post("/api/reports", json={"category": "fibre", "lon": lon, "lat": lat,
                                                   "description": "Armoire ouverte"})
        assert sent.status_code == 201, sent.text
        follow_up = sent.json()["follow_up_url"]
        assert resident.get(follow_up).status_code == 200
        resident.cookies.clear()
        assert resident.get(follow_up).status_code == 404  # anyone else, on the frozen replica


def test_a_replica_too_far_behind_leaves_the_rotation_and_comes_back(topology: Topology):
    with service(topology, replica_max_lag_s=1.0, read_your_writes_s=2.0) as client:
        with topology.replay_paused():
            location = new_borne(client, topology)
            client.cookies.clear()
            wait_for(lambda: replica_health(client)["state"] == "lagging", "the paused replica found lagging")
            assert not replica_health(client)["in_rotation"]
            assert client.get(location).status_code == 200  # the public reads the primary meanwhile
        wait_for(lambda: replica_health(client)["in_rotation"], "the replica back once caught up")
        assert client.get(location).status_code == 200


def test_reads_never_fail_while_the_replica_stops_and_it_comes_back(topology: Topology):
    with service(topology, replica_max_lag_s=5.0, read_your_writes_s=6.0) as client:
        location = new_borne(client, topology)
        client.cookies.clear()
        wait_for(lambda: client.get(location).status_code == 200, "the replica has the borne")
        lon, lat = topology.inside
        tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 14)
        reads = [location, f"{WIFI_ITEMS}?limit=5", f"/api/nearby?lon={lon}&lat={lat}", "/ogc/collections",
                 f"/tiles/wifi_hotspots/14/{tile.x}/{tile.y}.mvt", "/api/reports/stats"]
        answers: list[tuple[str, int]] = []
        stop = threading.Event()

        def read_in_a_loop() -> None:
            while not stop.is_set():
                for url in reads:
                    answers.append((url, client.get(url).status_code))

        readers = [threading.Thread(target=read_in_a_loop) for _ in range(4)]
        for reader in readers:
            reader.start()
        try:
            served = replica_health(client)["reads"]
            wait_for(lambda: replica_health(client)["reads"] > served + 50, "reads served by the replica")
            topology.standby.down()  # fast shutdown: its sessions are cut in the middle of reads
            wait_for(lambda: replica_health(client)["state"] == "unreachable", "the stopped replica found away")
            count = len(answers)
            wait_for(lambda: len(answers) > count + 100, "reads answered without the replica")
            topology.standby.start()
            wait_for(lambda: replica_health(client)["in_rotation"], "the replica back in rotation")
            served = replica_health(client)["reads"]
            wait_for(lambda: replica_health(client)["reads"] > served + 50, "reads served by the replica again")
        finally:
            stop.set()
            for reader in readers:
                reader.join()
            topology.standby.start()
        failed = [answer for answer in answers if answer[1] != 200]
        assert failed == [], failed[:20]
        assert len(answers) > 200


def test_without_replicas_nothing_changes(topology: Topology):
    with TestClient(create_app(topology.settings(replicas=False))) as client:
        assert "replicas" not in client.get("/healthz").json()
        lon, lat = topology.inside
        sent = client.post("/api/reports", json={"category": "mobile", "lon": lon, "lat": lat})
        assert sent.status_code == 201 and RECENT_WRITE_COOKIE not in sent.headers.get("set-cookie", "")


def test_a_read_your_writes_window_shorter_than_the_lag_bound_is_refused():
    with pytest.raises(ValidationError, match="READ_YOUR_WRITES_S"):
        DatabaseSettings(replica_urls=["postgresql://lecteur@replique/geo"], replica_max_lag_s=10,
                         replica_check_interval_s=2, read_your_writes_s=5)
