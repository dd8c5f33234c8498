"""Benchmark of the resident's report (``/api/nearby``) and of the address search (``/api/geocode``).

Starts the service under uvicorn on 127.0.0.1 against a database of its own in the private cluster
(``geo_service_bench_nearby``: boundaries + demo seed 46, loaded on first run), then drives it with Debian's
``wrk``: 16 connections for 20 s over 1,000 random points of the département, then over 500 address
queries as residents type them. Figures, machine, versions and the exact command go to ``docs/benchmarks.md``
(section "Rapport près de chez vous"). Only 127.0.0.1 is contacted; every loop is bounded.

    .venv/bin/python bench/bench_nearby.py [--duration 20] [--connections 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import shapely
from sqlalchemy import Engine, text

from geo_service.cli.app import JEMALLOC_CONF, JEMALLOC_PATHS
from geo_service.cluster import PrivateCluster, create_database
from geo_service.db import make_engine, migrate
from geo_service.layers import LayerRegistry
from geo_service.services.app_caches import AppCaches
from geo_service.settings import PROJECT_ROOT, Settings

DATABASE = "geo_service_bench_nearby"
SECTION = "## Rapport près de chez vous"
DOC = PROJECT_ROOT / "docs" / "benchmarks.md"
TARGET_P99_MS = 50.0
# What changed, and the figures before (kept here: the section is rewritten by each run).
HISTORY = """Ce qui a changé le 28 novembre 2026 (mêmes mesures, même machine, le code d'avant mesuré juste
avant ; réponses identiques à l'octet sur 1 000 rapports, 60 rapports par adresse et 509 recherches, test
`test_nearby_oracle.py`) :

- **deux fils par processus pour `/api/nearby` et `/api/geocode`** (`api/resident_api.py`, `HOT_PATH_THREADS`) au lieu
  du pool partagé de 40 : 16 requêtes simultanées faisaient 8 fils par processus qui se disputaient le GIL avec la
  boucle d'événements. Mesuré seul (2 processus, `wrk -c16`, 15 s, en alternance, charge 4 à 7) : 500–650 → 790–960
  rapports/s et p99 70–190 → 28–39 ms ; recherche 430 → 525–600 req/s, p99 110–190 → 60–95 ms ;
- **petites couches en mémoire** : les bornes Wi-Fi, tiers-lieux, lieux d'aide, sites mobiles, sites MED et zones
  blanches (quelques centaines de points, 9 polygones) ne sont plus cherchés par six sous-requêtes de l'instruction
  du rapport (0,15 à 0,4 ms de PostgreSQL chacune) mais en mémoire, gardés tant que `layer_changes` ne bouge pas :
  plus proches exacts (borne supérieure de la distance géodésique, puis boîte, puis distance GeographicLib — celle
  de PostGIS `geography` — en un seul appel pour toutes les rubriques), zones blanches par polygones préparés
  (GEOS). L'instruction du rapport passe de 2,28 ms à ≈ 0,4 ms (`EXPLAIN ANALYZE`, moyenne sur 500 points) ;
- **rendu des lieux et des sites** (libellés, services, champs de la fiche) fait une fois par ligne et par
  version de la couche ; **horaires** évalués une fois par expression et par minute (ils ne changent qu'aux minutes
  rondes) ; les identifiants des couches écrits dans l'instruction au lieu d'un tableau envoyé à chaque rapport ;
- **JSON** écrit par l'encodeur de pydantic-core (Rust, même texte) au lieu de `json.dumps` : 50 µs au lieu de
  280 µs pour un rapport de 13 ko ;
- **recherche d'adresse** : plus de `dataclasses.asdict` (copie profonde) par candidat, `normalize` mémorisé ;
- **page `/map`** : plus de `count(*)` par couche ni d'emprise des limites à chaque affichage (≈ 57 ms de SQL) ;
  comptages et emprise gardés tant que `layer_changes` ne bouge pas (≈ 0,5 ms, une lecture de `layer_changes`).

