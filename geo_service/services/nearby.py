"""The "près de chez vous" report for one point: commune, fibre, montée en débit, mobile, Wi-Fi, places.

One SQL statement answers everything (one round trip); each section is a scalar subquery driven by a
spatial index. Distances are geodesic metres (PostGIS ``geography``, WGS84 ellipsoid). Nearest-k searches
are exact although the index orders by degrees (a degree of longitude is 79 km here, of latitude 111 km):
the k nearest by index give a radius r in metres, and the exact answer is the k nearest by geodesic
distance among the points inside the box that surely holds every point within r.

Layer tables, fields, titles and sources come from the layer registry; the French wording is in
``nearby_text``. A point outside the territory (beyond ``territory.tolerance_m``) is an ``OutsideTerritory``.
"""

from __future__ import annotations

import math
import re
import weakref
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.rows import dict_row
from sqlalchemy import Connection, text

from geo_service.errors import InvalidParameter, NotFound, OutsideTerritory, TerritoryNotLoaded
from geo_service.layers import LayerDecl, LayerRegistry
from geo_service.services import eligibility, geocoder, layer_state, opening_hours
from geo_service.services.geocoder import AddressMatch
from geo_service.services.layer_state import LayerState
from geo_service.services.nearby_sections import FIBRE_MATCH_M, MAST_RADIUS_M, build_report
from geo_service.settings import TerritorySettings
from geo_service.tables import public_rows_sql

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
STATE_LAYERS = ("communes", "premises", *DATED_LAYERS)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _props(layer: LayerDecl, alias: str) -> str:
    """``jsonb_build_object`` of the public fields (groups of 50 pairs: the function takes 100 arguments)."""
    pairs = [f"'{f.name}', {alias}.{_quote(f.name)}" for f in layer.public_fields()]
    groups = [", ".join(pairs[i:i + 50]) for i in range(0, len(pairs), 50)]
    return " || ".join(f"jsonb_build_object({g})" for g in groups)


def _provenance(layer: LayerDecl, alias: str) -> str:
    if not layer.editable:
        return "'demo', false, 'source', NULL, 'source_date', NULL"
    return f"'demo', {alias}.demo, 'source', {alias}.source, 'source_date', {alias}.source_date"


def _visible(layer: LayerDecl, alias: str) -> str:
    return public_rows_sql(layer, alias)


def _box(metres: str) -> str:
    """The box around the point that surely holds every point within ``metres`` (an SQL expression) of it.

    A degree of latitude is at least 110,574 m; a degree of longitude at least 111,319.49 m × cos(latitude),
    taken at the most poleward latitude the circle reaches; 0.1 % more for rounding.
    """
    return (f"ST_Expand({POINT}, ({metres}) * 1.001 / (111319.49 * cos(radians(least(89.0, "
            f"abs(:lat) + ({metres}) / 110574.0)))), ({metres}) * 1.001 / 110574.0)")


def _nearest(layer: LayerDecl, count: int, where: str) -> str:
    """JSON array of the ``count`` nearest visible features (exact geodesic order, ties by key)."""
    t = _quote(layer.id)
    cond = _visible(layer, "t") + (f" AND ({where})" if where else "")
    key = f"t.{_quote(layer.natural_key)}" if layer.natural_key else "t.fid"
    radius = (f"SELECT max(ST_Distance(c.geom::geography, {GEOG})) AS r FROM "
              f"(SELECT t.geom FROM {t} t WHERE {cond} ORDER BY t.geom <-> {POINT} LIMIT {count}) c")
    return f"""(SELECT coalesce(json_agg(x ORDER BY x.d, x.k), '[]') FROM (
        SELECT {_props(layer, 't')} AS p, {key}::text AS k, ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat,
               ST_Distance(t.geom::geography, {GEOG}) AS d, json_build_object({_provenance(layer, 't')}) AS prov
        FROM ({radius}) rr, {t} t
        WHERE {cond} AND t.geom && {_box('rr.r')}
        ORDER BY d, k LIMIT {count}) x)"""


