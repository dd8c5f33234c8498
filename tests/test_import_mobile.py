"""arcep-sites, anfr, arcep-dcc and arcep-couverture, and the white zones computed from real coverage."""

from __future__ import annotations

from datetime import date

import pytest
import shapely
from import_helpers import (
    FIXTURES,
    GRAMAT_L93,
    counts,
    coverage_gpkg,
    delete_imported,
    issues,
    run,
    square_around,
    zipped,
)
from pyproj import Transformer
from sqlalchemy import text

from geo_service.services.importers import white_zone_compute

SITES = FIXTURES / "2026_T1_sites_Metropole.csv"
# Sites shared by two operators: one station for both (RAN sharing), and one station each.
SHARED_SITES = FIXTURES / "2026_T2_sites_Metropole.csv"
MAST_COLUMNS = ("operateurs", "technos_orange", "technos_sfr", "technos_free", "technos_bouygues", "dispositif",
                "site_zb", "site_dcc", "site_strategique", "stations_anfr", "statut", "hauteur_m", "proprietaire",
                "systemes", "date_mise_en_service")


@pytest.fixture(autouse=True)
def _territory(loaded_boundaries):
    return loaded_boundaries


def masts(conn) -> dict[str, dict]:
    rows = conn.execute(text(f"SELECT id_station_anfr, {', '.join(MAST_COLUMNS)} FROM mobile_masts WHERE NOT demo"))
    return {r[0]: dict(zip(MAST_COLUMNS, r[1:], strict=True)) for r in rows}


def test_sites_one_mast_per_physical_site(conn, registry, settings):
    report = run(conn, registry, settings, "arcep-sites", SITES)
    assert (report.read, report.outside, report.kept, report.rejected) == (10, 1, 4, 5)
    assert issues(report) == {6: ["code_op"], 7: ["longitude, latitude"], 8: ["longitude, latitude"],
                              10: ["id_station_anfr"], 11: ["site_4g"]}
    got = masts(conn)
    assert set(got) == {"0460000001", "0460000003", "0460000004"}
    gramat = got["0460000001"]
    # Orange and SFR rows at the same position (one with decimal commas and a lost leading zero): one mast.
    assert gramat["operateurs"] == ["orange", "sfr"] and gramat["stations_anfr"] == ["0460000001", "0460000002"]
    assert gramat["technos_orange"] == ["2G", "3G", "4G", "5G"] and gramat["technos_sfr"] == ["2G", "3G", "4G"]
    assert (gramat["dispositif"], gramat["statut"]) == ("commercial", "en service")
    assert (got["0460000003"]["dispositif"], got["0460000003"]["site_zb"]) == ("zone blanche centre-bourg", True)
    latronquiere = got["0460000004"]
    assert latronquiere["dispositif"] == "couverture ciblee"
    assert (latronquiere["site_dcc"], latronquiere["site_strategique"]) == (True, True)


def test_sites_keep_a_departemental_mast_and_its_edited_name(conn, registry, settings):
    run(conn, registry, settings, "arcep-sites", SITES)
    conn.execute(text("""UPDATE mobile_masts SET dispositif = 'departemental', nom = 'Pylône du Pech'
                         WHERE id_station_anfr = '0460000001'"""))
    again = run(conn, registry, settings, "arcep-sites", SITES)
    assert counts(again, "mobile_masts") == (0, 0, 3)
    row = conn.execute(text("SELECT dispositif, nom FROM mobile_masts WHERE id_station_anfr = '0460000001'")).one()
    assert row == ("departemental", "Pylône du Pech")


@pytest.fixture
def committed(engine):
    yield engine
    delete_imported(engine, ("mobile_masts",))


