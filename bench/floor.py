"""The raw-SQL floor: the statements the service runs for each request, replayed through asyncpg.

Run by ``bench_ogc.py`` with the tipg virtualenv's Python (it has asyncpg; this project's does not):
``floor.py CASES.json SECONDS CONCURRENCY``, the database URL in ``BENCH_DATABASE_URL``. Each worker
owns a connection and loops over the case's requests (each a list of ``[sql, params]`` run in order,
rows fetched), so a "request" costs what the service's database work costs, with no HTTP and no
Python web stack. Prints one JSON object: requests/s, p50 and p99 per case.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import asyncpg


async def _worker(dsn: str, requests: list, offset: int, deadline: float, latencies: list[float]) -> None:
    # The session settings of the service (geo_service.db.make_engine).
    conn = await asyncpg.connect(dsn, server_settings={"jit": "off", "max_parallel_workers_per_gather": "0"})
    try:
        i = offset
        while time.perf_counter() < deadline:
            statements = requests[i % len(requests)]
            i += 1
            started = time.perf_counter()
            for sql, params in statements:
                await conn.fetch(sql, *params)
            latencies.append(time.perf_counter() - started)
    finally:
        await conn.close()


async def _run_case(dsn: str, requests: list, seconds: float, concurrency: int) -> dict:
    latencies: list[float] = []
    # Warm-up: prepares the statements on every connection, as a running service would have.
    warm = time.perf_counter() + 2
    await asyncio.gather(*(_worker(dsn, requests, k * 7, warm, []) for k in range(concurrency)))
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_worker(dsn, requests, k * len(requests) // concurrency, deadline, latencies)
                           for k in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    n = len(latencies)
    return {"requests_per_s": n / elapsed, "requests": n,
            "p50_ms": 1000 * latencies[n // 2] if n else 0.0,
            "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else 0.0}


async def main(path: str, seconds: float, concurrency: int) -> None:
    dsn = os.environ["BENCH_DATABASE_URL"]
    with open(path, encoding="utf-8") as file:
        cases = json.load(file)
    out = {}
    for name, requests in cases.items():
        out[name] = await _run_case(dsn, requests, seconds, concurrency)
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
