"""The demo territory: sizes from FACTS.md, points inside their communes, coherent roll-out, determinism.

Runs against the session's demo (seed 46, see conftest ``demo_territory``); tests that write do so in the
rolled-back ``conn`` transaction.
"""

from __future__ import annotations

import numpy as np
import pytest
from opening_hours import OpeningHours
from sqlalchemy import Connection, text

from geo_service.layers import LayerRegistry
from geo_service.services import demo
from geo_service.services.demo.params import load_params
from geo_service.services.demo.territory import Territory, normalise

PARAMS = load_params()
POINT_LAYERS = ("premises", "ftth_cabinets", "ftth_nodes", "med_sites", "mobile_masts", "wifi_hotspots",
                "third_places", "digital_help_places")
NAMED_LAYERS = ("ftth_cabinets", "ftth_nodes", "med_sites", "mobile_masts", "third_places", "digital_help_places")
# Premises per current commune: |count - expected| ≤ max(3 premises, 10 % of expected) for every commune.
ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE = 3, 0.10


def scalar(conn: Connection, sql: str, **params):
    return conn.execute(text(sql), params).scalar()


@pytest.fixture(autouse=True)
def _demo(demo_territory):
    return demo_territory


@pytest.mark.parametrize("layer", POINT_LAYERS)
def test_every_point_lies_inside_the_commune_whose_code_it_carries(conn, layer):
    assert scalar(conn, f"SELECT count(*) FROM {layer} WHERE demo") > 0
    outside = scalar(conn, f"""
        SELECT count(*) FROM {layer} p LEFT JOIN communes c ON c.code_insee = p.code_insee
        WHERE p.demo AND (c.fid IS NULL OR NOT ST_Contains(c.geom, p.geom))""")
    assert outside == 0


def test_demo_rows_carry_provenance_and_distinctive_keys(conn, registry: LayerRegistry):
    for layer in registry:
        if layer.editable and layer.id in demo.LAYERS:
            wrong = scalar(conn, f"""
                SELECT count(*) FROM {layer.id} WHERE demo AND (source IS DISTINCT FROM :source
                  OR licence IS NULL OR source_date IS NULL OR updated_by IS DISTINCT FROM 'demo'
                  OR validation_state <> 'published')""", source=PARAMS.provenance.source)
            assert wrong == 0, layer.id
    assert scalar(conn, "SELECT count(*) FROM premises WHERE demo AND imb_id NOT LIKE 'IMB/_____/DEMO/%'") == 0
    assert scalar(conn, "SELECT count(*) FROM ftth_cabinets WHERE demo AND pm_ref NOT LIKE 'DEMO-PM-%'") == 0
    assert scalar(conn, "SELECT count(*) FROM mobile_masts WHERE demo AND id_station_anfr NOT LIKE :p",
                  p=PARAMS.mobile.id_prefix + "%") == 0


def test_names_people_read_say_demo_and_contacts_are_fictitious(conn):
    for layer in NAMED_LAYERS:
        assert scalar(conn, f"SELECT count(*) FROM {layer} WHERE demo AND nom NOT LIKE '%(démo)%'") == 0, layer
    for layer in ("third_places", "digital_help_places"):
        assert scalar(conn, f"SELECT count(*) FROM {layer} WHERE demo AND telephone NOT LIKE '05 65 00 __ __'") == 0
        assert scalar(conn, f"SELECT count(*) FROM {layer} WHERE demo AND site_web !~ '^https://[^/]+\\.example/'") == 0
    assert scalar(conn, """SELECT count(*) FROM third_places
                           WHERE demo AND url_reservation !~ '^https://[^/]+\\.example/'""") == 0


def test_premises_count_follows_population(conn):
    total = scalar(conn, "SELECT count(*) FROM premises WHERE demo")
    assert 110_000 <= total <= 140_000
    rows = conn.execute(text("""
        SELECT cur.code, cur.pop, coalesce(n.n, 0)
        FROM (SELECT code_insee_actuel AS code, sum(coalesce(population, 0)) AS pop FROM communes GROUP BY 1) cur
        LEFT JOIN (SELECT c.code_insee_actuel AS code, count(*) AS n FROM premises p
                   JOIN communes c USING (code_insee) WHERE p.demo GROUP BY 1) n USING (code)""")).all()
    pop = np.array([r[1] for r in rows], dtype=float)
    count = np.array([r[2] for r in rows], dtype=float)
    expected = total * pop / pop.sum()
    off = np.abs(count - expected) > np.maximum(ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE * expected)
    assert not off.any(), [rows[i] for i in np.flatnonzero(off)]
    assert np.corrcoef(pop, count)[0, 1] > 0.99


