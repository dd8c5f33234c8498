"""The /admin screens through their HTML forms: queue with before/after, history with revert, accounts,
conventions, the editor's generated form and its feature list; CSRF on every form."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from conftest import PASSWORD
from factories import EDIT_SOURCE, EpciPoints, Factory, epci_world
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.settings import Settings


@pytest.fixture(scope="module")
def points(loaded_boundaries: Engine, registry: LayerRegistry) -> Iterator[EpciPoints]:
    factory = Factory(registry)
    with epci_world(loaded_boundaries, registry, "p", reference="CONV-PAGES") as found:
        yield found
        with loaded_boundaries.begin() as conn:
            factory.cleanup(conn)


def token_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def logged_in(settings: Settings, username: str) -> TestClient:
    client = TestClient(create_app(settings), base_url="http://localhost")
    client.__enter__()
    token = token_of(client.get("/admin/login").text)
    r = client.post("/admin/login", data={"username": username, "password": PASSWORD, "csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


@pytest.fixture(scope="module")
def admin(settings: Settings, points: EpciPoints) -> Iterator[TestClient]:
    client = logged_in(settings, "p-admin")
    yield client
    client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def contributor(settings: Settings, points: EpciPoints) -> Iterator[TestClient]:
    client = logged_in(settings, "p-contrib")
    yield client
    client.__exit__(None, None, None)


def csrf(client: TestClient) -> str:
    return token_of(client.get("/admin").text)


def borne(point, **props) -> dict:
    base = {"borne_id": "page-1", "code_insee": "46042", "lieu": "Mairie", "ssid": "WIFI", "statut": "installee",
            "source": EDIT_SOURCE}
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(point)},
            "properties": {**base, **props}}


def test_the_editor_form_is_generated_from_the_declaration(contributor: TestClient):
    index = contributor.get("/admin/edit")
    assert index.status_code == 200 and "/admin/edit/wifi_hotspots" in index.text
    assert "/admin/edit/premises" not in index.text  # not open to EPCI contributors
    page = contributor.get("/admin/edit/wifi_hotspots").text
    assert 'id="f-statut"' in page and '<option value="installee">En service</option>' in page
    assert 'id="f-rayon_m"' in page and 'max="500.0"' in page and "Portée du signal (m)" in page
    assert "Lieu <span class=\"admin-hint\">(obligatoire)</span>" in page
    assert "propositions" in page and "CONV-PAGES" in page
    assert "leaflet-geoman" in page
    assert contributor.get("/admin/edit/premises").status_code == 403


def test_queue_shows_before_and_after_then_accept_by_form(admin: TestClient, contributor: TestClient,
                                                          loaded_boundaries: Engine, registry: LayerRegistry,
                                                          points: EpciPoints):
    factory = Factory(registry)
    with loaded_boundaries.begin() as conn:
        fid = factory.feature(conn, "wifi_hotspots", points.inside, source=EDIT_SOURCE, lieu="Ancienne halle",
                              statut="programmee")
    r = contributor.patch(f"/ogc/collections/wifi_hotspots/items/{fid}",
                          json={"properties": {"lieu": "Nouvelle halle", "statut": "installee"}},
                          headers={"If-Match": '"v1"', "X-CSRF-Token": csrf(contributor)})
    assert r.status_code == 202, r.text
    request_id = r.json()["changeRequest"]
    assert contributor.get("/admin/proposals").status_code == 403
    queue = admin.get("/admin/proposals")
    assert queue.status_code == 200 and f"/admin/proposals/{request_id}" in queue.text and "p-contrib" in queue.text
    detail = admin.get(f"/admin/proposals/{request_id}").text
    assert "Ancienne halle" in detail and "Nouvelle halle" in detail
    assert "Installation programmée" in detail and "En service" in detail  # code labels, not codes
    assert 'class="admin-diff--changed"' in detail and "admin-map" in detail
    assert admin.post(f"/admin/proposals/{request_id}", data={"decision": "accept"}).status_code == 403
    done = admin.post(f"/admin/proposals/{request_id}", data={"decision": "accept", "csrf_token": csrf(admin)},
                      follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/admin/proposals?done=accepted"
    assert "Proposition acceptée" in admin.get(done.headers["location"]).text
    assert admin.get(f"/ogc/collections/wifi_hotspots/items/{fid}").json()["properties"]["lieu"] == "Nouvelle halle"


def test_reject_needs_a_comment(admin: TestClient, contributor: TestClient, points: EpciPoints,
                                loaded_boundaries: Engine):
    r = contributor.post("/ogc/collections/wifi_hotspots/items", json=borne(points.inside, borne_id="page-rej"),
                         headers={"X-CSRF-Token": csrf(contributor)})
    request_id = r.json()["changeRequest"]
    missing = admin.post(f"/admin/proposals/{request_id}", data={"decision": "reject", "csrf_token": csrf(admin)})
    assert missing.status_code == 400 and "commentaire" in missing.text
    admin.post(f"/admin/proposals/{request_id}", data={"decision": "reject", "comment": "Doublon",
                                                       "csrf_token": csrf(admin)})
    with loaded_boundaries.connect() as conn:
        state = conn.execute(text("SELECT validation_state FROM wifi_hotspots WHERE borne_id = 'page-rej'")).scalar()
    assert state == "rejected"


def test_history_page_and_revert_by_form(admin: TestClient, points: EpciPoints):
    created = admin.post("/ogc/collections/wifi_hotspots/items", json=borne(points.inside, borne_id="page-hist"),
                         headers={"X-CSRF-Token": csrf(admin)})
    assert created.status_code == 201, created.text
    fid = created.json()["id"]
    patched = admin.patch(f"/ogc/collections/wifi_hotspots/items/{fid}", json={"properties": {"lieu": "Gare"}},
                          headers={"If-Match": '"v1"', "X-CSRF-Token": csrf(admin)})
    assert patched.status_code == 200, patched.text
    page = admin.get(f"/admin/history/wifi_hotspots/{fid}").text
    assert "Modification" in page and "Gare" in page and "(web)" in page
    assert "Revenir à la version 1" in page
    done = admin.post(f"/admin/history/wifi_hotspots/{fid}", data={"action": "revert", "version": 1,
                                                                    "csrf_token": csrf(admin)}, follow_redirects=False)
    assert done.status_code == 303
    assert admin.get(f"/ogc/collections/wifi_hotspots/items/{fid}").json()["properties"]["lieu"] == "Mairie"


def test_accounts_and_conventions_pages(admin: TestClient, contributor: TestClient, points: EpciPoints):
    assert contributor.get("/admin/users").status_code == 403
    users = admin.get("/admin/users")
    assert users.status_code == 200 and "p-contrib" in users.text
    created = admin.post("/admin/users", data={"username": "page-new", "role": "editor", "csrf_token": csrf(admin)})
    assert created.status_code == 200 and "affiché une seule fois" in created.text
    refused = admin.post("/admin/users", data={"username": "page-epci", "role": "epci_reader",
                                               "csrf_token": csrf(admin)})
    assert refused.status_code == 400 and "exige un EPCI" in refused.text
    token = admin.post("/admin/tokens", data={"username": "page-new", "name": "QGIS", "csrf_token": csrf(admin)})
    assert "gsk_" in token.text and "Valable jusqu" in token.text
    conv = admin.post("/admin/conventions", data={"epci": points.other, "direction": "descendante",
                                                  "layers": ["wifi_hotspots", "premises"], "reference": "CONV-WEB",
                                                  "starts_on": "2024-01-01", "csrf_token": csrf(admin)},
                      follow_redirects=False)
    assert conv.status_code == 303, conv.text
    listing = admin.get("/admin/conventions").text
    assert "CONV-WEB" in listing and "wifi_hotspots, premises" in listing
    row = next(r for r in listing.split("<tr>") if "CONV-WEB" in r)
    number = re.search(r'action="/admin/conventions/(\d+)"', row).group(1)
    assert admin.post(f"/admin/conventions/{number}", data={}).status_code == 403  # no CSRF token
    ended = admin.post(f"/admin/conventions/{number}", data={"csrf_token": csrf(admin)}, follow_redirects=True)
    assert "Convention terminée" in ended.text


def test_editor_listing_filters(contributor: TestClient, admin: TestClient, points: EpciPoints):
    r = contributor.post("/ogc/collections/wifi_hotspots/items", json=borne(points.inside, borne_id="page-list",
                                                                            lieu="Lavoir communal"),
                         headers={"X-CSRF-Token": csrf(contributor)})
    assert r.status_code == 202, r.text
    mine = contributor.get("/admin/api/features/wifi_hotspots", params={"state": "proposed", "q": "lavoir"}).json()
    assert [f["properties"]["lieu"] for f in mine["features"]] == ["Lavoir communal"]
    assert mine["features"][0]["properties"]["_state"] == "proposed"
    assert contributor.get("/admin/api/features/wifi_hotspots", params={"state": "deleted"}).status_code == 403
    elsewhere = admin.get("/admin/api/features/wifi_hotspots", params={"state": "proposed", "epci": points.other})
    assert all(f["properties"]["lieu"] != "Lavoir communal" for f in elsewhere.json()["features"])
