"""``make soak``: the service under uvicorn (2 workers, 127.0.0.1) driven by a realistic mix for ``SOAK_SECONDS``
(600 by default), then fuzzed at length from its OpenAPI documents; the figures go to docs/robustness.md.

The mix is what residents, lot.fr and GIS clients send: vector tiles around the territory, « près de chez vous »
reports, address searches, OGC items by bounding box and by filter, and a few authenticated edits (If-Match).
Recorded: requests and throughput, p50 / p99 per kind, answers by status, the memory (RSS) of each worker
before and after. Then schemathesis sends ``SOAK_FUZZ_EXAMPLES`` examples per operation of ``/openapi.json``
and ``/ogc/api`` over HTTP (≥ 10,000 requests with the default).

The service works on a database of its own (``SOAK_DATABASE``, default ``geo_service_soak``, on the server the
settings name): created, migrated and given the boundaries and the demo territory the first time, reused after.
Every request goes to 127.0.0.1 only; the run is bounded in time and stops by itself.

    SOAK_SECONDS=60 .venv/bin/python tests/robustness/soak.py
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: robustness.fuzzing

from geo_service.cluster import PrivateCluster  # noqa: E402
from geo_service.db import make_engine, migrate  # noqa: E402
from geo_service.layers import LayerRegistry  # noqa: E402
from geo_service.settings import PROJECT_ROOT, Settings  # noqa: E402
from robustness.fuzzing import from_url, fuzz, known_values  # noqa: E402

SECONDS = int(os.environ.get("SOAK_SECONDS", "600"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "8"))
FUZZ_EXAMPLES = int(os.environ.get("SOAK_FUZZ_EXAMPLES", "200"))
DATABASE = os.environ.get("SOAK_DATABASE", "geo_service_soak")
DOC = PROJECT_ROOT / "docs" / "robustness.md"
OUTPUT = PROJECT_ROOT / "test-output" / "soak.json"
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"
# The territory's box (lon, lat), a little wider: some reports fall outside (a 422, as in real life).
WEST, SOUTH, EAST, NORTH = 0.95, 44.18, 2.25, 45.08
SEARCHES = ["Cahors", "Figeac", "Gourdon", "Souillac", "Gramat", "Saint-Céré", "Prayssac", "Luzech", "Puy-l'Évêque",
            "rue de la", "av Gambetta", "place", "chemin", "Lacapelle", "Martel", "Biars", "Leyme", "Cajarc", "cahor",
            "figea", "St Cere", "route de Paris", "Labastide", "Castelnau", "Montcuq", "Bretenoux", "Vayrac"]
TILE_LAYERS = ["premises", "wifi_hotspots", "mobile_masts", "third_places", "white_zones", "ftth_cabinets"]
FILTERS = {"wifi_hotspots": "statut = 'installee'", "premises": "etat = 'deploye'",
           "third_places": "nom LIKE 'T%'", "mobile_masts": "hauteur_m > 20"}
MIX = [("tile", 40), ("nearby", 20), ("geocode", 20), ("items", 18), ("edit", 2)]


def database_settings() -> Settings:
    """Settings of the soak's own database on the server the environment names; created and filled if new."""
    base = Settings()
    if base.uses_private_cluster:
        PrivateCluster(base.cluster).up()
    url = make_url(base.sqlalchemy_url)
    conninfo = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    own = url.set(drivername="postgresql", database=DATABASE).render_as_string(hide_password=False)
    with psycopg.connect(own, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    settings = Settings(database_url=own)
    migrate(settings)
    registry = LayerRegistry.from_dir(settings.layers_dir)
    engine = make_engine(settings, pool_size=1)
    with engine.begin() as conn:
        from geo_service.services import demo
        from geo_service.services.editing import accounts
        from geo_service.services.importers import boundaries

        if not conn.execute(text("SELECT count(*) FROM communes")).scalar():
            say("Limites administratives…")
            boundaries.load_from_dir(conn, settings.territory, settings.resolved_boundaries_dir())
        if not conn.execute(text("SELECT count(*) FROM premises WHERE demo")).scalar():
            say("Territoire de démonstration (quelques minutes la première fois)…")
            demo.generate(conn, registry, settings.territory, seed=46)
        if not conn.execute(text("SELECT 1 FROM accounts WHERE username = 'soak-admin'")).first():
            accounts.create_account(conn, "soak-admin", "admin", password=None)
    engine.dispose()
    return settings


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(settings: Settings, port: int) -> subprocess.Popen:
    env = {**os.environ, "GEO_SERVICE_DATABASE_URL": settings.database_url or ""}
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "geo_service.main:app_from_environment", "--factory",
                                "--workers", "2", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                                "--no-access-log"], env=env, cwd=PROJECT_ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            healthy = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
            if healthy and len(workers(process)) == 2:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit("uvicorn n'a pas démarré")


