"""How much memory one service process holds under mixed traffic, and whether it stays flat.

Starts ``geo-service serve`` (one process, as ``make run``) on 127.0.0.1 against the dev database (the demo
territory), sends a mix of the map's and clients' requests from 16 threads for ``--seconds``, and samples the
process's resident memory (``/proc/<pid>/status``: VmRSS) every ``--every`` seconds. Prints a table and the slope
of each half of the run, recorded by hand in the section "Mémoire d'un processus" of docs/benchmarks.md.

    .venv/bin/python bench/memory.py --seconds 600 --every 15 --port 8110

The mix, drawn once from a fixed seed over the demo's premises (bench/workload.py): boxes of premises, features by
id, CQL2 filters, tiles z8–z14 of the map, ``/api/nearby`` at premises, ``/map/report`` pages, the observatory's
indicators. Environment variables given to the command (``MALLOC_ARENA_MAX``…) reach the service.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from workload import Server, draw  # noqa: E402

from geo_service.db import make_engine  # noqa: E402
from geo_service.settings import Settings  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
PORT = 18090  # 127.0.0.1 only
CLIENTS = 16


def _rss_mb(pid: int) -> float:
    """Resident memory of the process and its children (uvicorn with one worker runs in one process)."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        total += int(status.split("VmRSS:")[1].split()[0])
    return total / 1024


def _children(pid: int) -> list[int]:
    try:
        found = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return found + [g for c in found for g in _children(c)]


def _paths(settings: Settings) -> list[str]:
    engine = make_engine(settings)
    sample = draw(engine)
    engine.dispose()
    server = Server("geo-service", PORT, "/ogc/collections/premises/items",
                    lambda z, x, y: f"/tiles/premises/{z}/{x}/{y}.mvt", {})
    cases = server.cases(sample)
    points = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in sample.bboxes]
    cases["nearby"] = [f"/api/nearby?lon={x:.6f}&lat={y:.6f}" for x, y in points]
    cases["report"] = [f"/map/report?lon={x:.6f}&lat={y:.6f}" for x, y in points]
    cases["indicators"] = ["/api/indicators?level=epci", "/api/indicators?level=commune&indicator=locaux"]
    mixed = [p for paths in cases.values() for p in paths]
    random.Random(46).shuffle(mixed)
    return mixed


def _slope(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS over time, in MB per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_r = sum(r for _, r in samples) / n
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    return 60 * sum((t - mean_t) * (r - mean_r) for t, r in samples) / spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--port", type=int, default=PORT)
    args = parser.parse_args()
    settings = Settings()
    paths = _paths(settings)
    env = {**os.environ, "GEO_SERVICE_LOG_LEVEL": "warning"}
    process = subprocess.Popen([str(PROJECT / ".venv/bin/geo-service"), "serve", "--host", "127.0.0.1",
                                "--port", str(args.port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        print(f"started: {_rss_mb(process.pid):.0f} MB")
        stop = threading.Event()
        counts = {"requests": 0, "errors": 0}
        lock = threading.Lock()
        feed = itertools.cycle(paths)

        def client() -> None:
            with httpx.Client(base_url=base, timeout=60) as http:
                while not stop.is_set():
                    with lock:
                        path = next(feed)
                    status = http.get(path).status_code
                    with lock:
                        counts["requests"] += 1
                        counts["errors"] += status >= 500
        threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        started = time.monotonic()
        samples: list[tuple[float, float]] = []
        print("| s | requests | 5xx | RSS MB |\n|---:|---:|---:|---:|")
        while time.monotonic() - started < args.seconds:
            time.sleep(args.every)
            samples.append((time.monotonic() - started, _rss_mb(process.pid)))
            print(f"| {samples[-1][0]:.0f} | {counts['requests']} | {counts['errors']} | {samples[-1][1]:.0f} |",
                  flush=True)
        half = len(samples) // 2
        print(f"slope, first half: {_slope(samples[:half]):+.2f} MB/min; second half: {_slope(samples[half:]):+.2f} "
              f"MB/min; max {max(r for _, r in samples):.0f} MB")
        stop.set()
        for t in threads:
            t.join(timeout=60)
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
