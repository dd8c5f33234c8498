"""The request mixes, identical for every server, and the wrk runs that drive them.

Random requests are drawn once, from a fixed seed, out of the bench database: bounding boxes centred on
existing premises (so pages are rarely empty), existing feature ids, CQL2 attribute filters on codes
that exist, and for each zoom 8–14 the tiles holding premises. Every server gets the same list in the
same order; wrk's Lua script walks it, each thread from its own starting point.

Besides random tiles, a pan-and-zoom trace: residents open the map around their home (a premises drawn at
random, so towns are visited more than hamlets), look at zoom 12, pan, zoom in to 13 and 14 and pan again;
each session asks only for tiles it has not seen yet (the browser keeps the others), and the tiles of all
sessions, in order, make the trace. Tiles repeat there as they do in real map traffic: across residents.
"""

from __future__ import annotations

import json
import math
import random
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import morecantile
from sqlalchemy import Engine, text

SAMPLES = 600
HALF_BOX = (0.010, 0.0075)  # degrees: a box of about 1.6 km × 1.7 km around a premises
TILE_ZOOMS = range(8, 15)
ETATS = ("cible", "deploye", "raccorde", "en cours de deploiement")
WRK = ["wrk", "-t2", "-c16", "-d15s", "--latency", "--timeout", "30s"]
WARMUP = ["wrk", "-t2", "-c16", "-d3s", "--timeout", "30s"]
TRACE_SESSIONS = 400
VIEWPORT_PX = (1280, 720)  # a laptop's map, in 256-pixel tiles: 5 or 6 columns × 3 or 4 rows
# One session: (zoom, pans) steps — look at zoom 12 and pan twice, zoom in and pan, zoom in and pan twice.
TRACE_STEPS = ((12, 2), (13, 1), (14, 2))
TRACE_ZOOMS = (12, 14)  # the trace's zooms measured (the targets)


@dataclass(frozen=True)
class Sample:
    """The random parameters of each case, as plain values any server's URL can be made from."""

    bboxes: list[tuple[float, float, float, float]]
    fids: list[int]
    filters: list[tuple[str, str]]  # (code_insee, etat)
    tiles: dict[int, list[tuple[int, int]]]  # zoom → [(x, y)]
    trace: dict[int, list[tuple[int, int]]]  # zoom → [(x, y)] in the pan-and-zoom trace's order, with repeats


def draw(engine: Engine, seed: int = 46) -> Sample:
    rng = random.Random(seed)
    with engine.connect() as conn:
        conn.execute(text("SELECT setseed(0.46)"))
        rows = conn.execute(text("SELECT fid, ST_X(geom), ST_Y(geom), code_insee FROM premises "
                                 "WHERE validation_state = 'published' ORDER BY random() LIMIT :n"),
                            {"n": SAMPLES}).all()
    if not rows:
        raise RuntimeError("aucun local dans la base de banc d'essai")
    dx, dy = HALF_BOX
    bboxes = [(round(x - dx, 6), round(y - dy, 6), round(x + dx, 6), round(y + dy, 6)) for _, x, y, _ in rows]
    filters = [(code, rng.choice(ETATS)) for *_, code in rows]
    tms = morecantile.tms.get("WebMercatorQuad")
    tiles: dict[int, list[tuple[int, int]]] = {}
    for z in TILE_ZOOMS:
        found = sorted({(t.x, t.y) for t in (tms.tile(x, y, z) for _, x, y, _ in rows)})
        rng.shuffle(found)
        tiles[z] = found
    return Sample(bboxes, [r[0] for r in rows], filters, tiles, pan_and_zoom_trace(engine, seed))


def _pixel(lon: float, lat: float, z: int) -> tuple[float, float]:
    """Web Mercator global pixel coordinates of a point at zoom ``z`` (256-pixel tiles)."""
    size = 256 * 2**z
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2
    return (lon + 180) / 360 * size, y * size


