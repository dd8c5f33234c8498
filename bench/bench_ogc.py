"""Benchmark of the OGC API and vector tiles against tipg and pygeoapi, on the same PostGIS tables.

    .venv/bin/python bench/bench_ogc.py [--no-scaling]

Loads the demo territory into ``geo_service_bench`` (dev cluster), installs tipg and pygeoapi into
``bench/.venvs/``, starts the three servers on 127.0.0.1 (uvicorn, 2 workers each), drives each with wrk
(-t2 -c16 -d15s) on the same request mixes, measures the raw-SQL floor (the service's own statements
through asyncpg, 16 workers), then the scaling of a bbox query with 10^5…10^7 generated premises, and
writes the section "OGC API et tuiles" of docs/benchmarks.md. Run on demand, never in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import bench_db
import benchmarks_doc as report
import capture
import servers
import workload
from sqlalchemy import text

from geo_service.layers import LayerRegistry

DOC = servers.PROJECT / "docs" / "benchmarks.md"
FLOOR = "plancher SQL"
SIZES = (100_000, 1_000_000, 10_000_000)
COMMAND = ".venv/bin/python bench/bench_ogc.py"


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def check(running: servers.Running, cases: dict[str, list[str]]) -> list[str]:
    """A few requests per case before measuring: every answer must be 200 (or 204 for an empty tile)."""
    problems = []
    for case, paths in cases.items():
        for path in paths[:3]:
            try:
                with urllib.request.urlopen(running.url + path, timeout=60) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError as exc:
                status = str(exc)
            if status not in (200, 204):
                problems.append(f"{running.server.name} {case} : {status} pour {path[:120]}")
    return problems


def drive(running: list[servers.Running], sample: workload.Sample, workdir: Path,
          only: tuple[str, ...] | None = None) -> dict[str, dict[str, dict]]:
    """Each case, each server in turn (interleaved, so a noisy minute hits them all alike)."""
    per_server = {r.server.name: r.server.cases(sample) for r in running}
    names = list(dict.fromkeys(case for cases in per_server.values() for case in cases))
    results: dict[str, dict[str, dict]] = {}
    for case in names:
        if only and case not in only:
            continue
        results[case] = {}
        for r in running:
            paths = per_server[r.server.name].get(case)
            if paths is None:
                continue
            script = workload.lua_script(paths, workdir / f"{r.server.name}-{case}.lua")
            result = workload.run_wrk(r.url, script, log)
            results[case][r.server.name] = result.__dict__
            log(f"{case:12} {r.server.name:12} {result.requests_per_s:9.1f} req/s  p50 {result.p50_ms:8.2f} ms  "
                f"p99 {result.p99_ms:8.2f} ms  erreurs {result.errors}")
    return results


def floor(python: Path, db: bench_db.BenchDatabase, cases: dict[str, list], workdir: Path,
          only: tuple[str, ...] | None = None) -> dict[str, dict]:
    chosen = {k: v for k, v in cases.items() if not only or k in only}
    path = workdir / "floor-cases.json"
    path.write_text(json.dumps(chosen), encoding="utf-8")
    out = subprocess.run([str(python), str(servers.BENCH_DIR / "floor.py"), str(path), "15", "16"],
                         capture_output=True, text=True, env={**os.environ, "BENCH_DATABASE_URL": db.url()})
    if out.returncode != 0:
        raise RuntimeError(f"plancher SQL : {out.stderr.strip()[-2000:]}")
    found = json.loads(out.stdout)
    for case, r in found.items():
        log(f"{case:12} {FLOOR:12} {r['requests_per_s']:9.1f} req/s  p50 {r['p50_ms']:8.2f} ms  "
            f"p99 {r['p99_ms']:8.2f} ms")
    return found


def start_all(db: bench_db.BenchDatabase, pythons: dict[str, Path], workdir: Path) -> list[servers.Running]:
    running: list[servers.Running] = []
    try:
        running.append(servers.ours(db.url(), workdir))
        running.append(servers.ours(db.url(), workdir, tile_cache=False))
        running.append(servers.tipg(pythons["tipg"], db.url(), workdir))
        running.append(servers.pygeoapi(pythons["pygeoapi"], db, workdir))
    except Exception:
        stop_all(running)
        raise
    return running


def stop_all(running: list[servers.Running]) -> None:
    for r in running:
        r.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-scaling", action="store_true", help="sans la mesure 10^5…10^7 locaux")
    parser.add_argument("--only", default="", help="ces cas seulement (séparés par des virgules), sans le plancher "
                        "ni l'échelle, affichés sans écrire docs/benchmarks.md : pour comparer deux versions du code")
    args = parser.parse_args(argv)
    only = tuple(c for c in args.only.split(",") if c)
    started = datetime.now(UTC)
    loads_at_start = os.getloadavg()
    password = bench_db.new_password()
    db = bench_db.prepare(bench_db.MAIN_DB, password, log)
    bench_db.load_demo(db, log)
    pythons = {name: servers.ensure_venv(name, log) for name in ("tipg", "pygeoapi")}
    registry = LayerRegistry.from_dir(db.owner_settings.layers_dir)
    workdir = Path(tempfile.mkdtemp(prefix="bench-ogc-"))
    engine = db.engine()
    running: list[servers.Running] = []
    try:
        sample = workload.draw(engine)
        floor_cases = capture.floor_cases(engine, registry, db.owner_settings, sample)
        with engine.connect() as conn:
            premises = conn.execute(text("SELECT count(*) FROM premises")).scalar_one()
            pg = conn.execute(text("SELECT version(), postgis_lib_version()")).one()
        log(f"{premises} locaux ; serveurs : {servers.WORKERS} workers uvicorn chacun")
        running = start_all(db, pythons, workdir)
        problems = [p for r in running for p in check(r, r.server.cases(sample))]
        for p in problems:
            log(f"ATTENTION {p}")
        results = drive(running, sample, workdir, only or None)
        stop_all(running)
        running = []
        if only:
            return 0
        for case, r in floor(pythons["tipg"], db, floor_cases, workdir).items():
            results[case][FLOOR] = r
        scaling: dict[str, dict[str, dict]] = {}
        if not args.no_scaling:
            scale = bench_db.prepare(bench_db.SCALE_DB, password, log)
            scale_engine = scale.engine()
            try:
                for size in SIZES:
                    bench_db.fill_synthetic_premises(scale, size, log)
                    scale_sample = workload.draw(scale_engine)
                    running = start_all(scale, pythons, workdir)
                    label = f"items_bbox, {size:,} locaux".replace(",", " ")
                    scaling[label] = drive(running, scale_sample, workdir, only=("items_bbox",))["items_bbox"]
                    stop_all(running)
                    running = []
                    cases = capture.floor_cases(scale_engine, registry, scale.owner_settings, scale_sample)
                    measured = floor(pythons["tipg"], scale, cases, workdir, ("items_bbox",))
                    scaling[label][FLOOR] = measured["items_bbox"]
            finally:
                scale_engine.dispose()
    finally:
        stop_all(running)
        engine.dispose()
        shutil.rmtree(workdir, ignore_errors=True)
    versions = {
        "geo-service": servers.version(Path(sys.executable), "geo-service"),
        "tipg": servers.version(pythons["tipg"], "tipg"),
        "pygeoapi": servers.version(pythons["pygeoapi"], "pygeoapi"),
        "asyncpg (plancher)": servers.version(pythons["tipg"], "asyncpg"),
        "uvicorn": servers.version(Path(sys.executable), "uvicorn"),
        "PostgreSQL": pg[0].split(" on ")[0].removeprefix("PostgreSQL "), "PostGIS": pg[1],
        "wrk": report.tool_version(["wrk", "-v"]).split(" [")[0].removeprefix("wrk "),
        "Python": sys.version.split()[0],
    }
    body = render(results, scaling, versions, problems, premises, started, loads_at_start)
    report.write_section(DOC, body)
    log(f"écrit : {DOC}")
    return 0


def render(results: dict, scaling: dict, versions: dict, problems: list[str], premises: int,
           started: datetime, loads_at_start: tuple[float, float, float]) -> str:
    names = ["geo-service", servers.UNCACHED, "tipg", "pygeoapi", FLOOR]
    m = report.machine()
    # The servers, PostgreSQL and wrk load the machine themselves (16 clients): only the load before the run
    # tells whether something else was running.
    quiet = loads_at_start[0] < 1.5
    lines = [
        f"Mesuré le {started:%Y-%m-%d} ({started:%H:%M} UTC) avec `{COMMAND}`.",
        "",
        f"Machine : {m['nproc']} processeurs ({m['cpu']}), {m['memory']} de mémoire, {m['system']} ; charge "
        f"moyenne (1/5/15 min) au début : {' / '.join(f'{v:.2f}' for v in loads_at_start)}, à la fin : "
        f"{m['load']}. " + (
            "Rien d'autre ne tournait que les serveurs, PostgreSQL et wrk (qui se partagent les 2 cœurs)."
            if quiet else "**La machine était partagée** avec d'autres travaux : les chiffres sont bruités, à lire "
            "comme des ordres de grandeur."),
        "",
        "Versions : " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        f"Données : base `{bench_db.MAIN_DB}` (limites de ../shared/data/lot et démo graine 46, "
        f"{premises:,} locaux).".replace(",", "\u202f").replace("46\u202f", "46, "),
        "Chaque serveur : uvicorn (httptools), 2 workers, journal d'accès coupé (geo-service sur jemalloc, comme le "
        "lance `geo-service serve`), sur 127.0.0.1, connecté en TCP au même "
        "PostgreSQL avec le même rôle en lecture seule. Charge : `wrk -t2 -c16 -d15s --latency` (après 3 s de "
        "chauffe), en-tête `Accept-Encoding: gzip`, requêtes tirées une fois (graine fixe) et rejouées dans le "
        "même ordre pour chaque serveur. Le plancher SQL rejoue, par asyncpg et 16 connexions, les requêtes SQL "
        "de ce service pour chaque requête HTTP (pour /items une instruction : comptage, page et état de la couche ; "
        "l'entité et sa version ; la tuile), sans HTTP.",
        "",
        "Cas : `items_bbox` = locaux dans une boîte aléatoire d'environ 1,6 × 1,7 km centrée sur un local, "
        "`limit=100` ; `feature` = un local par identifiant ; `cql2_filter` = `etat = '…' AND code_insee = '…'` "
        "(CQL2 texte), `limit=100` ; `tile_zN` = une tuile du zoom N contenant des locaux, tirée au hasard (la "
        "liste, de quelques centaines de tuiles, est reprise en boucle : « geo-service sans cache » est le même "
        "service, cache de tuiles coupé, où chaque tuile est calculée comme si aucune ne se répétait) ; "
        f"`trace_zN` = les tuiles du zoom N d'un parcours de carte : {workload.TRACE_SESSIONS} habitants ouvrent la "
        "carte autour de chez eux (un local au hasard), au zoom 12, la déplacent deux fois d'une demi-carte, "
        "zooment à 13, la déplacent, zooment à 14, la déplacent deux fois ; fenêtre de 1 280 × 720 pixels, "
        "chaque habitant ne demande que les tuiles qu'il n'a pas encore vues, et les tuiles se répètent d'un "
        "habitant à l'autre comme dans le trafic réel de la carte.",
        "",
        *report.results_table(results, names),
        "",
        "Objectifs de l'issue 14 : débit ≥ 2 × celui de tipg (≥ 3 × sur le parcours de carte), p99 ≤ celui de "
        "tipg, et pour les boîtes ≥ 0,5 × le plancher SQL :",
        "",
        *report.targets_table(results),
        "",
        "Les tuiles ne sont pas les mêmes : sous le zoom 13 ce service éclaircit les locaux (un représentant "
        "par cellule de 16 px et par état, avec `point_count`) et ne met dans les tuiles que les propriétés "
        "de la carte ; tipg met toutes les colonnes et coupe à 10 000 entités par tuile "
        "(`TIPG_MAX_FEATURES_PER_TILE`) ; la colonne « octets / réponse » (corps gzip et en-têtes) le montre. "
        "pygeoapi 0.21 n'a pas de tuiles ici : son fournisseur `MVT-postgresql` exige `options.schemes`, une "
        "liste que sa fabrique de connexions mise en cache refuse (`TypeError: unhashable type: 'list'`), et "
        "sous forme de texte l'option part chez psycopg2 et la connexion échoue. Le filtre CQL2 lui est envoyé "
        "sans `filter-lang` : il refuse `cql2-text` mais lit la même expression dans son CQL texte par défaut.",
    ]
    lines += [
        "",
        "Lecture. Le plancher SQL n'a ni HTTP, ni sérialisation, ni compression, ni pile web Python : pour "
        "une entité par identifiant (une lecture par clé primaire), il mesure surtout la vitesse d'asyncpg, "
        "et aucun des trois serveurs n'en approche. Ce qui a été changé dans ce service, mesure après mesure "
        "(profils py-spy, cProfile et yappi) : ETag et Last-Modified lus dans `layer_changes` (une ligne tenue "
        "par un déclencheur) au lieu de `count(*)`/`max()` sur la table ; gzip au niveau 6 ; une seule instruction "
        "par page (comptage, page jointe en un texte par PostGIS, état de la couche) et par entité (avec sa "
        "version), compilées une fois par forme et exécutées sur la connexion du pilote ; dépendances résolues sans "
        "passage par le pool de threads. Pour l'issue 14 : `numberMatched` d'un filtre compté une fois par "
        "version de la couche ; une page filtrée (CQL2 ou propriété) compilée une fois par filtre, valeurs liées, "
        "préparée par psycopg (un texte par forme de filtre) ; pages et entités de l'OGC API sur les deux fils "
        "du chemin chaud, comme `/api/nearby`, au lieu du pool partagé de 40 fils (16 clients faisaient 8 fils "
        "par processus qui se disputaient le GIL) ; une entité est le GeoJSON écrit par PostGIS, liens ajoutés, "
        "sans être relu ni réécrit en Python ; une tuile déjà rendue est servie sur la boucle d'événements, sans "
        "fil ni instruction (versions des couches tenues en mémoire par LISTEN/NOTIFY) ; une tuile à dessiner lit "
        "l'état de ses couches dans sa propre instruction, hors transaction.",
    ]
    if problems:
        lines += ["", "Réponses anormales vues avant la mesure :", "", *[f"- {p}" for p in problems]]
    if scaling:
        lines += ["", "### Passage à l'échelle d'une requête par boîte (`items_bbox`)", "",
                  "Base `geo_service_bench_scale` : uniquement des locaux synthétiques, 10^5, 10^6 puis 10^7, "
                  "répartis uniformément à densité constante : 10^5 sur l'emprise du Lot "
                  f"{bench_db.LOT_BOX}, davantage sur une emprise d'autant plus grande centrée sur le Lot (10^7 : "
                  f"{bench_db.synthetic_box(10**7)}, à peu près la France métropolitaine) — une table nationale est "
                  "plus grande, pas plus dense. Mêmes boîtes de 1,6 × 1,7 km autour de locaux tirés au hasard, "
                  "`limit=100`.", "",
                  *report.results_table(scaling, names), "", *scaling_summary(scaling)]
    return "\n".join(lines)


def scaling_summary(scaling: dict[str, dict[str, dict]]) -> list[str]:
    """The scaling targets: this service's throughput from the smallest table to the largest within 1.5×, and its
    ratio to the floor (≥ 0.5 on these uniform boxes)."""
    ours = [(label, by_server["geo-service"]["requests_per_s"], by_server.get(FLOOR, {}).get("requests_per_s"))
            for label, by_server in scaling.items() if "geo-service" in by_server]
    if len(ours) < 2:
        return []
    ratio = ours[-1][1] / ours[0][1]
    floors = " ; ".join(f"{label.removeprefix('items_bbox').strip(' ,')} : {rps / floor:.2f}".replace(".", ",")
                        for label, rps, floor in ours if floor)
    return [f"Débit de geo-service, plus grande table rapportée à la plus petite : {ratio:.2f}".replace(".", ",")
            + f" (cible : entre 0,67 et 1,5 — {'atteinte' if 1 / 1.5 <= ratio <= 1.5 else '**manquée**'}). "
            f"Débit rapporté au plancher SQL (cible ≥ 0,5 sur ces boîtes uniformes) : {floors}."]


if __name__ == "__main__":
    sys.exit(main())
