"""The observatory's indicators computed in PostGIS, in one statement, for every area at once.

Each feature is placed in its current commune by its ``code_insee`` (a 2018 code or a current one, through the
communes layer's ``code_insee_actuel``); the statement yields *measures* per current commune (counts, sums,
the premises beyond a distance) and sums them per EPCI and for the département with ``GROUPING SETS``, so an
additive figure of the département is the sum of its EPCIs' by construction. Distances come from a nearest
search (``<->``, the layer's GiST index) inside a ``LATERAL`` join per premise, its geodesic distance bounding a
second index search whose places are measured on the spheroid (geography): set-based in PostgreSQL, never a
loop over premises in Python. Only the rows the
public sees are read (``publish.visibility``). A feature whose commune code is unknown to the communes layer
is left out at every level.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Connection, text

from geo_service.errors import InvalidParameter, NotFound
from geo_service.layers import LayerRegistry
from geo_service.services.observatory.indicator_catalogue import BY_ID, DISTANCE_THRESHOLDS_KM, INDICATORS, Indicator
from geo_service.services.publish import layer_state
from geo_service.services.publish.visibility import visible_rows_sql
from geo_service.services.resident.report_wording import ELIGIBLE_STATES

# Layers the computation reads: their change counters key the cache.
SOURCE_LAYERS = ("communes", "epci", "premises", "ftth_cabinets", "ftth_nodes", "med_sites", "mobile_masts",
                 "wifi_hotspots", "third_places", "digital_help_places", "white_zones")
MAST_OPERATORS = {"orange": "technos_orange", "sfr": "technos_sfr", "bouygues": "technos_bouygues",
                  "free": "technos_free"}


# The current communes (``current``: code, name, EPCI) and every code a feature may carry, 2018 or current, mapped
# to its current commune (``code_map``); ``cm`` is the communes layer. Shared by the full computation and the
# history rebuilt from the premises' dates (``snapshots.backfill``).
AREA_CTES = """cm AS MATERIALIZED (SELECT code_insee, code_insee_actuel, nom_actuel, population, epci_siren
                             FROM communes),
    current AS (SELECT DISTINCT ON (code_insee_actuel) code_insee_actuel AS code, nom_actuel AS name, epci_siren
                FROM cm ORDER BY code_insee_actuel, (code_insee = code_insee_actuel) DESC, code_insee),
    code_map AS MATERIALIZED (SELECT code_insee AS any_code, code_insee_actuel AS code FROM cm
                 UNION SELECT code_insee_actuel, code_insee_actuel FROM cm)"""


@dataclass(frozen=True)
class Area:
    level: str
    code: str
    name: str
    epci_siren: str | None = None


@dataclass
class IndicatorTable:
    """All the values of one computation: ``measures[(level, code)][(measure, category)] = value``."""

    areas: dict[tuple[str, str], Area]
    measures: dict[tuple[str, str], dict[tuple[str, str], float]]
    as_of: dict[str, date | None]
    attributions: dict[str, str]
    computed_in_s: float = 0.0
    computed_on: date = field(default_factory=date.today)
    # The measures this table holds (a back-filled snapshot holds a few); None: every measure.
    measures_held: frozenset[str] | None = None

    def holds(self, indicator: Indicator) -> bool:
        """Whether this table can give ``indicator`` (a missing measure is unknown, not zero)."""
        return self.measures_held is None or indicator.measures <= self.measures_held

    def value(self, indicator: Indicator, level: str, code: str, category: str = "") -> int | float | None:
        """The published value: an ``int`` for a count, rounded to the indicator's decimals otherwise."""
        if indicator.id == "epci_avec_tiers_lieu":
            raw = self._epci_with_third_place(level, code)
        else:
            found = self.measures.get((level, code), {})
            raw = found.get((indicator.numerator, category), 0.0)
            if indicator.denominator is not None:
                denominator = found.get((indicator.denominator, ""), 0.0)
                raw = None if not denominator else raw / denominator * indicator.scale
        if raw is None:
            return None
        return round(raw) if indicator.digits == 0 else round(raw, indicator.digits)

    def categories(self, indicator: Indicator, level: str, code: str) -> list[str]:
        if indicator.breakdown is None:
            return [""]
        return sorted(cat for (measure, cat) in self.measures.get((level, code), {}) if measure == indicator.numerator)

    def _epci_with_third_place(self, level: str, code: str) -> float | None:
        if level == "epci":
            return 1.0 if self.measures.get(("epci", code), {}).get(("third_places", ""), 0) > 0 else 0.0
        if level == "departement":
            return float(sum(1 for (lvl, c) in self.areas if lvl == "epci" and self._epci_with_third_place(lvl, c)))
        return None


