"""ban, mednum, france-services, tiers-lieux and generic: row-level results."""

from __future__ import annotations

import zipfile
from datetime import date

import geopandas as gpd
import pytest
from import_helpers import FIXTURES, counts, issues, run, warnings
from shapely.geometry import Point
from sqlalchemy import text

from geo_service.errors import ImportFileError
from geo_service.services.importers.formats.france_services import to_opening_hours


@pytest.fixture(autouse=True)
def _territory(loaded_boundaries):
    return loaded_boundaries


def test_ban_addresses(conn, registry, settings):
    report = run(conn, registry, settings, "ban", FIXTURES / "adresses-46.csv")
    assert (report.read, report.outside, report.kept, report.rejected) == (7, 1, 4, 2)
    assert issues(report) == {7: ["numero", "id"], 8: ["lon, lat"]}
    rows = conn.execute(text("""SELECT id, numero, rep, nom_voie, code_postal, code_insee, nom_commune, source
                                FROM addresses ORDER BY id""")).all()
    assert [r[0] for r in rows] == ["46042_test01_00012", "46042_test02_00003_bis", "46102_test04_00001",
                                    "46128_test05_99999"]
    assert rows[1][1:4] == (3, "bis", "Avenue Jean Jaurès")
    assert rows[3][3] == "Le Pech"  # a toponym: its lieu-dit
    # Without lon/lat, the legal projection (Lambert-93) places it.
    lon, lat = conn.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM addresses WHERE id = '46128_test05_99999'")).one()
    assert (lon, lat) == pytest.approx((1.71576, 44.7679), abs=1e-6)
    assert counts(run(conn, registry, settings, "ban", FIXTURES / "adresses-46.csv"), "addresses") == (0, 0, 4)


def test_mednum_places(conn, registry, settings):
    report = run(conn, registry, settings, "mednum", FIXTURES / "lieux-de-mediation-numerique.csv")
    assert (report.read, report.outside, report.kept, report.rejected) == (7, 1, 3, 3)
    assert issues(report) == {5: ["services"], 7: ["pivot"], 8: ["longitude, latitude"]}
    assert set(warnings(report)) == {3}  # two fees, hours not in OSM syntax
    rows = {r[0]: r[1:] for r in conn.execute(text("""
        SELECT lieu_id, categorie, code_insee, commune, services, publics, horaires, dispositifs, frais, telephone,
               courriel, date_maj FROM digital_help_places WHERE NOT demo"""))}
    assert rows["test-mednum-1"] == (
        "mediatheque", "46128", "Gramat", ["Accès internet et matériel informatique",
                                           "Maîtrise des outils numériques du quotidien"], ["Seniors", "Jeunes"],
        "Mo-Fr 09:00-12:00,14:00-18:00; Sa 09:00-12:00", ["Conseillers numériques"], "Gratuit", "05 65 00 00 01",
        "contact@mediatheque.example", date(2024, 5, 2))
    # No commune code: the commune under the point.
    assert rows["test-mednum-2"][:3] == ("association", "46102", "Figeac")
    assert rows["test-mednum-2"][5] is None and rows["test-mednum-2"][7] == "Gratuit"
    assert rows["test-mednum-3"][0] == "france services"


def test_france_services_hours_are_converted_to_osm():
    days = {"h_lundi": "09:00 - 12:00 / 14:00 - 17:00", "h_mardi": "09:00 - 12:00 / 14:00 - 17:00",
            "h_mercredi": "", "h_jeudi": "09:00 - 12:00 / 14:00 - 17:00", "h_vendredi": "9h00 - 12h",
            "h_samedi": "09:00 - 14:00 / 11:00 - 12:30"}
    hours, notes = to_opening_hours(days)
    assert hours == "Mo-Tu 09:00-12:00,14:00-17:00; Th 09:00-12:00,14:00-17:00; Fr 09:00-12:00; Sa 09:00-14:00"
    assert notes == ["samedi : créneaux qui se chevauchent fusionnés"]
    assert to_opening_hours(dict.fromkeys(days, "")) == (None, ["aucun horaire renseigné"])


def test_france_services_places(conn, registry, settings):
    report = run(conn, registry, settings, "france-services", FIXTURES / "liste-fs-20260801.csv")
    assert (report.read, report.outside, report.kept, report.rejected) == (6, 1, 3, 2)
    assert issues(report) == {4: ["longitude, latitude"], 7: ["lib_fs"]}
    assert {line: len(reasons) for line, reasons in warnings(report).items()} == {3: 1, 6: 1, 7: 1}
    rows = {r[0]: r[1:] for r in conn.execute(text("""
        SELECT lieu_id, categorie, horaires, modalites_acces, telephone, dispositifs FROM digital_help_places
        WHERE NOT demo ORDER BY 1"""))}
    assert rows["france-services-9901"] == ("france services", "Mo-Th 09:00-12:00,14:00-17:00; Fr 09:00-12:00",
                                            ["Se présenter", "Prendre un RDV en ligne"], "05 65 00 00 11",
                                            ["France Services"])
    assert rows["france-services-9902"][1] == "Mo 09:00-14:00"  # overlapping slots merged
    assert rows["france-services-9905"][1] is None  # unreadable slot: no hours rather than wrong ones