def _report_sql(registry: LayerRegistry) -> str:
    """The whole report as one statement, built once per registry (identifiers from the declarations only)."""
    missing = [layer for layer in REQUIRED_LAYERS if layer not in registry]
    if missing:
        raise RuntimeError(f"couches nécessaires au rapport absentes de layers/ : {', '.join(missing)}")
    premises, cabinets = registry.get("premises"), registry.get("ftth_cabinets")
    med, masts, zones = registry.get("med_sites"), registry.get("mobile_masts"), registry.get("white_zones")
    places = ",\n".join(f"{_nearest(registry.get(s.layer_id), s.count, s.where)} AS {s.key}" for s in PLACE_SECTIONS)
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
       WHERE layer_id = ANY(:state_ids)) AS layer_states,
      (SELECT json_build_object('p', {_props(premises, 'p')}, 'd', p.d, 'lon', ST_X(p.geom), 'lat', ST_Y(p.geom),
              'prov', json_build_object({_provenance(premises, 'p')}),
              'cabinet', (SELECT json_build_object('p', {_props(cabinets, 'k')},
                                  'd', ST_Distance(k.geom::geography, {GEOG}),
                                  'prov', json_build_object({_provenance(cabinets, 'k')}))
                          FROM ftth_cabinets k WHERE k.pm_ref = p.pm_ref AND {_visible(cabinets, 'k')} LIMIT 1))
       FROM (SELECT *, ST_Distance(geom::geography, {GEOG}) AS d FROM premises p
             WHERE {_visible(premises, 'p')} AND p.geom && {_box(':fibre_r')}) p
       WHERE p.d <= :fibre_r ORDER BY (p.imb_id IS NOT DISTINCT FROM :ref) DESC, p.d, p.imb_id LIMIT 1) AS premise,
      (SELECT json_build_object('p', {_props(med, 'm')}, 'd', m.d, 'prov', json_build_object({_provenance(med, 'm')}))
       FROM (SELECT *, ST_Distance(geom::geography, {GEOG}) AS d FROM med_sites m
             WHERE {_visible(med, 'm')} AND m.rayon_m IS NOT NULL
               AND m.geom && {_box('SELECT max(rayon_m) FROM med_sites')}) m
       WHERE m.d <= m.rayon_m ORDER BY m.d, m.med_id LIMIT 1) AS med,
      (SELECT coalesce(json_agg(json_build_object('p', p, 'd', d, 'prov', prov) ORDER BY d, k), '[]') FROM (
           SELECT {_props(masts, 'm')} AS p, m.id_station_anfr AS k, ST_Distance(m.geom::geography, {GEOG}) AS d,
                  json_build_object({_provenance(masts, 'm')}) AS prov
           FROM mobile_masts m WHERE {_visible(masts, 'm')} AND m.geom && {_box(':mast_r')}
           ORDER BY d, k) x WHERE d <= :mast_r) AS masts,
      (SELECT coalesce(json_agg(json_build_object('kind', kind, 'technologie', technologie, 'operateur', operateur,
              'date', date_reference, 'prov', json_build_object({_provenance(zones, 'z')}))), '[]')
       FROM white_zones z WHERE {_visible(zones, 'z')} AND z.geom && {POINT} AND ST_Covers(z.geom, {POINT}))
       AS white_zones,
      {places}
    FROM chk WHERE chk.inside
    """


def _figures_sql(premises: LayerDecl) -> str:
    return f"""
    SELECT etat, count(*) AS n, sum(nb_logements) AS logements, max(source_date) AS source_date, bool_or(demo) AS demo
    FROM premises p WHERE {_visible(premises, 'p')} AND p.code_insee IN (
        SELECT code_insee FROM communes WHERE code_insee_actuel = :code)
    GROUP BY etat"""


def _white_zone_kinds_sql(zones: LayerDecl) -> str:
    return f"""
    SELECT kind, technologie, array_agg(DISTINCT operateur) AS operateurs, max(date_reference) AS date,
           bool_or(demo) AS demo
    FROM white_zones z WHERE {_visible(zones, 'z')} GROUP BY kind, technologie ORDER BY kind, technologie"""


# Whole-layer facts (a commune's fibre figures, a layer's latest source date, the white-zone kinds) are
# computed once and reused until the layer's change counter moves (services/layer_state.py): the report
# query then only does index-driven work. ≈18 ms saved on a Cahors report (14,770 premises).
_FACTS = layer_state.VersionedCache(max_entries=4096)
_DATABASES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _database_key(conn: Connection) -> str:
    """Which database the facts come from (two apps of one process may read two databases)."""
    engine = conn.engine
    key = _DATABASES.get(engine)
    if key is None:
        key = _DATABASES[engine] = engine.url.render_as_string(hide_password=True)
    return key


def _facts(conn: Connection, registry: LayerRegistry, states: dict[str, LayerState],
           commune_code: str | None) -> dict[str, Any]:
    database = _database_key(conn)
    premises, zones = registry.get("premises"), registry.get("white_zones")

    def rows(sql: str, **params: Any) -> list[dict]:
        return [dict(r) for r in conn.execute(text(sql), params).mappings()]

    figures = []
    if commune_code:
        # The 2018-to-current commune mapping (communes) matters too: its counter goes into the key.
        figures = _FACTS.get(("figures", database, commune_code, states["communes"]), states["premises"],
                             lambda: rows(_figures_sql(premises), code=commune_code))
    kinds = _FACTS.get(("white_zone_kinds", database), states["white_zones"],
                       lambda: rows(_white_zone_kinds_sql(zones)))
    dates = {layer: _FACTS.get(("date", database, layer), states[layer], lambda layer=layer: conn.execute(text(
        f"SELECT max(t.source_date) FROM {_quote(layer)} t WHERE {_visible(registry.get(layer), 't')}")).scalar())
        for layer in DATED_LAYERS if registry.get(layer).editable}
    return {"fibre_states": figures, "white_zone_kinds": kinds, "layer_dates": dates}


def _states(raw: dict | None) -> dict[str, LayerState]:
    raw = raw or {}
    return {layer: LayerState(int(raw[layer][0]), raw[layer][1]) if layer in raw else LayerState()
            for layer in STATE_LAYERS}


# The report statement's parameters and their SQL types, in placeholder order ($1, $2…).
PARAMETERS = {"lon": "float8", "lat": "float8", "tol": "float8", "fibre_r": "float8", "mast_r": "float8",
              "ref": "text", "state_ids": "text[]"}
_NAMED = re.compile(r"(?<![:\w]):(\w+)")


@lru_cache(maxsize=8)
def report_statement(registry: LayerRegistry) -> str:
    """The report statement with typed positional placeholders, built once per registry.

    It runs as a server-side prepared statement through psycopg's ``RawCursor``: no client-side rewriting
    of its 11 kB of text and no planning on each request (≈3.5 ms of the ≈6 ms a report took otherwise).
    """
    order = list(PARAMETERS)

    def placeholder(match: re.Match) -> str:
        name = match.group(1)
        return f"${order.index(name) + 1}::{PARAMETERS[name]}"

    return _NAMED.sub(placeholder, _report_sql(registry))


def _run_report(conn: Connection, registry: LayerRegistry, params: dict[str, Any]) -> dict | None:
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
        cursor.execute(report_statement(registry), [params[name] for name in PARAMETERS], prepare=True)
        return cursor.fetchone()


def check_point(lon: float, lat: float) -> None:
    """Finite WGS84 coordinates, else a French ``InvalidParameter``."""
    for name, value, bound in (("lon", lon, 180), ("lat", lat, 90)):
        if not math.isfinite(value) or not -bound <= value <= bound:
            raise InvalidParameter(f"{name} doit être un nombre entre -{bound} et {bound} (degrés WGS84).",
                                   parameter=name)


def report(conn: Connection, registry: LayerRegistry, territory: TerritorySettings, lon: float, lat: float, *,
           at: datetime | None = None, address: AddressMatch | None = None) -> dict[str, Any]:
    """The report at (lon, lat) as a JSON-ready dict (see ``api.nearby_models.NearbyReport``)."""
    check_point(lon, lat)
    ref = address.best.id.split(":", 1)[1] if address and address.best and address.best.source == "premises" else None
    row = _run_report(conn, registry, {
        "lon": lon, "lat": lat, "tol": territory.tolerance_m, "fibre_r": FIBRE_MATCH_M, "mast_r": MAST_RADIUS_M,
        "ref": ref, "state_ids": list(STATE_LAYERS)})
    if row is None:
        if not conn.execute(text("SELECT EXISTS (SELECT 1 FROM territory)")).scalar():
            raise TerritoryNotLoaded("Le contour du territoire n'est pas chargé : geo-service load boundaries.")
        raise OutsideTerritory(
            f"Ce point ({lat:.5f}, {lon:.5f}) est hors du territoire du {territory.name} : le rapport ne couvre "
            f"que les adresses du {territory.name}.", parameter="lon")
    now = (at or opening_hours.now_in_paris()).astimezone(opening_hours.PARIS)
    commune = row["commune"]
    facts = _facts(conn, registry, _states(row["layer_states"]), commune["code_insee_actuel"] if commune else None)
    premise = (row["premise"] or {}).get("p") or {}
    # What operators sell at the premise (ARCEP « Ma connexion internet », when imported): a second, indexed
    # query, only when a premise was found.
    offers = eligibility.offers(conn, imb_id=premise.get("imb_id"), id_ban=premise.get("id_ban")) if premise else []
    return build_report({**row, **facts, "offers": offers}, registry, lon=lon, lat=lat, now=now, address=address,
                        territory=territory.name)


def report_for_address(conn: Connection, registry: LayerRegistry, territory: TerritorySettings, query: str | None,
                       *, at: datetime | None = None) -> tuple[AddressMatch, dict[str, Any]]:
    """Geocode ``query`` and report at the best answer; no answer raises ``NotFound`` in French."""
    match = geocoder.best_match(conn, query)
    if match.best is None:
        raise NotFound(f"Aucune adresse ni commune du {territory.name} ne correspond à « {match.query} ». "
                       "Vérifiez l'orthographe ou indiquez la commune.", parameter="address")
    return match, report(conn, registry, territory, match.best.lon, match.best.lat, at=at, address=match)