def cache_state(conn: Connection) -> layer_state.LayerState:
    """One state for all the source layers: it changes when any of them does (counters only grow)."""
    found = layer_state.states(conn, SOURCE_LAYERS).values()
    changed = [s.changed_at for s in found if s.changed_at is not None]
    return layer_state.LayerState(sum(s.version for s in found), max(changed) if changed else None)


def _statement(registry: LayerRegistry) -> str:
    def seen(layer_id: str, alias: str) -> str:
        return visible_rows_sql(registry.get(layer_id), alias)

    def nearest(layer_id: str, alias: str) -> str:
        # The index's nearest place in planar degrees gives an upper bound D of the true (geodesic) distance;
        # the true nearest is then among the places within D, searched through the index with a radius in
        # degrees that cannot be too small (a degree is at least 110 km × cos(latitude + 1°) long there).
        return f"""LEFT JOIN LATERAL (
            SELECT ST_Distance(p.geom::geography, {alias}.geom::geography) AS bound FROM {layer_id} {alias}
            WHERE {seen(layer_id, alias)} ORDER BY {alias}.geom <-> p.geom LIMIT 1) {alias}_k ON TRUE
        LEFT JOIN LATERAL (
            SELECT min(ST_Distance(p.geom::geography, {alias}.geom::geography)) AS m FROM {layer_id} {alias}
            WHERE {seen(layer_id, alias)} AND ST_DWithin({alias}.geom, p.geom, {alias}_k.bound
                  / (110000 * cos(radians(least(abs(ST_Y(p.geom)) + 1, 89)))))) {alias}_d ON TRUE"""

    beyond = ",\n".join(f"count(*) FILTER (WHERE {d} > {km * 1000}) AS beyond_{km}km_{place}"
                        for place, d in (("mediation", "d_help"), ("tiers_lieu", "d_tl"))
                        for km in DISTANCE_THRESHOLDS_KM)
    beyond_rows = " UNION ALL ".join(f"SELECT code, 'beyond_{km}km_{place}', '', beyond_{km}km_{place} FROM pc"
                                     for place in ("mediation", "tiers_lieu") for km in DISTANCE_THRESHOLDS_KM)
    technos = " UNION ALL ".join(
        f"SELECT k.code, 'masts_by_technology', '{op} ' || t, 1 FROM mobile_masts x JOIN code_map k "
        f"ON k.any_code = x.code_insee, unnest(x.{column}) t WHERE {seen('mobile_masts', 'x')} "
        f"AND x.statut = 'en service' AND '{op}' = ANY(x.operateurs)"
        for op, column in MAST_OPERATORS.items())

    def counted(layer_id: str, measure: str, condition: str = "TRUE", amount: str = "1", category: str = "''",
                joined: str = "") -> str:
        return (f"SELECT k.code, '{measure}', {category}, {amount} FROM {layer_id} x JOIN code_map k "
                f"ON k.any_code = x.code_insee {joined} WHERE {seen(layer_id, 'x')} AND ({condition})")

    arcep_flags = ("CROSS JOIN LATERAL (VALUES ('site_zb', x.site_zb), ('site_dcc', x.site_dcc), "
                   "('site_strategique', x.site_strategique)) f(programme, flagged)")

    return f"""
    WITH {AREA_CTES},
    prem AS MATERIALIZED (
        SELECT k.code, p.etat, p.date_prevue, p.zone, coalesce(p.nb_logements, 1) AS hh, help_d.m AS d_help,
               tl_d.m AS d_tl
        FROM premises p JOIN code_map k ON k.any_code = p.code_insee
        {nearest('digital_help_places', 'help')}
        {nearest('third_places', 'tl')}
        WHERE {seen('premises', 'p')}),
    pc AS (SELECT code, count(*) AS premises, sum(hh) AS households,
                  count(*) FILTER (WHERE etat = ANY(CAST(:eligible AS text[]))) AS premises_eligible,
                  count(d_help) AS located_help, coalesce(sum(d_help), 0) / 1000.0 AS sum_help,
                  count(d_tl) AS located_tl, coalesce(sum(d_tl), 0) / 1000.0 AS sum_tl,
                  bool_or(zone = 'amii') AS amii,
                  {beyond}
           FROM prem GROUP BY code),
    wifi AS (SELECT k.code, bool_or(x.statut = 'installee') AS installed, bool_or(x.statut = 'programmee') AS planned
             FROM wifi_hotspots x JOIN code_map k ON k.any_code = x.code_insee WHERE {seen('wifi_hotspots', 'x')}
             GROUP BY k.code),
    popc AS (SELECT code_insee_actuel AS code, sum(coalesce(population, 0)) AS pop FROM cm GROUP BY 1),
    -- White zones: one (multi)polygon per operator and technology, so that overlapping zones (a declared one
    -- over a computed one) count once; the area clipped to each 2018 commune (they tile the current ones), on
    -- the spheroid, rounded per current commune so that the sums are exact; the premises inside, in the
    -- current commune of their code.
    wz AS MATERIALIZED (SELECT x.operateur || ' ' || x.technologie AS category, ST_Union(x.geom) AS g
                        FROM white_zones x WHERE {seen('white_zones', 'x')} GROUP BY 1),
    wz_area AS (SELECT k.code_insee_actuel AS code, wz.category,
                       round(sum(ST_Area(ST_Intersection(wz.g, k.geom)::geography))::numeric / 1e6, 2) AS km2
                FROM wz JOIN communes k ON ST_Intersects(wz.g, k.geom) GROUP BY 1, 2),
    -- Subdivided, the zones are tested against the premises through the index 4 times faster; DISTINCT: a
    -- premise on the line between two pieces counts once.
    wz_parts AS MATERIALIZED (SELECT category, ST_Subdivide(g, 128) AS g FROM wz),
    wz_in AS (SELECT DISTINCT w.category, p.fid, p.code_insee, coalesce(p.nb_logements, 1) AS hh
              FROM wz_parts w JOIN premises p ON ST_Intersects(w.g, p.geom) WHERE {seen('premises', 'p')}),
    wz_prem AS (SELECT k.code, w.category, count(*) AS n, sum(w.hh) AS hh
                FROM wz_in w JOIN code_map k ON k.any_code = w.code_insee GROUP BY 1, 2),
    covered AS (SELECT c.code FROM current c LEFT JOIN pc ON pc.code = c.code WHERE NOT coalesce(pc.amii, FALSE)),
    m(code, measure, category, amount) AS (
        SELECT code, 'premises', '', premises FROM pc
        UNION ALL SELECT code, 'premises_eligible', '', premises_eligible FROM pc
        UNION ALL SELECT code, 'premises_located_mediation', '', located_help FROM pc
        UNION ALL SELECT code, 'distance_sum_km_mediation', '', sum_help FROM pc
        UNION ALL SELECT code, 'premises_located_tiers_lieu', '', located_tl FROM pc
        UNION ALL SELECT code, 'distance_sum_km_tiers_lieu', '', sum_tl FROM pc
        UNION ALL {beyond_rows}
        UNION ALL SELECT code, 'premises_by_state', coalesce(etat, 'inconnu'), count(*) FROM prem GROUP BY code, etat
        UNION ALL SELECT code, 'premises_expected', to_char(date_prevue, 'YYYY-"T"Q'), count(*) FROM prem
                  WHERE date_prevue IS NOT NULL AND etat <> 'abandonne'
                    AND NOT (etat = ANY(CAST(:eligible AS text[])))
                  GROUP BY code, to_char(date_prevue, 'YYYY-"T"Q')
        UNION ALL SELECT code, 'population', '', pop FROM popc
        UNION ALL SELECT code, 'white_zone_km2', category, km2 FROM wz_area WHERE km2 > 0
        UNION ALL SELECT code, 'white_zone_premises', category, n FROM wz_prem
        -- The commune's population × the share of its dwellings and premises inside the zone.
        UNION ALL SELECT w.code, 'white_zone_population', w.category,
                         round(popc.pop::numeric * w.hh / pc.households) FROM wz_prem w
                  JOIN pc USING (code) JOIN popc USING (code)
        UNION ALL SELECT code, 'communes_covered', '', 1 FROM covered
        UNION ALL SELECT w.code, 'communes_wifi_installed', '', 1 FROM wifi w JOIN covered USING (code)
                  WHERE w.installed
        UNION ALL SELECT w.code, 'communes_wifi_planned', '', 1 FROM wifi w JOIN covered USING (code)
                  WHERE w.planned AND NOT w.installed
        UNION ALL {counted('ftth_cabinets', 'cabinets_deployed', "x.statut = 'deploye'")}
        UNION ALL {counted('ftth_nodes', 'nodes_in_service', "x.statut = 'en service'")}
        UNION ALL {counted('med_sites', 'med_open', "x.statut = 'ouvert'")}
        UNION ALL {counted('med_sites', 'med_lines', "x.statut = 'ouvert'", 'coalesce(x.lignes, 0)')}
        UNION ALL {counted('third_places', 'third_places')}
        UNION ALL {counted('digital_help_places', 'help_places')}
        UNION ALL SELECT k.code, 'masts_by_operator', o, 1 FROM mobile_masts x
                  JOIN code_map k ON k.any_code = x.code_insee, unnest(x.operateurs) o
                  WHERE {seen('mobile_masts', 'x')} AND x.statut = 'en service'
        UNION ALL {technos}
        UNION ALL {counted('mobile_masts', 'masts_by_scheme', "x.statut = 'en service'", category='x.dispositif')}
        UNION ALL {counted('mobile_masts', 'masts_coming_by_scheme', "x.statut IN ('en construction', 'projete')",
                           category='x.dispositif')}
        UNION ALL {counted('mobile_masts', 'masts_by_arcep_programme', "x.statut = 'en service' AND f.flagged",
                           category='f.programme', joined=arcep_flags)}
    )
    SELECT GROUPING(c.epci_siren) AS no_epci, GROUPING(c.code) AS no_commune, c.epci_siren, c.code,
           m.measure, m.category, sum(m.amount)::float8
    FROM m JOIN current c ON c.code = m.code
    GROUP BY m.measure, m.category, GROUPING SETS ((), (c.epci_siren), (c.code))
    """