def workers(process: subprocess.Popen) -> list[int]:
    """The worker processes of uvicorn (children of its main process that are not its helpers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == process.pid and b"multiprocessing.resource_tracker" not in cmdline:
            found.append(int(stat.parent.name))
    return sorted(found)


def rss_mib(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return round(int(match.group(1)) / 1024, 1) if match else float("nan")


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


class Load:
    """The mix's requests, one thread per client, and what came back."""

    def __init__(self, base: str, token: str, bornes: list[int]):
        self.base, self.token, self.bornes = base, token, bornes
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self.lock = threading.Lock()

    def request(self, rng: random.Random, client: httpx.Client) -> None:
        kind = rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX])[0]
        lon, lat = rng.uniform(WEST, EAST), rng.uniform(SOUTH, NORTH)
        started = time.perf_counter()
        if kind == "tile":
            z = rng.randint(10, 14)
            x, y = tile_of(lon, lat, z)
            layer = rng.choice(TILE_LAYERS + ["*"])
            path = f"/ogc/tiles/WebMercatorQuad/{z}/{y}/{x}" if layer == "*" else f"/tiles/{layer}/{z}/{x}/{y}.mvt"
            status = client.get(path).status_code
        elif kind == "nearby":
            status = client.get("/api/nearby", params={"lon": round(lon, 5), "lat": round(lat, 5)}).status_code
        elif kind == "geocode":
            status = client.get("/api/geocode", params={"q": rng.choice(SEARCHES)}).status_code
        elif kind == "items":
            layer = rng.choice(list(FILTERS))
            params = {"limit": 50, "bbox": f"{lon:.4f},{lat:.4f},{lon + 0.05:.4f},{lat + 0.05:.4f}"}
            if rng.random() < 0.5:
                params["filter"] = FILTERS[layer]
            status = client.get(f"/ogc/collections/{layer}/items", params=params).status_code
        else:
            fid = rng.choice(self.bornes)
            url = f"/ogc/collections/wifi_hotspots/items/{fid}"
            auth = {"Authorization": f"Bearer {self.token}"}
            etag = client.get(url, headers=auth).headers.get("etag", '"v0"')
            status = client.patch(url, json={"properties": {"lieu": f"Soak {rng.randint(1, 10**6)}"}},
                                  headers={**auth, "If-Match": etag}).status_code
        elapsed = time.perf_counter() - started
        with self.lock:
            self.latencies[kind].append(elapsed)
            self.statuses[kind][status] += 1

    def client_loop(self, seed: int, until: float) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.base, timeout=60) as client:
            while time.monotonic() < until:
                try:
                    self.request(rng, client)
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.statuses["erreurs réseau"][type(exc).__name__] += 1

    def run(self, seconds: int) -> float:
        until = time.monotonic() + seconds
        started = time.monotonic()
        threads = [threading.Thread(target=self.client_loop, args=(seed, until)) for seed in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.monotonic() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def soak_bornes(base: str, token: str) -> list[int]:
    """Five bornes near Cahors that the edits of the mix change (made once, found again on later runs)."""
    auth = {"Authorization": f"Bearer {token}"}
    found = httpx.get(f"{base}/ogc/collections/wifi_hotspots/items",
                      params={"filter": "borne_id LIKE 'SOAK-%'", "limit": 10}, headers=auth, timeout=60).json()
    fids = [f["id"] for f in found.get("features", [])]
    for i in range(len(fids), 5):
        body = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1.4417 + i * 1e-3, 44.4475]},
                "properties": {"borne_id": f"SOAK-{i}", "code_insee": "46042", "lieu": "Soak",
                               "ssid": "WIFI public lotois", "statut": "installee"}}
        created = httpx.post(f"{base}/ogc/collections/wifi_hotspots/items", json=body, headers=auth, timeout=60)
        created.raise_for_status()
        fids.append(created.json()["id"])
    return fids


