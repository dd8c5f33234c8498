"""Imported data serve residents exactly as demo data: the report, the map's layer API, the OGC API and the
geocoder read imported rows, with their source named and not labelled as demo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from import_helpers import CARTEFIBRE, FIXTURES, delete_imported, gzipped, run
from sqlalchemy import Engine

from geo_service.main import create_app
from geo_service.settings import Settings

MEDNUM = FIXTURES / "lieux-de-mediation-numerique.csv"
# test-mednum-1 (the médiathèque of Gramat) and IMB/46042/TEST/0001 (12 rue des Lilas, Cahors) in the fixtures.
GRAMAT = (1.71576, 44.7679)
LILAS = (1.44716, 44.45647)


@pytest.fixture(scope="module")
def imported(loaded_boundaries: Engine, registry, settings: Settings, tmp_path_factory) -> Iterator[Engine]:
    folder: Path = tmp_path_factory.mktemp("mci")
    with loaded_boundaries.begin() as conn:
        run(conn, registry, settings, "arcep-immeubles", CARTEFIBRE)
        run(conn, registry, settings, "arcep-mci", gzipped("actuel_46.csv", folder))
        run(conn, registry, settings, "mednum", MEDNUM)
    yield loaded_boundaries
    delete_imported(loaded_boundaries, ("premises", "ftth_cabinets", "premise_eligibility", "digital_help_places"))


@pytest.fixture(scope="module")
def client(settings: Settings, imported: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="http://localhost") as c:
        yield c


def test_the_report_shows_an_imported_premise_and_its_offers(client: TestClient):
    report = client.get("/api/nearby", params={"lon": LILAS[0], "lat": LILAS[1]}).json()
    premise = report["fibre"]["premise"]
    assert premise["imb_id"] == "IMB/46042/TEST/0001" and premise["distance_m"] < 1
    assert report["fibre"]["status"] == "eligible"
    assert premise["cabinet"]["pm_ref"] == "TEST_PM_CAHORS_01"
    assert [(o["operateur"], o["technologie"]) for o in premise["offers"]][:1] == [("Orange", "Fibre optique (FTTH)")]
    source = next(s for s in report["fibre"]["sources"] if s["layer"] == "premises")
    assert (source["origin"].startswith("ARCEP"), source["date"], source["demo"]) == (True, "2026-09-02", False)


def test_the_report_lists_an_imported_help_place_with_its_hours(client: TestClient):
    report = client.get("/api/nearby", params={"lon": GRAMAT[0], "lat": GRAMAT[1]}).json()
    first = report["digital_help"]["items"][0]
    assert (first["id"], first["name"], first["demo"]) == ("test-mednum-1", "Médiathèque de test", False)
    assert first["distance_m"] < 1
    assert first["opening_hours"] == "Mo-Fr 09:00-12:00,14:00-18:00; Sa 09:00-12:00"
    assert first["opening"]["state"] in ("open", "closed")
    assert "Accès internet et matériel informatique" in first["services"]


def test_the_map_and_the_ogc_api_serve_imported_rows(client: TestClient):
    box = f"{GRAMAT[0] - 0.01},{GRAMAT[1] - 0.01},{GRAMAT[0] + 0.01},{GRAMAT[1] + 0.01}"
    layer = client.get("/api/layers/digital_help_places", params={"bbox": box}).json()
    assert "test-mednum-1" in {f["properties"].get("lieu_id") for f in layer["features"]}
    items = client.get("/ogc/collections/digital_help_places/items", params={"bbox": box, "f": "json"}).json()
    assert "test-mednum-1" in {f["properties"].get("lieu_id") for f in items["features"]}


def test_the_geocoder_finds_an_imported_address(client: TestClient):
    found = client.get("/api/geocode", params={"q": "12 rue des lilas cahors"}).json()["results"]
    assert found and found[0]["type"] == "adresse"
    assert found[0]["label"].lower().startswith("12 rue des lilas")