def test_a_second_import_of_shared_sites_writes_nothing(committed, registry, settings):
    """Committed imports of a file where two operators share sites: the same file again inserts, updates and
    deletes nothing, and leaves updated_at, version and the layer change counter exactly as they were."""
    snapshot = """SELECT id_station_anfr, stations_anfr, updated_at, version, import_id FROM mobile_masts
                  WHERE NOT demo ORDER BY 1"""
    changes = "SELECT version FROM layer_changes WHERE layer_id = 'mobile_masts'"
    with committed.begin() as conn:
        first = run(conn, registry, settings, "arcep-sites", SHARED_SITES)
    assert counts(first, "mobile_masts") == (3, 0, 0) and (first.kept, first.rejected) == (5, 0)
    with committed.connect() as conn:
        got = masts(conn)
        before, counter = conn.execute(text(snapshot)).all(), conn.execute(text(changes)).scalar_one()
    # SFR and Bouygues on one station: one mast, the station listed once.
    figeac = got["0460000021"]
    assert (figeac["operateurs"], figeac["stations_anfr"]) == (["sfr", "bouygues"], ["0460000021"])
    assert (figeac["technos_sfr"], figeac["technos_bouygues"]) == (["2G", "3G", "4G"], ["4G"])
    # Orange and Free on a station each, Free's listed first: keyed by the smallest station.
    souillac = got["0460000031"]
    assert (souillac["operateurs"], souillac["stations_anfr"]) == (["orange", "free"], ["0460000031", "0460000032"])
    with committed.begin() as conn:
        again = run(conn, registry, settings, "arcep-sites", SHARED_SITES)
    masts_again = again.table("mobile_masts")
    assert (masts_again.inserted, masts_again.updated, masts_again.deleted, masts_again.unchanged) == (0, 0, 0, 3)
    assert again.changed == 0 and (again.kept, again.rejected) == (first.kept, first.rejected)
    with committed.connect() as conn:
        assert conn.execute(text(snapshot)).all() == before
        assert conn.execute(text(changes)).scalar_one() == counter


def test_anfr_enriches_arcep_masts_and_adds_new_ones(conn, registry, settings, tmp_path):
    run(conn, registry, settings, "arcep-sites", SITES)
    export = zipped("anfr", tmp_path / "20261031-export-etalab-data.zip")
    report = run(conn, registry, settings, "anfr", export)
    assert report.source_date == date(2026, 10, 31)
    assert (report.read, report.outside, report.rejected) == (8, 1, 2)
    assert issues(report) == {8: ["COR_NB_*_LAT/LON"], 9: ["SUP_NM_HAUT"]}
    assert counts(report, "mobile_masts") == (1, 2, 0)
    got = masts(conn)
    gramat = got["0460000001"]
    assert (gramat["hauteur_m"], gramat["proprietaire"]) == (32.5, "TDF")  # decimal comma, reference table
    assert gramat["systemes"] == ["5G NR 3500", "GSM 900", "LTE 1800", "LTE 800", "UMTS 2100"]
    assert gramat["date_mise_en_service"] == date(2012, 3, 15)
    assert gramat["technos_sfr"] == ["2G", "3G", "4G"]  # ARCEP's, not the ANFR systems'
    assert got["0460000003"]["proprietaire"] == "Commune"
    cajarc = got["0460000010"]
    assert (cajarc["operateurs"], cajarc["technos_bouygues"], cajarc["statut"]) == (["bouygues"], ["4G"], "projete")
    assert cajarc["proprietaire"] == "Département"  # Windows-1252 « é »
    # DMS 44°29'30"N 1°50'31"E, the sign applied to the whole value.
    lon, lat = conn.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM mobile_masts WHERE id_station_anfr = "
                                 "'0460000010'")).one()
    assert (lon, lat) == pytest.approx((1 + 50 / 60 + 31 / 3600, 44 + 29 / 60 + 30 / 3600))
    again = run(conn, registry, settings, "anfr", export)
    assert counts(again, "mobile_masts") == (0, 0, 3)
    assert counts(run(conn, registry, settings, "arcep-sites", SITES), "mobile_masts") == (0, 0, 3)