def _viewport(px: float, py: float) -> list[tuple[int, int]]:
    """The tiles a viewport centred on global pixel (px, py) shows, row by row."""
    half_w, half_h = VIEWPORT_PX[0] / 2, VIEWPORT_PX[1] / 2
    columns = range(int((px - half_w) // 256), int((px + half_w) // 256) + 1)
    rows = range(int((py - half_h) // 256), int((py + half_h) // 256) + 1)
    return [(x, y) for y in rows for x in columns]


def pan_and_zoom_trace(engine: Engine, seed: int = 46) -> dict[int, list[tuple[int, int]]]:
    """Tiles asked by ``TRACE_SESSIONS`` residents panning and zooming around their home, per zoom."""
    rng = random.Random(seed + 1)
    with engine.connect() as conn:
        conn.execute(text("SELECT setseed(0.47)"))
        homes = conn.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM premises "
                                  "WHERE validation_state = 'published' ORDER BY random() LIMIT :n"),
                             {"n": TRACE_SESSIONS}).all()
    trace: dict[int, list[tuple[int, int]]] = {z: [] for z, _ in TRACE_STEPS}
    for lon, lat in homes:
        seen: set[tuple[int, int, int]] = set()
        px, py = _pixel(lon, lat, TRACE_STEPS[0][0])
        previous_zoom = TRACE_STEPS[0][0]
        for z, pans in TRACE_STEPS:
            px, py = px * 2 ** (z - previous_zoom), py * 2 ** (z - previous_zoom)
            previous_zoom = z
            for step in range(pans + 1):
                if step:  # a drag of about half the map, in any direction
                    angle = rng.uniform(0, 2 * math.pi)
                    px += math.cos(angle) * VIEWPORT_PX[0] / 2
                    py += math.sin(angle) * VIEWPORT_PX[1] / 2
                for x, y in _viewport(px, py):
                    if (z, x, y) not in seen:
                        seen.add((z, x, y))
                        trace[z].append((x, y))
    return trace


def cql2(code: str, etat: str) -> str:
    return f"etat = '{etat}' AND code_insee = '{code}'"


@dataclass(frozen=True)
class Server:
    """How one server spells each request."""

    name: str
    port: int
    items: str  # path of the premises items
    tile: Callable[[int, int, int], str] | None  # (z, x, y) → path, or None without tiles
    extra: dict[str, str]  # query parameters every items request carries (f=json…)
    only: tuple[str, ...] = ()  # when set, the case names this server runs start with one of these

    def cases(self, sample: Sample) -> dict[str, list[str]]:
        def q(params: dict) -> str:
            return "?" + urlencode({**params, **self.extra}, quote_via=quote)

        out = {
            "items_bbox": [self.items + q({"bbox": ",".join(map(str, b)), "limit": 100}) for b in sample.bboxes],
            "feature": [f"{self.items}/{fid}" + (q({}) if self.extra else "") for fid in sample.fids],
            # No filter-lang: each server's default text language (CQL2 text for this service and tipg; pygeoapi
            # 0.21 refuses "cql2-text" and reads its default CQL text) parses this expression the same way.
            "cql2_filter": [self.items + q({"filter": cql2(c, e), "limit": 100}) for c, e in sample.filters],
        }
        if self.tile is not None:
            for z, coords in sample.tiles.items():
                out[f"tile_z{z}"] = [self.tile(z, x, y) for x, y in coords]
            for z in TRACE_ZOOMS:
                out[f"trace_z{z}"] = [self.tile(z, x, y) for x, y in sample.trace[z]]
        if self.only:
            out = {case: paths for case, paths in out.items() if case.startswith(self.only)}
        return out


def lua_script(paths: list[str], path: Path) -> Path:
    """A wrk script that requests ``paths`` in order (each thread from its own offset) and prints a summary."""
    quoted = ",\n".join(json.dumps(p) for p in paths)  # JSON strings are valid Lua strings for these paths
    path.write_text(f"""
local paths = {{
{quoted}
}}
local threads = 0
function setup(thread)
  thread:set("offset", threads * {max(len(paths) // 2, 1)})
  threads = threads + 1
end
local i = 0
function init(args)
  i = offset or 0
end
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], {{["Accept-Encoding"] = "gzip"}})
end
function done(summary, latency, requests)
  io.write(string.format(
    'BENCH {{"requests":%d,"duration_us":%d,"bytes":%d,"status_errors":%d,"timeouts":%d,' ..
    '"socket_errors":%d,"p50_us":%d,"p99_us":%d}}\\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.status, summary.errors.timeout,
    summary.errors.connect + summary.errors.read + summary.errors.write,
    latency:percentile(50), latency:percentile(99)))
end
""", encoding="utf-8")
    return path


@dataclass(frozen=True)
class Result:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    mean_bytes: float


def run_wrk(base_url: str, script: Path, log) -> Result:
    """A 3-second warm-up (discarded), then the measured 15-second run."""
    subprocess.run([*WARMUP, "-s", str(script), base_url], capture_output=True, text=True, check=False)
    done = subprocess.run([*WRK, "-s", str(script), base_url], capture_output=True, text=True, check=False)
    match = re.search(r"^BENCH (\{.*\})$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not match:
        log(f"wrk a échoué : {done.stderr.strip() or done.stdout[-500:]}")
        return Result(0.0, 0.0, 0.0, 0, 0, 0.0)
    s = json.loads(match.group(1))
    errors = s["status_errors"] + s["timeouts"] + s["socket_errors"]
    n = max(s["requests"], 1)
    return Result(s["requests"] / (s["duration_us"] / 1e6), s["p50_us"] / 1000, s["p99_us"] / 1000,
                  s["requests"], errors, s["bytes"] / n)
