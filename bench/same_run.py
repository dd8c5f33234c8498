"""Variants of the service side by side in one run: each started in turn under uvicorn (2 workers, 127.0.0.1), the
same wrk load replayed on each, rounds interleaved so that the machine's other work spreads over all variants.

Reads the dev database (the demo territory), writes nothing. Two uses recorded in docs/benchmarks.md:

    .venv/bin/python bench/same_run.py nearby --variant threads1 GEO_SERVICE_API__HOT_PATH_THREADS=1 \\
        --variant threads2 GEO_SERVICE_API__HOT_PATH_THREADS=2
    .venv/bin/python bench/same_run.py items tiles --variant h11 GEO_SERVICE_HTTP_IMPLEMENTATION=h11 \\
        --variant httptools GEO_SERVICE_HTTP_IMPLEMENTATION=httptools

A variant's environment reaches uvicorn (``--workers 2``, no access log; ``LD_PRELOAD`` to run on jemalloc as
``geo-service serve`` does); cases are drawn once from seed 46.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_nearby import random_points, run_wrk, write_lua  # noqa: E402
from workload import Server, draw  # noqa: E402

from geo_service.db import make_engine  # noqa: E402
from geo_service.settings import PROJECT_ROOT, Settings  # noqa: E402

PORT = 8114  # 127.0.0.1 only


def _cases(settings: Settings, names: list[str]) -> dict[str, list[str]]:
    engine = make_engine(settings)
    try:
        sample = draw(engine)
        points = random_points(engine, 1000, 46)
    finally:
        engine.dispose()
    server = Server("geo-service", PORT, "/ogc/collections/premises/items",
                    lambda z, x, y: f"/tiles/premises/{z}/{x}/{y}.mvt", {})
    drawn = server.cases(sample)
    cases = {"nearby": [f"/api/nearby?lon={x:.6f}&lat={y:.6f}" for x, y in points],
             "items": drawn["items_bbox"],
             "tiles": [p for name, paths in drawn.items() if name.startswith("tile_z1") for p in paths]}
    random.Random(46).shuffle(cases["tiles"])
    return {name: cases[name] for name in names}


def _serve(env: dict[str, str], log: Path) -> subprocess.Popen:
    # uvicorn as in the other benchmarks (no access log); the HTTP implementation as `geo-service serve` would
    # choose it, jemalloc by LD_PRELOAD as `geo-service serve` would load it.
    http = env.get("GEO_SERVICE_HTTP_IMPLEMENTATION", "h11")
    process = subprocess.Popen([str(PROJECT_ROOT / ".venv/bin/uvicorn"), "geo_service.main:app_from_environment",
                                "--factory", "--host", "127.0.0.1", "--port", str(PORT), "--workers", "2",
                                "--no-access-log", "--log-level", "warning", "--http", http],
                               env={**os.environ, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=2):
                return process
        except OSError:
            time.sleep(0.3)
    process.terminate()
    raise RuntimeError(f"le service n'a pas démarré (voir {log})")


def _stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, 15)
    process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="+", choices=["nearby", "items", "tiles"])
    parser.add_argument("--variant", nargs="+", action="append", required=True, metavar=("NAME", "VAR=VALUE"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    cases = _cases(Settings(), args.cases)
    folder = Path(tempfile.mkdtemp(prefix="same-run-"))
    scripts = {name: write_lua(folder, name, paths) for name, paths in cases.items()}
    results: dict[tuple[str, str], list[dict]] = {}
    url = f"http://127.0.0.1:{PORT}"
    for round_ in range(args.rounds):
        for name, *assignments in args.variant:
            process = _serve(dict(a.split("=", 1) for a in assignments), folder / f"{name}.log")
            try:
                for case, script in scripts.items():
                    run_wrk(url, script, 2, args.connections, args.warmup)
                    found = run_wrk(url, script, 2, args.connections, args.duration)
                    # wrk printed no latency (no answer at all, the machine overloaded): said, not counted.
                    if found["p50"] is None or found["p99"] is None:
                        print(f"round {round_ + 1} {case} {name}: no latency reported", flush=True)
                        continue
                    results.setdefault((case, name), []).append(found)
                    print(f"round {round_ + 1} {case} {name}: {found['rps']:.0f} req/s, p50 {found['p50']:.1f} ms, "
                          f"p99 {found['p99']:.1f} ms, non-2xx {found['non_2xx']}", flush=True)
            finally:
                _stop(process)
    print(f"\n| case | variant | req/s (median of {args.rounds}) | p50 ms | p99 ms (median) | p99 ms per round |")
    print("|---|---|---:|---:|---:|---|")
    for (case, name), runs in results.items():
        rounds = " / ".join(f"{r['p99']:.1f}" for r in runs)
        print(f"| {case} | {name} | {statistics.median(r['rps'] for r in runs):.0f} | "
              f"{statistics.median(r['p50'] for r in runs):.1f} | {statistics.median(r['p99'] for r in runs):.1f} | "
              f"{rounds} |")
    print(f"\nload average: {os.getloadavg()}; command: {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
