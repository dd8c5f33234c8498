"""Throughput of a public read mix with 0, 1 and 2 PostgreSQL read replicas (docs/scaling.md).

A throw-away primary (its own cluster in a temp folder, spare port) with the boundaries and the demo (seed 46),
and two hot standbys of it (``pg_basebackup -R``, cluster.PrivateCluster.make_standby). For each count of
replicas, this service under uvicorn (2 workers, access log off, 127.0.0.1:18091) with ``db.replica_urls``
naming them; once ``/healthz`` shows them all in rotation, ``wrk -t2 -c16`` replays one mix of public reads
(items by box, feature by id, tiles z12 and z14, ``/api/nearby``) drawn once from a fixed seed (workload.py).
Tile caching is off (``TILES__CACHE_MB=0``): every request reaches a database.

On one machine the replicas share its cores with the primary and the service: the figure is a same-run ratio,
not a capacity. Everything started here is stopped and removed at the end, whatever happens.

    .venv/bin/python bench/bench_replicas.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from servers import PROJECT, Running, _uvicorn, _wait_ready
from workload import Server, draw, lua_script, run_wrk

from geo_service.cluster import PrivateCluster
from geo_service.db import make_engine, migrate
from geo_service.layers import LayerRegistry
from geo_service.services import demo
from geo_service.services.importers import boundaries
from geo_service.settings import ClusterSettings, Settings

DATABASE = "geo_replicas_bench"
PORT = 18091
SHARED_LOT = PROJECT.parent / "shared" / "data" / "lot"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _url(cluster: PrivateCluster) -> str:
    return f"postgresql://{cluster.owner}@/{DATABASE}?host={cluster.data_dir.resolve()}&port={cluster.port}"


def _remove(cluster: PrivateCluster) -> None:
    try:
        cluster.down()
    finally:
        shutil.rmtree(cluster.data_dir.resolve(), ignore_errors=True)


def mix(primary: PrivateCluster) -> list[str]:
    """The public read mix, interleaved: boxes, ids, tiles z12/z14, nearby reports."""
    engine = make_engine(Settings(database_url=_url(primary)), pool_size=1)
    try:
        sample = draw(engine)
    finally:
        engine.dispose()
    ours = Server("geo-service", PORT, "/ogc/collections/premises/items",
                  lambda z, x, y: f"/tiles/premises/{z}/{x}/{y}.mvt", {})
    cases = ours.cases(sample)
    nearby = [f"/api/nearby?lon={(b[0] + b[2]) / 2:.5f}&lat={(b[1] + b[3]) / 2:.5f}" for b in sample.bboxes]
    lists = [cases["items_bbox"], cases["feature"], cases["tile_z12"], cases["tile_z14"], nearby]
    return [paths[i % len(paths)] for i in range(max(map(len, lists))) for paths in lists]


def measure(replicas: list[PrivateCluster], primary: PrivateCluster, script: Path, workdir: Path) -> float:
    env = {"GEO_SERVICE_DATABASE_URL": _url(primary), "GEO_SERVICE_MODE": "development",
           "GEO_SERVICE_TILES__CACHE_MB": "0",
           "GEO_SERVICE_DB__REPLICA_URLS": json.dumps([_url(r) for r in replicas])}
    running = Running(Server("geo-service", PORT, "", None, {}),
                      _uvicorn(PROJECT / ".venv" / "bin" / "python",
                               ["geo_service.main:app_from_environment", "--factory"], PORT, env,
                               workdir / f"geo-service-{len(replicas)}.log"))
    try:
        _wait_ready(running, "/healthz")
        deadline = time.monotonic() + 60
        while replicas:  # every worker's checker must have put every replica in rotation
            states = [json.load(urllib.request.urlopen(running.url + "/healthz"))["replicas"] for _ in range(8)]
            if all(r["in_rotation"] for s in states for r in s):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"répliques jamais en service : {states[-1]}")
            time.sleep(0.5)
        result = run_wrk(running.url, script, log)
        log(f"{len(replicas)} réplique(s) : {result.requests_per_s:.0f} req/s, p50 {result.p50_ms:.0f} ms, "
            f"p99 {result.p99_ms:.0f} ms, {result.errors} erreurs sur {result.requests}")
        if result.errors:
            raise RuntimeError(f"{result.errors} erreurs pendant la mesure")
        return result.requests_per_s
    finally:
        running.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the three cases")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    workdir.chmod(0o755)  # the clusters' system user must reach their folders under it
    primary = PrivateCluster(ClusterSettings(data_dir=workdir / "primary", port=_free_port(), database=DATABASE))
    standbys: list[PrivateCluster] = []
    try:
        log(f"primaire dans {workdir}")
        primary.up()
        settings = Settings(database_url=_url(primary))
        migrate(settings)
        engine = make_engine(settings, pool_size=1)
        with engine.begin() as conn:
            boundaries.load_from_dir(conn, settings.territory, SHARED_LOT)
            demo.generate(conn, LayerRegistry.from_dir(settings.layers_dir), settings.territory, seed=46)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        engine.dispose()
        for n in (1, 2):
            port = _free_port()
            standbys.append(primary.make_standby(workdir / f"standby-{n}", port))
            standbys[-1].start()
        log("deux répliques démarrées")
        script = lua_script(mix(primary), workdir / "mix.lua")
        figures: dict[int, list[float]] = {0: [], 1: [], 2: []}
        for _ in range(args.rounds):
            for count in figures:
                figures[count].append(measure(standbys[:count], primary, script, workdir))
        best = {count: max(values) for count, values in figures.items()}
        print(json.dumps({"req_per_s": figures, "best": best,
                          "ratio_1": round(best[1] / best[0], 2), "ratio_2": round(best[2] / best[0], 2)}))
    finally:
        for cluster in [*standbys, primary]:
            try:
                _remove(cluster)
            except Exception as exc:  # noqa: BLE001 — remove the others all the same
                print(f"arrêt impossible de {cluster.data_dir} : {exc}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