Avant (le code d'avant, même commande, deux passages dans la même session, charge moyenne 4,35 puis 3,93 avant la
mesure) : rapport 309 puis 337 req/s, p50 48,3 puis 44,2 ms, p99 340,9 puis 260,6 ms, un seul client p50 5,6 puis
5,2 ms, 3,28 puis 3,01 ms de CPU uvicorn par rapport ; recherche 350 puis 360 req/s, p99 140,9 puis 148,4 ms ; sans
HTTP : rapport 1,59 ms de CPU Python et 2,23 ms dans le SQL (1,09 instruction), recherche 1,76 ms de CPU Python et
0,99 ms dans le SQL, page `/map` ≈ 57 ms de SQL (un `count(*)` par couche et l'emprise des limites)."""
LUA = """
paths = {%s}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1])
end
"""


def log(message: str) -> None:
    print(f"[bench_nearby] {message}", flush=True)


def prepare_database(name: str) -> tuple[Settings, Engine]:
    """The bench database: created, migrated, with boundaries, demo and search index (first run only)."""
    base = Settings()
    cluster = PrivateCluster(base.cluster)
    cluster.up()
    create_database(cluster.connect, name)
    settings = Settings(database_url=f"postgresql://{cluster.owner}@/{name}?host={cluster.data_dir.resolve()}"
                                     f"&port={cluster.port}")
    migrate(settings)
    engine = make_engine(settings, pool_size=2)
    registry = LayerRegistry.from_dir(settings.layers_dir)
    from geo_service.services import demo
    from geo_service.services.importers import boundaries
    from geo_service.services.resident import geocoder

    with engine.begin() as conn:
        if boundaries.commune_count(conn) == 0:
            log("chargement des limites…")
            boundaries.load_from_dir(conn, settings.territory, settings.resolved_boundaries_dir())
        if not demo.demo_present(conn):
            log("génération du territoire de démonstration (graine 46)…")
            demo.generate(conn, registry, settings.territory, seed=46)
        elif geocoder.index_is_empty(conn):
            geocoder.refresh_search_index(conn)
        conn.execute(text("ANALYZE"))
    return settings, engine


def random_points(engine: Engine, count: int, seed: int) -> list[tuple[float, float]]:
    """Uniform points inside the département outline (bounded number of draws)."""
    with engine.connect() as conn:
        territory = shapely.from_wkb(bytes(conn.execute(text("SELECT ST_AsBinary(geom) FROM territory")).scalar()))
    shapely.prepare(territory)
    rng = random.Random(seed)
    minx, miny, maxx, maxy = territory.bounds
    points: list[tuple[float, float]] = []
    for _ in range(count * 20):
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if shapely.contains_xy(territory, x, y):
            points.append((x, y))
            if len(points) == count:
                break
    return points


def typed_queries(engine: Engine, count: int, seed: int) -> list[str]:
    """What residents type: a number and a street, then the start of the commune; or a commune's first letters."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT numero, nom_voie, nom_commune FROM premises WHERE numero IS NOT NULL "
                                 "ORDER BY md5(imb_id || :seed) LIMIT :n"), {"seed": str(seed), "n": count}).all()
    rng = random.Random(seed)
    out = []
    for numero, voie, commune in rows:
        kind = rng.random()
        if kind < 0.5:
            out.append(f"{numero} {voie} {commune[:rng.randint(2, 5)]}")
        elif kind < 0.8:
            full = f"{numero} {voie}"
            out.append(full[:rng.randint(min(6, len(full)), len(full))])
        else:
            out.append(commune[:rng.randint(3, max(3, len(commune)))])
    return out


def statement_ms(settings: Settings, points: list[tuple[float, float]]) -> float:
    """Mean execution time (ms) of the report statement as PostgreSQL runs it (``EXPLAIN ANALYZE``, generic plan)."""
    from geo_service.services.resident import nearby_report
    from geo_service.services.resident.report_sections import FIBRE_MATCH_M

    registry = LayerRegistry.from_dir(settings.layers_dir)
    types = ", ".join(nearby_report.PARAMETERS.values())
    engine = make_engine(settings, pool_size=1)
    times = []
    try:
        with engine.connect() as conn:
            conn.execute(text("SET plan_cache_mode = force_generic_plan"))
            statement = nearby_report.report_statement(AppCaches(registry))
            conn.exec_driver_sql(f"PREPARE bench_report ({types}) AS {statement}")
            for lon, lat in points:
                # EXECUTE takes no bound parameters inside EXPLAIN: the values are floats written as literals.
                args = ", ".join(repr(float(v)) for v in (lon, lat, settings.territory.tolerance_m, FIBRE_MATCH_M))
                plan = conn.exec_driver_sql(
                    f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE bench_report({args}, NULL)").scalar()
                times.append(plan[0]["Execution Time"] + plan[0].get("Planning Time", 0.0))
            conn.exec_driver_sql("DEALLOCATE bench_report")
    finally:
        engine.dispose()
    return sum(times) / max(len(times), 1)


def in_process_costs(settings: Settings, points: list[tuple[float, float]], queries: list[str],
                     rounds: int = 3) -> dict[str, dict[str, float]]:
    """CPU of this process and time spent in SQL statements per request, without HTTP: the domain function and
    the JSON encoding, as the handlers call them, on a connection of the read engine. Best of ``rounds`` passes
    (the machine is shared: the least disturbed pass is the closest to the cost itself)."""
    import psycopg

    from geo_service.api.resident_api import json_response
    from geo_service.db import make_read_engine
    from geo_service.services.resident import geocoder, map_page, nearby_report

    registry = LayerRegistry.from_dir(settings.layers_dir)
    spent = {"sql_s": 0.0, "statements": 0}
    execute = psycopg.Cursor.execute

    def timed(cursor: psycopg.Cursor, *args: object, **kwargs: object) -> object:
        start = time.perf_counter()
        try:
            return execute(cursor, *args, **kwargs)
        finally:
            spent["sql_s"] += time.perf_counter() - start
            spent["statements"] += 1

    def best(work: list, call: object) -> dict[str, float]:
        found: dict[str, float] = {}
        for _ in range(rounds):
            spent.update(sql_s=0.0, statements=0)
            cpu, wall = time.process_time(), time.perf_counter()
            for item in work:
                call(item)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            result = {"cpu_ms": 1000 * cpu / len(work), "sql_ms": 1000 * spent["sql_s"] / len(work),
                      "wall_ms": 1000 * wall / len(work), "statements": spent["statements"] / len(work)}
            if not found or result["cpu_ms"] < found["cpu_ms"]:
                found = result
        return found

    engine = make_read_engine(settings)
    page_engine = make_engine(settings, pool_size=1)
    psycopg.Cursor.execute = timed  # type: ignore[method-assign]
    try:
        with engine.connect() as conn, page_engine.connect() as page_conn:
            territory, caches = settings.territory, AppCaches(registry)
            for lon, lat in points:  # warm: prepared statement, layers in memory, commune figures
                nearby_report.report(conn, caches, territory, lon, lat)
            costs = {"nearby": best(points, lambda p: json_response(
                nearby_report.report(conn, caches, territory, p[0], p[1]), 60))}
            for q in queries:
                geocoder.search(conn, q)
            costs["geocode"] = best(queries, lambda q: json_response(
                {"query": q, "results": [r.as_dict() for r in geocoder.search(conn, q)]}, 60))
            costs["map"] = best([None] * 20, lambda _: map_page.build_map_page(
                page_conn, caches, settings.map, territory.name))
    finally:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
        engine.dispose()
        page_engine.dispose()
    return costs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    url: str

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by uvicorn and its workers."""
        ticks = os.sysconf("SC_CLK_TCK")
        pids = [self.process.pid, *map(int, subprocess.run(["pgrep", "-P", str(self.process.pid)],
                                                           capture_output=True, text=True).stdout.split())]
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def start_server(settings: Settings, workers: int, log_file: Path) -> tuple[Server, list[str]]:
    port = free_port()
    command = [str(Path(sys.executable).parent / "uvicorn"), "geo_service.main:app_from_environment", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log",
               "--log-level", "warning"]
    env = {**os.environ, "GEO_SERVICE_DATABASE_URL": settings.database_url or ""}
    # On jemalloc when Debian's is installed, as `geo-service serve` runs it (cli/app.py); HTTP is uvicorn's
    # httptools, as in the measurement.
    library = next((path for path in JEMALLOC_PATHS if Path(path).exists()), None)
    if library:
        env |= {"LD_PRELOAD": library, "MALLOC_CONF": JEMALLOC_CONF}
    process = subprocess.Popen(command, env=env, stdout=log_file.open("w"), stderr=subprocess.STDOUT,
                               start_new_session=True, cwd=PROJECT_ROOT)
    server = Server(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return server, command
        except OSError:
            time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"le service n'a pas démarré (voir {log_file})")


def write_lua(folder: Path, name: str, paths: list[str]) -> Path:
    path = folder / f"{name}.lua"
    path.write_text(LUA % ",\n".join(json.dumps(p) for p in paths), encoding="utf-8")
    return path


def run_wrk(url: str, script: Path, threads: int, connections: int, duration: int) -> dict:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    latency = {p: _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)$", out, re.M)
    return {"p50": latency.get("50"), "p75": latency.get("75"), "p90": latency.get("90"), "p99": latency.get("99"),
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else "", "command": shlex.join(command)}


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def machine(engine: Engine) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) / 1024 / 1024
    with engine.connect() as conn:
        pg = conn.execute(text("SHOW server_version")).scalar()
        postgis = conn.execute(text("SELECT postgis_lib_version()")).scalar()
    import fastapi
    import psycopg
    import sqlalchemy
    import uvicorn

    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0].strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": f"{memory:.1f} Gio", "kernel": platform.release(),
            "python": platform.python_version(), "postgresql": pg, "postgis": postgis, "fastapi": fastapi.__version__,
            "uvicorn": uvicorn.__version__, "psycopg": psycopg.__version__, "sqlalchemy": sqlalchemy.__version__,
            "wrk": wrk}


