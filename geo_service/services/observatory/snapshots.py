"""The observatory's dated snapshots: taken by ``geo-service snapshot``, read by the pages, the API and the notebooks.

The full computation (``indicator_values.compute``) takes from seconds to half a minute on the demo's 130,000
premises: a visitor never starts it. ``take`` runs it from the command line (after an import, or daily from cron
or a systemd timer) and stores the *measures* per area under the day's date; ``load`` reads a stored snapshot
back as an ``IndicatorTable`` (a few thousand rows, cached by the application per snapshot), so every page
view and API call reads stored values.

One snapshot per day: taking it again the same day replaces it, and does nothing when the source layers have not
changed since (idempotent, cheap to run often). ``backfill`` rebuilds the past the data can tell — the premises
that had become eligible at each quarter's end, from their effective dates — as snapshots of kind
``backfilled`` holding only those measures; it never replaces a computed snapshot.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, text

from geo_service.errors import NotFound
from geo_service.layers import LayerRegistry
from geo_service.services.observatory import indicator_values
from geo_service.services.observatory.indicator_catalogue import Indicator
from geo_service.services.observatory.indicator_values import Area, IndicatorTable, IndicatorValue
from geo_service.services.publish.visibility import visible_rows_sql
from geo_service.services.resident.report_wording import ELIGIBLE_STATES

# The measures the premises' effective dates can rebuild for a past day (``backfill``).
BACKFILLED_MEASURES = ("premises", "premises_eligible")


@dataclass(frozen=True)
class SnapshotRun:
    """What ``take`` or ``backfill`` did."""

    taken_on: date
    kind: str
    written: bool
    measures: int = 0
    computed_in_s: float = 0.0

    def summary(self) -> str:
        if not self.written:
            return f"Instantané du {self.taken_on:%d/%m/%Y} déjà à jour : les couches sources n'ont pas changé."
        what = "calculé" if self.kind == "computed" else "reconstitué"
        return (f"Instantané du {self.taken_on:%d/%m/%Y} {what} : {self.measures} mesures"
                + (f" en {self.computed_in_s:.1f} s." if self.kind == "computed" else "."))


@dataclass(frozen=True)
class SnapshotRef:
    """A stored snapshot's identity: its day and when it was written (a snapshot replaced the same day differs)."""

    taken_on: date
    taken_at: datetime
    kind: str


def take(conn: Connection, registry: LayerRegistry, departement: tuple[str, str], on: date | None = None,
         force: bool = False) -> SnapshotRun:
    """Compute every indicator's measures now and store them as the snapshot of ``on`` (today by default).

    Does nothing when that day's snapshot was computed from the same state of the source layers, unless
    ``force``."""
    on = on or date.today()
    source_state = indicator_values.cache_state(conn).version
    stored = conn.execute(text("SELECT kind, source_state FROM indicator_snapshots WHERE taken_on = :on"),
                          {"on": on}).first()
    if stored is not None and stored.kind == "computed" and stored.source_state == source_state and not force:
        return SnapshotRun(on, "computed", written=False)
    table = indicator_values.compute(conn, registry, departement)
    count = _store(conn, on, "computed", source_state, table, None)
    return SnapshotRun(on, "computed", True, count, table.computed_in_s)


