"""``/api/geocode`` and the geocoder service on the demo territory (seed 46): accents, case, abbreviations,
typos, ranking, limit, bad queries, and the ``addresses`` table a BAN import fills."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text

from geo_service.api.resident_models import GeocodeResponse
from geo_service.services.resident import geocoder


@pytest.fixture(scope="module")
def premise(demo_territory, engine: Engine) -> dict:
    """A demo premise of Figeac on an avenue, with a number: what a resident would type."""
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT numero, nom_voie, code_postal, nom_commune, imb_id, ST_X(geom) AS lon, ST_Y(geom) AS lat "
            "FROM premises WHERE nom_commune = 'Figeac' AND nom_voie LIKE 'avenue %' AND numero ~ '^[0-9]+$' "
            "ORDER BY imb_id LIMIT 1")).mappings().one()
    return dict(row)


def first(demo_client: TestClient, q: str, **params) -> dict:
    response = demo_client.get("/api/geocode", params={"q": q, **params})
    assert response.status_code == 200, response.text
    GeocodeResponse.model_validate(response.json())
    results = response.json()["results"]
    assert results, q
    return results[0]


@pytest.mark.parametrize("q", ["Saint-Céré", "saint cere", "SAINT-CÉRÉ", "st céré", "St-Cere", "ST CERE 46400"])
def test_accents_case_and_saint_abbreviation(demo_client: TestClient, q: str):
    best = first(demo_client, q)
    assert (best["type"], best["name"], best["code_postal"]) == ("commune", "Saint-Céré", "46400")


def test_avenue_abbreviation_finds_the_address(demo_client: TestClient, premise: dict):
    street = premise["nom_voie"].replace("avenue ", "av ", 1)
    best = first(demo_client, f"{premise['numero']} {street} figeac")
    assert best["type"] == "adresse"
    assert best["label"] == f"{premise['numero']} {premise['nom_voie']}, {premise['code_postal']} Figeac"
    assert best["id"] == f"premises:{premise['imb_id']}"
    assert (best["lon"], best["lat"]) == pytest.approx((premise["lon"], premise["lat"]))


def test_usual_street_abbreviations_are_expanded():
    assert geocoder.parse("3 pl de l'église").words == "place de l eglise"
    assert geocoder.parse("rte de cahors").words == "route de cahors"
    assert geocoder.parse("chem des vignes").words == "chemin des vignes"
    assert geocoder.parse("imp du lavoir").words == "impasse du lavoir"
    assert geocoder.parse("bd gambetta").words == "boulevard gambetta"
    assert geocoder.parse("12 r de la gare") == geocoder.ParsedQuery(12, None, None, "rue de la gare")
    assert geocoder.parse("12bis rue de la gare 46100") == geocoder.ParsedQuery(12, "bis", "46100", "rue de la gare")


@pytest.mark.parametrize("typo,commune", [("Gourdn", "Gourdon"), ("Souilac", "Souillac"), ("Figeak", "Figeac"),
                                          ("Lalbenke", "Lalbenque")])
def test_a_small_typo_still_finds_the_commune(demo_client: TestClient, typo: str, commune: str):
    best = first(demo_client, typo)
    assert (best["type"], best["name"]) == ("commune", commune)
    assert best["score"] < 0.7  # found, but said to be an approximate match


def test_a_typo_in_the_street_finds_the_address(demo_client: TestClient, premise: dict):
    street = premise["nom_voie"].replace("avenue", "avenu", 1)
    best = first(demo_client, f"{premise['numero']} {street} figeac")
    assert best["id"] == f"premises:{premise['imb_id']}"


def test_ranking_commune_first_then_its_streets(demo_client: TestClient):
    results = demo_client.get("/api/geocode", params={"q": "cahors", "limit": 5}).json()["results"]
    assert results[0]["type"] == "commune" and results[0]["name"] == "Cahors"
    assert all(r["commune"] == "Cahors" for r in results[1:])
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)


def test_three_letters_find_the_largest_commune_first(demo_client: TestClient):
    assert first(demo_client, "cah")["name"] == "Cahors"


def test_a_number_makes_the_address_beat_the_street(demo_client: TestClient, premise: dict):
    results = demo_client.get("/api/geocode", params={
        "q": f"{premise['numero']} {premise['nom_voie']} figeac", "limit": 5}).json()["results"]
    assert results[0]["type"] == "adresse" and results[0]["numero"] == premise["numero"]


def test_limit_is_respected_and_bounded(demo_client: TestClient):
    assert len(demo_client.get("/api/geocode", params={"q": "rue", "limit": 3}).json()["results"]) == 3
    assert len(demo_client.get("/api/geocode", params={"q": "rue"}).json()["results"]) == geocoder.DEFAULT_LIMIT
    response = demo_client.get("/api/geocode", params={"q": "rue", "limit": 21})
    assert response.status_code == 400 and "limit" in response.json()["detail"]


@pytest.mark.parametrize("q,mentions", [("", "vide"), ("   ", "vide"), ("x" * 201, "200 caractères")])
def test_empty_or_too_long_query_is_a_400_in_french(demo_client: TestClient, q: str, mentions: str):
    response = demo_client.get("/api/geocode", params={"q": q})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert mentions in response.json()["detail"] and response.json()["parameter"] == "q"


def test_missing_query_is_a_400(demo_client: TestClient):
    assert demo_client.get("/api/geocode").status_code == 400


def test_script_tags_are_only_text(demo_client: TestClient):
    response = demo_client.get("/api/geocode", params={"q": "<script>alert(1)</script>"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    assert response.json() == {"query": "<script>alert(1)</script>", "results": []}


def test_the_exact_label_of_an_answer_is_not_ambiguous(conn: Connection, premise: dict, demo_territory):
    label = f"{premise['numero']} {premise['nom_voie']}, {premise['code_postal']} Figeac"
    match = geocoder.best_match(conn, label)
    assert match.best.label == label and not match.ambiguous
    many = geocoder.best_match(conn, "1 place de l'église")
    assert many.ambiguous and len({r.commune for r in [many.best, *many.alternatives]}) > 1


def test_ban_addresses_are_searched_after_a_refresh(conn: Connection, demo_territory):
    """The BAN importer writes ``addresses`` then calls ``refresh_search_index``: its addresses are found."""
    conn.execute(text(
        "INSERT INTO addresses (id, numero, rep, nom_voie, code_postal, code_insee, nom_commune, geom, source) "
        "SELECT '46102_0500_00007_bis', 7, 'bis', 'chemin des Tests Géocodeur', '46100', code_insee, nom_actuel, "
        "ST_PointOnSurface(geom), 'BAN' FROM communes WHERE nom = 'Figeac'"))
    counts = geocoder.refresh_search_index(conn)
    assert counts["numeros"] > 100_000 and counts["communes"] >= 300
    best = geocoder.search(conn, "7 bis chem des tests geocodeur figeac", limit=3)[0]
    assert (best.type, best.source, best.numero) == ("adresse", "addresses", "7 bis")
    assert best.label == "7 bis chemin des Tests Géocodeur, 46100 Figeac"


def test_index_counts_match_the_premises(conn: Connection, demo_territory):
    numbered = conn.execute(text("SELECT count(*) FROM premises WHERE numero ~ '^[0-9]'")).scalar()
    assert conn.execute(text("SELECT count(*) FROM geocode_numbers")).scalar() == numbered
    assert not geocoder.index_is_empty(conn)