def fr(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}".replace(".", ",")


def markdown(args: argparse.Namespace, report: dict, geocode: dict, single: dict, info: dict, load: tuple,
             command: str, workers: int, costs: dict[str, dict[str, float]]) -> str:
    verdict = "atteint" if report["p99"] is not None and report["p99"] < TARGET_P99_MS else "non atteint"
    def row(name: str, r: dict) -> str:
        requests = f"{r['requests']:,}".replace(",", "\u202f")
        return (f"| {name} | {requests} | {fr(r['rps'], 0)} | {fr(r['p50'])} | {fr(r['p75'])} | {fr(r['p90'])} | "
                f"{fr(r['p99'])} | {r['non_2xx']} |")

    cost = report["cpu_ms"] + report["sql_ms"]  # service CPU + PostgreSQL's execution time, per report
    def cost_row(name: str, c: dict[str, float]) -> str:
        return (f"| {name} | {fr(c['cpu_ms'], 2)} | {fr(c['sql_ms'], 2)} | {fr(c['statements'], 2)} | "
                f"{fr(c['wall_ms'], 2)} |")

    cost_rows = "\n".join([cost_row(f"rapport (`nearby.report` + JSON, {args.points} points)", costs["nearby"]),
                           cost_row(f"recherche (`geocoder.search` + JSON, {args.queries} saisies)", costs["geocode"]),
                           cost_row("page `/map` (`map_view.build_map_page`)", costs["map"])])
    rows = "\n".join([row(f"`/api/nearby?lon=&lat=` ({args.points} points au hasard)", report),
                      row(f"`/api/geocode?q=` ({args.queries} saisies d'adresses)", geocode),
                      row("`/api/nearby` avec un seul client (temps de service)", single)])
    return f"""{SECTION}

Rapport « près de chez vous » (`/api/nearby`) et recherche d'adresse (`/api/geocode`) sur le territoire de
démonstration complet (graine 46 : 130 000 locaux, 344 sites mobiles, 282 bornes Wi-Fi…), base
`{args.database}` du cluster privé, service sous uvicorn ({workers} processus, httptools, jemalloc comme le lance
`geo-service serve`) sur 127.0.0.1,
{args.connections} clients simultanés pendant {args.duration} s après {args.warmup} s de chauffe.
Objectif : p99 du rapport < {TARGET_P99_MS:.0f} ms — **{verdict}** lors de cette mesure.

| requête | requêtes | req/s | p50 (ms) | p75 (ms) | p90 (ms) | p99 (ms) | réponses non 2xx |
|---|---:|---:|---:|---:|---:|---:|---:|
{rows}

Coût d'une requête sans HTTP, dans le processus (meilleur de 3 passages ; « SQL » = temps passé dans les
instructions, attente de PostgreSQL comprise) :

| requête | CPU Python (ms) | SQL (ms) | instructions | durée (ms) |
|---|---:|---:|---:|---:|
{cost_rows}

Temps processeur du service (uvicorn, hors PostgreSQL) par rapport : {fr(report['cpu_ms'], 2)} ms ; PostgreSQL
exécute l'instruction du rapport en {fr(report['sql_ms'], 2)} ms en moyenne (`EXPLAIN ANALYZE`, plan générique,
{args.explain} points). Lecture : avec ≈ {fr(cost)} ms
de calcul par rapport, deux cœurs servent au plus ≈ {fr(2000 / cost, 0)} rapports/s ; 16 clients
qui enchaînent leurs requêtes attendent donc en médiane ≈ {fr(16 * cost / 2, 0)} ms même sur une
machine au repos, et le p99 dépend surtout de ce qui tourne à côté. Le temps de service d'un rapport seul (ligne
« un seul client ») est de l'ordre de quelques millisecondes.

Machine : {info['cpu']}, {info['cores']} cœurs, {info['memory']}, Linux {info['kernel']} ; charge moyenne avant
la mesure {load[0]}, après {load[1]} (la machine est partagée : d'autres travaux tournaient, qui prennent leur part
des deux cœurs ; PostgreSQL, uvicorn et wrk se partagent aussi ces deux cœurs).
Versions : Python {info['python']}, PostgreSQL {info['postgresql']}, PostGIS {info['postgis']},
FastAPI {info['fastapi']}, uvicorn {info['uvicorn']}, SQLAlchemy {info['sqlalchemy']}, psycopg {info['psycopg']},
{info['wrk']}.

Ce que fait une requête de rapport : une seule instruction SQL préparée (plan générique) pour ce qui demande les
grandes tables (territoire, commune, local de l'adresse et son point de mutualisation) ; les petites couches
(bornes Wi-Fi, tiers-lieux, lieux d'aide, sites mobiles, sites MED, zones blanches) et les chiffres à l'échelle
d'une couche (état du déploiement par commune, dates des sources) sont gardés en mémoire tant que le compteur de
modifications de la couche (`layer_changes`) ne bouge pas, et les plus proches y sont cherchés exactement (distance
géodésique GeographicLib, celle de PostGIS `geography`).

{HISTORY}

Commandes : `{command}`, puis (serveur : `{report['server']}`)
`{report['command']}`, `{geocode['command']}` et `{single['command']}`
(les scripts Lua parcourent les listes de points et de saisies tirées avec la graine {args.seed}).
"""