def quarter_ends(first: date, until: date) -> list[date]:
    """The last day of every quarter from ``first``'s to the last one ended before ``until``."""
    found = []
    year, quarter = first.year, (first.month - 1) // 3 + 1
    while True:
        end = date(year + quarter // 4, quarter * 3 % 12 + 1, 1) - timedelta(days=1)
        if end >= until:
            return found
        found.append(end)
        year, quarter = (year + 1, 1) if quarter == 4 else (year, quarter + 1)


def backfill(conn: Connection, registry: LayerRegistry, departement: tuple[str, str],
             until: date | None = None) -> list[SnapshotRun]:
    """Rebuild the quarterly history of the premises (counted, eligible) from their effective dates.

    A premise counts as eligible at a quarter's end when it is eligible today and its ``date_raccordable`` is on
    or before that day; every premise of today counts in ``premises`` (the layer keeps no creation date). Days
    that already hold a snapshot are left alone."""
    premises = registry.get("premises")
    first = conn.execute(text(f"SELECT min(date_raccordable) FROM premises p WHERE {visible_rows_sql(premises, 'p')}")
                         ).scalar()
    if first is None:
        return []
    taken = {row[0] for row in conn.execute(text("SELECT taken_on FROM indicator_snapshots"))}
    days = [day for day in quarter_ends(first, until or date.today()) if day not in taken]
    if not days:
        return []
    rows = conn.execute(text(f"""
        WITH {indicator_values.AREA_CTES},
        days AS (SELECT unnest(CAST(:days AS date[])) AS day),
        prem AS MATERIALIZED (
            SELECT k.code, p.date_raccordable, p.etat = ANY(CAST(:eligible AS text[])) AS eligible
            FROM premises p JOIN code_map k ON k.any_code = p.code_insee WHERE {visible_rows_sql(premises, 'p')}),
        per_code AS (SELECT code, count(*) AS premises FROM prem GROUP BY code),
        m(day, code, measure, amount) AS (
            SELECT day, code, 'premises', premises FROM per_code CROSS JOIN days
            UNION ALL SELECT day, code, 'premises_eligible', count(*) FROM prem JOIN days
                      ON prem.eligible AND prem.date_raccordable <= days.day GROUP BY day, code)
        SELECT m.day, GROUPING(c.epci_siren), GROUPING(c.code), c.epci_siren, c.code, m.measure, '', sum(m.amount)
        FROM m JOIN current c ON c.code = m.code
        GROUP BY m.day, m.measure, GROUPING SETS ((), (c.epci_siren), (c.code))
        """), {"days": days, "eligible": list(ELIGIBLE_STATES)})
    by_day: dict[date, list] = defaultdict(list)
    for day, *rest in rows:
        by_day[day].append(rest)
    areas = indicator_values.current_areas(conn, departement)
    runs = []
    for day in days:
        measures = indicator_values.grouped_measures(by_day.get(day, []), areas, departement[0])
        table = IndicatorTable(areas, measures, {"premises": day}, {}, 0.0, day)
        count = _store(conn, day, "backfilled", None, table, BACKFILLED_MEASURES)
        runs.append(SnapshotRun(day, "backfilled", True, count))
    return runs


def _store(conn: Connection, on: date, kind: str, source_state: int | None, table: IndicatorTable,
           measures_held: tuple[str, ...] | None) -> int:
    conn.execute(text("DELETE FROM indicator_snapshots WHERE taken_on = :on"), {"on": on})
    held = sorted({m for values in table.measures.values() for (m, _) in values} | set(measures_held or ()))
    conn.execute(text("""
        INSERT INTO indicator_snapshots (taken_on, kind, source_state, computed_in_s, measures, areas, as_of)
        VALUES (:on, :kind, :state, :seconds, :measures, CAST(:areas AS jsonb), CAST(:as_of AS jsonb))"""),
                 {"on": on, "kind": kind, "state": source_state, "seconds": table.computed_in_s,
                  "measures": list(measures_held or held),
                  "areas": _json([[a.level, a.code, a.name, a.epci_siren] for a in table.areas.values()]),
                  "as_of": _json({layer: d.isoformat() for layer, d in table.as_of.items() if d is not None})})
    rows = [(level, code, measure, category, amount) for (level, code), values in table.measures.items()
            for (measure, category), amount in values.items()]
    if rows:
        levels, codes, names, categories, amounts = (list(column) for column in zip(*rows, strict=True))
        conn.execute(text("""
            INSERT INTO indicator_snapshot_measures (taken_on, level, code, measure, category, amount)
            SELECT :on, * FROM unnest(CAST(:levels AS text[]), CAST(:codes AS text[]), CAST(:names AS text[]),
                                     CAST(:categories AS text[]), CAST(:amounts AS float8[]))"""),
                     {"on": on, "levels": levels, "codes": codes, "names": names, "categories": categories,
                      "amounts": amounts})
    return len(rows)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def latest(conn: Connection) -> SnapshotRef | None:
    """The most recent stored snapshot (computed or back-filled), or None when none was ever taken."""
    return on_or_before(conn, None)


# A computed snapshot holds every measure; a back-filled one only those it lists.
_HOLDING = "(kind = 'computed' OR measures @> CAST(:needed AS text[]))"


def on_or_before(conn: Connection, day: date | None, needed: Collection[str] = ()) -> SnapshotRef | None:
    """The snapshot of ``day``, or the nearest earlier one holding the ``needed`` measures; the latest when
    ``day`` is None."""
    row = conn.execute(text("SELECT taken_on, taken_at, kind FROM indicator_snapshots "
                            f"WHERE (CAST(:day AS date) IS NULL OR taken_on <= CAST(:day AS date)) AND {_HOLDING} "
                            "ORDER BY taken_on DESC LIMIT 1"), {"day": day, "needed": sorted(needed)}).first()
    return None if row is None else SnapshotRef(row.taken_on, row.taken_at, row.kind)


def chosen(conn: Connection, day: date | None, needed: Collection[str] = ()) -> SnapshotRef:
    """The snapshot to serve for ``day`` (see ``on_or_before``), or a 404 in French saying why there is none."""
    found = on_or_before(conn, day, needed)
    if found is not None:
        return found
    first = conn.execute(text(f"SELECT min(taken_on) FROM indicator_snapshots WHERE {_HOLDING}"),
                         {"needed": sorted(needed)}).scalar()
    if first is None:
        raise NotFound("Aucun instantané des indicateurs n'est encore enregistré : l'exploitant lance "
                       "« geo-service snapshot » (docs/indicators.md).", parameter="date")
    raise NotFound(f"Aucun instantané des indicateurs au {day:%d/%m/%Y} ni avant : le premier date du "
                   f"{first:%d/%m/%Y}.", parameter="date")


def dates(conn: Connection, needed: Collection[str] = ()) -> list[tuple[date, str]]:
    """Every stored snapshot's day and kind, oldest first; only those holding the ``needed`` measures."""
    return [(row[0], row[1]) for row in conn.execute(
        text(f"SELECT taken_on, kind FROM indicator_snapshots WHERE {_HOLDING} ORDER BY taken_on"),
        {"needed": sorted(needed)})]


def load(conn: Connection, registry: LayerRegistry, ref: SnapshotRef) -> IndicatorTable:
    """A stored snapshot as an ``IndicatorTable`` (``indicator_values.values`` reads it as a computed one)."""
    run = conn.execute(text("SELECT measures, areas, as_of, computed_in_s, kind FROM indicator_snapshots "
                            "WHERE taken_on = :on"), {"on": ref.taken_on}).one()
    measures: dict[tuple[str, str], dict[tuple[str, str], float]] = defaultdict(dict)
    for level, code, measure, category, amount in conn.execute(text(
            "SELECT level, code, measure, category, amount FROM indicator_snapshot_measures WHERE taken_on = :on"),
            {"on": ref.taken_on}):
        measures[(level, code)][(measure, category)] = amount
    return _table(registry, ref.taken_on, run, dict(measures))


def _table(registry: LayerRegistry, taken_on: date, run, measures) -> IndicatorTable:
    areas = {(level, code): Area(level, code, name, siren) for level, code, name, siren in run.areas}
    as_of = {layer: date.fromisoformat(d) for layer, d in run.as_of.items()}
    attributions = {layer.id: layer.attribution or layer.title for layer in registry
                    if layer.id in indicator_values.SOURCE_LAYERS}
    held = None if run.kind == "computed" else frozenset(run.measures)
    return IndicatorTable(areas, measures, as_of, attributions, run.computed_in_s, taken_on, held)


def history(conn: Connection, registry: LayerRegistry, indicators: list[Indicator], level: str | None,
            code: str | None) -> list[tuple[date, IndicatorValue]]:
    """The values of ``indicators`` in every snapshot that holds them, oldest first, for the areas asked for.

    Reads only the measures these indicators need; areas are named as in each snapshot."""
    needed = sorted({m for i in indicators for m in (i.numerator, i.denominator) if m}
                    | ({"third_places"} if any(i.id == "epci_avec_tiers_lieu" for i in indicators) else set()))
    runs = {row.taken_on: row for row in conn.execute(text(
        "SELECT taken_on, measures, areas, as_of, computed_in_s, kind FROM indicator_snapshots ORDER BY taken_on"))}
    measures: dict[date, dict[tuple[str, str], dict[tuple[str, str], float]]] = defaultdict(lambda: defaultdict(dict))
    for taken_on, lvl, cd, measure, category, amount in conn.execute(text("""
            SELECT taken_on, level, code, measure, category, amount FROM indicator_snapshot_measures
            WHERE measure = ANY(CAST(:needed AS text[]))
              AND (CAST(:level AS text) IS NULL OR level = :level OR level = 'departement')
              AND (CAST(:code AS text) IS NULL OR code = :code OR level = 'epci')"""),
            {"needed": needed, "level": level, "code": code}):
        measures[taken_on][(lvl, cd)][(measure, category)] = amount
    found: list[tuple[date, IndicatorValue]] = []
    for taken_on, run in runs.items():
        table = _table(registry, taken_on, run, {k: dict(v) for k, v in measures.get(taken_on, {}).items()})
        found += [(taken_on, value) for value in indicator_values.values(table, indicators, level, code)]
    return found
