"""Every indicator of the catalogue recomputed in Python on the demo territory, apart from the service's SQL.

The layers' rows are read with geopandas (the rows the public sees: published, not deleted), placed in their
current commune by their commune code, and each indicator is computed again with pandas, shapely and pyproj:
nearest places searched in Lambert-93 with shapely's STRtree and measured with pyproj's geodesic; white zones
merged per operator and technology with shapely, cut by the communes and measured with pyproj's geodesic area.
Every value the service gives at every level (département, EPCI, current commune) must equal the oracle's; a
catalogue indicator without an oracle here fails ``test_every_indicator_has_an_independent_check``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod, Transformer
from sqlalchemy import Engine

from geo_service.services.observatory import indicator_values
from geo_service.services.observatory.indicator_catalogue import BY_ID, DISTANCE_THRESHOLDS_KM, INDICATORS

GEOD = Geod(ellps="WGS84")
TO_L93 = Transformer.from_crs(4326, 2154, always_xy=True)
ELIGIBLE = ("raccorde", "deploye", "raccordable demande")
# Per indicator, the largest difference allowed with the service at one area: distances are measured by
# another search (Lambert-93 nearest vs. the index's 4 candidates) and areas by another geodesic algorithm.
TOLERANCE = {"zones_blanches_surface": 0.011}
Key = tuple[str, str, str]  # (level, code, category)
# Indicators the demo territory leaves at zero, with where they are checked on figures that are not.
ZERO_ON_DEMO = {"pylones_programmes_arcep": "the demo masts carry no ARCEP flag; tests/test_observatory_world.py",
                "part_locaux_au_dela_20km_mediation": "no demo premise is 20 km from one; the world test has one",
                "part_locaux_au_dela_20km_tiers_lieu": "no demo premise is 20 km from one; the world test has one"}


@dataclass
class World:
    """The demo rows as the public sees them, each with its current commune and EPCI."""

    departement: str
    communes: pd.DataFrame  # current communes: code, epci, population
    epcis: list[str]
    layers: dict[str, gpd.GeoDataFrame]
    communes_2018: gpd.GeoDataFrame

    def place(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows with a ``commune`` (current code) and an ``epci`` column; rows of an unknown code are dropped."""
        current = dict(zip(self.communes_2018.code_insee, self.communes_2018.code_insee_actuel, strict=True))
        current.update({c: c for c in self.communes.code})
        placed = frame.assign(commune=frame.code_insee.map(current)).dropna(subset=["commune"])
        return placed.assign(epci=placed.commune.map(self.communes.set_index("code").epci))

    def totals(self, frame: pd.DataFrame, amount: pd.Series | None = None,
               category: pd.Series | None = None) -> dict[Key, float]:
        """Sums of ``amount`` (1 per row by default) per commune, EPCI and département, per ``category``."""
        frame = frame.assign(amount=1 if amount is None else amount, category="" if category is None else category)
        found: dict[Key, float] = defaultdict(float)
        for (commune, epci, cat), amount_sum in frame.groupby(["commune", "epci", "category"],
                                                              dropna=False).amount.sum().items():
            found[("commune", commune, cat)] += amount_sum
            if isinstance(epci, str):
                found[("epci", epci, cat)] += amount_sum
            found[("departement", self.departement, cat)] += amount_sum
        return dict(found)


def _visible(engine: Engine, layer: str, columns: str) -> gpd.GeoDataFrame:
    return gpd.read_postgis(f"SELECT {columns}, geom FROM {layer} WHERE validation_state = 'published' "
                            "AND deleted_at IS NULL", engine, geom_col="geom")


@pytest.fixture(scope="module")
def world(demo_territory, engine: Engine, settings) -> World:
    communes_2018 = gpd.read_postgis("SELECT code_insee, code_insee_actuel, population, epci_siren, geom "
                                     "FROM communes", engine, geom_col="geom")
    own = communes_2018[communes_2018.code_insee == communes_2018.code_insee_actuel].set_index("code_insee_actuel")
    communes = pd.DataFrame({"population": communes_2018.population.fillna(0)
                            .groupby(communes_2018.code_insee_actuel).sum()})
    first = communes_2018.sort_values("code_insee").groupby("code_insee_actuel").epci_siren.first()
    communes["epci"] = own.epci_siren.reindex(communes.index).fillna(first)
    communes = communes.rename_axis("code").reset_index()
    epcis = list(pd.read_sql("SELECT siren FROM epci", engine).siren)
    layers = {
        "premises": _visible(engine, "premises", "code_insee, etat, date_prevue, zone, nb_logements"),
        "ftth_cabinets": _visible(engine, "ftth_cabinets", "code_insee, statut"),
        "ftth_nodes": _visible(engine, "ftth_nodes", "code_insee, statut"),
        "med_sites": _visible(engine, "med_sites", "code_insee, statut, lignes"),
        "mobile_masts": _visible(engine, "mobile_masts", "code_insee, statut, operateurs, technos_orange, "
                                 "technos_sfr, technos_bouygues, technos_free, dispositif, site_zb, site_dcc, "
                                 "site_strategique"),
        "wifi_hotspots": _visible(engine, "wifi_hotspots", "code_insee, statut"),
        "third_places": _visible(engine, "third_places", "code_insee"),
        "digital_help_places": _visible(engine, "digital_help_places", "code_insee"),
        "white_zones": _visible(engine, "white_zones", "operateur, technologie"),
    }
    return World(settings.territory.departement, communes, epcis, layers, communes_2018)


