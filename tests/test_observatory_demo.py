"""The observatory's indicators on the demo territory: EPCI sums, levels, and the computation's cost."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from geo_service.services.observatory import indicator_values
from geo_service.services.observatory.indicator_catalogue import INDICATORS


@pytest.fixture(scope="module")
def table(demo_territory, engine: Engine, registry, settings):
    with engine.connect() as conn:
        return indicator_values.compute(conn, registry, (settings.territory.departement, settings.territory.name))


def test_demo_figures_are_there(table) -> None:
    values = {(v.indicator, v.category): v.value for v in indicator_values.values(table, level="departement")}
    print("computed in", table.computed_in_s, "s;", sorted(values.items())[:80])
    assert values[("locaux", None)] > 100_000
    assert 0 < values[("part_locaux_eligibles", None)] < 100
    assert values[("lieux_mediation", None)] > 0


def test_additive_indicators_add_up_over_epcis(table) -> None:
    all_values = indicator_values.values(table)
    for indicator in (i for i in INDICATORS if i.additive):
        dep = {v.category: v.value for v in all_values if v.indicator == indicator.id and v.level == "departement"}
        sums: dict = {}
        for v in all_values:
            if v.indicator == indicator.id and v.level == "epci":
                sums[v.category] = sums.get(v.category, 0) + v.value
        assert sums == pytest.approx(dep), indicator.id


def _rows(client, **params) -> list[dict]:
    response = client.get("/api/indicators", params=params)
    assert response.status_code == 200, response.text
    return response.json()["values"]


def test_api_filters_and_csv_equals_json(demo_client) -> None:
    import csv
    import io

    asked = {"level": "epci", "indicator": "locaux,part_locaux_eligibles"}
    values = _rows(demo_client, **asked)
    assert {v["indicator"] for v in values} == {"locaux", "part_locaux_eligibles"}
    assert {v["level"] for v in values} == {"epci"} and len(values) == 2 * len({v["code"] for v in values})
    assert all(v["sources"] and v["as_of"] and v["name"] for v in values)
    response = demo_client.get("/api/indicators", params={**asked, "format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["indicator"], r["code"], float(r["value"]), r["as_of"], r["sources"]) for r in rows] == [
        (v["indicator"], v["code"], v["value"], v["as_of"], " ; ".join(v["sources"])) for v in values]
    one = _rows(demo_client, level="commune", code="46042", indicator=["locaux", "lieux_mediation"])
    assert {(v["code"], v["indicator"]) for v in one} == {("46042", "locaux"), ("46042", "lieux_mediation")}


def test_api_epci_sums_equal_the_departement(demo_client) -> None:
    values = _rows(demo_client, indicator="locaux_eligibles,pm_deployes")
    for indicator in ("locaux_eligibles", "pm_deployes"):
        dep = [v["value"] for v in values if v["indicator"] == indicator and v["level"] == "departement"]
        epcis = [v["value"] for v in values if v["indicator"] == indicator and v["level"] == "epci"]
        communes = [v["value"] for v in values if v["indicator"] == indicator and v["level"] == "commune"]
        assert dep == [sum(epcis)] == [sum(communes)]


@pytest.mark.parametrize(("params", "status", "words"), [
    ({"level": "region"}, 400, "level"),
    ({"indicator": "locaux,nimporte"}, 400, "Indicateur inconnu"),
    ({"format": "xlsx"}, 400, "format"),
    ({"code": "'; DROP TABLE premises"}, 400, "code"),
    ({"level": "epci", "code": "999999999"}, 404, "Aucun EPCI"),
    ({"level": "commune", "code": "46099"}, 404, "Aucune commune actuelle"),
])
def test_api_bad_filters_are_told_in_french(demo_client, params, status, words) -> None:
    response = demo_client.get("/api/indicators", params=params)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert words in response.json()["detail"]


def test_api_is_described_in_the_openapi(demo_client) -> None:
    operation = demo_client.get("/openapi.json").json()["paths"]["/api/indicators"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"level", "code", "indicator", "format"}
    assert "text/csv" in operation["responses"]["200"]["content"]
