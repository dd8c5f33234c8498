"""arcep-immeubles (Cartefibre) and arcep-mci (Ma connexion internet): row-level results, idempotence."""

from __future__ import annotations

from datetime import date

import pytest
from import_helpers import CARTEFIBRE, FIXTURES, counts, delete_imported, gzipped, issues, run, warnings
from sqlalchemy import text


@pytest.fixture(autouse=True)
def _territory(loaded_boundaries):
    return loaded_boundaries


def premises(conn, *columns: str) -> dict[str, tuple]:
    rows = conn.execute(text(f"SELECT imb_id, {', '.join(columns)} FROM premises WHERE imb_id LIKE 'IMB/%/TEST/%'"))
    return {r[0]: tuple(r[1:]) for r in rows}


def test_cartefibre_rows(conn, registry, settings):
    report = run(conn, registry, settings, "arcep-immeubles", CARTEFIBRE)
    assert (report.read, report.outside, report.kept, report.rejected) == (10, 1, 4, 5)
    assert issues(report) == {6: ["imb_etat"], 7: ["x, y"], 8: ["x, y"], 10: ["type_imb"], 11: ["code_insee"]}
    got = premises(conn, "numero", "adresse", "code_postal", "nb_logements", "etat", "type_imb", "pm_ref", "code_l331")
    assert got == {
        "IMB/46042/TEST/0001": ("12", "12 RUE DES LILAS, 46000 CAHORS", "46000", 1, "deploye", "PA",
                                "TEST_PM_CAHORS_01", "TEST"),
        "IMB/46042/TEST/0002": ("3 BIS", "3 BIS AVENUE JEAN JAURES, 46000 CAHORS", "46000", 12, "deploye", "IM",
                                "TEST_PM_CAHORS_01", "TEST"),
        "IMB/46042/TEST/0003": ("5", "5 IMPASSE DU PONT, 46000 CAHORS", "46000", 1, "en cours de deploiement", "PA",
                                "TEST_PM_CAHORS_01", "TEST"),
        "IMB/46102/TEST/0001": ("1", "1 PLACE CHAMPOLLION, 46100 FIGEAC", "46100", 2, "cible", "IM",
                                "TEST_PM_FIGEAC_01", "TEST"),
    }
    point = conn.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM premises WHERE imb_id = 'IMB/46042/TEST/0001'")).one()
    assert point == pytest.approx((1.44716, 44.45647))


def test_cabinets_sit_on_the_premise_nearest_their_premises_centroid(conn, registry, settings):
    run(conn, registry, settings, "arcep-immeubles", CARTEFIBRE)
    rows = conn.execute(text("""
        SELECT c.pm_ref, c.statut, c.nb_prises, c.date_mise_en_service, c.operateur, c.code_insee, p.imb_id
        FROM ftth_cabinets c JOIN premises p ON ST_Equals(p.geom, c.geom) AND NOT p.demo
        WHERE c.pm_ref LIKE 'TEST_PM_%' ORDER BY 1""")).all()
    # Cahors: the three premises' centroid is nearest to 0001 (the middle one); 1 + 12 + 1 premises.
    assert rows == [("TEST_PM_CAHORS_01", "deploye", 14, date(2024, 3, 15), "TEST", "46042", "IMB/46042/TEST/0001"),
                    ("TEST_PM_FIGEAC_01", "prevu", 2, None, "TEST", "46102", "IMB/46102/TEST/0001")]


def test_a_windows_1252_file_reads_with_its_accents(conn, registry, settings):
    report = run(conn, registry, settings, "arcep-immeubles", FIXTURES / "carte_fibre_immeubles_cp1252.csv")
    assert report.rejected == 0 and report.table("premises").inserted == 2
    assert any("cp1252" in note for note in report.notes)
    got = premises(conn, "nom_voie", "nom_commune", "code_postal", "etat", "nb_logements")
    assert got["IMB/46251/TEST/0001"] == ("RUE DE L'ÉGLISE", "SAINT-CÉRÉ", "46400", "raccordable demande", 1)
    assert got["IMB/46251/TEST/0002"] == ("PLACE DU MERCADIAL ŒUVRE", "SAINT-CÉRÉ", "46400", "deploye", 36)


def test_mci_buildings_give_ban_keys_and_exact_counts(conn, registry, settings, tmp_path):
    run(conn, registry, settings, "arcep-immeubles", CARTEFIBRE)
    report = run(conn, registry, settings, "arcep-mci", gzipped("base_imb_46.csv", tmp_path))
    assert (report.read, report.outside, report.kept, report.rejected) == (6, 1, 3, 2)
    assert issues(report) == {5: ["imb_nbr_logloc"], 7: ["imb_x, imb_y"]}
    table = report.table("premises")
    assert (table.inserted, table.updated, table.unchanged, table.unmatched) == (0, 2, 0, 1)
    got = premises(conn, "id_ban", "nb_logements", "version", "ST_X(geom)")
    assert got["IMB/46042/TEST/0001"] == ("46042_test01_00012", 1, 2, pytest.approx(1.44716))
    assert got["IMB/46042/TEST/0002"] == ("46042_test02_00003_bis", 18, 2, pytest.approx(1.44816))
    assert got["IMB/46102/TEST/0001"][:2] == (None, 2)
    # Cartefibre again: its lower bound (12) does not undo the exact count (18).
    again = run(conn, registry, settings, "arcep-immeubles", CARTEFIBRE)
    assert counts(again, "premises") == (0, 0, 4)
    assert premises(conn, "nb_logements")["IMB/46042/TEST/0002"] == (18,)


