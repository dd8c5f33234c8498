"""Open311 GeoReport v2 as a client sees it: the service under uvicorn, a real HTTP client (httpx), the
specification's fields (https://wiki.open311.org/GeoReport_v2), a round trip create → read → answer → read,
and no personal data on the public side."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from browser_support import serve_app
from factories import epci_points
from sqlalchemy import text

from geo_service.main import create_app
from geo_service.services.editing.accounts import Principal
from geo_service.services.reports import report_queue

SERVICE_FIELDS = {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
REQUEST_FIELDS = {"service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"}


@pytest.fixture(scope="module")
def open311(loaded_boundaries, settings) -> Iterator[tuple[httpx.Client, tuple[float, float]]]:
    with loaded_boundaries.begin() as conn:
        conn.execute(text("DELETE FROM report_status_history; DELETE FROM report_confirmations; DELETE FROM reports"))
        point = epci_points(conn).inside
    with serve_app(create_app(settings)) as base, httpx.Client(base_url=base + "/open311/v2") as client:
        yield client, point
    with loaded_boundaries.begin() as conn:
        conn.execute(text("DELETE FROM report_status_history; DELETE FROM report_confirmations; DELETE FROM reports"))


def test_services_follow_the_specification(open311):
    client, _ = open311
    for path in ("/services.json", "/services"):
        response = client.get(path)
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        services = response.json()
        assert {s["service_code"] for s in services} == {"fibre", "mobile", "wifi", "place", "other"}
        assert all(set(s) == SERVICE_FIELDS and s["type"] == "realtime" for s in services)
    definition = client.get("/services/mobile.json").json()
    assert definition["service_code"] == "mobile"
    codes = {a["code"]: a for a in definition["attributes"]}
    assert set(codes) == {"operator", "technology"}
    assert codes["operator"]["datatype"] == "singlevaluelist" and {"key": "sfr", "name": "SFR"} in \
        codes["operator"]["values"]
    assert client.get("/services/inconnu.json").status_code == 404


def test_a_request_round_trip_without_personal_data(open311, engine):
    client, (lon, lat) = open311
    created = client.post("/requests.json", data={
        "service_code": "mobile", "lat": str(lat), "long": str(lon), "description": "Aucun réseau chez moi, M. Dupont",
        "attribute[operator]": "sfr", "attribute[technology]": "4G", "email": "dupont@exemple.fr",
        "api_key": "cle-quelconque"})
    assert created.status_code == 201, created.text
    [answer] = created.json()
    request_id = answer["service_request_id"]
    assert answer["service_notice"] and answer["follow_up_url"].rsplit("/", 2)[1] == "signalement"
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT email, details FROM reports WHERE public_id = :p"), {"p": request_id}).one()
    assert stored[0] is None and stored[1] == {"operator": "sfr", "technology": "4G"}  # no consent in Open311

    [one] = client.get(f"/requests/{request_id}.json").json()
    assert set(one) == REQUEST_FIELDS
    assert one["status"] == "open" and one["service_code"] == "mobile" and one["status_notes"] is None
    assert abs(one["lat"] - lat) < 1e-5 and abs(one["long"] - lon) < 1e-5
    assert "Opérateur : SFR" in one["description"]
    assert client.get(f"/requests/{request_id}").json() == [one]

    with engine.begin() as conn:
        report_queue.change_status(conn, Principal("o311-agent", "admin", 1, via="cli"), request_id, "resolved",
                                   "Antenne SFR remise en service")
    [closed] = client.get(f"/requests/{request_id}.json").json()
    assert closed["status"] == "closed" and closed["status_notes"] == "Antenne SFR remise en service"

    now = datetime.now(UTC)
    listed = client.get("/requests.json", params={
        "service_code": "mobile", "status": "closed", "start_date": (now - timedelta(days=1)).isoformat(),
        "end_date": (now + timedelta(days=1)).isoformat()}).json()
    assert [r["service_request_id"] for r in listed] == [request_id]
    assert client.get("/requests.json", params={"status": "open", "service_code": "mobile"}).json() == []
    everything = client.get("/requests").text
    assert "dupont" not in everything.lower() and "Aucun réseau" not in everything


def open311_error(response) -> str:
    """The one error of GeoReport v2's error format (a list of code and description), its description."""
    assert response.headers["content-type"] == "application/json"
    [error] = response.json()
    assert error["code"] == response.status_code
    return error["description"]


def test_open311_refusals_are_french_in_the_specification_error_format(open311):
    client, (lon, lat) = open311
    missing = client.post("/requests.json", data={"service_code": "wifi"})
    assert missing.status_code == 400 and "lat et long" in open311_error(missing)
    unknown = client.post("/requests.json", data={"service_code": "nids-de-poule", "lat": str(lat),
                                                  "long": str(lon)})
    assert unknown.status_code == 400 and "Catégorie inconnue" in open311_error(unknown)
    outside = client.post("/requests.json", data={"service_code": "wifi", "lat": "48.85", "long": "2.35"})
    assert outside.status_code == 422 and open311_error(outside)
    dated = client.get("/requests.json", params={"start_date": "hier"})
    assert dated.status_code == 400 and "start_date" in open311_error(dated)
    unknown_request = client.get("/requests/SINCONNU.json")
    assert unknown_request.status_code == 404 and open311_error(unknown_request)
    no_code = client.post("/requests.json", data={})  # a missing form field: the request's own validation
    assert no_code.status_code == 400 and "service_code" in open311_error(no_code)
