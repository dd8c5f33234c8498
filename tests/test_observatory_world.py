"""The observatory on a small hand-made world whose figures are known: every figure checked against Python.

The layers are emptied inside the test's transaction (rolled back after), a few premises and places are put in
one current commune made of merged communes (Porte-du-Quercy: 46033 with the former Fargues, 46099), hidden
rows beside them; the distances are measured again with pyproj's geodesic (WGS84), not with the service's SQL;
two overlapping white zones crossing several communes are cut by the communes with shapely and measured with
pyproj's geodesic area.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import shapely
from factories import Factory
from pyproj import Geod
from shapely.geometry import MultiPolygon, box
from sqlalchemy import Connection, text

from geo_service.services.observatory import indicator_values
from geo_service.services.observatory.indicator_catalogue import BY_ID

CURRENT, FORMER, EPCI = "46033", "46099", "200039519"
EMPTIED = ("premises", "digital_help_places", "third_places", "wifi_hotspots", "ftth_cabinets", "ftth_nodes",
           "med_sites", "mobile_masts", "white_zones")
# (lon, lat, commune code as written on the premise, FTTH state, planned date)
PREMISES = [
    (1.19, 44.40, FORMER, "raccorde", None),
    (1.25, 44.38, FORMER, "deploye", None),
    (1.10, 44.35, CURRENT, "cible", date(2027, 2, 10)),
    (1.30, 44.42, CURRENT, "en cours de deploiement", date(2027, 5, 1)),
    (0.95, 44.20, FORMER, "abandonne", date(2027, 6, 1)),
]
HELP_PLACES = [(1.20, 44.41), (1.35, 44.45)]
THIRD_PLACE = (1.45, 44.55)
# Two « tous 4G » zones that overlap (a computed one, a declared one) around the first two premises, and a hidden
# one: the zone counted is their union, cut by the communes.
WHITE_4G = [box(1.12, 44.30, 1.28, 44.45), box(1.20, 44.30, 1.29, 44.45)]
WHITE_ORANGE_4G = box(1.18, 44.39, 1.20, 44.41)  # around the first premise
GEOD = Geod(ellps="WGS84")


def _km_to_nearest(lon: float, lat: float, places: list[tuple[float, float]]) -> float:
    return min(GEOD.inv(lon, lat, plon, plat)[2] for plon, plat in places) / 1000


@pytest.fixture
def world(conn: Connection, loaded_boundaries, registry, settings) -> indicator_values.IndicatorTable:
    for table in EMPTIED:
        conn.execute(text(f"DELETE FROM {table}"))
    make = Factory(registry)
    for n, (lon, lat, code, etat, planned) in enumerate(PREMISES, start=1):
        make.feature(conn, "premises", (lon, lat), code_insee=code, etat=etat, date_prevue=planned, nb_logements=n)
    # Hidden rows: a proposal and a deleted premise, a proposed help place right on a premise.
    make.feature(conn, "premises", (1.2, 44.4), code_insee=CURRENT, etat="raccorde", validation_state="proposed")
    make.feature(conn, "premises", (1.2, 44.4), code_insee=CURRENT, etat="raccorde",
                 deleted_at=datetime.now(UTC))
    make.feature(conn, "digital_help_places", (0.95, 44.20), code_insee=CURRENT, validation_state="proposed")
    make.feature(conn, "digital_help_places", HELP_PLACES[0], code_insee=FORMER)
    make.feature(conn, "digital_help_places", HELP_PLACES[1], code_insee=CURRENT)
    make.feature(conn, "third_places", THIRD_PLACE, code_insee="46042")
    make.feature(conn, "wifi_hotspots", (1.19, 44.40), code_insee=FORMER, statut="installee")
    make.feature(conn, "ftth_cabinets", (1.19, 44.40), code_insee=FORMER, statut="deploye")
    make.feature(conn, "ftth_cabinets", (1.19, 44.41), code_insee=FORMER, statut="prevu")
    make.feature(conn, "mobile_masts", (1.19, 44.40), code_insee=FORMER, statut="en service",
                 operateurs=["orange", "free"], technos_orange=["4G", "5G"], technos_free=["4G"])
    make.feature(conn, "mobile_masts", (1.20, 44.40), code_insee=CURRENT, statut="en service", operateurs=["sfr"],
                 technos_sfr=["4G"], dispositif="zone blanche centre-bourg", site_zb=True, site_strategique=True)
    make.feature(conn, "mobile_masts", (1.21, 44.40), code_insee=CURRENT, statut="projete", operateurs=["sfr"],
                 dispositif="couverture ciblee", site_dcc=True)
    for zone, source in zip(WHITE_4G, ("calculee", "declaree"), strict=True):
        make.feature(conn, "white_zones", MultiPolygon([zone]), kind="mobile", technologie="4G", operateur="tous",
                     source_calcul=source)
    make.feature(conn, "white_zones", MultiPolygon([WHITE_ORANGE_4G]), kind="mobile", technologie="4G",
                 operateur="orange", source_calcul="calculee")
    make.feature(conn, "white_zones", MultiPolygon([box(1.5, 44.6, 1.7, 44.8)]), kind="mobile", technologie="4G",
                 operateur="tous", source_calcul="declaree", validation_state="proposed")
    make.feature(conn, "med_sites", (1.19, 44.40), code_insee=FORMER, statut="ouvert", lignes=120)
    make.feature(conn, "med_sites", (1.19, 44.41), code_insee=FORMER, statut="installe", lignes=80)
    return indicator_values.compute(conn, registry, (settings.territory.departement, settings.territory.name))


def _value(table, indicator: str, level: str, code: str, category: str = "") -> float | None:
    return table.value(BY_ID[indicator], level, code, category)


def test_fibre_figures_roll_merged_communes_up(world) -> None:
    assert ("commune", FORMER) not in world.areas  # a former commune is no area of its own
    for level, code in (("commune", CURRENT), ("epci", EPCI), ("departement", "46")):
        assert _value(world, "locaux", level, code) == 5
        assert _value(world, "locaux_eligibles", level, code) == 2
        assert _value(world, "part_locaux_eligibles", level, code) == 40.0
        assert _value(world, "locaux_par_etat_ftth", level, code, "cible") == 1
        assert world.categories(BY_ID["locaux_eligibles_prevus_par_trimestre"], level, code) == ["2027-T1", "2027-T2"]
        assert _value(world, "pm_deployes", level, code) == 1
        assert _value(world, "sites_med_ouverts", level, code) == 1
        assert _value(world, "lignes_med_desservies", level, code) == 120
        assert _value(world, "pylones_par_operateur", level, code, "free") == 1
        assert _value(world, "pylones_par_technologie", level, code, "orange 5G") == 1
        assert _value(world, "lieux_mediation", level, code) == 2
    assert _value(world, "lieux_mediation", "commune", "46042") == 0


def test_distances_match_an_independent_geodesic(world) -> None:
    help_km = [_km_to_nearest(lon, lat, HELP_PLACES) for lon, lat, *_ in PREMISES]
    third_km = [_km_to_nearest(lon, lat, [THIRD_PLACE]) for lon, lat, *_ in PREMISES]
    for level, code in (("commune", CURRENT), ("departement", "46")):
        assert _value(world, "distance_moyenne_mediation", level, code) == pytest.approx(sum(help_km) / 5, abs=1e-3)
        assert _value(world, "distance_moyenne_tiers_lieu", level, code) == pytest.approx(sum(third_km) / 5,
                                                                                         abs=1e-3)
        for km in (5, 10, 20):
            assert _value(world, f"part_locaux_au_dela_{km}km_mediation", level, code) == pytest.approx(
                100 * sum(d > km for d in help_km) / 5)
            assert _value(world, f"part_locaux_au_dela_{km}km_tiers_lieu", level, code) == pytest.approx(
                100 * sum(d > km for d in third_km) / 5)
    assert 0 < sum(d > 10 for d in help_km) < 5  # the world tells the thresholds apart


def test_wifi_third_places_and_rates(world, conn: Connection) -> None:
    population = conn.execute(text("SELECT sum(coalesce(population, 0)) FROM communes "
                                   "WHERE code_insee_actuel = :c"), {"c": CURRENT}).scalar_one()
    assert _value(world, "lieux_mediation_pour_10000_habitants", "commune", CURRENT) == round(
        2 * 10000 / population, 4)
    assert _value(world, "communes_avec_borne_wifi_installee", "commune", CURRENT) == 1
    assert _value(world, "communes_avec_borne_wifi_installee", "departement", "46") == 1
    covered = _value(world, "communes_couvertes_wifi", "departement", "46")
    current_communes = conn.execute(text("SELECT count(DISTINCT code_insee_actuel) FROM communes")).scalar_one()
    assert covered == current_communes  # no premise in the private-investment zone in this world
    assert _value(world, "part_communes_avec_borne_wifi", "departement", "46") == round(100 / covered, 4)
    assert _value(world, "tiers_lieux", "departement", "46") == 1
    third_epci = conn.execute(text("SELECT epci_siren FROM communes WHERE code_insee = '46042'")).scalar_one()
    assert _value(world, "epci_avec_tiers_lieu", "epci", third_epci) == 1
    assert _value(world, "epci_avec_tiers_lieu", "epci", EPCI) == (1 if third_epci == EPCI else 0)
    assert _value(world, "epci_avec_tiers_lieu", "departement", "46") == 1
    assert _value(world, "epci_avec_tiers_lieu", "commune", CURRENT) is None


def test_masts_by_scheme_and_arcep_programme(world) -> None:
    for level, code in (("commune", CURRENT), ("departement", "46")):
        assert _value(world, "pylones_par_dispositif", level, code, "zone blanche centre-bourg") == 1
        assert _value(world, "pylones_par_dispositif", level, code, "couverture ciblee") == 0  # projected
        assert _value(world, "pylones_a_venir_par_dispositif", level, code, "couverture ciblee") == 1
        assert world.categories(BY_ID["pylones_programmes_arcep"], level, code) == ["site_strategique", "site_zb"]
        assert _value(world, "pylones_par_operateur", level, code, "sfr") == 1
        assert isinstance(_value(world, "pylones_par_dispositif", level, code, "zone blanche centre-bourg"), int)


def _current_communes(conn: Connection) -> dict[str, tuple[str, object]]:
    rows = conn.execute(text("SELECT code_insee, code_insee_actuel, epci_siren, ST_AsBinary(geom) FROM communes"))
    return {code: (current, siren, shapely.from_wkb(bytes(wkb))) for code, current, siren, wkb in rows}


def test_white_zones_cut_by_the_communes_on_the_spheroid(world, conn: Connection) -> None:
    communes = _current_communes(conn)
    expected: dict[str, float] = {}
    union = shapely.union_all(WHITE_4G)
    for current, _, shape in communes.values():
        part = shapely.intersection(union, shape)
        if not part.is_empty:
            expected[current] = expected.get(current, 0.0) + abs(GEOD.geometry_area_perimeter(part)[0]) / 1e6
    expected = {code: round(km2, 2) for code, km2 in expected.items() if round(km2, 2) > 0}
    assert len(expected) >= 3  # the zone crosses communes
    for code, km2 in expected.items():
        assert _value(world, "zones_blanches_surface", "commune", code, "tous 4G") == pytest.approx(km2, abs=0.011)
    departement = _value(world, "zones_blanches_surface", "departement", "46", "tous 4G")
    assert departement == pytest.approx(sum(expected.values()), abs=0.011 * len(expected))
    assert departement < abs(GEOD.geometry_area_perimeter(union)[0]) / 1e6  # its part beyond the Lot is not
    epcis = {siren for current, siren, _ in communes.values() if current in expected}
    assert sum(_value(world, "zones_blanches_surface", "epci", s, "tous 4G") for s in epcis) == pytest.approx(
        departement)
    assert world.categories(BY_ID["zones_blanches_surface"], "departement", "46") == ["orange 4G", "tous 4G"]


def test_white_zone_premises_and_population(world, conn: Connection) -> None:
    population = conn.execute(text("SELECT sum(coalesce(population, 0)) FROM communes "
                                   "WHERE code_insee_actuel = :c"), {"c": CURRENT}).scalar_one()
    inside = [n for n, (lon, lat, *_) in enumerate(PREMISES, start=1)
              if shapely.union_all(WHITE_4G).contains(shapely.Point(lon, lat))]
    assert inside == [1, 2]
    all_dwellings = sum(range(1, len(PREMISES) + 1))
    for level, code in (("commune", CURRENT), ("epci", EPCI), ("departement", "46")):
        assert _value(world, "zones_blanches_locaux", level, code, "tous 4G") == 2
        assert _value(world, "zones_blanches_population", level, code, "tous 4G") == int(
            population * sum(inside) / all_dwellings + 0.5)
        assert _value(world, "zones_blanches_locaux", level, code, "orange 4G") == 1
        assert _value(world, "zones_blanches_population", level, code, "orange 4G") == int(
            population * 1 / all_dwellings + 0.5)
