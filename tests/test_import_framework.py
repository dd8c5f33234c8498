"""The import framework: value parsing, projections, sniffing, refusals, reports, dry runs, URLs."""

from __future__ import annotations

import functools
import http.server
import threading
from datetime import date

import pytest
from import_helpers import CARTEFIBRE, FIXTURES, gzipped, run
from pyproj import Transformer
from sqlalchemy import text

from geo_service.errors import ImportFileError
from geo_service.services.importers import guess_source_date, kinds
from geo_service.services.importers.formats.mast_keys import STATIONS_MERGE
from geo_service.services.importers.framework import coordinates
from geo_service.services.importers.framework.csv_table import sniff_delimiter, sniff_encoding
from geo_service.services.importers.framework.import_report import IssueLog, TableCounts
from geo_service.services.importers.framework.staging import Stage, Target
from geo_service.services.importers.framework.validation import Validator
from geo_service.services.importers.framework.values import dms_to_decimal, parse_date, parse_float, parse_int
from geo_service.tables import metadata_for


@pytest.fixture(autouse=True)
def _territory(loaded_boundaries):
    return loaded_boundaries


def test_dms_sign_applies_to_the_whole_value():
    assert dms_to_decimal(1, 30, 30, "W") == pytest.approx(-1.508333, abs=1e-6)
    assert dms_to_decimal(1, 30, 30, "E") == pytest.approx(1.508333, abs=1e-6)
    assert dms_to_decimal(44, 46, 4, "N") == pytest.approx(44.767778, abs=1e-6)
    assert dms_to_decimal(0, 30, 0, "S") == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="DMS invalide"):
        dms_to_decimal(44, 75, 0, "N")
    with pytest.raises(ValueError, match="hémisphère"):
        dms_to_decimal(44, 1, 0, "X")


def test_numbers_dates_and_codes_as_producers_write_them():
    assert parse_float("25,5") == 25.5 and parse_float("25.5") == 25.5 and parse_float("1 234,5") == 1234.5
    assert parse_int("10000.0") == 10000
    with pytest.raises(ValueError, match="entier"):
        parse_int("12,5")
    assert parse_date("15/03/2012") == parse_date("2012-03-15") == date(2012, 3, 15)
    with pytest.raises(ValueError, match="AAAA-MM-JJ"):
        parse_date("2019-13-45")


@pytest.mark.parametrize(("crs", "x", "y"), [(coordinates.WEB_MERCATOR, 161097.11, 5536355.86),
                                             (coordinates.LAMBERT93, 598387.9, 6408466.2)])
def test_projected_points_land_within_a_centimetre_of_pyproj(crs, x, y):
    lon, lat = coordinates.point(str(x), str(y), crs)
    expected = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    # Back to the source system: the distance is then in metres.
    back = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    bx, by = back.transform(lon, lat)
    ex, ey = back.transform(*expected)
    assert ((bx - ex) ** 2 + (by - ey) ** 2) ** 0.5 < 0.01
    assert coordinates.point(str(x).replace(".", ","), str(y).replace(".", ","), crs) == (lon, lat)


def test_coordinates_in_the_wrong_system_are_named():
    with pytest.raises(ValueError, match="inversées"):
        coordinates.point("44.7", "1.7", coordinates.WGS84)
    with pytest.raises(ValueError, match="Lambert-93"):
        coordinates.point("598387.9", "6408466.2", coordinates.WGS84)
    with pytest.raises(ValueError, match="illisibles"):
        coordinates.point("abc", "44.6", coordinates.WGS84)


def test_encoding_and_separator_sniffing():
    assert sniff_encoding("é;à\n".encode()) == "utf-8"
    assert sniff_encoding(b"\xef\xbb\xbfid;nom\n") == "utf-8-sig"
    assert sniff_encoding("SUP_ID;ADR_LB_LIEU\n1;CHÂTEAU D'EAU ÉLEVÉ\n".encode("cp1252")) == "cp1252"
    assert sniff_delimiter("a;b;c") == ";" and sniff_delimiter('"a","b;c","d"') == ","
    with pytest.raises(ImportFileError, match="séparateur"):
        sniff_delimiter("une seule colonne")


def test_date_of_the_data_from_the_file_name():
    assert guess_source_date("carte_fibre_immeubles_2026_T2_20260902.csv", None) == date(2026, 9, 2)
    assert guess_source_date("2026_T1_sites_Metropole.csv", None) == date(2026, 3, 31)
    assert guess_source_date("20241031-export-etalab-data.zip", None) == date(2024, 10, 31)
    assert guess_source_date("adresses-46.csv.gz", date(2026, 1, 5)) == date(2026, 1, 5)


