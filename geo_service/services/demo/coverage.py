"""Synthetic mobile coverage and the white zones derived from it, both computed in PostGIS.

Coverage: for each operator and technology, discs around the demo masts in service (radius by level and
technology, growing with the mast's height) merged in Lambert-93, minus the relief shadows (a programme
mast covers its own valley, not its neighbours'), clipped to the territory, stored as disjoint rings
TBC / BC / CL.
White zones: computed by ``services/importers/white_zone_compute.py`` (the same code as for real coverage) on the
demo rows: the territory minus the union of the stored coverage rows, so that they cannot overlap what they were
derived from; fragments below ``min_part_m2`` (rounding slivers) are dropped.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from geo_service.services.demo.mobile import Mobile
from geo_service.services.demo.params import OPERATORS, DemoParams
from geo_service.services.demo.row_writer import Stamp
from geo_service.services.importers import white_zone_compute as white_zone_service

LEVELS = ("TBC", "BC", "CL")
_EMPTY = "ST_GeomFromText('POLYGON EMPTY', {srid})"
_PROVENANCE_COLUMNS = "source, licence, source_date, updated_by, import_id, validation_state, demo"
_PROVENANCE_VALUES = ":source, :licence, :source_date, :updated_by, :import_id, :validation_state, :demo"

_SITES = """
CREATE TEMP TABLE demo_sites AS
SELECT m.id_station_anfr AS station, o.op, t.tech, ST_Transform(m.geom, 2154) AS g,
       coalesce(m.hauteur_m, 30) AS h, m.dispositif <> 'zone blanche centre-bourg' AS masked, own.grp
FROM mobile_masts m
CROSS JOIN LATERAL (VALUES ('orange', m.technos_orange), ('sfr', m.technos_sfr),
                           ('bouygues', m.technos_bouygues), ('free', m.technos_free)) AS o(op, technos)
CROSS JOIN LATERAL unnest(o.technos) AS t(tech)
LEFT JOIN unnest(CAST(:stations AS text[]), CAST(:groups AS int[])) AS own(station, grp)
       ON own.station = m.id_station_anfr
WHERE m.demo AND m.statut = 'en service'
"""

_SHADOWS = """
CREATE TEMP TABLE demo_shadows AS
SELECT grp, ST_Buffer(ST_SetSRID(ST_MakePoint(x, y), 2154), r, 8) AS g
FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[]), CAST(:rs AS float8[]), CAST(:groups AS int[]))
     AS s(x, y, r, grp)
"""

# The land commercial sites can reach: the territory minus the relief shadows, computed once.
_FRAME = f"""
CREATE TEMP TABLE demo_frame AS
SELECT t.g AS territory, ST_Difference(t.g, coalesce(sh.g, {_EMPTY.format(srid=2154)})) AS land
FROM (SELECT ST_Transform(ST_Union(geom), 2154) AS g FROM territory) t,
     (SELECT ST_Union(g) AS g FROM demo_shadows) sh
"""

# One statement per operator × technology: for each level, the discs of the ordinary sites ("masked": kept
# out of every shadow) and of the programme's masts ("own": they light up their own valley, not the others'),
# clipped to the territory; then the rings between consecutive levels. MATERIALIZED: each CTE's geometry is
# used several times and must not be recomputed (PostgreSQL would inline a CTE referenced once).
_COVERAGE = f"""
WITH reach AS MATERIALIZED (
  SELECT l.niveau, l.ord,
    ST_Intersection((SELECT ST_Union(ST_Buffer(s.g, l.r * sqrt(s.h / 30.0), 8) ORDER BY s.station)
                     FROM demo_sites s WHERE s.op = :op AND s.tech = :tech AND s.masked), f.land) AS masked,
    ST_Intersection((SELECT ST_Union(ST_Difference(ST_Buffer(s.g, l.r * sqrt(s.h / 30.0), 8), coalesce(
                       (SELECT ST_Union(sh.g) FROM demo_shadows sh WHERE sh.grp IS DISTINCT FROM s.grp
                        AND ST_DWithin(sh.g, s.g, l.r * sqrt(s.h / 30.0))), {_EMPTY.format(srid=2154)}))
                       ORDER BY s.station)
                     FROM demo_sites s WHERE s.op = :op AND s.tech = :tech AND NOT s.masked), f.territory) AS own
  FROM unnest(CAST(:levels AS text[]), CAST(:radii AS float8[])) WITH ORDINALITY AS l(niveau, r, ord),
       demo_frame f
), levels AS MATERIALIZED (
  SELECT niveau, ord, CASE WHEN own IS NULL THEN coalesce(masked, {_EMPTY.format(srid=2154)})
                           WHEN masked IS NULL THEN own ELSE ST_Union(masked, own) END AS g
  FROM reach
), rings AS MATERIALIZED (
  SELECT cur.niveau, ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_Transform(
           CASE WHEN prev.g IS NULL THEN cur.g ELSE ST_Difference(cur.g, prev.g) END, 4326)), 3)) AS g
  FROM levels cur LEFT JOIN levels prev ON prev.ord = cur.ord - 1
)
INSERT INTO mobile_coverage (operateur, technologie, niveau, usage, date_reference, geom, {_PROVENANCE_COLUMNS})
SELECT :op, :tech, niveau, :usage, :date_reference, g, {_PROVENANCE_VALUES}
FROM rings WHERE NOT ST_IsEmpty(g)
"""

def _drop_temp(conn: Connection) -> None:
    # Temporary tables live as long as the session: drop them so a second run in one transaction works.
    conn.execute(text("DROP TABLE IF EXISTS pg_temp.demo_sites, pg_temp.demo_shadows, pg_temp.demo_frame"))


def coverage(conn: Connection, params: DemoParams, sites: Mobile, stamp: Stamp) -> int:
    """Coverage rows of every operator × technology present on a demo mast in service."""
    cov = params.mobile.coverage
    _drop_temp(conn)
    conn.execute(text(_SITES), {"stations": list(sites.shadow_of), "groups": list(sites.shadow_of.values())})
    shadows = sites.shadows
    conn.execute(text(_SHADOWS), {"xs": shadows[:, 0].tolist(), "ys": shadows[:, 1].tolist(),
                                  "rs": shadows[:, 2].tolist(), "groups": shadows[:, 3].astype(int).tolist()})
    conn.execute(text(_FRAME))
    present = conn.execute(text("SELECT DISTINCT op, tech FROM demo_sites")).all()
    rows = 0
    for op in OPERATORS:
        for tech in sorted(t for o, t in present if o == op):
            radii = [cov.radius_km[tech][level] * 1000 for level in LEVELS]
            rows += conn.execute(text(_COVERAGE), {
                "op": op, "tech": tech, "levels": list(LEVELS), "radii": radii, "usage": cov.usage[tech],
                "date_reference": cov.date_reference, **stamp.columns()}).rowcount
    _drop_temp(conn)
    return rows


def white_zones(conn: Connection, params: DemoParams, stamp: Stamp) -> int:
    """White zones of the demo coverage, computed by the service that computes the real ones (any level
    counts as covered: a demo white zone is where no demo mast reaches at all)."""
    wz, cov = params.mobile.white_zones, params.mobile.coverage
    provenance = {k: v for k, v in stamp.columns().items() if k in ("source", "licence", "source_date",
                                                                    "updated_by", "import_id")}
    return sum(white_zone_service.compute(conn, tech, "CL", demo=True, date_reference=cov.date_reference,
                                          min_part_m2=wz.min_part_m2, provenance=provenance).rows
               for tech in wz.technologies)