def test_anfr_without_its_operator_table_is_refused(conn, registry, settings, tmp_path):
    from geo_service.errors import ImportFileError

    partial = tmp_path / "anfr"
    partial.mkdir()
    for name in ("SUP_SUPPORT.txt", "SUP_STATION.txt", "SUP_EMETTEUR.txt"):
        (partial / name).write_bytes((FIXTURES / "anfr" / name).read_bytes())
    with pytest.raises(ImportFileError, match="SUP_EXPLOITANT.txt introuvable"):
        run(conn, registry, settings, "anfr", partial)


def test_dcc_points_and_sites(conn, registry, settings):
    poi = run(conn, registry, settings, "arcep-dcc", FIXTURES / "2026_T1_dcc_Metropole_POI.csv")
    assert (poi.read, poi.outside, poi.kept, poi.rejected) == (5, 1, 2, 2)
    assert issues(poi) == {5: ["date_publication_arrete"], 6: ["x_lambert_93, y_lambert_93"]}
    sites = run(conn, registry, settings, "arcep-dcc", FIXTURES / "2026_T1_dcc_Metropole_sites.csv")
    assert (sites.read, sites.kept, sites.rejected) == (4, 2, 2)
    assert issues(sites) == {4: ["op_leader"], 5: ["x_lambert_93, y_lambert_93"]}
    rows = conn.execute(text("""SELECT dcc_id, objet, code_insee, operateurs, operateur_leader, etat, date_arrete
                                FROM targeted_coverage ORDER BY 1""")).all()
    assert rows == [
        ("point-9001", "point", "46038", ["orange", "sfr", "bouygues", "free"], None, "identifie", date(2018, 7, 8)),
        ("point-9002", "point", "46231", ["sfr"], None, "identifie", date(2019, 3, 15)),
        ("site-2018-1-1", "site", "46038", ["orange", "sfr", "bouygues", "free"], "free", "en service",
         date(2018, 7, 8)),
        ("site-2019-3-2", "site", "46231", ["sfr"], "sfr", "demande sous 6 mois", date(2019, 3, 15)),
    ]
    # The Lambert-93 point lands within a centimetre of pyproj's conversion.
    lon, lat = conn.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM targeted_coverage WHERE dcc_id = 'point-9001'")
                            ).one()
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True).transform(lon, lat)
    assert ((x - 608096.8) ** 2 + (y - 6424611.6) ** 2) ** 0.5 < 0.01


# --- coverage and white zones ---------------------------------------------------------------------------
ORANGE_BC = square_around(GRAMAT_L93, -6000, -4000, 2000, 4000)  # 64 km²
SFR_TBC = square_around(GRAMAT_L93, -2000, -3000, 6000, 3000)    # 48 km², overlapping Orange's by 24 km²


def _coverage_file(tmp_path):
    common = {"date": "2026-03-31", "techno": "4G", "usage": "data", "dept": "46"}
    return coverage_gpkg(tmp_path / "2026_T1_couv_Metropole_TEST_4G_data.gpkg", [
        {**common, "operateur": 20801, "operateur_commercial": "Orange", "niveau": "BC", "box": ORANGE_BC},
        {**common, "operateur": 20810, "operateur_commercial": "SFR", "niveau": "TBC", "box": SFR_TBC},
        {**common, "operateur": 20810, "operateur_commercial": "SFR", "niveau": "XX",
         "box": square_around(GRAMAT_L93, 0, 0, 100, 100)},
        {**common, "operateur": 20801, "operateur_commercial": "Orange", "niveau": "",  # empty level: CL
         "box": square_around(GRAMAT_L93, 20000, 0, 21000, 1000)},
        {**common, "operateur": 20801, "operateur_commercial": "Orange", "niveau": "CL",
         "box": (650000, 6860000, 652000, 6862000)},  # Paris
    ])


