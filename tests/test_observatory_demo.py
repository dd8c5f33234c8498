"""The observatory's indicators on the demo territory, read back from its stored snapshots as ``make run`` leaves
them (history back-filled, today's snapshot): EPCI sums, levels, dates, the API's filters and formats."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, text

from geo_service.api.indicator_api import CSV_COLUMNS
from geo_service.services.observatory import indicator_values, snapshots
from geo_service.services.observatory.indicator_catalogue import INDICATORS
from geo_service.services.resident.report_wording import ELIGIBLE_STATES

EPCI_CODE = "200023737"  # Grand Cahors (epci layer's SIREN of the demo's boundaries)


@pytest.fixture(scope="module")
def table(observatory_snapshot, engine: Engine, registry):
    with engine.connect() as conn:
        return snapshots.load(conn, registry, snapshots.latest(conn))


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


@pytest.fixture(scope="module")
def client(observatory_snapshot, demo_client):
    return demo_client


def _rows(client, **params) -> list[dict]:
    response = client.get("/api/indicators", params=params)
    assert response.status_code == 200, response.text
    return response.json()["values"]


def test_api_filters_and_csv_equals_json(client) -> None:
    import csv
    import io

    asked = {"level": "epci", "indicator": "locaux,part_locaux_eligibles"}
    values = _rows(client, **asked)
    assert {v["indicator"] for v in values} == {"locaux", "part_locaux_eligibles"}
    assert {v["level"] for v in values} == {"epci"} and len(values) == 2 * len({v["code"] for v in values})
    assert all(v["sources"] and v["as_of"] and v["name"] for v in values)
    response = client.get("/api/indicators", params={**asked, "format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["indicator"], r["code"], float(r["value"]), r["as_of"], r["sources"]) for r in rows] == [
        (v["indicator"], v["code"], v["value"], v["as_of"], " ; ".join(v["sources"])) for v in values]
    one = _rows(client, level="commune", code="46042", indicator=["locaux", "lieux_mediation"])
    assert {(v["code"], v["indicator"]) for v in one} == {("46042", "locaux"), ("46042", "lieux_mediation")}


def test_api_epci_sums_equal_the_departement(client) -> None:
    values = _rows(client, indicator="locaux_eligibles,pm_deployes")
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
def test_api_bad_filters_are_told_in_french(client, params, status, words) -> None:
    response = client.get("/api/indicators", params=params)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert words in response.json()["detail"]


def test_api_is_described_in_the_openapi(client) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/api/indicators"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"level", "code", "indicator", "date", "format", "sep"}
    assert "text/csv" in operation["responses"]["200"]["content"]


def test_the_latest_snapshot_is_today_and_computed(client, observatory_snapshot) -> None:
    body = client.get("/api/indicators", params={"level": "departement", "indicator": "locaux"}).json()
    assert body["snapshot_date"] == date.today().isoformat() == observatory_snapshot.taken_on.isoformat()
    assert body["snapshot_kind"] == "computed" and body["requested_date"] is None and body["note"] is None
    assert isinstance(body["values"][0]["value"], int)  # a count, not 130003.0


def test_a_date_without_snapshot_gets_the_nearest_earlier_one_said_so(client) -> None:
    dates = [s["date"] for s in client.get("/api/indicators/snapshots").json()["snapshots"]]
    assert dates == sorted(dates) and len(dates) > 8 and dates[-1] == date.today().isoformat()
    first_quarter_end = date.fromisoformat(dates[0])
    asked = first_quarter_end + timedelta(days=40)  # between two quarter ends
    body = client.get("/api/indicators", params={"date": asked.isoformat(), "level": "departement",
                                                 "indicator": "locaux_eligibles"}).json()
    assert body["snapshot_date"] == dates[0] and body["snapshot_kind"] == "backfilled"
    assert body["requested_date"] == asked.isoformat()
    assert f"{asked:%d/%m/%Y}" in body["note"] and f"{first_quarter_end:%d/%m/%Y}" in body["note"]
    # A back-filled snapshot holds the premises' indicators only: the others are absent, not zero.
    body = client.get("/api/indicators", params={"date": dates[0], "level": "departement"}).json()
    assert {v["indicator"] for v in body["values"]} == {"locaux", "locaux_eligibles", "part_locaux_eligibles"}
    response = client.get("/api/indicators", params={"date": (first_quarter_end - timedelta(days=1)).isoformat()})
    assert response.status_code == 404 and "ni avant" in response.json()["detail"]


def test_history_is_the_eligible_premises_counted_again_at_each_date(client, engine: Engine) -> None:
    body = client.get("/api/indicators/history", params={"indicator": "locaux_eligibles", "level": "epci",
                                                         "code": EPCI_CODE}).json()
    points = [(v["date"], v["value"]) for v in body["values"]]
    assert [d for d, _ in points] == sorted(d for d, _ in points) and len(points) > 8
    assert all(v["code"] == EPCI_CODE and v["level"] == "epci" for v in body["values"])
    # Counted again here, independently: eligible premises of the EPCI's communes effective on or before each
    # back-filled date (today's snapshot: every eligible premise).
    with engine.connect() as conn:
        dated = conn.execute(text(
            "SELECT p.date_raccordable FROM premises p JOIN communes c ON c.code_insee = p.code_insee "
            "WHERE c.epci_siren = :siren AND p.etat = ANY(CAST(:eligible AS text[])) AND p.deleted_at IS NULL "
            "AND p.validation_state = 'published'"),
            {"siren": EPCI_CODE, "eligible": list(ELIGIBLE_STATES)}).scalars().all()
    today = date.today().isoformat()
    expected = [(d, len(dated) if d == today else sum(1 for x in dated if x and x.isoformat() <= d))
                for d, _ in points]
    assert points == expected
    assert points[0][1] < points[-1][1]


def test_history_and_tables_have_csv_for_french_spreadsheets(client) -> None:
    response = client.get("/api/indicators/history", params={"indicator": "part_locaux_eligibles",
                                                             "level": "departement", "format": "csv", "sep": ";"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    header, *rows = response.text.splitlines()
    assert header.split(";")[:3] == ["date", "indicator", "label"] and len(rows) > 8
    response = client.get("/api/indicators", params={"level": "epci", "format": "csv", "sep": ";"})
    assert response.text.splitlines()[0].split(";") == list(CSV_COLUMNS)


@pytest.mark.parametrize(("path", "params", "status", "words"), [
    ("/api/indicators", {"date": "2026-13-45"}, 400, "date"),
    ("/api/indicators", {"sep": "|"}, 400, "sep"),
    ("/api/indicators/history", {}, 400, "indicator"),
    ("/api/indicators/history", {"indicator": ",".join(i.id for i in INDICATORS[:11])}, 400, "Au plus 10"),
    ("/api/indicators/history", {"indicator": "locaux", "level": "epci", "code": "999999999"}, 404, "Aucun EPCI"),
])
def test_history_and_dates_refuse_bad_input_in_french(client, path, params, status, words) -> None:
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert words in response.json()["detail"]