@pytest.fixture(scope="module")
def table(demo_territory, engine: Engine, registry, settings) -> indicator_values.IndicatorTable:
    with engine.connect() as conn:
        return indicator_values.compute(conn, registry, (settings.territory.departement, settings.territory.name))


# The oracles: each gives, for one indicator, its values per (level, code, category) — numerators and, for a
# rate, the denominators; a missing count is 0.

def _premises(world: World) -> pd.DataFrame:
    return world.place(world.layers["premises"])


def _count(layer: str, condition: Callable[[pd.DataFrame], pd.Series] | None = None,
           amount: str | None = None) -> Callable[[World], dict[Key, float]]:
    def oracle(world: World) -> dict[Key, float]:
        frame = world.place(world.layers[layer])
        if condition is not None:
            frame = frame[condition(frame)]
        return world.totals(frame, None if amount is None else frame[amount].fillna(0))
    return oracle


def _by_state(world: World) -> dict[Key, float]:
    premises = _premises(world)
    return world.totals(premises, category=premises.etat.fillna("inconnu"))


def _eligible(world: World) -> dict[Key, float]:
    premises = _premises(world)
    return world.totals(premises[premises.etat.isin(ELIGIBLE)])


def _expected_per_quarter(world: World) -> dict[Key, float]:
    premises = _premises(world)
    waiting = premises[premises.date_prevue.notna() & ~premises.etat.isin(ELIGIBLE) & (premises.etat != "abandonne")]
    dates = pd.to_datetime(waiting.date_prevue)
    quarters = dates.dt.year.astype(str) + "-T" + ((dates.dt.month - 1) // 3 + 1).astype(str)
    return world.totals(waiting, category=quarters)


def _in_service_masts(world: World) -> pd.DataFrame:
    masts = world.place(world.layers["mobile_masts"])
    return masts[masts.statut == "en service"]


def _masts_by_operator(world: World) -> dict[Key, float]:
    masts = _in_service_masts(world).explode("operateurs").dropna(subset=["operateurs"])
    return world.totals(masts, category=masts.operateurs)


def _masts_by_technology(world: World) -> dict[Key, float]:
    masts = _in_service_masts(world)
    rows = [(i, f"{op} {tech}") for i, mast in masts.iterrows() for op in mast.operateurs
            for tech in (mast[f"technos_{op}"] or [])]
    exploded = masts.loc[[i for i, _ in rows]].assign(category=[c for _, c in rows])
    return world.totals(exploded, category=exploded.category)


def _masts_by_scheme(statuses: tuple[str, ...]) -> Callable[[World], dict[Key, float]]:
    def oracle(world: World) -> dict[Key, float]:
        masts = world.place(world.layers["mobile_masts"])
        masts = masts[masts.statut.isin(statuses)]
        return world.totals(masts, category=masts.dispositif)
    return oracle


def _masts_by_arcep_programme(world: World) -> dict[Key, float]:
    masts = _in_service_masts(world)
    flagged = pd.concat([masts[masts[flag].fillna(False).astype(bool)].assign(programme=flag)
                         for flag in ("site_zb", "site_dcc", "site_strategique")])
    return world.totals(flagged, category=flagged.programme)


def _covered_communes(world: World) -> set[str]:
    premises = _premises(world)
    amii = set(premises[premises.zone == "amii"].commune)
    return set(world.communes.code) - amii


def _wifi(state: str) -> Callable[[World], dict[Key, float]]:
    def oracle(world: World) -> dict[Key, float]:
        hotspots = world.place(world.layers["wifi_hotspots"])
        installed = set(hotspots[hotspots.statut == "installee"].commune)
        planned = set(hotspots[hotspots.statut == "programmee"].commune) - installed
        chosen = {"covered": set(world.communes.code), "installed": installed, "planned": planned}[state]
        codes = sorted(_covered_communes(world) & chosen)
        return world.totals(world.communes[world.communes.code.isin(codes)].rename(columns={"code": "commune"}))
    return oracle


def _population(world: World) -> dict[Key, float]:
    communes = world.communes.rename(columns={"code": "commune"})
    return world.totals(communes, communes.population)


def _third_place_target(world: World) -> dict[Key, float]:
    counts = _count("third_places")(world)
    met = {siren: int(counts.get(("epci", siren, ""), 0) > 0) for siren in world.epcis}
    found: dict[Key, float] = {("epci", siren, ""): value for siren, value in met.items()}
    found[("departement", world.departement, "")] = sum(met.values())
    return found


def _nearest_km(world: World, layer: str) -> pd.Series:
    """Per premise, the geodesic distance (km) to the nearest place, the nearest found in Lambert-93."""
    premises, places = _premises(world), world.layers[layer]
    px, py = TO_L93.transform(premises.geometry.x.to_numpy(), premises.geometry.y.to_numpy())
    qx, qy = TO_L93.transform(places.geometry.x.to_numpy(), places.geometry.y.to_numpy())
    tree = shapely.STRtree(shapely.points(qx, qy))
    where, which = tree.query_nearest(shapely.points(px, py), all_matches=False)
    nearest = np.empty(len(premises), dtype=int)
    nearest[where] = which
    _, _, metres = GEOD.inv(premises.geometry.x.to_numpy(), premises.geometry.y.to_numpy(),
                            places.geometry.x.to_numpy()[nearest], places.geometry.y.to_numpy()[nearest])
    return pd.Series(metres / 1000, index=premises.index)


def _distance(layer: str, beyond_km: float | None) -> Callable[[World], dict[Key, float]]:
    def oracle(world: World) -> dict[Key, float]:
        premises, km = _premises(world), _nearest_km(world, layer)
        return world.totals(premises, km if beyond_km is None else (km > beyond_km).astype(int))
    return oracle


def _merged_white_zones(world: World) -> dict[str, shapely.Geometry]:
    zones = world.layers["white_zones"]
    return {category: shapely.union_all(group.geometry.values)
            for category, group in zones.groupby(zones.operateur + " " + zones.technologie)}


def _white_zone_parts(world: World) -> pd.DataFrame:
    """Per white zone (operator and technology merged) and 2018 commune: the geodesic area in km²."""
    merged = _merged_white_zones(world)
    rows = []
    for category, zone in merged.items():
        for commune in world.communes_2018.itertuples():
            if shapely.intersects(zone, commune.geom):
                part = shapely.intersection(zone, commune.geom)
                rows.append((commune.code_insee_actuel, category, abs(GEOD.geometry_area_perimeter(part)[0]) / 1e6))
    return pd.DataFrame(rows, columns=["commune", "category", "km2"])


def _white_zone_area(world: World) -> dict[Key, float]:
    parts = _white_zone_parts(world).groupby(["commune", "category"]).km2.sum().round(2).reset_index()
    parts = parts[parts.km2 > 0]
    parts = parts.assign(epci=parts.commune.map(world.communes.set_index("code").epci))
    return world.totals(parts, parts.km2, parts.category)


def _premises_in_white_zones(world: World) -> pd.DataFrame:
    premises = _premises(world)
    merged = _merged_white_zones(world)
    inside = []
    for category, zone in merged.items():
        shapely.prepare(zone)
        hit = premises[shapely.intersects(zone, premises.geometry.values)]
        inside.append(hit.assign(category=category))
    return pd.concat(inside)


def _white_zone_premises(world: World) -> dict[Key, float]:
    inside = _premises_in_white_zones(world)
    return world.totals(inside, category=inside.category)


def _white_zone_population(world: World) -> dict[Key, float]:
    premises = _premises(world)
    dwellings = premises.nb_logements.fillna(1).groupby(premises.commune).sum()
    population = world.communes.set_index("code").population
    inside = _premises_in_white_zones(world)
    found = inside.nb_logements.fillna(1).groupby([inside.commune, inside.category]).sum().reset_index()
    # The commune's population × its share of dwellings inside, rounded half up to the inhabitant.
    found["estimate"] = [int(Fraction(int(population[c]) * int(n), int(dwellings[c])) + Fraction(1, 2))
                         for c, n in zip(found.commune, found.nb_logements, strict=True)]
    found = found.assign(epci=found.commune.map(world.communes.set_index("code").epci))
    return world.totals(found, found.estimate, found.category)


MEASURE_ORACLES: dict[str, Callable[[World], dict[Key, float]]] = {
    "premises_by_state": _by_state,
    "premises": _count("premises"),
    "premises_eligible": _eligible,
    "premises_expected": _expected_per_quarter,
    "cabinets_deployed": _count("ftth_cabinets", lambda f: f.statut == "deploye"),
    "nodes_in_service": _count("ftth_nodes", lambda f: f.statut == "en service"),
    "med_open": _count("med_sites", lambda f: f.statut == "ouvert"),
    "med_lines": _count("med_sites", lambda f: f.statut == "ouvert", "lignes"),
    "masts_by_operator": _masts_by_operator,
    "masts_by_technology": _masts_by_technology,
    "masts_by_scheme": _masts_by_scheme(("en service",)),
    "masts_coming_by_scheme": _masts_by_scheme(("en construction", "projete")),
    "masts_by_arcep_programme": _masts_by_arcep_programme,
    "white_zone_km2": _white_zone_area,
    "white_zone_premises": _white_zone_premises,
    "white_zone_population": _white_zone_population,
    "communes_covered": _wifi("covered"),
    "communes_wifi_installed": _wifi("installed"),
    "communes_wifi_planned": _wifi("planned"),
    "third_places": _count("third_places"),
    "epci_with_third_place": _third_place_target,
    "help_places": _count("digital_help_places"),
    "population": _population,
    "premises_located_mediation": _count("premises"),
    "premises_located_tiers_lieu": _count("premises"),
    "distance_sum_km_mediation": _distance("digital_help_places", None),
    "distance_sum_km_tiers_lieu": _distance("third_places", None),
    **{f"beyond_{km}km_mediation": _distance("digital_help_places", km) for km in DISTANCE_THRESHOLDS_KM},
    **{f"beyond_{km}km_tiers_lieu": _distance("third_places", km) for km in DISTANCE_THRESHOLDS_KM},
}


def _oracle_values(world: World, indicator_id: str, cache: dict) -> dict[Key, float | None]:
    indicator = BY_ID[indicator_id]

    def measure(name: str) -> dict[Key, float]:
        if name not in cache:
            cache[name] = MEASURE_ORACLES[name](world)
        return cache[name]

    numerators = measure(indicator.numerator)
    if indicator.denominator is None:
        return numerators
    denominators = measure(indicator.denominator)
    return {(level, code, cat): (None if not denominators.get((level, code, ""), 0)
                                 else amount / denominators[(level, code, "")] * indicator.scale)
            for (level, code, cat), amount in {**{k: 0 for k in denominators}, **numerators}.items()}


@pytest.fixture(scope="module")
def measure_cache() -> dict:
    return {}


def test_every_indicator_has_an_independent_check() -> None:
    used = {m for i in INDICATORS for m in (i.numerator, i.denominator) if m is not None}
    assert used - set(MEASURE_ORACLES) == set(), "indicateurs sans calcul indépendant dans ce test"


@pytest.mark.parametrize("indicator_id", [i.id for i in INDICATORS])
def test_indicator_equals_the_independent_computation(indicator_id, table, world, measure_cache) -> None:
    indicator = BY_ID[indicator_id]
    expected = _oracle_values(world, indicator_id, measure_cache)
    # A rate is rounded by the service; a sum of per-commune rounded amounts may differ by a commune's share.
    per_commune = TOLERANCE.get(indicator_id, 10 ** -indicator.digits if indicator.denominator else 0)
    communes_in = defaultdict(int)
    for area in table.areas.values():
        if area.level == "commune":
            communes_in[("epci", area.epci_siren)] += 1
            communes_in[("departement", world.departement)] += 1
    compared = 0
    for level, code in table.areas:
        if level not in indicator.levels:
            continue
        categories = set(table.categories(indicator, level, code)) | {
            cat for (lvl, c, cat) in expected if (lvl, c) == (level, code)}
        for category in categories or {""}:
            got = table.value(indicator, level, code, category)
            want = expected.get((level, code, category), None if indicator.denominator else 0)
            if want is None or got is None:
                assert got == want, (indicator_id, level, code, category)
                continue
            summed = level != "commune" and indicator.denominator is None
            allowed = per_commune * (communes_in[(level, code)] if summed else 1)
            assert got == pytest.approx(want, abs=max(allowed, 1e-6)), (indicator_id, level, code, category)
            if indicator.digits == 0:
                assert isinstance(got, int), (indicator_id, got)
            compared += 1
    assert compared > 0
    dep_values = {cat: v for (lvl, _, cat), v in expected.items() if lvl == "departement"}
    if indicator_id not in ZERO_ON_DEMO:  # a check on zeros only would prove little
        assert any(v for v in dep_values.values()), f"{indicator_id}: aucune valeur sur le territoire de démonstration"