def test_mci_eligibility_per_operator_and_technology(conn, registry, settings, tmp_path):
    run(conn, registry, settings, "arcep-immeubles", CARTEFIBRE)
    report = run(conn, registry, settings, "arcep-mci", gzipped("actuel_46.csv", tmp_path))
    assert (report.read, report.outside, report.kept, report.rejected) == (8, 1, 4, 3)
    assert issues(report) == {7: ["code_techno"], 8: ["limitation"], 2: ["imb_id / code_operateur / code_techno"]}
    rows = conn.execute(text("""SELECT imb_id, code_operateur, code_techno, classe_debit_descendant,
        classe_debit_montant, limitation_go, saturation, id_ban FROM premise_eligibility ORDER BY 1, 2, 3""")).all()
    assert rows == [
        ("IMB/46042/TEST/0001", "BOUY", "4GF", "THD30", "HD3", 200, False, "46042_test01_00012"),
        ("IMB/46042/TEST/0001", "FRTE", "FO", "THD1G", "THD1G", None, False, "46042_test01_00012"),  # last line kept
        ("IMB/46042/TEST/0001", "SFR0", "FO", "THD1G", "THD100", None, False, "46042_test01_00012"),
        ("IMB/46042/TEST/0002", "FRTE", "CU", "HD3", "INEL", None, True, "46042_test02_00003_bis"),
    ]
    # An offer the file no longer lists for a building it describes is removed.
    conn.execute(text("""INSERT INTO premise_eligibility (imb_id, code_operateur, code_techno, source)
                         VALUES ('IMB/46042/TEST/0002', 'SFR0', 'CU', 'ancien import')"""))
    again = run(conn, registry, settings, "arcep-mci", gzipped("actuel_46.csv", tmp_path))
    assert counts(again, "premise_eligibility") == (0, 0, 4) and again.table("premise_eligibility").deleted == 1


def test_unknown_cabinet_state_is_deduced_and_reported(conn, registry, settings, tmp_path):
    odd = tmp_path / "carte_fibre_pm.csv"
    odd.write_text(CARTEFIBRE.read_text().replace("TEST_PM_CAHORS_01,deploye,", "TEST_PM_CAHORS_01,livre,"))
    report = run(conn, registry, settings, "arcep-immeubles", odd)
    assert any("déduit des immeubles" in reason for reason in warnings(report)[2])
    statut = conn.execute(text("SELECT statut FROM ftth_cabinets WHERE pm_ref = 'TEST_PM_CAHORS_01'")).scalar()
    assert statut == "deploye"


@pytest.fixture
def committed(engine):
    yield engine
    delete_imported(engine, ("premises", "ftth_cabinets", "premise_eligibility"))


def test_a_second_import_changes_nothing_at_all(committed, registry, settings, tmp_path):
    """Committed imports: importing the same file again inserts and updates nothing, and leaves updated_at,
    version and the layer change counters exactly as they were."""
    snapshot = """SELECT imb_id, updated_at, version, import_id FROM premises WHERE imb_id LIKE 'IMB/%/TEST/%'
                  UNION ALL SELECT pm_ref, updated_at, version, import_id FROM ftth_cabinets
                            WHERE pm_ref LIKE 'TEST_PM%'
                  UNION ALL SELECT imb_id || code_operateur || code_techno, updated_at, 0, import_id
                            FROM premise_eligibility ORDER BY 1"""
    changes = "SELECT layer_id, version FROM layer_changes ORDER BY 1"
    files = [("arcep-immeubles", CARTEFIBRE, {"premises": (0, 0, 4), "ftth_cabinets": (0, 0, 2)}),
             ("arcep-mci", gzipped("base_imb_46.csv", tmp_path), {"premises": (0, 0, 2)}),
             ("arcep-mci", gzipped("actuel_46.csv", tmp_path), {"premise_eligibility": (0, 0, 4)})]
    for kind, path, expected in files:
        with committed.begin() as conn:
            first = run(conn, registry, settings, kind, path)
        assert first.changed > 0
        with committed.connect() as conn:
            before, counters = conn.execute(text(snapshot)).all(), conn.execute(text(changes)).all()
        with committed.begin() as conn:
            again = run(conn, registry, settings, kind, path)
        assert {table: counts(again, table) for table in expected} == expected, kind
        assert again.changed == 0 and again.rejected == first.rejected
        with committed.connect() as conn:
            assert conn.execute(text(snapshot)).all() == before, kind
            assert conn.execute(text(changes)).all() == counters, kind


def test_the_offers_at_an_address_read_like_arceps_site(conn, registry, settings, tmp_path):
    from geo_service.services.resident.eligibility import offers

    run(conn, registry, settings, "arcep-immeubles", CARTEFIBRE)
    run(conn, registry, settings, "arcep-mci", gzipped("actuel_46.csv", tmp_path))
    found = offers(conn, id_ban="46042_test01_00012")
    assert [(o.technology, o.operator, o.download) for o in found] == [
        ("Fibre optique (FTTH)", "Orange", "1 Gbit/s et plus"), ("Fibre optique (FTTH)", "SFR", "1 Gbit/s et plus"),
        ("4G fixe", "Bouygues Telecom", "de 30 à 100 Mbit/s")]
    assert found[2].data_cap_gb == 200
    assert offers(conn, imb_id="IMB/46042/TEST/0002")[0].saturated is True
    assert offers(conn) == []