def compute(conn: Connection, registry: LayerRegistry, departement: tuple[str, str],
            timeout_ms: int | None = None) -> IndicatorTable:
    """Every indicator's measures for the département (``(code, name)``), its EPCIs and its current communes.

    ``timeout_ms``: the statement time limit for the rest of ``conn``'s transaction (the web engine's own limit
    is shorter than the computation on 130,000 premises)."""
    started = time.perf_counter()
    if timeout_ms is not None:
        conn.execute(text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(timeout_ms)})
    areas = current_areas(conn, departement)
    rows = conn.execute(text(_statement(registry)), {"eligible": list(ELIGIBLE_STATES)})
    measures = grouped_measures(rows, areas, departement[0])
    states = layer_state.states(conn, SOURCE_LAYERS)
    as_of = {layer: (s.changed_at.date() if s.changed_at else None) for layer, s in states.items()}
    attributions = {layer.id: layer.attribution or layer.title for layer in registry
                    if layer.id in SOURCE_LAYERS}
    return IndicatorTable(areas, measures, as_of, attributions, round(time.perf_counter() - started, 3))


def current_areas(conn: Connection, departement: tuple[str, str]) -> dict[tuple[str, str], Area]:
    """The département (``(code, name)``), its EPCIs and its current communes, keyed by ``(level, code)``."""
    areas: dict[tuple[str, str], Area] = {("departement", departement[0]): Area("departement", *departement)}
    for code, name, siren in conn.execute(text(
            "SELECT DISTINCT ON (code_insee_actuel) code_insee_actuel, nom_actuel, epci_siren FROM communes "
            "ORDER BY code_insee_actuel, (code_insee = code_insee_actuel) DESC, code_insee")):
        areas[("commune", code)] = Area("commune", code, name, siren)
    for siren, name in conn.execute(text("SELECT siren, nom FROM epci ORDER BY siren")):
        areas[("epci", siren)] = Area("epci", siren, name)
    return areas


