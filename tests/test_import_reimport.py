"""Every kind of import, run twice on the same file: the second run writes nothing at all.

Not only counts of zero: no row of the tables the import touches gets a new version (its ``ctid`` changes on
any UPDATE, even within the test's transaction), no ``version`` moves, and the layer change counters stay
where the first run left them. Rounding (Lambert-93 or Web-Mercator brought to degrees, decimal commas),
lists (operators, stations, services) and rows sharing a key are where a second run used to find a
difference.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from import_helpers import CARTEFIBRE, FIXTURES, GRAMAT_L93, coverage_gpkg, gzipped, run, square_around, zipped
from sqlalchemy import text

Location = Callable[[Path], tuple[str | Path, dict]]


@pytest.fixture(autouse=True)
def _territory(loaded_boundaries):
    return loaded_boundaries


def _fixture(name: str, **options) -> Location:
    return lambda _tmp: (FIXTURES / name, options)


def _cartefibre_with_a_repeated_building(tmp: Path) -> tuple[Path, dict]:
    """The same building listed twice with different states (the last row wins, the first is rejected)."""
    lines = CARTEFIBRE.read_text(encoding="utf-8").splitlines(keepends=True)
    repeated = lines[1].replace(",deploye,TEST_PM", ",cible,TEST_PM", 1)
    path = tmp / "carte_fibre_immeubles_2026_T2_20260902.csv"
    path.write_text("".join([lines[0], repeated, *lines[1:]]), encoding="utf-8")
    return path, {}


def _coverage(tmp: Path) -> tuple[Path, dict]:
    common = {"date": "2026-03-31", "techno": "4G", "usage": "data", "dept": "46"}
    return coverage_gpkg(tmp / "2026_T1_couv_Metropole_TEST_4G_data.gpkg", [
        {**common, "operateur": 20801, "operateur_commercial": "Orange", "niveau": "BC",
         "box": square_around(GRAMAT_L93, -4000, -4000, 4000, 4000)},
        {**common, "operateur": 20810, "operateur_commercial": "SFR", "niveau": "TBC",
         "box": square_around(GRAMAT_L93, -1000, -1000, 5000, 7000)},
    ]), {}


# MCI's buildings file only completes premises already there: the Cartefibre file is imported first.
PREREQUISITES = {"arcep-mci base_imb": ("arcep-immeubles", CARTEFIBRE)}
CASES: dict[str, tuple[str, Location]] = {
    "arcep-immeubles": ("arcep-immeubles", lambda _tmp: (CARTEFIBRE, {})),
    "arcep-immeubles same building twice": ("arcep-immeubles", _cartefibre_with_a_repeated_building),
    "arcep-immeubles windows-1252": ("arcep-immeubles", _fixture("carte_fibre_immeubles_cp1252.csv")),
    "arcep-mci base_imb": ("arcep-mci", lambda tmp: (gzipped("base_imb_46.csv", tmp), {})),
    "arcep-mci actuel": ("arcep-mci", lambda tmp: (gzipped("actuel_46.csv", tmp), {})),
    "arcep-sites": ("arcep-sites", _fixture("2026_T1_sites_Metropole.csv")),
    "arcep-sites shared": ("arcep-sites", _fixture("2026_T2_sites_Metropole.csv")),
    "anfr": ("anfr", lambda tmp: (zipped("anfr", tmp / "20261031-export-etalab-data.zip"), {})),
    "arcep-dcc points": ("arcep-dcc", _fixture("2026_T1_dcc_Metropole_POI.csv")),
    "arcep-dcc sites": ("arcep-dcc", _fixture("2026_T1_dcc_Metropole_sites.csv")),
    "arcep-couverture": ("arcep-couverture", _coverage),
    "ban": ("ban", _fixture("adresses-46.csv")),
    "mednum": ("mednum", _fixture("lieux-de-mediation-numerique.csv")),
    "france-services": ("france-services", _fixture("liste-fs-20260801.csv")),
    "tiers-lieux": ("tiers-lieux", _fixture("CGET_TiersLieux_2019.csv")),
    "generic geojson": ("generic", _fixture("bornes_wifi.geojson",
                                            mapping=str(FIXTURES / "bornes_wifi.mapping.yaml"))),
    "generic web-mercator csv": ("generic", _fixture("tiers_lieux_web_mercator.csv",
                                                     mapping=str(FIXTURES / "tiers_lieux_web_mercator.mapping.yaml"))),
}


# The geocoder's index, derived from premises and addresses: rebuilt only by an import that changed them.
GEOCODER_INDEX = ("geocode_names", "geocode_numbers")


def _state(conn, tables: list[str]) -> dict[str, object]:
    """Every row version of ``tables`` (ctid, and version where there is one), the layer change counters, and
    the geocoder's index (its rows by ``cmin`` too: a rebuild in the same transaction may reuse the ctids)."""
    state: dict[str, object] = {}
    for table in GEOCODER_INDEX:
        state[table] = conn.execute(text(f"SELECT ctid::text, cmin::text FROM {table} ORDER BY 1")).all()
    for table in tables:
        columns = conn.execute(text("SELECT column_name FROM information_schema.columns WHERE table_name = :t"),
                               {"t": table}).scalars().all()
        version = ", version" if "version" in columns else ""
        state[table] = conn.execute(text(f"SELECT ctid::text{version} FROM {table} ORDER BY 1")).all()
    state["layer_changes"] = conn.execute(text("SELECT layer_id, version FROM layer_changes ORDER BY 1")).all()
    return state


@pytest.mark.parametrize("case", list(CASES))
def test_a_second_import_of_the_same_file_writes_nothing(conn, registry, settings, tmp_path, case):
    kind, location = CASES[case]
    path, options = location(tmp_path)
    if case in PREREQUISITES:
        run(conn, registry, settings, *PREREQUISITES[case])
    first = run(conn, registry, settings, kind, path, options=options)
    assert first.changed > 0, "the first import must write something for the second to prove anything"
    tables = [t.table for t in first.tables]
    before = _state(conn, tables)
    again = run(conn, registry, settings, kind, path, options=options)
    changed = {t.table: (t.inserted, t.updated, t.deleted) for t in again.tables if t.changed}
    assert changed == {}, f"{case} : {changed}"
    assert (again.read, again.kept, again.rejected) == (first.read, first.kept, first.rejected)
    assert _state(conn, tables) == before