def test_coverage_is_merged_per_operator_technology_level(conn, registry, settings, tmp_path):
    report = run(conn, registry, settings, "arcep-couverture", _coverage_file(tmp_path))
    assert (report.read, report.outside, report.kept, report.rejected) == (5, 1, 3, 1)
    assert issues(report) == {3: ["niveau"]}
    rows = conn.execute(text("""SELECT couverture_id, operateur, niveau, date_reference,
        round(ST_Area(ST_Transform(geom, 2154)))::bigint FROM mobile_coverage WHERE NOT demo ORDER BY 1""")).all()
    assert [r[:4] for r in rows] == [("orange-4G-data-BC", "orange", "BC", date(2026, 3, 31)),
                                     ("orange-4G-data-CL", "orange", "CL", date(2026, 3, 31)),
                                     ("sfr-4G-data-TBC", "sfr", "TBC", date(2026, 3, 31))]
    assert [r[4] for r in rows] == pytest.approx([64e6, 1e6, 48e6], rel=1e-6)


def _l93(conn, sql: str, **params):
    return shapely.from_wkb(conn.execute(text(f"SELECT ST_AsBinary(ST_Transform(({sql}), 2154))"), params).scalar())


def test_white_zones_from_two_overlapping_coverages(conn, registry, settings, tmp_path):
    run(conn, registry, settings, "arcep-immeubles", FIXTURES / "carte_fibre_immeubles_2026_T2_20260902.csv")
    report = run(conn, registry, settings, "arcep-couverture", _coverage_file(tmp_path))
    assert report.table("white_zones").inserted == 3
    territory = _l93(conn, "SELECT ST_Union(geom) FROM territory")
    orange, sfr = shapely.box(*ORANGE_BC), shapely.box(*SFR_TBC)
    expected = {"tous": territory.difference(orange.union(sfr)), "orange": territory.difference(orange),
                "sfr": territory.difference(sfr)}
    rows = conn.execute(text("""SELECT operateur, niveau, surface_km2, locaux, population_estimee FROM white_zones
                                WHERE NOT demo AND technologie = '4G' ORDER BY 1""")).all()
    assert [r[:2] for r in rows] == [("orange", "BC"), ("sfr", "BC"), ("tous", "BC")]
    for operator, _, surface_km2, locaux, population in rows:
        actual = _l93(conn, "SELECT geom FROM white_zones WHERE NOT demo AND technologie = '4G' AND operateur = :op",
                      op=operator)
        assert actual.area == pytest.approx(expected[operator].area, rel=1e-3)
        assert surface_km2 == pytest.approx(expected[operator].area / 1e6, rel=1e-3)
        # The holes are the coverage itself: what is missing from the territory is the squares' area.
        holes = territory.area - actual.area
        assert holes == pytest.approx(territory.area - expected[operator].area, rel=1e-3)
        assert actual.symmetric_difference(expected[operator]).area < 1e-3 * (territory.area - expected[operator].area)
        # The fixture premises (Cahors, Figeac: 1 + 12 + 1 + 2 premises) are far from the squares.
        assert locaux == 16 and population > 0


def test_white_zones_at_a_stricter_level_and_from_the_service(conn, registry, settings, tmp_path):
    run(conn, registry, settings, "arcep-couverture", _coverage_file(tmp_path))
    result = white_zone_compute.compute(conn, "4G", "TBC")
    assert result.operators == ("sfr",) and result.rows == 2 and result.deleted == 3
    territory = _l93(conn, "SELECT ST_Union(geom) FROM territory")
    tous = _l93(conn, "SELECT geom FROM white_zones WHERE NOT demo AND operateur = 'tous' AND technologie = '4G'")
    assert tous.area == pytest.approx(territory.difference(shapely.box(*SFR_TBC)).area, rel=1e-3)
    assert white_zone_compute.last_level(conn, "4G") == "TBC"
    # Re-importing unchanged coverage leaves the white zones alone (their level included).
    again = run(conn, registry, settings, "arcep-couverture", _coverage_file(tmp_path))
    assert counts(again, "mobile_coverage") == (0, 0, 3) and again.table("white_zones").inserted == 0
    assert conn.execute(text("SELECT count(*) FROM white_zones WHERE NOT demo AND niveau = 'TBC'")).scalar() == 2
