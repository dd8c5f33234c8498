"""Benchmark of the open-data import: a national-size Cartefibre file filtered to the Lot and imported.

    .venv/bin/python bench/bench_import.py [--rows 10000000] [--lot-rows 130000] [--seed 46] [--label TEXT]

Creates the database ``geo_service_bench_import`` in the dev cluster (dropped first, dropped again at the
end), migrates it, loads the boundaries of ../shared/data/lot, generates (in a child process, so that the
measured process does not carry the generator's memory) a Cartefibre-format CSV of ``--rows`` buildings in
a temporary folder outside git: ``--lot-rows`` in the Lot (about as many as it really has), spread over its
communes by population, the others in other départements, all drawn from ``--seed`` (the same file every
time). It then imports the file three times: for real, again (nothing changes), and as a dry run. Measures
wall time per stage and the process's resident memory (sampled every 20 ms from /proc/self/status, and
ru_maxrss), and writes the subsection of that file size in the section "Imports" of docs/benchmarks.md
(other sections and sizes are kept). The generated file is deleted. Run on demand, never in CI.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import shapely
from benchmarks_doc import machine, tool_version
from sqlalchemy import text

from geo_service.cluster import PrivateCluster, create_database
from geo_service.db import make_engine, migrate
from geo_service.layers import LayerRegistry
from geo_service.services.importers import boundaries, run_import
from geo_service.settings import PROJECT_ROOT, Settings

DATABASE = "geo_service_bench_import"
BOUNDARIES = PROJECT_ROOT.parent / "shared" / "data" / "lot"
DOC = PROJECT_ROOT / "docs" / "benchmarks.md"
SECTION = "## Imports"
LOT_ROWS = 130_000  # about the premises the Lot really has
HEADER = ("x,y,imb_id,num_voie,cp_no_voie,type_voie,nom_voie,batiment,code_insee,code_poste,nom_com,catg_loc_imb,"
          "imb_etat,pm_ref,pm_etat,pm_date_mad,code_l331,type_imb,date_completude,date_completude_manquante\n")
STATES = (("deploye", 0.80), ("raccordable demande", 0.05), ("en cours de deploiement", 0.05), ("cible", 0.08),
          ("signe", 0.02))
OTHER_DEPARTEMENTS = [f"{d:02d}" for d in range(1, 96) if d not in (20, 46)] + ["2A", "2B"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class RssSampler:
    """Resident memory of this process, sampled in a thread (flat memory shows as a flat curve)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self.rss()))
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class Stages:
    """A Progress that records when each stage starts (reading, checks and writing, geocoder)."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []

    def bar(self, label: str, total: int | None):
        self.marks.append((label, time.perf_counter()))
        return lambda n: None

    def step(self, message: str) -> None:
        self.marks.append((message, time.perf_counter()))

    def close(self) -> None:
        self.marks.append(("fin", time.perf_counter()))


def lot_points(count: int, rng: np.random.Generator) -> list[tuple[str, float, float]]:
    """``count`` points inside the Lot's communes, shared by population (commune code, lon, lat)."""
    communes = json.loads((BOUNDARIES / "communes-46.geojson").read_text(encoding="utf-8"))["features"]
    shapes = [shapely.geometry.shape(f["geometry"]) for f in communes]
    weights = np.array([f["properties"].get("population") or 1 for f in communes], dtype=float)
    per_commune = rng.multinomial(count, weights / weights.sum())
    points = []
    for feature, shape, n in zip(communes, shapes, per_commune, strict=True):
        minx, miny, maxx, maxy = shape.bounds
        found: list[tuple[float, float]] = []
        while len(found) < n:
            xs, ys = rng.uniform(minx, maxx, 4 * n + 8), rng.uniform(miny, maxy, 4 * n + 8)
            inside = shapely.contains_xy(shape, xs, ys)
            found += list(zip(xs[inside], ys[inside], strict=True))
        points += [(feature["properties"]["code_insee_actuel"], x, y) for x, y in found[:n]]
    return points


