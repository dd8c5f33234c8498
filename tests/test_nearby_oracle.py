"""The report against an independent oracle, at 200 random points of the Lot (fixed seed, demo seed 46).

The oracle reads the raw rows (coordinates, polygons) and computes everything itself: geodesic distances on
the WGS84 ellipsoid with pyproj.Geod, by brute force over every candidate, and point-in-polygon with shapely.
It shares no code and no index with the service. The comparison is written to
test-output/nearby-oracle.json (largest distance error, flag mismatches).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Geod
from sqlalchemy import Connection, Engine, text

from geo_service.services.app_caches import AppCaches
from geo_service.services.resident import nearby_report
from geo_service.services.resident.report_sections import FIBRE_MATCH_M, MAST_RADIUS_M
from geo_service.settings import Settings

SEED = 2026_11_28
POINTS = 200
TOLERANCE_M = 1.0
GEOD = Geod(ellps="WGS84")
VISIBLE = "validation_state = 'published' AND deleted_at IS NULL"
AT = datetime(2026, 7, 15, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def db(engine: Engine, demo_territory) -> Iterator[Connection]:
    with engine.connect() as conn:
        yield conn


def _points(conn: Connection, table: str, key: str, where: str = "TRUE", extra: str = "") -> dict:
    rows = conn.execute(text(f"SELECT {key}, ST_X(geom), ST_Y(geom){extra} FROM {table} "
                             f"WHERE {VISIBLE} AND {where} ORDER BY {key}")).all()
    return {"key": np.array([r[0] for r in rows], dtype=object), "x": np.array([r[1] for r in rows]),
            "y": np.array([r[2] for r in rows]), "extra": [r[3:] for r in rows]}


@pytest.fixture(scope="module")
def raw(db: Connection) -> dict:
    """Everything the oracle needs, read once as plain coordinates and WKB."""
    zones = db.execute(text(f"SELECT kind, technologie, operateur, ST_AsBinary(geom) FROM white_zones "
                            f"WHERE {VISIBLE}")).all()
    communes = db.execute(text("SELECT code_insee, ST_AsBinary(geom) FROM communes")).all()
    return {
        "territory": shapely.from_wkb(bytes(db.execute(text("SELECT ST_AsBinary(geom) FROM territory")).scalar())),
        "wifi": _points(db, "wifi_hotspots", "borne_id", "statut = 'installee'"),
        "wifi_planned": _points(db, "wifi_hotspots", "borne_id", "statut = 'programmee'"),
        "third_places": _points(db, "third_places", "tl_id"),
        "digital_help": _points(db, "digital_help_places", "lieu_id"),
        "premises": _points(db, "premises", "imb_id"),
        "masts": _points(db, "mobile_masts", "id_station_anfr"),
        "med": _points(db, "med_sites", "med_id", "rayon_m IS NOT NULL", ", rayon_m"),
        "zones": [(k, t, o, shapely.from_wkb(bytes(g))) for k, t, o, g in zones],
        "communes": [(c, shapely.from_wkb(bytes(g))) for c, g in communes],
    }


@pytest.fixture(scope="module")
def points(raw: dict) -> list[tuple[float, float]]:
    """200 uniform random points inside the département outline."""
    rng = np.random.default_rng(SEED)
    territory = raw["territory"]
    shapely.prepare(territory)
    minx, miny, maxx, maxy = territory.bounds
    out: list[tuple[float, float]] = []
    while len(out) < POINTS:
        x, y = rng.uniform(minx, maxx, 500), rng.uniform(miny, maxy, 500)
        inside = shapely.contains_xy(territory, x, y)
        out.extend(zip(x[inside].tolist(), y[inside].tolist(), strict=True))
    return out[:POINTS]


def distances(table: dict, lon: float, lat: float) -> np.ndarray:
    n = len(table["x"])
    return GEOD.inv(np.full(n, lon), np.full(n, lat), table["x"], table["y"])[2] if n else np.array([])


def nearest(table: dict, lon: float, lat: float, k: int) -> list[tuple[str, float]]:
    d = distances(table, lon, lat)
    order = sorted(range(len(d)), key=lambda i: (d[i], table["key"][i]))[:k]
    return [(table["key"][i], float(d[i])) for i in order]


def within(table: dict, lon: float, lat: float, radius: float) -> list[tuple[str, float]]:
    # Premises: 130,000 rows — a generous degree box first (≥ 2× the radius), then exact geodesic distances.
    box = (np.abs(table["x"] - lon) < 3 * radius / 79_000) & (np.abs(table["y"] - lat) < 3 * radius / 111_000)
    sub = {key: table[key][box] for key in ("key", "x", "y")}
    d = distances(sub, lon, lat)
    keep = sorted((float(d[i]), sub["key"][i]) for i in range(len(d)) if d[i] <= radius)
    return [(key, dist) for dist, key in keep]


class Comparison:
    """Collects the differences between the report and the oracle; written to test-output at the end."""

    def __init__(self) -> None:
        self.max_error: dict[str, float] = {}
        self.compared: dict[str, int] = {}
        self.mismatches: list[str] = []

    def distance(self, section: str, expected: float, got: float) -> None:
        self.max_error[section] = max(self.max_error.get(section, 0.0), abs(expected - got))
        self.compared[section] = self.compared.get(section, 0) + 1

    def same(self, what: str, expected: object, got: object) -> None:
        self.compared[what.split(" ")[0]] = self.compared.get(what.split(" ")[0], 0) + 1
        if expected != got:
            self.mismatches.append(f"{what}: oracle {expected!r}, report {got!r}")


def compare_places(cmp: Comparison, name: str, expected: list[tuple[str, float]], items: list[dict],
                   where: str) -> None:
    cmp.same(f"{name} ids at {where}", [k for k, _ in expected], [i["id"] for i in items])
    for (_, d), item in zip(expected, items, strict=False):
        cmp.distance(name, d, item["distance_m"])


def white_zone_oracle(raw: dict, lon: float, lat: float) -> dict[tuple[str, str], dict]:
    point = shapely.Point(lon, lat)
    known: dict[tuple[str, str], set[str]] = {}
    here: dict[tuple[str, str], set[str]] = {}
    for kind, tech, op, geom in raw["zones"]:
        known.setdefault((kind, tech), set()).add(op)
        if geom.covers(point):
            here.setdefault((kind, tech), set()).add(op)
    out = {}
    for (kind, tech), ops in known.items():
        found = here.get((kind, tech), set())
        out[(kind, tech)] = {"tous": ("tous" in found) if "tous" in ops else None,
                             "operateurs": {op: (op in found or "tous" in found) if op in ops else None
                                            for op in ("orange", "sfr", "bouygues", "free")}}
    return out


def test_report_matches_the_oracle(db: Connection, raw: dict, points: list, caches: AppCaches,
                                   settings: Settings, artefacts_dir: Path):
    cmp = Comparison()
    in_a_white_zone = 0
    for lon, lat in points:
        where = f"({lon:.5f}, {lat:.5f})"
        report = nearby_report.report(db, caches, settings.territory, lon, lat, at=AT)

        commune = next((code for code, geom in raw["communes"] if geom.covers(shapely.Point(lon, lat))), None)
        cmp.same(f"commune at {where}", commune, report["commune"]["code_insee"])

        compare_places(cmp, "wifi", nearest(raw["wifi"], lon, lat, 2), report["wifi"]["items"], where)
        compare_places(cmp, "third_places", nearest(raw["third_places"], lon, lat, 3),
                       report["third_places"]["items"], where)
        compare_places(cmp, "digital_help", nearest(raw["digital_help"], lon, lat, 3),
                       report["digital_help"]["items"], where)
        planned = nearest(raw["wifi_planned"], lon, lat, 1)
        wifi_nearest = nearest(raw["wifi"], lon, lat, 1)
        expect_planned = planned if planned and (not wifi_nearest or planned[0][1] < wifi_nearest[0][1]) else []
        got_planned = [report["wifi"]["planned"]] if report["wifi"]["planned"] else []
        compare_places(cmp, "wifi_planned", expect_planned, got_planned, where)

        premises = within(raw["premises"], lon, lat, FIBRE_MATCH_M)[:1]
        got = report["fibre"]["premise"]
        cmp.same(f"premise at {where}", [k for k, _ in premises], [got["imb_id"]] if got else [])
        if premises and got:
            cmp.distance("premise", premises[0][1], got["distance_m"])

        masts = within(raw["masts"], lon, lat, MAST_RADIUS_M)
        cmp.same(f"masts at {where}", [k for k, _ in masts], [m["id_station_anfr"] for m in report["mobile"]["masts"]])
        for (_, d), mast in zip(masts, report["mobile"]["masts"], strict=False):
            cmp.distance("masts", d, mast["distance_m"])

        d = distances(raw["med"], lon, lat)
        serving = sorted((float(d[i]), raw["med"]["key"][i]) for i in range(len(d))
                         if d[i] <= raw["med"]["extra"][i][0])
        got_med = report["med"]["serving"]
        cmp.same(f"med at {where}", serving[0][1] if serving else None, got_med["med_id"] if got_med else None)
        if serving and got_med:
            cmp.distance("med", serving[0][0], got_med["distance_m"])

        flags = white_zone_oracle(raw, lon, lat)
        in_a_white_zone += any(v["tous"] or any(v["operateurs"].values()) for v in flags.values())
        got_flags = {(t["kind"], t["technologie"]): {"tous": t["tous"], "operateurs": t["operateurs"]}
                     for t in report["mobile"]["white_zones"]["technologies"]}
        cmp.same(f"white_zones at {where}", flags, got_flags)
        in_white = any(v["tous"] for (kind, _), v in flags.items() if kind == "mobile")
        cmp.same(f"in_white_zone at {where}", in_white, report["mobile"]["white_zones"]["in_white_zone"])

    summary = {"points": len(points), "seed": SEED, "max_distance_error_m": cmp.max_error,
               "comparisons": cmp.compared, "points_in_a_white_zone": in_a_white_zone,
               "mismatches": cmp.mismatches[:50],
               "mismatch_count": len(cmp.mismatches)}
    (artefacts_dir / "nearby-oracle.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    assert cmp.mismatches == []
    assert max(cmp.max_error.values()) <= TOLERANCE_M, cmp.max_error
    # The sample is not degenerate: it crosses white zones, MED areas and premises.
    assert cmp.compared["white_zones"] == POINTS and cmp.compared["premise"] > POINTS
    assert 0 < in_a_white_zone < POINTS


def test_points_are_spread_over_the_territory(points: list, raw: dict):
    xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    minx, miny, maxx, maxy = raw["territory"].bounds
    assert len(points) == POINTS
    assert xs.max() - xs.min() > 0.7 * (maxx - minx) and ys.max() - ys.min() > 0.7 * (maxy - miny)