def test_third_places(conn, registry, settings):
    report = run(conn, registry, settings, "tiers-lieux", FIXTURES / "CGET_TiersLieux_2019.csv")
    assert report.source_date == date(2019, 12, 31)
    assert (report.read, report.outside, report.kept, report.rejected) == (5, 1, 2, 2)
    assert issues(report) == {5: ["LONG, LAT"], 6: ["NOM_TL"]}
    rows = conn.execute(text("""SELECT tl_id, code_insee, commune, services, site_web FROM third_places
                                WHERE NOT demo ORDER BY 1""")).all()
    assert rows == [("tiers-lieux-9801", "46042", "Cahors", ["coworking"], "https://coworking.example"),
                    ("tiers-lieux-9802", "46128", "Gramat", ["fablab"], None)]  # INSEECOM = 0: placed by position


def test_generic_geojson_to_wifi_hotspots(conn, registry, settings):
    report = run(conn, registry, settings, "generic", FIXTURES / "bornes_wifi.geojson",
                 options={"mapping": str(FIXTURES / "bornes_wifi.mapping.yaml")})
    assert report.dataset == "Bornes Wi-Fi publiques (fichier de test)" and report.source_date == date(2024, 6, 30)
    assert (report.read, report.outside, report.kept, report.rejected) == (5, 1, 1, 3)
    assert issues(report) == {2: ["ETAT"], 3: ["PORTEE"], 4: ["géométrie"]}
    row = conn.execute(text("""SELECT borne_id, code_insee, lieu, ssid, statut, rayon_m, date_mise_en_service, licence
                               FROM wifi_hotspots WHERE NOT demo""")).one()
    assert row == ("TEST-WIFI-001", "46128", "Mairie — place de la République", "WIFI public lotois", "installee", 120,
                   date(2018, 12, 10), "Licence Ouverte 2.0 (Etalab)")


def test_generic_web_mercator_csv_placed_by_position(conn, registry, settings):
    report = run(conn, registry, settings, "generic", FIXTURES / "tiers_lieux_web_mercator.csv",
                 options={"mapping": str(FIXTURES / "tiers_lieux_web_mercator.mapping.yaml")})
    assert (report.read, report.outside, report.kept, report.rejected) == (4, 1, 2, 1)
    rows = conn.execute(text("""SELECT tl_id, code_insee, commune, services, ST_X(geom), ST_Y(geom) FROM third_places
                                WHERE NOT demo ORDER BY 1""")).all()
    assert [r[:4] for r in rows] == [("TL-WM-1", "46128", "Gramat", ["fablab", "formation"]),
                                     ("TL-WM-2", "46102", "Figeac", ["coworking"])]
    assert rows[0][4:] == pytest.approx((1.71576, 44.7679), abs=1e-7)


def test_generic_zipped_shapefile_in_lambert93(conn, registry, settings, tmp_path):
    shp = tmp_path / "bornes.shp"
    gpd.GeoDataFrame({"ID": ["SHP-1", "SHP-2"], "INSEE": ["46102", "46042"], "LIEU": ["Place Carnot", "Mairie"],
                      "geometry": [Point(622730.6, 6390258.7), Point(576457.9, 6374261.2)]},
                     crs="EPSG:2154").to_file(shp)
    archive = tmp_path / "bornes.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for part in tmp_path.glob("bornes.*"):
            if part.suffix != ".zip":
                z.write(part, part.name)
    mapping = {"layer": "wifi_hotspots", "dataset": "Bornes (shapefile de test)", "licence": "Licence Ouverte 2.0",
               "columns": {"ID": "borne_id", "INSEE": "code_insee", "LIEU": "lieu"},
               "values": {"ssid": "WIFI public lotois", "statut": "installee"}}
    report = run(conn, registry, settings, "generic", archive, options={"mapping": mapping})
    assert report.rejected == 0 and counts(report, "wifi_hotspots") == (2, 0, 0)
    lon, lat = conn.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM wifi_hotspots WHERE borne_id = 'SHP-1'")).one()
    assert (lon, lat) == pytest.approx((2.02622, 44.60713), abs=1e-6)


@pytest.mark.parametrize(("mapping", "message"), [
    (None, "fichier de correspondance est nécessaire"),
    ({"layer": "inconnue", "columns": {"a": "b"}}, "couche inconnue"),
    ({"layer": "communes", "columns": {"a": "code_insee"}}, "couche de base"),
    ({"layer": "wifi_hotspots", "columns": {"ID": "borne_id", "X": "hauteur"}}, "champs inconnus"),
    ({"layer": "wifi_hotspots", "columns": {"ID": "borne_id"}}, "champs obligatoires.*lieu"),
    ({"layer": "wifi_hotspots", "colonnes": {"ID": "borne_id"}},
     "columns : clé obligatoire absente ; colonnes : clé inconnue"),
])
def test_generic_refuses_a_bad_mapping(conn, registry, settings, mapping, message):
    with pytest.raises(ImportFileError, match=message):
        run(conn, registry, settings, "generic", FIXTURES / "bornes_wifi.geojson", options={"mapping": mapping})