def generate(path: Path, rows: int, lot_rows: int = LOT_ROWS, seed: int = 46) -> int:
    """Write the file (the same for the same arguments); returns the number of Lot rows."""
    rng, draw = np.random.default_rng(seed), random.Random(seed)
    lot = lot_points(min(lot_rows, rows), rng)
    lot_at = set(draw.sample(range(rows), len(lot)))
    states, weights = zip(*STATES, strict=True)
    k = 0
    with open(path, "w", encoding="utf-8", buffering=1 << 20) as out:
        out.write(HEADER)
        for i in range(rows):
            state = draw.choices(states, weights)[0]
            if i in lot_at:
                code, lon, lat = lot[k]
                k += 1
                pm = f"BENCH_PM_{code}_{k // 300}"
            else:
                dep = draw.choice(OTHER_DEPARTEMENTS)
                code = f"{dep}{draw.randrange(1, 900):03d}"
                lon, lat = draw.uniform(-4.5, 8.0), draw.uniform(42.5, 51.0)
                pm = f"BENCH_PM_{code}"
            kind = "individuel" if draw.random() < 0.85 else "entre 2 et 11"
            out.write(f"{lon:.6f},{lat:.6f},IMB/{code}/BENCH/{i:07d},{i % 150 + 1},,RUE,DE LA BENCH {i % 97},,{code},"
                      f"{code[:2]}000,COMMUNE {code},{kind},{state},{pm},deploye,2024-01-15,BNCH,"
                      f"{'PA' if kind == 'individuel' else 'IM'},,t\n")
    return len(lot)


def generate_apart(path: Path, rows: int, lot_rows: int, seed: int) -> int:
    """``generate`` in a child process: its memory is not counted in the imports measured here."""
    out = subprocess.run([sys.executable, __file__, "--generate", str(path), "--rows", str(rows), "--lot-rows",
                          str(lot_rows), "--seed", str(seed)], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[-1])


def prepare(settings_base: Settings) -> Settings:
    cluster = PrivateCluster(settings_base.cluster)
    if not cluster.status().running:  # the cluster is shared: used as it runs, never started or changed here
        sys.exit("le cluster PostgreSQL ne tourne pas : « geo-service db up » d'abord")
    create_database(cluster.connect, DATABASE, drop_first=True)
    settings = Settings(database_url=f"postgresql://{cluster.owner}@/{DATABASE}?host={cluster.data_dir.resolve()}"
                                     f"&port={cluster.port}")
    migrate(settings)
    engine = make_engine(settings, pool_size=1)
    with engine.begin() as conn:
        boundaries.load_from_dir(conn, settings.territory, BOUNDARIES)
    engine.dispose()
    return settings


def measure(settings: Settings, path: Path, dry_run: bool = False) -> dict:
    registry = LayerRegistry.from_dir(settings.layers_dir)
    engine = make_engine(settings, pool_size=1)
    stages = Stages()
    baseline = RssSampler.rss()
    started, cpu = time.perf_counter(), time.process_time()
    with RssSampler() as sampler, engine.begin() as conn:
        report = run_import(conn, registry, settings.territory, "arcep-immeubles", str(path), dry_run=dry_run,
                            progress=stages)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    engine.dispose()
    marks = stages.marks
    durations = {label: round(marks[i + 1][1] - at, 1) for i, (label, at) in enumerate(marks[:-1]) if label}
    reading = [rss for t, rss in sampler.samples if marks[0][1] <= t <= (marks[1][1] if len(marks) > 1 else t)]
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "stages": durations, "rss_baseline_mb": baseline / 2**20,
            "rss_peak_mb": max(rss for _, rss in sampler.samples) / 2**20,
            "rss_reading_min_mb": min(reading) / 2**20 if reading else 0,
            "rss_reading_max_mb": max(reading) / 2**20 if reading else 0,
            "read": report.read, "outside": report.outside, "kept": report.kept, "rejected": report.rejected,
            "premises": report.table("premises").__dict__, "cabinets": report.table("ftth_cabinets").__dict__}


def _n(value: float, digits: int = 0) -> str:
    """French figures: 1 000 000 ; 43,5."""
    return f"{value:,.{digits}f}".replace(",", "\u202f").replace(".", ",")