def test_premises_addresses_and_states_are_consistent(conn):
    assert scalar(conn, "SELECT count(*) FROM premises WHERE demo AND adresse <> numero || ' ' || nom_voie") == 0
    assert scalar(conn, """SELECT count(*) - count(DISTINCT (code_insee, adresse)) FROM premises WHERE demo""") == 0
    reachable = "etat IN ('deploye', 'raccorde', 'raccordable demande')"
    assert scalar(conn, f"""SELECT count(*) FROM premises
                            WHERE demo AND ({reachable}) <> (date_raccordable IS NOT NULL)""") == 0
    assert scalar(conn, "SELECT count(*) FROM premises WHERE demo AND date_raccordable >= :d",
                  d=PARAMS.reference_date) == 0
    assert scalar(conn, """SELECT count(*) FROM premises
                           WHERE demo AND etat IN ('cible', 'signe', 'en cours de deploiement')
                           AND (date_prevue IS NULL OR date_prevue <= :d)""", d=PARAMS.reference_date) == 0
    # A premise is never ahead of its cabinet.
    assert scalar(conn, """SELECT count(*) FROM premises p JOIN ftth_cabinets c USING (pm_ref)
                           WHERE p.demo AND c.statut <> 'deploye' AND p.date_raccordable IS NOT NULL""") == 0
    states = dict(conn.execute(text("SELECT etat, count(*) FROM premises WHERE demo GROUP BY 1")).all())
    assert {"cible", "en cours de deploiement", "deploye", "raccorde"} <= set(states)
    # FACTS: about 5,000 premises connectable in the public network at the end of 2018.
    rip_ready = scalar(conn, f"SELECT count(*) FROM premises WHERE demo AND zone = 'rip' AND {reachable}")
    assert 4_000 <= rip_ready <= 6_500


def test_cabinets_serve_about_300_premises_and_count_them(conn):
    average = scalar(conn, "SELECT avg(nb_prises) FROM ftth_cabinets WHERE demo")
    assert 250 <= average <= 350
    assert scalar(conn, """
        SELECT count(*) FROM ftth_cabinets c
        LEFT JOIN (SELECT pm_ref, count(*) AS n FROM premises WHERE demo GROUP BY 1) p USING (pm_ref)
        WHERE c.demo AND c.nb_prises IS DISTINCT FROM p.n""") == 0
    assert scalar(conn, """SELECT count(*) FROM premises p LEFT JOIN ftth_cabinets c USING (pm_ref)
                           WHERE p.demo AND c.fid IS NULL""") == 0
    assert scalar(conn, """
        SELECT count(*) FROM ftth_nodes n
        LEFT JOIN (SELECT nro_ref, count(*) AS k FROM ftth_cabinets WHERE demo GROUP BY 1) c USING (nro_ref)
        WHERE n.demo AND n.nb_pm IS DISTINCT FROM c.k""") == 0
    operators = dict(conn.execute(text("""SELECT z.zone, string_agg(DISTINCT c.operateur, '|') FROM ftth_cabinets c
        JOIN premises p USING (pm_ref) JOIN ftth_zones z ON z.code_insee = p.code_insee GROUP BY 1""")).all())
    assert operators == {"amii": PARAMS.ftth.amii.operateur, "rip": PARAMS.ftth.rip.operateur}
    # FACTS: 9 optical nodes and 73–76 cabinets in the public network's first year.
    assert scalar(conn, """SELECT count(*) FROM ftth_nodes n WHERE demo AND statut = 'en service' AND EXISTS
        (SELECT 1 FROM ftth_cabinets c WHERE c.nro_ref = n.nro_ref AND c.operateur = :op)""",
                  op=PARAMS.ftth.rip.operateur) == 9
    year1 = scalar(conn, """SELECT count(*) FROM ftth_cabinets WHERE demo AND operateur = :op
                            AND statut IN ('deploye', 'en cours de deploiement')""", op=PARAMS.ftth.rip.operateur)
    assert 73 <= year1 <= 76


