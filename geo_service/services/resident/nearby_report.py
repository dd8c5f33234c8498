"""The "près de chez vous" report for one point: commune, fibre, montée en débit, mobile, Wi-Fi, places.

One SQL statement answers what needs the big tables (territory, commune, the premise of the address; one round
trip). The small layers — Wi-Fi bornes, third places, help places, mobile masts, MED sites (a few hundred points
each) and the white zones (a few polygons) — are read once into memory and kept until their change counter
(``layer_changes``) moves: answering from memory costs a few tens of microseconds, where each of their index-driven
subqueries cost PostgreSQL 0.15–0.4 ms per report (``docs/benchmarks.md``).

Distances are geodesic metres on the WGS84 ellipsoid, computed with GeographicLib (``pyproj.Geod``), the
algorithm PostGIS's ``geography`` distance uses. Nearest-k searches are exact: any k points give a radius r
(the largest of their distances), and the answer is the k nearest by geodesic distance among the points inside
the box that surely holds every point within r.

Layer tables, fields, titles and sources come from the layer registry; the French wording is in
``nearby_text``. A point outside the territory (beyond ``territory.tolerance_m``) is an ``OutsideTerritory``.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
import shapely
from psycopg.rows import dict_row
from pyproj import Geod
from sqlalchemy import Connection, text

from geo_service.errors import InvalidParameter, NotFound, OutsideTerritory, TerritoryNotLoaded
from geo_service.layers import LayerDecl, LayerRegistry
from geo_service.services.app_caches import AppCaches
from geo_service.services.publish.layer_state import LayerState
from geo_service.services.publish.visibility import visible_rows_sql
from geo_service.services.resident import eligibility, geocoder, opening_hours
from geo_service.services.resident.geocoder import AddressMatch
from geo_service.services.resident.report_sections import FIBRE_MATCH_M, MAST_RADIUS_M, build_report
from geo_service.services.sql_build import columns_object_sql, quote_ident
from geo_service.settings import TerritorySettings

POINT = "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)"
GEOG = f"{POINT}::geography"


@dataclass(frozen=True)
class PlaceSection:
    """A "nearest places" section: its key in the report, the layer, how many, a condition on declared codes."""

    key: str
    layer_id: str
    count: int
    where: str = ""


PLACE_SECTIONS = (
    PlaceSection("wifi", "wifi_hotspots", 2, "statut = 'installee'"),
    # A programmed borne is mentioned when nearer than those in service (nearby_sections.build_report).
    PlaceSection("wifi_planned", "wifi_hotspots", 1, "statut = 'programmee'"),
    PlaceSection("third_places", "third_places", 3),
    PlaceSection("digital_help", "digital_help_places", 3),
)
REQUIRED_LAYERS = tuple(sorted({"communes", "epci", "premises", "ftth_cabinets", "med_sites", "mobile_masts",
                                "white_zones", *(s.layer_id for s in PLACE_SECTIONS)}))
# Small layers whose latest source date stands for a section that shows none of their rows.
DATED_LAYERS = tuple(sorted({"ftth_cabinets", "med_sites", "mobile_masts", "white_zones",
                             *(s.layer_id for s in PLACE_SECTIONS)}))
# Layer ids are validated names (^[a-z][a-z0-9_]*$): written into the statement, not sent with each report.
STATE_LAYERS = ("communes", "premises", *DATED_LAYERS)


def _props(layer: LayerDecl, alias: str) -> str:
    """The jsonb object of the public fields."""
    return columns_object_sql([f.name for f in layer.public_fields()], alias)


def _provenance(layer: LayerDecl, alias: str) -> str:
    if not layer.editable:
        return "'demo', false, 'source', NULL, 'source_date', NULL"
    return f"'demo', {alias}.demo, 'source', {alias}.source, 'source_date', {alias}.source_date"


def _box(metres: str) -> str:
    """The box around the point that surely holds every point within ``metres`` (an SQL expression) of it.

    A degree of latitude is at least 110,574 m; a degree of longitude at least 111,319.49 m × cos(latitude),
    taken at the most poleward latitude the circle reaches; 0.1 % more for rounding. (``_half_box`` is the
    same in Python.)
    """
    return (f"ST_Expand({POINT}, ({metres}) * 1.001 / (111319.49 * cos(radians(least(89.0, "
            f"abs(:lat) + ({metres}) / 110574.0)))), ({metres}) * 1.001 / 110574.0)")


def _half_box(lat: float, metres: float) -> tuple[float, float]:
    """Half width and half height in degrees of the box that surely holds every point within ``metres``."""
    return (metres * 1.001 / (111319.49 * math.cos(math.radians(min(89.0, abs(lat) + metres / 110574.0)))),
            metres * 1.001 / 110574.0)


GEOD = Geod(ellps="WGS84")
# No radius of curvature of the WGS84 ellipsoid exceeds the polar one, a / sqrt(1 - e²) = 6,399,593.6 m: going
# along the meridian, then along the parallel of the destination, is a path no shorter than the geodesic, so
# R × (|Δφ| + cos φ₂ × |Δλ|) (radians) bounds the geodesic distance from above.
POLAR_RADIUS_OF_CURVATURE_M = 6_399_594.0
METRES_PER_DEGREE_BOUND = POLAR_RADIUS_OF_CURVATURE_M * math.pi / 180


@dataclass(frozen=True)
class PointSet:
    """The visible rows of a small point layer (under a condition on its codes), in memory.

    ``rows`` have the shape the sections read: ``p`` (public fields), ``k`` (natural key), ``lon``, ``lat``,
    ``prov``; ``reach`` is a per-row radius in metres when the layer has one (``med_sites.rayon_m``).
    """

    rows: list[dict]
    keys: list[str]
    lon: np.ndarray
    lat: np.ndarray
    reach: np.ndarray | None = None
    # Per row: the upper bound's metres per degree of longitude (see POLAR_RADIUS_OF_CURVATURE_M).
    metres_per_lon_degree: np.ndarray = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metres_per_lon_degree", METRES_PER_DEGREE_BOUND * np.cos(np.radians(self.lat)))

    def candidates(self, lon: float, lat: float, search: Search) -> np.ndarray:
        """Indexes of the rows that may answer ``search``: those inside the box of its radius.

        (A few hundred rows: each numpy call costs more than its arithmetic, so there are as few as possible.)
        """
        n = len(self.rows)
        if search.count is not None and not search.own_reach and n <= search.count:
            return np.arange(n)
        if search.own_reach and (not n or self.reach is None):
            return np.arange(0)
        dlon, dlat = np.abs(self.lon - lon), np.abs(self.lat - lat)
        if search.own_reach:
            metres = float(self.reach.max())
        elif search.count is not None:
            # `count` rows lie within the count-th smallest upper bound: so do the `count` nearest.
            bound = dlat * METRES_PER_DEGREE_BOUND + dlon * self.metres_per_lon_degree
            bound.partition(search.count - 1)
            metres = float(bound[search.count - 1])
        else:
            metres = search.metres
        half_x, half_y = _half_box(lat, metres)
        return ((dlon <= half_x) & (dlat <= half_y)).nonzero()[0]

    def answer(self, idx: np.ndarray, d: np.ndarray, search: Search) -> list[tuple[dict, float]]:
        """The rows that answer ``search`` among the candidates ``idx`` at geodesic distances ``d``, nearest first,
        ties by key (the SQL ``ORDER BY d, k`` of text keys in the C collation)."""
        found = zip(idx.tolist(), d.tolist(), strict=True)
        if search.own_reach:
            reach = self.reach
            found = ((i, dist) for i, dist in found if dist <= reach[i])
        elif search.metres is not None:
            found = ((i, dist) for i, dist in found if dist <= search.metres)
        order = sorted((dist, self.keys[i], i) for i, dist in found)
        return [(self.rows[i], dist) for dist, _, i in order[:search.count]]


@dataclass(frozen=True)
class Search:
    """What a section asks of a point set: the ``count`` nearest, all within ``metres``, or the nearest row whose
    own reach covers the point."""

    count: int | None = None
    metres: float | None = None
    own_reach: bool = False


def search_points(lon: float, lat: float, searches: list[tuple[PointSet, Search]]) -> list[list[tuple[dict, float]]]:
    """Answer several searches around one point with one geodesic computation over all their candidates."""
    picked = [points.candidates(lon, lat, search) for points, search in searches]
    xs = np.concatenate([points.lon[idx] for (points, _), idx in zip(searches, picked, strict=True)])
    ys = np.concatenate([points.lat[idx] for (points, _), idx in zip(searches, picked, strict=True)])
    d = GEOD.inv(np.full(len(xs), lon), np.full(len(xs), lat), xs, ys)[2] if len(xs) else xs
    answers, start = [], 0
    for (points, search), idx in zip(searches, picked, strict=True):
        answers.append(points.answer(idx, d[start:start + len(idx)], search))
        start += len(idx)
    return answers


@dataclass(frozen=True)
class ZoneSet:
    """The visible white zones, as prepared polygons: which of them cover a point, in microseconds."""

    rows: list[dict]
    geoms: np.ndarray
    # GEOS builds a prepared polygon's point locator lazily (``_load_zones`` makes it build them at once) and does
    # not promise that one prepared geometry may be queried from two threads: queries, a few microseconds each,
    # are serialised.
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False)

    def covering(self, lon: float, lat: float) -> list[dict]:
        if not self.rows:
            return []
        with self.lock:
            hits = shapely.intersects_xy(self.geoms, lon, lat)  # a point intersects a polygon it lies in or on
        return [row for row, hit in zip(self.rows, hits.tolist(), strict=True) if hit]


def _point_rows_sql(layer: LayerDecl, where: str, reach: str | None = None) -> str:
    """Every visible row of a point layer (under ``where``), with the fields the report shows."""
    t = quote_ident(layer.id)
    cond = visible_rows_sql(layer, "t") + (f" AND ({where})" if where else "")
    key = f"t.{quote_ident(layer.natural_key)}" if layer.natural_key else "t.fid"
    extra = f", t.{quote_ident(reach)} AS reach" if reach else ""
    return f"""
    SELECT {_props(layer, 't')} AS p, {key}::text AS k, ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat,
           json_build_object({_provenance(layer, 't')}) AS prov{extra}
    FROM {t} t WHERE {cond} AND t.geom IS NOT NULL AND NOT ST_IsEmpty(t.geom) ORDER BY k"""


def _load_points(conn: Connection, layer: LayerDecl, where: str, reach: str | None = None) -> PointSet:
    rows = [dict(r) for r in conn.execute(text(_point_rows_sql(layer, where, reach))).mappings()]
    if reach:
        rows = [r for r in rows if r["reach"] is not None]
    return PointSet(rows=[{k: r[k] for k in ("p", "k", "lon", "lat", "prov")} for r in rows],
                    keys=[r["k"] for r in rows], lon=np.array([r["lon"] for r in rows], dtype=float),
                    lat=np.array([r["lat"] for r in rows], dtype=float),
                    reach=np.array([float(r["reach"]) for r in rows]) if reach else None)


def _zones_sql(zones: LayerDecl) -> str:
    return f"""
    SELECT json_build_object('kind', kind, 'technologie', technologie, 'operateur', operateur,
                             'date', date_reference, 'prov', json_build_object({_provenance(zones, 'z')})) AS row,
           ST_AsBinary(z.geom) AS wkb
    FROM white_zones z WHERE {visible_rows_sql(zones, 'z')} AND z.geom IS NOT NULL AND NOT ST_IsEmpty(z.geom)
    ORDER BY z.fid"""


def _load_zones(conn: Connection, zones: LayerDecl) -> ZoneSet:
    rows = conn.execute(text(_zones_sql(zones))).all()
    geoms = shapely.from_wkb([bytes(r.wkb) for r in rows]) if rows else np.array([], dtype=object)
    shapely.prepare(geoms)
    if len(geoms):
        # A point inside each polygon's envelope makes GEOS build its point locator now, before threads share it.
        bounds = shapely.bounds(geoms)
        shapely.intersects_xy(geoms, (bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2)
    return ZoneSet(rows=[r.row for r in rows], geoms=geoms)


def _report_sql(registry: LayerRegistry) -> str:
    """The whole report as one statement, built once per registry (identifiers from the declarations only)."""
    missing = [layer for layer in REQUIRED_LAYERS if layer not in registry]
    if missing:
        raise RuntimeError(f"couches nécessaires au rapport absentes de layers/ : {', '.join(missing)}")
    premises, cabinets = registry.get("premises"), registry.get("ftth_cabinets")
    return f"""
    WITH chk AS MATERIALIZED (
        SELECT coalesce((SELECT bool_or(ST_Covers(geom, {POINT}) OR ST_DWithin(geom::geography, {GEOG}, :tol))
                         FROM territory), false) AS inside
    ), com AS MATERIALIZED (
        SELECT * FROM (
            (SELECT c.code_insee, c.nom, c.code_insee_actuel, c.nom_actuel, c.population, c.epci_siren, 0 AS pri
             FROM communes c WHERE ST_Covers(c.geom, {POINT}) ORDER BY c.code_insee LIMIT 1)
            UNION ALL
            (SELECT c.code_insee, c.nom, c.code_insee_actuel, c.nom_actuel, c.population, c.epci_siren, 1
             FROM communes c ORDER BY c.geom <-> {POINT} LIMIT 1)
        ) u ORDER BY pri LIMIT 1
    )
    SELECT
      (SELECT json_build_object('code_insee', code_insee, 'nom', nom, 'code_insee_actuel', code_insee_actuel,
              'nom_actuel', nom_actuel, 'population', population, 'epci_siren', epci_siren,
              'epci_nom', (SELECT e.nom FROM epci e WHERE e.siren = com.epci_siren LIMIT 1), 'covers', pri = 0)
       FROM com) AS commune,
      (SELECT max(loaded_at)::date FROM dataset_loads WHERE kind = 'boundaries') AS boundaries_date,
      (SELECT json_object_agg(layer_id, json_build_array(version, changed_at)) FROM layer_changes
       WHERE layer_id IN ({", ".join(f"'{layer}'" for layer in STATE_LAYERS)})) AS layer_states,
      (SELECT json_build_object('p', {_props(premises, 'p')}, 'd', p.d, 'lon', ST_X(p.geom), 'lat', ST_Y(p.geom),
              'prov', json_build_object({_provenance(premises, 'p')}),
              'cabinet', (SELECT json_build_object('p', {_props(cabinets, 'k')},
                                  'd', ST_Distance(k.geom::geography, {GEOG}),
                                  'prov', json_build_object({_provenance(cabinets, 'k')}))
                          FROM ftth_cabinets k WHERE k.pm_ref = p.pm_ref AND {visible_rows_sql(cabinets, 'k')} LIMIT 1))
       FROM (SELECT *, ST_Distance(geom::geography, {GEOG}) AS d FROM premises p
             WHERE {visible_rows_sql(premises, 'p')} AND p.geom && {_box(':fibre_r')}) p
       WHERE p.d <= :fibre_r ORDER BY (p.imb_id IS NOT DISTINCT FROM :ref) DESC, p.d, p.imb_id LIMIT 1) AS premise
    FROM chk WHERE chk.inside
    """


def _figures_sql(premises: LayerDecl) -> str:
    return f"""
    SELECT etat, count(*) AS n, sum(nb_logements) AS logements, max(source_date) AS source_date, bool_or(demo) AS demo
    FROM premises p WHERE {visible_rows_sql(premises, 'p')} AND p.code_insee IN (
        SELECT code_insee FROM communes WHERE code_insee_actuel = :code)
    GROUP BY etat"""


def _white_zone_kinds_sql(zones: LayerDecl) -> str:
    return f"""
    SELECT kind, technologie, array_agg(DISTINCT operateur) AS operateurs, max(date_reference) AS date,
           bool_or(demo) AS demo
    FROM white_zones z WHERE {visible_rows_sql(zones, 'z')} GROUP BY kind, technologie ORDER BY kind, technologie"""


# Whole-layer facts (a commune's fibre figures, a layer's latest source date, the white-zone kinds, the small
# layers' rows) are computed once and reused until the layer's change counter moves (services/publish/layer_state.py):
# the report query then only does index-driven work on the big tables. ≈18 ms saved on a Cahors report (14,770
# premises) for the figures; ≈1.5 ms of PostgreSQL time per report for the small layers. They are kept in
# AppCaches.report_facts.
def _facts(conn: Connection, caches: AppCaches, states: dict[str, LayerState],
           commune_code: str | None) -> dict[str, Any]:
    registry, facts = caches.registry, caches.report_facts
    premises, zones = registry.get("premises"), registry.get("white_zones")

    def rows(sql: str, **params: Any) -> list[dict]:
        return [dict(r) for r in conn.execute(text(sql), params).mappings()]

    figures = []
    if commune_code:
        # The 2018-to-current commune mapping (communes) matters too: its counter goes into the key.
        figures = facts.get(("figures", commune_code, states["communes"]), states["premises"],
                            lambda: rows(_figures_sql(premises), code=commune_code))
    kinds = facts.get(("white_zone_kinds",), states["white_zones"],
                      lambda: rows(_white_zone_kinds_sql(zones)))
    def latest(layer: str) -> object:
        return conn.execute(text(f"SELECT max(t.source_date) FROM {quote_ident(layer)} t "
                                 f"WHERE {visible_rows_sql(registry.get(layer), 't')}")).scalar()

    dates = {layer: facts.get(("date", layer), states[layer], lambda layer=layer: latest(layer))
             for layer in DATED_LAYERS if registry.get(layer).editable}
    return {"fibre_states": figures, "white_zone_kinds": kinds, "layer_dates": dates}


def _small_layers(conn: Connection, caches: AppCaches,
                  states: dict[str, LayerState]) -> tuple[dict[str, PointSet], PointSet, PointSet, ZoneSet]:
    """The in-memory rows of the place sections, the masts, the MED sites and the white zones."""
    registry, facts = caches.registry, caches.report_facts

    def points(layer_id: str, where: str = "", reach: str | None = None) -> PointSet:
        return facts.get(("points", layer_id, where, reach), states[layer_id],
                         lambda: _load_points(conn, registry.get(layer_id), where, reach))

    places = {s.key: points(s.layer_id, s.where) for s in PLACE_SECTIONS}
    masts = points("mobile_masts")
    med = points("med_sites", reach="rayon_m")
    zones = facts.get(("zones",), states["white_zones"], lambda: _load_zones(conn, registry.get("white_zones")))
    return places, masts, med, zones


def _located(lon: float, lat: float, caches: AppCaches, conn: Connection,
             states: dict[str, LayerState]) -> dict[str, Any]:
    """The report row's sections that come from the small layers, shaped as the sections read them."""
    places, masts, med, zones = _small_layers(conn, caches, states)
    *nearest, near_masts, serving = search_points(lon, lat, [
        *((places[s.key], Search(count=s.count)) for s in PLACE_SECTIONS),
        (masts, Search(metres=MAST_RADIUS_M)), (med, Search(count=1, own_reach=True))])

    def at(found: list[tuple[dict, float]]) -> list[dict]:
        return [{**row, "d": d} for row, d in found]

    return {
        **{s.key: at(found) for s, found in zip(PLACE_SECTIONS, nearest, strict=True)},
        "masts": at(near_masts), "med": at(serving)[0] if serving else None,
        "white_zones": zones.covering(lon, lat),
    }