def grouped_measures(rows: Iterable[Sequence], areas: dict[tuple[str, str], Area],
                     departement_code: str) -> dict[tuple[str, str], dict[tuple[str, str], float]]:
    """Measures by area from rows ``(no_epci, no_commune, siren, code, measure, category, amount)`` of a
    ``GROUPING SETS ((), (epci_siren), (code))`` statement; an EPCI missing from ``areas`` is added by its SIREN."""
    measures: dict[tuple[str, str], dict[tuple[str, str], float]] = defaultdict(dict)
    for no_epci, no_commune, siren, code, measure, category, amount in rows:
        if not no_commune:
            key = ("commune", code)
        elif not no_epci:
            if siren is None:
                continue
            key = ("epci", siren)
            areas.setdefault(key, Area("epci", siren, siren))
        else:
            key = ("departement", departement_code)
        measures[key][(measure, category)] = float(amount or 0)
    return dict(measures)


@dataclass(frozen=True)
class IndicatorValue:
    indicator: str
    label: str
    unit: str
    level: str
    code: str
    name: str
    category: str | None
    value: int | float | None
    as_of: date
    sources: tuple[str, ...]


def values(table: IndicatorTable, indicators: list[Indicator] | None = None, level: str | None = None,
           code: str | None = None) -> list[IndicatorValue]:
    """The values asked for, in catalogue order then area order (département, EPCI, commune)."""
    chosen = indicators or list(INDICATORS)
    order = {"departement": 0, "epci": 1, "commune": 2}
    areas = sorted((a for a in table.areas.values() if (level is None or a.level == level)
                    and (code is None or a.code == code)), key=lambda a: (order[a.level], a.code))
    found: list[IndicatorValue] = []
    for indicator in chosen:
        if not table.holds(indicator):
            continue
        dates = [table.as_of.get(layer) for layer in indicator.sources]
        as_of = max((d for d in dates if d is not None), default=table.computed_on)
        sources = tuple(table.attributions.get(layer, layer) for layer in indicator.sources)
        for area in areas:
            if area.level not in indicator.levels:
                continue
            for category in table.categories(indicator, area.level, area.code):
                value = table.value(indicator, area.level, area.code, category)  # a count is an int: 12, not 12.0
                found.append(IndicatorValue(indicator.id, indicator.label, indicator.unit, area.level, area.code,
                                            area.name, category or None, value, as_of, sources))
    return found