def test_amii_zone_is_30_grand_cahors_communes_around_cahors(conn):
    assert scalar(conn, "SELECT count(*) FROM ftth_zones WHERE demo") == scalar(conn, "SELECT count(*) FROM communes")
    amii = conn.execute(text("""SELECT DISTINCT c.code_insee_actuel, c.epci_siren FROM ftth_zones z
                                JOIN communes c USING (code_insee) WHERE z.demo AND z.zone = 'amii'""")).all()
    assert len(amii) == 30
    assert {siren for _, siren in amii} == {PARAMS.ftth.amii.epci_siren}
    assert "46042" in {code for code, _ in amii}
    # A current commune is wholly in one zone.
    assert scalar(conn, """SELECT count(*) FROM (SELECT c.code_insee_actuel FROM ftth_zones z
        JOIN communes c USING (code_insee) WHERE z.demo GROUP BY 1 HAVING count(DISTINCT z.zone) > 1) x""") == 0


def test_one_wifi_borne_per_current_commune_outside_the_amii_zone(conn):
    rows = conn.execute(text("""
        WITH amii AS (SELECT DISTINCT c.code_insee_actuel AS code FROM ftth_zones z JOIN communes c USING (code_insee)
                      WHERE z.demo AND z.zone = 'amii'),
             bornes AS (SELECT c.code_insee_actuel AS code, count(*) AS n FROM wifi_hotspots w
                        JOIN communes c USING (code_insee) WHERE w.demo GROUP BY 1)
        SELECT cur.code, coalesce(b.n, 0), cur.code IN (SELECT code FROM amii)
        FROM (SELECT DISTINCT code_insee_actuel AS code FROM communes) cur LEFT JOIN bornes b USING (code)""")).all()
    assert all(n == (0 if in_amii else 1) for _, n, in_amii in rows), [r for r in rows if r[1] != (0 if r[2] else 1)]
    # Each borne stands in the chef-lieu (the 2018 polygon that gives the current commune its code).
    assert scalar(conn, """SELECT count(*) FROM wifi_hotspots w JOIN communes c USING (code_insee)
                           WHERE w.demo AND c.code_insee <> c.code_insee_actuel""") == 0
    installed = scalar(conn, "SELECT count(*) FROM wifi_hotspots WHERE demo AND statut = 'installee'")
    assert installed == PARAMS.wifi.installed


def test_third_places_in_every_epci_and_in_cahors_figeac_gourdon(conn):
    missing = conn.execute(text("""
        SELECT e.nom FROM epci e WHERE NOT EXISTS (SELECT 1 FROM third_places t JOIN communes c USING (code_insee)
                                                   WHERE t.demo AND c.epci_siren = e.siren)""")).scalars().all()
    assert missing == []
    for town in ("Cahors", "Figeac", "Gourdon"):
        assert scalar(conn, """SELECT count(*) FROM third_places t JOIN communes c USING (code_insee)
                               WHERE t.demo AND c.nom_actuel = :town""", town=town) >= 1, town
    assert 25 <= scalar(conn, "SELECT count(*) FROM third_places WHERE demo") <= 35
    assert scalar(conn, """SELECT count(*) FROM third_places WHERE demo AND nom LIKE 'Pôle numérique de Gourdon%'
                           AND 'visio' = ANY(services)""") == 1


def test_digital_help_places_follow_facts(conn):
    kinds = dict(conn.execute(text("SELECT categorie, count(*) FROM digital_help_places WHERE demo GROUP BY 1")).all())
    assert kinds["mediatheque"] + kinds["epm"] == PARAMS.digital_help.epm
    assert kinds["mediatheque"] > kinds["epm"]
    assert kinds["point visio"] == 8 and kinds["france services"] == PARAMS.digital_help.france_services
    assert scalar(conn, """SELECT count(*) FROM digital_help_places d JOIN communes c USING (code_insee)
                           WHERE d.demo AND d.categorie = 'cyber-base' AND c.nom_actuel = 'Figeac'""") == 1
    assert scalar(conn, """SELECT count(*) FROM digital_help_places d JOIN communes c USING (code_insee)
                           WHERE d.demo AND d.nom LIKE 'MJC%' AND c.nom_actuel = 'Saint-Céré'""") == 1


