"""``/api/nearby`` on the demo territory: the schema, the address parameter, a point outside the Lot (422 in
French), bad parameters (400, never 500), and the OpenAPI description."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.api.resident_models import NearbyReport
from geo_service.settings import Settings

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def premise(engine: Engine, demo_territory) -> dict:
    """A connectable ('deploye') demo premise of Cahors, with its full address label."""
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT imb_id, numero, nom_voie, code_postal, nom_commune, ST_X(geom) AS lon, ST_Y(geom) AS lat "
            "FROM premises WHERE nom_commune = 'Cahors' AND etat = 'deploye' AND numero ~ '^[0-9]+$' "
            "ORDER BY imb_id LIMIT 1")).mappings().one()
    return {**row, "label": f"{row['numero']} {row['nom_voie']}, {row['code_postal']} {row['nom_commune']}"}


def test_report_at_a_premise_follows_the_schema(demo_client: TestClient, premise: dict):
    response = demo_client.get("/api/nearby", params={"lon": premise["lon"], "lat": premise["lat"]})
    assert response.status_code == 200, response.text
    report = NearbyReport.model_validate(response.json())
    assert report.commune.nom_actuel == "Cahors" and report.commune.epci is not None
    assert report.fibre.status == "eligible" and report.fibre.headline == "Éligible à la fibre"
    assert report.fibre.premise.imb_id == premise["imb_id"] and report.fibre.premise.exact
    assert report.fibre.premise.distance_m < 0.5
    assert report.demo is True
    assert response.headers["cache-control"].startswith("public")
    for section in (report.fibre, report.med, report.mobile, report.wifi, report.third_places, report.digital_help):
        assert section.sources and all(s.attribution and s.licence for s in section.sources), section.title
    assert report.fibre.sources[0].date is not None
    assert len(report.third_places.items) == 3 and len(report.digital_help.items) == 3
    distances = [p.distance_m for p in report.digital_help.items]
    assert distances == sorted(distances)
    assert all(p.opening is not None and p.opening.label for p in report.digital_help.items)
    assert {o.operateur for o in report.mobile.operators} == {"orange", "sfr", "bouygues", "free"}


def test_offers_at_the_premise_come_from_ma_connexion_internet(demo_client: TestClient, premise: dict, engine: Engine):
    """Rows the ARCEP « Ma connexion internet » import writes appear in the fibre section, best technology first."""
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO premise_eligibility (imb_id, code_operateur, code_techno, classe_debit_descendant, "
            "source, source_date) VALUES (:imb, 'FRTE', 'CU', 'BHD8', 'test', '2026-06-30'), "
            "(:imb, 'FREE', 'FO', 'THD1G', 'test', '2026-06-30')"), {"imb": premise["imb_id"]})
    try:
        body = demo_client.get("/api/nearby", params={"lon": premise["lon"], "lat": premise["lat"]}).json()
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM premise_eligibility WHERE source = 'test'"))
    offers = body["fibre"]["premise"]["offers"]
    assert [(o["operateur"], o["technologie"], o["debit_descendant"]) for o in offers] == [
        ("Free", "Fibre optique (FTTH)", "1 Gbit/s et plus"), ("Orange", "Cuivre (ADSL, VDSL2)", "de 8 à 30 Mbit/s")]
    assert any(s["layer"] == "premise_eligibility" and s["date"] == "2026-06-30" for s in body["fibre"]["sources"])
    NearbyReport.model_validate(body)


def test_report_by_address(demo_client: TestClient, premise: dict):
    response = demo_client.get("/api/nearby", params={"address": premise["label"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"]["address"]["label"] == premise["label"]
    assert body["query"]["address"]["ambiguous"] is False
    assert body["fibre"]["premise"]["imb_id"] == premise["imb_id"] and body["fibre"]["premise"]["exact"]
    assert "À cette adresse" in body["fibre"]["message"]


def test_an_ambiguous_address_says_so(demo_client: TestClient):
    body = demo_client.get("/api/nearby", params={"address": "1 place de l'église"}).json()
    assert body["query"]["address"]["ambiguous"] is True and body["query"]["address"]["alternatives"]


def test_unknown_address_is_a_404_in_french(demo_client: TestClient):
    response = demo_client.get("/api/nearby", params={"address": "zzxqy wvvt"})
    assert response.status_code == 404 and response.headers["content-type"].startswith(PROBLEM)
    assert "Aucune adresse" in response.json()["detail"]


@pytest.mark.parametrize("lon,lat", [(2.35, 48.85), (1.0, 44.0), (1.9, 45.2), (-1.5, 43.5)])
def test_a_point_outside_the_territory_is_a_422_in_french(demo_client: TestClient, lon: float, lat: float):
    response = demo_client.get("/api/nearby", params={"lon": lon, "lat": lat})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["title"] == "Hors du territoire" and "hors du territoire du Lot" in body["detail"]


def test_a_point_just_outside_the_border_is_within_the_tolerance(demo_client: TestClient, engine: Engine,
                                                                 settings: Settings):
    """North of the northernmost vertex of the outline: 100 m out is tolerated (500 m), 2 km out is not."""
    with engine.connect() as conn:
        lon, lat = conn.execute(text("SELECT ST_X(p), ST_Y(p) FROM (SELECT (ST_DumpPoints(geom)).geom AS p "
                                     "FROM territory) d ORDER BY ST_Y(p) DESC LIMIT 1")).one()
    assert settings.territory.tolerance_m == 500
    near = demo_client.get("/api/nearby", params={"lon": lon, "lat": lat + 100 / 111_000})
    assert near.status_code == 200, near.text
    assert near.json()["commune"] is not None
    far = demo_client.get("/api/nearby", params={"lon": lon, "lat": lat + 2000 / 111_000})
    assert far.status_code == 422


@pytest.mark.parametrize("params,parameter", [
    ({"lon": "abc", "lat": "44.5"}, "lon"),
    ({"lon": "1.6", "lat": "quarante"}, "lat"),
    ({"lon": "nan", "lat": "44.5"}, "lon"),
    ({"lon": "1.6", "lat": "inf"}, "lat"),
    ({"lon": "1e400", "lat": "44.5"}, "lon"),
    ({"lon": "1.6", "lat": "95"}, "lat"),
    ({"lon": "-200", "lat": "44.5"}, "lon"),
    ({"lon": "1.6"}, "lat"),
    ({"lat": "44.5"}, "lon"),
    ({}, "lon"),
    ({"lon": "1.6", "lat": "44.5", "address": "Cahors"}, "address"),
    ({"address": ""}, "q"),
    ({"address": "x" * 500}, "q"),
])
def test_bad_parameters_are_400_problem_details_in_french(demo_client: TestClient, params: dict, parameter: str):
    response = demo_client.get("/api/nearby", params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == 400 and body["parameter"] == parameter
    assert any(word in body["detail"] for word in ("nombre", "Indiquez", "indiquez", "vide", "caractères",
                                                    "inférieur", "supérieur")), body["detail"]


def test_script_tags_in_the_address_are_only_text(demo_client: TestClient):
    response = demo_client.get("/api/nearby", params={"address": "<script>alert(1)</script>"})
    assert response.status_code == 404
    assert response.json()["detail"].count("<script>") == 1  # echoed as JSON text, never as HTML


def test_openapi_documents_the_report_and_the_geocoder(demo_client: TestClient):
    spec = demo_client.get("/openapi.json").json()
    nearby = spec["paths"]["/api/nearby"]["get"]
    assert nearby["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/NearbyReport")
    assert {"400", "404", "422"} <= set(nearby["responses"])
    assert {p["name"] for p in nearby["parameters"]} == {"lon", "lat", "address"}
    geocode = spec["paths"]["/api/geocode"]["get"]
    assert geocode["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/GeocodeResponse")
    schemas = spec["components"]["schemas"]
    assert {"Fibre", "Mobile", "WhiteZones", "Place", "Opening", "Source"} <= set(schemas)