def chosen_indicators(asked: list[str] | None, at_most: int | None = None) -> list[Indicator]:
    """The indicators named in ``asked`` (repeated or comma-separated ids); all of them when none is named;
    a 400 when more than ``at_most`` are named."""
    ids = [part.strip() for item in asked or [] for part in item.split(",") if part.strip()]
    if at_most is not None and len(set(ids)) > at_most:
        raise InvalidParameter(f"Au plus {at_most} indicateurs par demande ({len(set(ids))} demandés).",
                               parameter="indicator")
    unknown = [i for i in ids if i not in BY_ID]
    if unknown:
        raise InvalidParameter(f"Indicateur inconnu : « {unknown[0][:80]} ». Indicateurs disponibles : "
                               f"{', '.join(BY_ID)}.", parameter="indicator")
    return [BY_ID[i] for i in dict.fromkeys(ids)]


def check_area(table: IndicatorTable, level: str | None, code: str | None) -> None:
    """An unknown code is a missing resource (404), said in French with the level it was looked for in."""
    if code is None:
        return
    if any(a.code == code and (level is None or a.level == level) for a in table.areas.values()):
        return
    where = {"departement": "Aucun département", "epci": "Aucun EPCI", "commune": "Aucune commune actuelle"}
    raise NotFound(f"{where.get(level or '', 'Aucun territoire')} de code « {code[:20]} » dans l'observatoire.",
                   parameter="code")