def section(settings: Settings, rows: int, lot_rows: int, size_mb: float, runs: dict[str, dict], command: str,
            seed: int) -> str:
    m = machine()
    engine = make_engine(settings, pool_size=1)
    with engine.connect() as conn:
        pg = conn.execute(text("SELECT split_part(version(), ' on ', 1), postgis_lib_version()")).one()
    engine.dispose()
    import pyproj

    lines = [f"Fichier « Cartefibre » généré (graine {seed}) : {_n(rows)} immeubles ({_n(size_mb)} Mo), dont "
             f"{_n(lot_rows)} dans le Lot répartis entre ses communes selon la population ; import "
             "`arcep-immeubles` (filtre sur `code_insee`, contrôle de chaque valeur, contrôle du contour, upsert, "
             "points de mutualisation, index du géocodeur) en une transaction.", "",
             "| passage | durée totale (s) | CPU Python (s) | lues | hors territoire | retenues | ajoutées | modifiées "
             "| inchangées | mémoire de base (Mo) | pic (Mo) | pendant la lecture, min–max (Mo) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in runs.items():
        p = r["premises"]
        cells = [name, _n(r["wall_s"], 1), _n(r["cpu_s"], 1), _n(r["read"]), _n(r["outside"]), _n(r["kept"]),
                 _n(p["inserted"]), _n(p["updated"]), _n(p["unchanged"]), _n(r["rss_baseline_mb"]),
                 _n(r["rss_peak_mb"]), f"{_n(r['rss_reading_min_mb'])}–{_n(r['rss_reading_max_mb'])}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "« CPU Python » : temps processeur du processus qui importe (lecture, filtre, contrôles) ; le reste "
              "de la durée est le travail de PostgreSQL et l'attente sur la machine partagée.", "",
              "Durée de chaque étape (s) :", ""]
    for name, r in runs.items():
        steps = " ; ".join(f"{label.rstrip('…')} {_n(seconds, 1)}" for label, seconds in r["stages"].items())
        lines.append(f"- {name} : {steps}")
    lines += ["", f"Machine : {m['cpu']}, {m['nproc']} cœurs, {m['memory']}, {m['system']}, **partagée avec "
              f"d'autres agents qui travaillaient en même temps** ; charge moyenne à la fin de la mesure "
              f"{m['load']}.",
              f"Versions : Python {sys.version.split()[0]}, {pg[0]}, PostGIS {pg[1]}, pyproj {pyproj.__version__}, "
              f"{tool_version(['uname', '-m'])}.", "", f"Commande : `{command}`", ""]
    return "\n".join(lines)


def write_section(title: str, body: str) -> None:
    """Replace (or add) the subsection ``title`` of the « Imports » section, leaving everything else as it is."""
    doc = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    section = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    found = section.search(doc)
    if found is None:
        doc, found = doc.rstrip() + f"\n\n{SECTION}\n\n", None
        found = section.search(doc)
    text_of_section = found.group(0)
    new = f"{title}\n\n{body.strip()}\n\n"
    sub = re.compile(rf"^{re.escape(title)}\n.*?(?=^###? |\Z)", re.MULTILINE | re.DOTALL)
    updated = (sub.sub(lambda _m: new, text_of_section, count=1) if sub.search(text_of_section)
               else text_of_section.rstrip() + "\n\n" + new)
    doc = doc[:found.start()] + updated + doc[found.end():]
    DOC.write_text(doc.rstrip() + "\n", encoding="utf-8")


def drop_database(settings_base: Settings) -> None:
    cluster = PrivateCluster(settings_base.cluster)
    with cluster.connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--lot-rows", type=int, default=LOT_ROWS)
    parser.add_argument("--seed", type=int, default=46)
    parser.add_argument("--label", default="", help="added to the subsection's title (e.g. the code measured)")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        print(generate(args.generate, args.rows, args.lot_rows, args.seed))
        return
    command = (f".venv/bin/python bench/bench_import.py --rows {args.rows}"
               + (f" --lot-rows {args.lot_rows}" if args.lot_rows != LOT_ROWS else "")
               + (f" --seed {args.seed}" if args.seed != 46 else ""))
    base = Settings()
    log(f"base {DATABASE} : création, migration, limites…")
    settings = prepare(base)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-import-") as folder:
            path = Path(folder) / "carte_fibre_immeubles_2026_T2_20260902.csv"
            log(f"génération de {args.rows:,} lignes dans {folder}…")
            lot_rows = generate_apart(path, args.rows, args.lot_rows, args.seed)
            size_mb = path.stat().st_size / 2**20
            runs = {}
            for name, dry in (("premier import", False), ("réimport (rien ne change)", False),
                              ("simulation --dry-run", True)):
                log(f"{name}…")
                runs[name] = measure(settings, path, dry_run=dry)
                log(json.dumps(runs[name], ensure_ascii=False))
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        log(f"ru_maxrss du processus : {maxrss:.0f} Mo")
        title = f"### {_n(args.rows)} lignes" + (f" — {args.label}" if args.label else "")
        write_section(title, section(settings, args.rows, lot_rows, size_mb, runs, command, args.seed))
        log(f"écrit : {DOC}")
    finally:
        drop_database(base)


if __name__ == "__main__":
    main()