def test_opening_hours_all_parse(conn):
    hours = conn.execute(text("""SELECT horaires FROM third_places WHERE demo UNION ALL
                                 SELECT horaires FROM digital_help_places WHERE demo""")).scalars().all()
    assert hours and all(hours)
    for value in set(hours) | set(PARAMS.opening_hours.all()):
        OpeningHours(value)  # raises opening_hours.ParserError on a bad string


def test_med_sites_follow_facts(conn):
    med = PARAMS.med
    assert scalar(conn, "SELECT count(*) FROM med_sites WHERE demo") == 90
    assert abs(scalar(conn, "SELECT sum(lignes) FROM med_sites WHERE demo") - 12_400) <= 0.05 * 12_400
    states = dict(conn.execute(text("SELECT statut, count(*) FROM med_sites WHERE demo GROUP BY 1")).all())
    assert states["ouvert"] == med.opened
    assert states["ouvert"] + states["receptionne"] == med.accepted
    assert states["ouvert"] + states["receptionne"] + states["installe"] == med.installed
    assert scalar(conn, """SELECT count(*) FROM med_sites m JOIN ftth_zones z USING (code_insee)
                           WHERE m.demo AND z.zone <> 'rip'""") == 0


def test_mobile_masts_departement_and_white_zone_programme(conn):
    assert scalar(conn, """SELECT count(*) FROM mobile_masts WHERE demo AND dispositif = 'departemental'
                           AND proprietaire = 'Département du Lot'""") == 17
    land = Territory.load(conn)
    for entry in PARAMS.mobile.white_zone_programme.communes:
        i, _ = land.lookup(entry.names)
        assert scalar(conn, """SELECT count(*) FROM mobile_masts WHERE demo AND dispositif = 'zone blanche centre-bourg'
                               AND code_insee = :code AND operateur_leader = :leader""",
                      code=land.code[i], leader=entry.leader) == 1, entry.names
    leaders = dict(conn.execute(text("""SELECT operateur_leader, count(*) FROM mobile_masts
        WHERE demo AND dispositif = 'zone blanche centre-bourg' GROUP BY 1""")).all())
    assert leaders == {"free": 11, "sfr": 3}
    # Free runs no 2G of its own; no 5G yet at the reference date.
    assert scalar(conn, "SELECT count(*) FROM mobile_masts WHERE demo AND '2G' = ANY(technos_free)") == 0
    total = scalar(conn, "SELECT count(*) FROM mobile_masts WHERE demo")
    assert 200 <= total <= 600


def test_white_zones_do_not_overlap_their_coverage(conn):
    rows = conn.execute(text("""
        SELECT z.operateur, z.technologie, ST_Area(ST_Transform(z.geom, 2154)),
               coalesce(ST_Area(ST_Transform(ST_Intersection(z.geom, cov.g), 2154)), 0)
        FROM white_zones z CROSS JOIN LATERAL (
          SELECT ST_Union(geom) AS g FROM mobile_coverage c
          WHERE c.demo AND c.technologie = z.technologie AND (z.operateur = 'tous' OR c.operateur = z.operateur)) cov
        WHERE z.demo""")).all()
    assert {(op, tech) for op, tech, _, _ in rows} >= {("tous", "4G"), ("tous", "2G"), ("orange", "4G")}
    for op, tech, area, overlap in rows:
        assert area > 0, (op, tech)
        assert overlap < 1.0, (op, tech, overlap)
    assert scalar(conn, "SELECT count(*) FROM white_zones WHERE demo AND population_estimee IS NULL") == 0


def test_white_zone_centres_bourgs_are_uncovered_until_their_mast_is_in_service(conn):
    covered = scalar(conn, """
        SELECT count(*) FROM mobile_masts m WHERE m.demo AND m.dispositif = 'zone blanche centre-bourg'
          AND m.statut <> 'en service' AND NOT EXISTS (SELECT 1 FROM white_zones z WHERE z.demo
              AND z.operateur = 'tous' AND z.technologie = '2G' AND ST_Intersects(z.geom, m.geom))""")
    assert covered == 0