def update_doc(section: str) -> None:
    text_ = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    text_ = pattern.sub(section + "\n", text_) if pattern.search(text_) else text_.rstrip("\n") + "\n\n" + section
    DOC.write_text(text_, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=DATABASE)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=46)
    parser.add_argument("--explain", type=int, default=300, help="points mesurés par EXPLAIN ANALYZE")
    parser.add_argument("--no-doc", action="store_true", help="ne pas écrire docs/benchmarks.md")
    args = parser.parse_args()
    command = shlex.join([".venv/bin/python", "bench/bench_nearby.py", *sys.argv[1:]])

    settings, engine = prepare_database(args.database)
    points = random_points(engine, args.points, args.seed)
    queries = typed_queries(engine, args.queries, args.seed)
    info = machine(engine)
    sql_ms = statement_ms(settings, points[:args.explain])
    log("coût d'une requête dans le processus…")
    costs = in_process_costs(settings, points, queries)
    with tempfile.TemporaryDirectory(prefix="bench-nearby-") as tmp:
        folder = Path(tmp)
        from urllib.parse import quote

        report_lua = write_lua(folder, "nearby", [f"/api/nearby?lon={x:.6f}&lat={y:.6f}" for x, y in points])
        geocode_lua = write_lua(folder, "geocode", [f"/api/geocode?q={quote(q)}&limit=8" for q in queries])
        server, server_command = start_server(settings, args.workers, folder / "uvicorn.log")
        try:
            log(f"service sur {server.url} ; chauffe {args.warmup} s…")
            run_wrk(server.url, report_lua, args.threads, args.connections, args.warmup)
            run_wrk(server.url, geocode_lua, args.threads, args.connections, max(2, args.warmup // 2))
            before = " / ".join(f"{v:.2f}" for v in os.getloadavg())
            log("un seul client (temps de service)…")
            single = run_wrk(server.url, report_lua, 1, 1, max(5, args.duration // 2))
            log("mesure du rapport…")
            cpu = server.cpu_seconds()
            report = run_wrk(server.url, report_lua, args.threads, args.connections, args.duration)
            report["cpu_ms"] = (server.cpu_seconds() - cpu) * 1000 / max(report["requests"], 1)
            report["sql_ms"] = sql_ms
            log("mesure de la recherche d'adresse…")
            geocode = run_wrk(server.url, geocode_lua, args.threads, args.connections, args.duration)
            after = " / ".join(f"{v:.2f}" for v in os.getloadavg())
        finally:
            server.stop()
    report["server"] = shlex.join(server_command[:1] + server_command[1:]).replace(str(PROJECT_ROOT) + "/", "")
    section = markdown(args, report, geocode, single, info, (before, after), command, args.workers, costs)
    print(section)
    if not args.no_doc:
        update_doc(section)
        log(f"écrit dans {DOC}")


if __name__ == "__main__":
    main()
