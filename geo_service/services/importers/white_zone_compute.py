"""White zones computed in PostGIS from the ``mobile_coverage`` layer: the territory where no operator (or
one given operator) reaches a coverage level for a technology, with area, premises and population inside.

One function serves the importers (real coverage, ``demo=False``) and the demo generator (``demo=True``):
each computation replaces the previously computed white zones of its technology and of its own kind of
rows (real or demo), never the other's, nor white zones people declared.

Level ``BC`` means "at least good coverage": covered = TBC or BC. ``CL`` counts any coverage. Fragments
smaller than ``min_part_m2`` (slivers left by the operators' polygons) are dropped. The population is
estimated from the premises: each commune's population spread over its premises by their number of
dwellings and premises (``nb_logements``); ``locaux`` is the number of dwellings and premises inside.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, text

from geo_service.errors import InvalidParameter

LEVELS = ("TBC", "BC", "CL")
TECHNOLOGIES = ("2G", "3G", "4G", "5G")
OPERATORS = ("orange", "sfr", "bouygues", "free")
DEFAULT_MIN_PART_M2 = 1000.0
# Provenance of the computed zones; who runs the service is a setting (operator.name), not part of the data.
SOURCE = "Calcul du service géographique d'après la couverture mobile théorique"
_COLUMNS = "source, licence, source_date, updated_by, import_id, validation_state, demo"
_VALUES = ":source, :licence, :source_date, :updated_by, :import_id, 'published', :demo"

# Inhabitants per dwelling or premise, per 2018 commune code: the population of its current commune (the 2018
# communes being merged) over the dwellings and premises of the chosen kind of rows (demo or real) there.
_WEIGHTS = """
CREATE TEMP TABLE white_zone_weights ON COMMIT DROP AS
WITH n AS (SELECT c.code_insee_actuel AS cur, sum(coalesce(p.nb_logements, 1))::float8 AS n
           FROM premises p JOIN communes c USING (code_insee) WHERE p.demo = :demo {alive} GROUP BY 1),
     pop AS (SELECT code_insee_actuel AS cur, sum(coalesce(population, 0))::float8 AS pop FROM communes GROUP BY 1)
SELECT c.code_insee, pop.pop / n.n AS weight FROM communes c JOIN n ON n.cur = c.code_insee_actuel
JOIN pop ON pop.cur = c.code_insee_actuel
"""

_WHITE = """
WITH zone AS MATERIALIZED (
  SELECT ST_Multi(ST_Collect(d.geom ORDER BY d.path)) AS g
  FROM ST_Dump(ST_CollectionExtract(ST_Difference(
         (SELECT ST_Union(geom) FROM territory),
         coalesce((SELECT ST_Union(geom ORDER BY operateur, niveau, fid) FROM mobile_coverage
                   WHERE demo = :demo {alive} AND technologie = :tech AND niveau = ANY(CAST(:levels AS text[]))
                     AND (:op = 'tous' OR operateur = :op)),
                  ST_GeomFromText('POLYGON EMPTY', 4326))), 3)) AS d
  WHERE ST_Area(ST_Transform(d.geom, 2154)) >= :min_area
), inside AS MATERIALIZED (
  SELECT sum(coalesce(p.nb_logements, 1)) AS locaux, sum(coalesce(p.nb_logements, 1) * w.weight) AS population
  FROM zone z JOIN premises p ON ST_Intersects(z.g, p.geom) JOIN white_zone_weights w USING (code_insee)
  WHERE p.demo = :demo {premise_alive}
)
INSERT INTO white_zones (kind, technologie, operateur, source_calcul, niveau, surface_km2, locaux,
                         population_estimee, date_reference, geom, {columns})
SELECT 'mobile', :tech, :op, 'calculee', :niveau, round((ST_Area(ST_Transform(z.g, 2154)) / 1e6)::numeric, 2)::float8,
       coalesce((SELECT locaux FROM inside), 0), coalesce(round((SELECT population FROM inside))::int, 0),
       :date_reference, z.g, {values}
