"""Issue 11: record what the service answers to a fixed list of requests, then compare after each step.

    python record_responses.py record  before.json      # on the merged main, before step 1
    python record_responses.py record  after.json       # after each step (same database, untouched between)
    python record_responses.py compare before.json after.json

The app is built in-process (``create_app(Settings())``, so ``GEO_SERVICE_DATABASE_URL`` or the private
cluster of ``make setup``, with its demo) and driven with Starlette's test client: nothing listens on a port.
Per request it keeps the status, the headers that carry meaning (ETag, Cache-Control, Content-Crs, Allow,
WWW-Authenticate…) and two SHA-256 of the body: ``raw`` (the bytes) and ``canonical`` (JSON parsed, keys
sorted). Noise that no code controls is blanked before hashing: the ``timeStamp``/``generated`` instants,
Folium's random element names (``map_<32 hex>``) and the per-response CSP nonce. ``compare`` fails on any
status, header or canonical difference and reports raw-only differences (same JSON,
other key order or spacing) as warnings.

The clock of opening hours is frozen (2026-07-15 10:00 Paris) so that reports do not change from one run to
the next. Only GET/OPTIONS and unauthenticated writes (refused before any database write) are sent.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

KEPT_HEADERS = ("content-type", "etag", "last-modified", "cache-control", "vary", "content-crs", "content-disposition",
                "allow", "www-authenticate", "location", "retry-after", "content-security-policy", "x-attribution",
                "referrer-policy", "x-content-type-options", "x-frame-options", "strict-transport-security")
VOLATILE = ("timeStamp", "generated")
FROZEN = datetime(2026, 7, 15, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))
POINTS = {  # (lon, lat) in the Lot, and one outside
    "cahors": (1.4437, 44.4475), "figeac": (2.0317, 44.6086), "gourdon": (1.3833, 44.7375),
    "gramat": (1.7258, 44.7808), "souillac": (1.4769, 44.8972), "saint_cere": (1.8919, 44.8619),
    "cajarc": (1.8425, 44.4856), "prayssac": (1.1886, 44.5042), "martel": (1.6083, 44.9367),
    "lacapelle": (1.9950, 44.7253), "outside": (2.3522, 48.8566),
}
ADDRESSES = ("place François Mitterrand Cahors", "1 rue de la République Figeac", "Gramat")
GEOCODE = ("cahors", "av j jaures cahors", "figeak", "12 bd gambetta", "saint cere")


def _freeze_clock() -> None:
    for name in ("geo_service.services.resident.opening_hours", "geo_service.services.resident.opening_hours"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        module.now_in_paris = lambda: FROZEN
        return
    raise SystemExit("opening_hours module not found")


def _canonical(value: object) -> object:
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


# What changes from one request to the next whatever the code: the second of ``timeStamp``/``generated``,
# Folium's random element names (``map_<32 hex>``) and the CSP nonce drawn for each response.
_NOISE = [(re.compile(rb'"(timeStamp|generated)":\s*"[^"]*"'), rb'"\1":"-"'),
          (re.compile(rb"\b([a-z_]+)_[0-9a-f]{32}\b"), rb"\1_-"),
          (re.compile(rb'nonce="[^"]*"'), rb'nonce="-"')]
_CSP_HASH = re.compile(r"'(sha256|nonce)-[A-Za-z0-9+/=_-]+'")


def _digest(body: bytes, content_type: str) -> tuple[str, str]:
    for pattern, replacement in _NOISE:
        body = pattern.sub(replacement, body)
    raw = hashlib.sha256(body).hexdigest()
    if "json" in content_type and body:
        text = json.dumps(_canonical(json.loads(body)), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return raw, hashlib.sha256(text.encode()).hexdigest()
    return raw, raw


def _tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    import math

    n = 1 << z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.log(math.tan(math.radians(lat)) + 1 / math.cos(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def requests(first_fids: dict[str, int], public: list[str]) -> list[tuple[str, str, dict, dict]]:
    """(method, path, query params, headers): about 150 requests over every read surface."""
    cahors = POINTS["cahors"]
    box = f"{cahors[0] - 0.02},{cahors[1] - 0.02},{cahors[0] + 0.02},{cahors[1] + 0.02}"
    l93 = "http://www.opengis.net/def/crs/EPSG/0/2154"
    out: list[tuple[str, str, dict, dict]] = []

    def get(path: str, params: dict | None = None, headers: dict | None = None) -> None:
        out.append(("GET", path, params or {}, headers or {}))

    for path in ("/ogc", "/ogc/conformance", "/ogc/collections", "/ogc/api", "/openapi.json", "/healthz",
                 "/api/layers", "/ogc/tileMatrixSets", "/ogc/tileMatrixSets/WebMercatorQuad", "/ogc/tiles",
                 "/ogc/tiles/WebMercatorQuad", "/ogc/tiles/WebMercatorQuad/tilejson.json", "/map",
                 "/map/embed/snippet", "/ogc/collections/nope", "/ogc/collections/nope/items", "/nowhere"):
        get(path)
    for path in ("/ogc", "/ogc/collections", "/ogc/conformance"):
        get(path, {"f": "html"})
    for layer in public:
        get(f"/ogc/collections/{layer}")
        get(f"/ogc/collections/{layer}/queryables")
        get(f"/ogc/collections/{layer}/items", {"limit": "3"})
        if layer in first_fids:
            get(f"/ogc/collections/{layer}/items/{first_fids[layer]}")
    items = "/ogc/collections/wifi_hotspots/items"
    premises = "/ogc/collections/premises/items"
    for params in ({}, {"bbox": box}, {"bbox": box, "crs": l93}, {"sortby": "-statut,lieu"}, {"statut": "installee"},
                   {"limit": "2", "offset": "2"}, {"properties": "lieu,statut", "skipGeometry": "true"},
                   {"filter": "statut = 'installee' AND S_INTERSECTS(geometry, BBOX(1.3,44.3,1.6,44.6))"},
                   {"filter": json.dumps({"op": "=", "args": [{"property": "statut"}, "installee"]}),
                    "filter-lang": "cql2-json"},
                   {"datetime": "2010-01-01/.."}, {"f": "html"}, {"bbox": "1,2"}, {"limit": "ten"},
                   {"nope": "1"}, {"filter": "statut = "}, {"crs": "EPSG:9999"}):
        get(items, params)
    for params in ({"bbox": box, "limit": "100"}, {"bbox": box, "limit": "1500"}, {"bbox": box, "sortby": "-etat"}):
        get(premises, params)
    get(items, {"bbox": box}, {"If-None-Match": '"autre"'})
    if "wifi_hotspots" in first_fids:
        fid = first_fids["wifi_hotspots"]
        for params in ({"crs": l93}, {"f": "html"}, {"crs": "http://www.opengis.net/def/crs/EPSG/0/4326"}):
            get(f"{items}/{fid}", params)
        out.append(("OPTIONS", f"{items}/{fid}", {}, {}))
        out.append(("PUT", f"{items}/{fid}", {}, {"Content-Type": "application/geo+json"}))
    get(f"{items}/999999999999")
    get(f"{items}/abc")
    out.append(("OPTIONS", items, {}, {}))
    out.append(("POST", items, {}, {"Content-Type": "application/geo+json"}))
    get(items, {}, {"Authorization": "Bearer jeton-inconnu"})
    get(items, {}, {"Authorization": "Digest x"})
    for z in (8, 12, 14):
        x, y = _tile(*cahors, z)
        get(f"/ogc/collections/premises/tiles/WebMercatorQuad/{z}/{y}/{x}")
        get(f"/ogc/tiles/WebMercatorQuad/{z}/{y}/{x}")
        get(f"/tiles/wifi_hotspots/{z}/{x}/{y}.mvt")
    for path in ("/ogc/collections/premises/tiles", "/ogc/collections/premises/tiles/WebMercatorQuad",
                 "/ogc/collections/premises/tiles/WebMercatorQuad/tilejson.json",
                 "/ogc/collections/premises/tiles/WebMercatorQuad/3/0/0", "/tiles/premises/30/0/0.mvt",
                 "/tiles/premises/14/0/0.mvt"):
        get(path)
    for name, (lon, lat) in POINTS.items():
        get("/api/nearby", {"lon": str(lon), "lat": str(lat)})
        if name in ("cahors", "figeac", "outside"):
            get("/map/report", {"lon": str(lon), "lat": str(lat)})
    for address in ADDRESSES:
        get("/api/nearby", {"address": address})
        get("/map/report", {"address": address})
    for params in ({"lon": "1.4"}, {"lon": "x", "lat": "44"}, {"lon": "1.4", "lat": "44.4", "address": "Cahors"}):
        get("/api/nearby", params)
    for q in GEOCODE:
        get("/api/geocode", {"q": q})
    get("/api/geocode", {"q": "x" * 300})
    for params in ({"layers": "wifi_hotspots,third_places"}, {"layers": "nope", "zoom": "40", "lang": "en"}):
        get("/map/embed", params)
    get("/api/layers/wifi_hotspots")
    get("/api/layers/premises", {"bbox": box})
    get("/api/layers/premises", {"bbox": "1,2"})
    get("/api/layers/nope")
    for fmt in ("geojson", "csv", "xlsx"):
        get("/api/export/wifi_hotspots", {"format": fmt})
    return out


def record(path: Path) -> None:
    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from geo_service.main import create_app
    from geo_service.settings import Settings

    _freeze_clock()
    settings = Settings()
    app = create_app(settings)
    public = [layer.id for layer in app.state.registry if layer.is_public]
    rows = []
    with TestClient(app) as client:
        with app.state.engine.connect() as conn:
            first = {}
            for layer in app.state.registry:
                if not layer.is_public:
                    continue
                where = "validation_state = 'published' AND deleted_at IS NULL" if layer.editable else "TRUE"
                fid = conn.execute(text(f'SELECT min(fid) FROM "{layer.id}" WHERE {where}')).scalar()
                if fid is not None:
                    first[layer.id] = int(fid)
        for method, url, params, headers in requests(first, public):
            response = client.request(method, url, params=params, headers=headers, content=b"{}" if method in
                                      ("POST", "PUT") else None)
            content_type = response.headers.get("content-type", "")
            raw, canonical = _digest(response.content, content_type)
            rows.append({"request": f"{method} {response.request.url.path}"
                                    f"{'?' + response.request.url.query.decode() if response.request.url.query else ''}"
                                    f"{' ' + json.dumps(headers, sort_keys=True) if headers else ''}",
                         "status": response.status_code,
                         "headers": {k: _CSP_HASH.sub("'…'", response.headers[k]) if k ==
                                     "content-security-policy" else response.headers[k]
                                     for k in KEPT_HEADERS if k in response.headers},
                         "raw": raw, "canonical": canonical, "length": len(response.content)})
    path.write_text(json.dumps({"responses": rows}, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"{len(rows)} responses recorded in {path}")


def compare(before: Path, after: Path) -> int:
    old = {r["request"]: r for r in json.loads(before.read_text(encoding="utf-8"))["responses"]}
    new = {r["request"]: r for r in json.loads(after.read_text(encoding="utf-8"))["responses"]}
    failures, warnings = [], []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if a is None or b is None:
            failures.append(f"{key}: only in {'after' if a is None else 'before'}")
            continue
        for field in ("status", "canonical"):
            if a[field] != b[field]:
                failures.append(f"{key}: {field} {a[field]} → {b[field]}")
        for name in sorted(a["headers"].keys() | b["headers"].keys()):
            if a["headers"].get(name) != b["headers"].get(name):
                failures.append(f"{key}: header {name} {a['headers'].get(name)!r} → {b['headers'].get(name)!r}")
        if a["canonical"] == b["canonical"] and a["raw"] != b["raw"]:
            warnings.append(f"{key}: same JSON, other bytes ({a['length']} → {b['length']})")
    print("\n".join(f"WARN {w}" for w in warnings))
    print("\n".join(f"DIFF {f}" for f in failures) or f"identical: {len(old)} responses")
    return 1 if failures else 0


if __name__ == "__main__":
    command, *files = sys.argv[1:]
    if command == "record":
        record(Path(files[0]))
    elif command == "compare":
        sys.exit(compare(Path(files[0]), Path(files[1])))
    else:
        sys.exit(__doc__)