def _states(raw: dict | None) -> dict[str, LayerState]:
    raw = raw or {}
    return {layer: LayerState(int(raw[layer][0]), raw[layer][1]) if layer in raw else LayerState()
            for layer in STATE_LAYERS}


# The report statement's parameters and their SQL types, in placeholder order ($1, $2…).
PARAMETERS = {"lon": "float8", "lat": "float8", "tol": "float8", "fibre_r": "float8", "ref": "text"}
_NAMED = re.compile(r"(?<![:\w]):(\w+)")


def report_statement(caches: AppCaches) -> str:
    """The report statement with typed positional placeholders, built once (AppCaches.report_statement).

    It runs as a server-side prepared statement through psycopg's ``RawCursor``: no client-side rewriting
    of its 11 kB of text and no planning on each request (≈3.5 ms of the ≈6 ms a report took otherwise).
    """
    order = list(PARAMETERS)

    def placeholder(match: re.Match) -> str:
        name = match.group(1)
        return f"${order.index(name) + 1}::{PARAMETERS[name]}"

    return caches.report_statement.get_or_build("report", lambda: _NAMED.sub(placeholder, _report_sql(caches.registry)))


def _run_report(conn: Connection, caches: AppCaches, params: dict[str, Any]) -> dict | None:
    """One round trip: the prepared statement on the connection's own psycopg connection (same transaction).

    Its generic plan must be used: PostgreSQL would otherwise keep re-planning it for each point (its custom
    plans look cheaper on paper), and planning costs as much as running it. The read engine's connections
    are set so for their whole session (``db.make_read_engine``); on another connection it is set for the
    transaction. (Not in a pipeline: psycopg's pipeline polls the socket and costs more CPU than it saves.)
    """
    raw = conn.connection.driver_connection
    with psycopg.RawCursor(raw, row_factory=dict_row) as cursor:
        if not raw.autocommit:
            cursor.execute("SELECT set_config('plan_cache_mode', 'force_generic_plan', true)")
        cursor.execute(report_statement(caches), [params[name] for name in PARAMETERS], prepare=True)
        return cursor.fetchone()