def main() -> None:
    settings = database_settings()
    engine = make_engine(settings, pool_size=1)
    with engine.begin() as conn:
        from geo_service.services.editing import accounts

        token = accounts.create_token(conn, "soak-admin", f"soak {date.today().isoformat()}", days=1)
    port = int(os.environ.get("SOAK_PORT") or free_port())
    base = f"http://127.0.0.1:{port}"
    process = start_service(settings, port)
    try:
        bornes = soak_bornes(base, token)
        say(f"Échauffement, puis {SECONDS} s de charge ({CLIENTS} clients) sur {base}…")
        Load(base, token, bornes).run(min(20, SECONDS))
        pids = workers(process)
        before = {pid: rss_mib(pid) for pid in pids}
        load = Load(base, token, bornes)
        elapsed = load.run(SECONDS)
        after = {pid: rss_mib(pid) for pid in pids}
        say(f"Fuzzing : {FUZZ_EXAMPLES} exemples par opération…")
        sent: Counter = Counter()
        with engine.connect() as conn:
            fids = [r[0] for r in conn.execute(text("SELECT fid FROM wifi_hotspots ORDER BY fid LIMIT 20"))]
        registry = LayerRegistry.from_dir(settings.layers_dir)
        known = known_values((layer.id for layer in registry), fids)
        allow_nul = os.environ.get("FUZZ_NUL") != "0"
        fuzz_started = time.monotonic()
        failures = []
        for path in ("/openapi.json", "/ogc/api"):
            schema = from_url(f"{base}{path}", known, allow_nul)
            failures += fuzz(schema, token, FUZZ_EXAMPLES, sent, base_url=base if path == "/openapi.json" else None)
        fuzz_seconds = time.monotonic() - fuzz_started
        after_fuzz = {pid: rss_mib(pid) for pid in pids if Path(f"/proc/{pid}").exists()}
    finally:
        process.terminate()
        process.wait(timeout=60)
        engine.dispose()
    figures = {
        "date": date.today().isoformat(), "seconds": round(elapsed), "clients": CLIENTS,
        "requests": sum(len(v) for v in load.latencies.values()),
        "per_kind": {kind: {"requests": len(values), "p50_ms": round(percentile(values, 0.5), 1),
                            "p99_ms": round(percentile(values, 0.99), 1),
                            "statuses": dict(sorted((str(k), v) for k, v in load.statuses[kind].items()))}
                     for kind, values in sorted(load.latencies.items())},
        "network_errors": dict(load.statuses.get("erreurs réseau", {})),
        "rss_mib": {str(pid): {"before": before[pid], "after": after[pid], "after_fuzz": after_fuzz.get(pid)}
                    for pid in pids},
        "fuzz": {"requests": sum(sent.values()), "by_status": dict(sorted(sent.items())),
                 "seconds": round(fuzz_seconds), "examples_per_operation": FUZZ_EXAMPLES, "failures": failures,
                 "nul_bytes": allow_nul},
    }
    figures["throughput_rps"] = round(figures["requests"] / elapsed, 1)
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(json.dumps(figures, indent=1, ensure_ascii=False), encoding="utf-8")
    write_doc(figures)
    server_errors = sum(v for k in load.statuses.values() for s, v in k.items() if str(s).startswith("5"))
    say(f"{figures['requests']} requêtes ({figures['throughput_rps']}/s), {server_errors} erreurs 5xx ; "
        f"fuzzing : {figures['fuzz']['requests']} requêtes, {len(failures)} opération(s) en échec → {DOC}")
    for failure in failures:
        say(failure)
    if server_errors or failures or figures["network_errors"]:
        sys.exit(1)


def write_doc(f: dict) -> None:
    """The figures, as a table between the soak markers of docs/robustness.md."""
    lines = [BEGIN, "", f"Run of {f['date']}: {f['seconds']} s, {f['clients']} clients, uvicorn with 2 workers on "
             f"127.0.0.1 — **{f['requests']} requests, {f['throughput_rps']} requests/s**.", "",
             "| kind | requests | p50 (ms) | p99 (ms) | answers by status |", "|---|---:|---:|---:|---|"]
    for kind, k in f["per_kind"].items():
        statuses = ", ".join(f"{s}: {n}" for s, n in k["statuses"].items())
        lines.append(f"| {kind} | {k['requests']} | {k['p50_ms']} | {k['p99_ms']} | {statuses} |")
    lines += ["", "| worker | RSS before (MiB) | after the load (MiB) | after the fuzzing (MiB) |",
              "|---|---:|---:|---:|"]
    for pid, m in f["rss_mib"].items():
        lines.append(f"| {pid} | {m['before']} | {m['after']} | {m['after_fuzz']} |")
    fz = f["fuzz"]
    statuses = ", ".join(f"{s}: {n}" for s, n in fz["by_status"].items())
    lines += ["", f"Fuzzing over HTTP ({fz['examples_per_operation']} examples per operation, both documents, "
              f"{fz['seconds']} s): **{fz['requests']} requests**, {len(fz['failures'])} failing operation(s); "
              f"answers by status: {statuses}.", "", END]
    doc = DOC.read_text(encoding="utf-8")
    start, end = doc.index(BEGIN), doc.index(END) + len(END)
    DOC.write_text(doc[:start] + "\n".join(lines) + doc[end:], encoding="utf-8")


if __name__ == "__main__":
    main()