def test_every_kind_is_listed_with_a_french_description():
    listed = kinds()
    assert list(listed) == ["arcep-immeubles", "arcep-mci", "arcep-sites", "arcep-couverture", "arcep-dcc", "anfr",
                            "ban", "mednum", "france-services", "tiers-lieux", "generic"]
    for kind in listed.values():
        assert kind.description and kind.targets and kind.licence and kind.dataset


def test_a_file_without_a_required_column_is_refused_whole(conn, registry, settings):
    before = conn.execute(text("SELECT count(*) FROM premises")).scalar()
    with pytest.raises(ImportFileError, match="colonne\\(s\\) manquante\\(s\\) : imb_etat"):
        run(conn, registry, settings, "arcep-immeubles", FIXTURES / "carte_fibre_sans_imb_etat.csv")
    assert conn.execute(text("SELECT count(*) FROM premises")).scalar() == before


def test_missing_files_and_unknown_kinds_are_refused_in_french(conn, registry, settings, tmp_path):
    with pytest.raises(ImportFileError, match="fichier introuvable"):
        run(conn, registry, settings, "ban", tmp_path / "absent.csv")
    with pytest.raises(ImportFileError, match="type d'import inconnu"):
        run(conn, registry, settings, "cadastre", CARTEFIBRE)
    empty = tmp_path / "vide.csv"
    empty.write_text("")
    with pytest.raises(ImportFileError, match="fichier vide"):
        run(conn, registry, settings, "ban", empty)
    binary = tmp_path / "image.csv"
    binary.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(ImportFileError, match="binaire"):
        run(conn, registry, settings, "ban", binary)


def test_a_truncated_gzip_is_refused(conn, registry, settings, tmp_path):
    whole = gzipped("base_imb_46.csv", tmp_path).read_bytes()
    cut = tmp_path / "base_imb_46.csv.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ImportFileError, match="tronqué"):
        run(conn, registry, settings, "arcep-mci", cut)


def test_the_table_of_an_archive_is_found_among_other_files(conn, registry, settings, tmp_path):
    import zipfile

    archive = tmp_path / "2026t2-immeuble.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("LISEZMOI.pdf", b"%PDF-1.4\x00\x01binaire")
        z.write(CARTEFIBRE, f"2026t2-immeuble/{CARTEFIBRE.name}")
    report = run(conn, registry, settings, "arcep-immeubles", archive)
    assert report.table("premises").inserted == 4 and report.rejected == 5


def test_dry_run_counts_everything_and_writes_nothing(conn, registry, settings):
    report = run(conn, registry, settings, "arcep-immeubles", CARTEFIBRE, dry_run=True)
    assert report.dry_run and report.table("premises").inserted == 4
    assert "Simulation" in report.summary()
    assert conn.execute(text("SELECT count(*) FROM premises WHERE imb_id LIKE 'IMB/%/TEST/%'")).scalar() == 0
    assert conn.execute(text("SELECT count(*) FROM dataset_loads WHERE kind = 'import'")).scalar() == 0


def test_the_report_file_lists_every_issue(conn, registry, settings, tmp_path):
    report = run(conn, registry, settings, "arcep-immeubles", CARTEFIBRE)
    path = tmp_path / "rejets.csv"
    report.issues.write_file(path)
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "fichier;ligne;colonne;valeur;motif;suite"
    assert len(lines) == 1 + report.issues.total == 6
    assert any(";6;imb_etat;inconnu;" in line and "ligne rejetée" in line for line in lines)


def test_the_import_is_journaled_with_its_file_and_counts(conn, registry, settings):
    report = run(conn, registry, settings, "arcep-immeubles", CARTEFIBRE, user="agent-sig")
    details = conn.execute(text("SELECT details FROM dataset_loads WHERE kind = 'import' ORDER BY id DESC LIMIT 1")
                           ).scalar()
    assert details["import_id"] == report.import_id and details["file"] == CARTEFIBRE.name
    assert details["user"] == "agent-sig" and details["source_date"] == "2026-09-02"
    assert details["tables"]["premises"]["ajoutees"] == 4 and details["rejetees"] == 5
    row = conn.execute(text("SELECT source, licence, source_date, import_id, updated_by FROM premises "
                            "WHERE imb_id = 'IMB/46042/TEST/0001'")).one()
    assert row == (report.dataset, "Licence Ouverte (Etalab)", date(2026, 9, 2), report.import_id, "agent-sig")