def test_coverage_is_clipped_to_the_territory(conn):
    # Clipped in Lambert-93, stored in WGS84: reprojection leaves slivers of millimetres along the border.
    outside, total = conn.execute(text("""
        SELECT sum(ST_Area(ST_Transform(ST_Difference(c.geom, t.geom), 2154))), sum(ST_Area(ST_Transform(c.geom, 2154)))
        FROM mobile_coverage c, (SELECT ST_Union(geom) AS geom FROM territory) t WHERE c.demo""")).one()
    assert outside < 1e-6 * total


def test_report_and_load_journal(conn, demo_territory):
    assert demo_territory.seed == 46
    assert set(demo_territory.counts) == set(demo.LAYERS)
    assert demo_territory.counts["premises"] == scalar(conn, "SELECT count(*) FROM premises WHERE demo")
    assert "graine 46" in demo_territory.summary()
    assert demo_territory.duration_s > 0  # the time is reported; speed itself is measured in bench/, not tested
    details = scalar(conn, "SELECT details FROM dataset_loads WHERE kind = 'demo' ORDER BY id DESC LIMIT 1")
    assert details["seed"] == 46 and details["counts"]["premises"] == demo_territory.counts["premises"]
    assert demo.demo_present(conn)


def _checksums(conn: Connection, registry: LayerRegistry, demo_rows: bool) -> dict[str, tuple[int, str]]:
    """Per editable layer: row count and a digest of the rows (demo rows: without fid and updated_at)."""
    sums = {}
    for layer in registry:
        if not layer.editable:
            continue
        columns = [f.name for f in layer.fields] + ["geom", "source", "licence", "source_date", "import_id",
                                                     "updated_by", "version", "validation_state", "demo"]
        if not demo_rows:
            columns += ["fid", "updated_at"]
        row = f"md5(ROW({', '.join(columns)})::text)"
        sums[layer.id] = tuple(conn.execute(text(
            f"SELECT count(*), md5(string_agg({row}, ',' ORDER BY {row})) FROM {layer.id} WHERE demo = :demo"),
            {"demo": demo_rows}).one())
    return sums


def test_same_seed_same_rows_and_real_rows_untouched(conn, registry, settings):
    conn.execute(text("""
        INSERT INTO wifi_hotspots (borne_id, code_insee, commune, lieu, ssid, statut, geom, source, updated_by)
        SELECT 'REAL-0001', code_insee, nom, 'Salle des fêtes', 'WIFI public lotois', 'installee',
               ST_PointOnSurface(geom), 'saisie', 'agent' FROM communes WHERE code_insee = '46102'"""))
    demo_before = _checksums(conn, registry, demo_rows=True)
    real_before = _checksums(conn, registry, demo_rows=False)
    assert real_before["wifi_hotspots"][0] == 1
    report = demo.generate(conn, registry, settings.territory, seed=46)
    assert report.deleted == sum(n for n, _ in demo_before.values())
    assert _checksums(conn, registry, demo_rows=True) == demo_before
    assert _checksums(conn, registry, demo_rows=False) == real_before
    assert scalar(conn, "SELECT count(*) FROM wifi_hotspots WHERE borne_id = 'REAL-0001' AND NOT demo") == 1


def test_without_communes_the_demo_refuses_with_a_clear_message(conn, registry, settings):
    conn.execute(text("DELETE FROM communes"))
    with pytest.raises(demo.DemoError, match="geo-service load boundaries"):
        demo.generate(conn, registry, settings.territory, seed=46)


def test_another_territory_is_refused(conn, registry, settings):
    other = settings.territory.model_copy(update={"departement": "12"})
    with pytest.raises(demo.DemoError, match="département"):
        demo.generate(conn, registry, other, seed=46)


def test_commune_names_match_loosely_and_fail_loudly(conn):
    assert normalise("Le Boulvé") == normalise("Boulvé") == "boulve"
    assert normalise("Cœur de Causse") == "coeur de causse"
    assert normalise("Castelnau-Montratier-Sainte-Alauzie") == normalise("Castelnau Montratier-Sainte Alauzie")
    land = Territory.load(conn)
    assert land.code[land.find("Saint-Céré")] == "46251"
    assert land.lookup(["Belmontet", "Montcuq-en-Quercy-Blanc"]) == (land.index("46201"), 1)
    with pytest.raises(demo.DemoError, match="introuvable.*Atlantis"):
        land.lookup(["Atlantis"])