FROM zone z WHERE z.g IS NOT NULL
"""


@dataclass(frozen=True)
class WhiteZoneResult:
    """What a computation wrote: one row per operator having coverage, plus « tous »."""

    technologie: str
    niveau: str
    rows: int
    deleted: int
    operators: tuple[str, ...]
    surface_km2: dict[str, float]

    def summary(self) -> str:
        areas = ", ".join(f"{op} {km2:.1f} km²".replace(".", ",") for op, km2 in self.surface_km2.items())
        return (f"Zones blanches {self.technologie} (niveau exigé {self.niveau}) : {self.rows} calculées "
                f"({areas}) ; {self.deleted} précédentes remplacées")


def covered_levels(niveau: str) -> list[str]:
    """The levels that count as covered at ``niveau``: BC → TBC and BC."""
    if niveau not in LEVELS:
        raise InvalidParameter(f"niveau « {niveau} » inconnu : {', '.join(LEVELS)}", parameter="niveau")
    return list(LEVELS[: LEVELS.index(niveau) + 1])


def compute(conn: Connection, technologie: str, niveau: str = "BC", *, demo: bool = False,
            date_reference: date | None = None, min_part_m2: float = DEFAULT_MIN_PART_M2,
            provenance: dict[str, object] | None = None) -> WhiteZoneResult:
    """Replace the computed white zones of ``technologie`` (demo or real rows) by new ones, in the caller's
    transaction: one per operator having coverage of that technology, and one for all operators (« tous »)."""
    if technologie not in TECHNOLOGIES:
        raise InvalidParameter(f"technologie « {technologie} » inconnue : {', '.join(TECHNOLOGIES)}",
                               parameter="technologie")
    levels = covered_levels(niveau)
    alive = " AND deleted_at IS NULL" if _has_column(conn, "mobile_coverage", "deleted_at") else ""
    deleted = conn.execute(text("""DELETE FROM white_zones WHERE kind = 'mobile' AND source_calcul = 'calculee'
                                   AND technologie = :tech AND demo = :demo"""),
                           {"tech": technologie, "demo": demo}).rowcount
    covered = set(conn.execute(text(f"""SELECT DISTINCT operateur FROM mobile_coverage
        WHERE demo = :demo {alive} AND technologie = :tech AND niveau = ANY(CAST(:levels AS text[]))"""),
        {"demo": demo, "tech": technologie, "levels": levels}).scalars())
    operators = tuple(op for op in OPERATORS if op in covered)
    if date_reference is None:
        date_reference = conn.execute(text(f"""SELECT max(date_reference) FROM mobile_coverage
            WHERE demo = :demo {alive} AND technologie = :tech"""), {"demo": demo, "tech": technologie}).scalar()
    stamp = {"source": SOURCE, "licence": "Licence Ouverte 2.0 (Etalab)", "source_date": date_reference,
             "updated_by": "white-zones", "import_id": f"white-zones-{technologie}-{niveau}", **(provenance or {}),
             "demo": demo}
    premise_alive = " AND p.deleted_at IS NULL" if _has_column(conn, "premises", "deleted_at") else ""
    conn.execute(text("DROP TABLE IF EXISTS pg_temp.white_zone_weights"))
    conn.execute(text(_WEIGHTS.format(alive=premise_alive)), {"demo": demo})
    rows = 0
    statement = text(_WHITE.format(alive=alive, premise_alive=premise_alive, columns=_COLUMNS, values=_VALUES))
    for op in ("tous", *operators):
        rows += conn.execute(statement, {"op": op, "tech": technologie, "levels": levels, "niveau": niveau,
                                         "min_area": min_part_m2, "date_reference": date_reference,
                                         **stamp}).rowcount
    conn.execute(text("DROP TABLE IF EXISTS pg_temp.white_zone_weights"))
    areas = dict(conn.execute(text("""SELECT operateur, surface_km2 FROM white_zones WHERE kind = 'mobile'
        AND source_calcul = 'calculee' AND technologie = :tech AND demo = :demo ORDER BY operateur"""),
        {"tech": technologie, "demo": demo}).all())
    return WhiteZoneResult(technologie, niveau, rows, deleted, operators, areas)


def last_level(conn: Connection, technologie: str) -> str | None:
    """The level of the real white zones last computed for ``technologie`` (kept when coverage is re-imported)."""
    return conn.execute(text("""SELECT niveau FROM white_zones WHERE kind = 'mobile' AND source_calcul = 'calculee'
        AND NOT demo AND technologie = :tech AND niveau IS NOT NULL ORDER BY updated_at DESC LIMIT 1"""),
        {"tech": technologie}).scalar()


def _has_column(conn: Connection, table: str, column: str) -> bool:
    return bool(conn.execute(text("""SELECT EXISTS (SELECT 1 FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = :t AND column_name = :c)"""),
        {"t": table, "c": column}).scalar())