def test_a_new_row_is_written_as_its_merges_make_it(conn, registry):
    """A merged column of a new row holds what its merge makes of the row (here a sorted union without
    repeats), not the staged value: staging the same row again finds it unchanged and writes nothing."""
    target = Target.of(metadata_for(registry).tables["mobile_masts"], ("id_station_anfr",),
                       ("nom", "code_insee", "operateurs", "dispositif", "statut", "stations_anfr"),
                       merge={"stations_anfr": STATIONS_MERGE})
    row = {"id_station_anfr": "0460000091", "nom": "Site d'essai", "code_insee": "46042",
           "operateurs": ["sfr", "bouygues"], "dispositif": "commercial", "statut": "en service",
           "stations_anfr": ["0460000092", "0460000091", "0460000092"]}
    state = """SELECT m.stations_anfr, m.version, c.version FROM mobile_masts m
               JOIN layer_changes c ON c.layer_id = 'mobile_masts' WHERE m.id_station_anfr = '0460000091'"""
    found = []
    for _ in range(2):
        stage = Stage(conn, target, "sites.csv", IssueLog())
        stage.add(2, row, coordinates.point_ewkb(1.44, 44.45))
        stage.finish()
        counts = stage.upsert({}, TableCounts("mobile_masts"))
        stage.drop()
        found.append(((counts.inserted, counts.updated, counts.unchanged), conn.execute(text(state)).one()))
    (first, written), (second, again) = found
    assert first == (1, 0, 0) and written[0] == ["0460000091", "0460000092"]
    assert second == (0, 0, 1) and again == written


@pytest.fixture
def http_folder(tmp_path):
    """A local HTTP server on 127.0.0.1 serving a temporary folder; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


def test_a_url_is_downloaded_then_imported_like_a_file(conn, registry, settings, http_folder):
    folder, base = http_folder
    (folder / CARTEFIBRE.name).write_bytes(CARTEFIBRE.read_bytes())
    gzipped("base_imb_46.csv", folder)
    report = run(conn, registry, settings, "arcep-immeubles", f"{base}/{CARTEFIBRE.name}")
    assert report.source == CARTEFIBRE.name and report.source_date == date(2026, 9, 2)
    assert report.table("premises").inserted == 4 and report.rejected == 5
    mci = run(conn, registry, settings, "arcep-mci", f"{base}/base_imb_46.csv.gz")
    assert mci.table("premises").updated == 2
    with pytest.raises(ImportFileError, match="404"):
        run(conn, registry, settings, "arcep-immeubles", f"{base}/absent.csv")


def test_repeated_values_are_refused_the_same_way_on_every_row(registry):
    """Each field's verdict on a value is remembered: the 2nd, 3rd… row with it get the same typed values and
    the same French reasons as the first, in the same order, and each row owns its lists."""
    premises = Validator(registry.get("premises"), only=("imb_id", "code_insee", "nb_logements", "etat"))
    rows = [{"imb_id": f"IMB/46042/X/{i}", "code_insee": "4604", "nb_logements": "0", "etat": "fini"}
            for i in range(3)] + [{"imb_id": "IMB/46042/X/9", "code_insee": "46042", "nb_logements": "2,5",
                                   "etat": "deploye"}]
    checked = [premises.check(row) for row in rows]
    fresh = [Validator(registry.get("premises"), only=("imb_id", "code_insee", "nb_logements", "etat")).check(row)
             for row in rows]
    assert checked == fresh
    reasons = [dict(problems) for _, problems in checked]
    assert reasons[0] == reasons[1] == reasons[2]
    assert [name for name, _ in checked[2][1]] == ["code_insee", "nb_logements", "etat"]
    assert "ne respecte pas le format attendu" in reasons[2]["code_insee"]
    assert reasons[2]["nb_logements"] == "0 est inférieur au minimum 1 locaux"
    assert reasons[2]["etat"].startswith("valeur « fini » hors de la liste (")
    assert checked[3][1] == [("nb_logements", "nombre entier attendu, lu « 2,5 »")]
    assert checked[3][0]["nb_logements"] is None and checked[3][0]["etat"] == "deploye"
    # A value left empty on purpose (the commune found later from the point) is not « missing » on any row.
    for _ in range(2):
        values, problems = premises.check({"imb_id": "IMB/1", "nb_logements": "1", "etat": "deploye"},
                                          skip_required=frozenset({"code_insee"}))
        assert problems == [] and values["code_insee"] is None
    places = Validator(registry.get("digital_help_places"), only=("publics",))
    first, _ = places.check({"publics": "Jeunes|Seniors"})
    first["publics"].append("changé")
    again, problems = places.check({"publics": "Jeunes|Seniors"})
    assert again["publics"] == ["Jeunes", "Seniors"] and problems == []
    assert places.check({"publics": "Jeunes|Anciens"})[1] == places.check({"publics": "Jeunes|Anciens"})[1] != []