def check_point(lon: float, lat: float) -> None:
    """Finite WGS84 coordinates, else a French ``InvalidParameter``."""
    for name, value, bound in (("lon", lon, 180), ("lat", lat, 90)):
        if not math.isfinite(value) or not -bound <= value <= bound:
            raise InvalidParameter(f"{name} doit être un nombre entre -{bound} et {bound} (degrés WGS84).",
                                   parameter=name)


def report(conn: Connection, caches: AppCaches, territory: TerritorySettings, lon: float, lat: float, *,
           at: datetime | None = None, address: AddressMatch | None = None) -> dict[str, Any]:
    """The report at (lon, lat) as a JSON-ready dict (see ``api.nearby_models.NearbyReport``)."""
    check_point(lon, lat)
    ref = address.best.id.split(":", 1)[1] if address and address.best and address.best.source == "premises" else None
    row = _run_report(conn, caches, {
        "lon": lon, "lat": lat, "tol": territory.tolerance_m, "fibre_r": FIBRE_MATCH_M, "ref": ref})
    if row is None:
        if not conn.execute(text("SELECT EXISTS (SELECT 1 FROM territory)")).scalar():
            raise TerritoryNotLoaded("Le contour du territoire n'est pas chargé : geo-service load boundaries.")
        raise OutsideTerritory(
            f"Ce point ({lat:.5f}, {lon:.5f}) est hors du territoire {territory.of_name} : le rapport ne couvre "
            f"que les adresses {territory.of_name}.", parameter="lon")
    now = (at or opening_hours.now_in_paris()).astimezone(opening_hours.PARIS)
    commune = row["commune"]
    states = _states(row["layer_states"])
    facts = _facts(conn, caches, states, commune["code_insee_actuel"] if commune else None)
    located = _located(lon, lat, caches, conn, states)
    premise = (row["premise"] or {}).get("p") or {}
    # What operators sell at the premise (ARCEP « Ma connexion internet », when imported): a second, indexed
    # query, only when a premise was found.
    offers = eligibility.offers(conn, imb_id=premise.get("imb_id"), id_ban=premise.get("id_ban")) if premise else []
    return build_report({**row, **located, **facts, "offers": offers}, caches, lon=lon, lat=lat, now=now,
                        address=address, territory=territory.name)


def report_for_address(conn: Connection, caches: AppCaches, territory: TerritorySettings, query: str | None,
                       *, at: datetime | None = None) -> tuple[AddressMatch, dict[str, Any]]:
    """Geocode ``query`` and report at the best answer; no answer raises ``NotFound`` in French."""
    match = geocoder.best_match(conn, query)
    if match.best is None:
        raise NotFound(f"Aucune adresse ni commune {territory.of_name} ne correspond à « {match.query} ». "
                       "Vérifiez l'orthographe ou indiquez la commune.", parameter="address")
    return match, report(conn, caches, territory, match.best.lon, match.best.lat, at=at, address=match)
