"""The rights matrix: role × layer × inside/outside the EPCI × convention in force/expired × create/update/delete.

Every case goes through the OGC API Part 4 (``/ogc/collections/{id}/items``) with a personal access token,
and asserts the status code *and* what the database holds afterwards (row, state, version, proposals).
The contributor's EPCI is the Grand Cahors with an ascending convention on the Wi-Fi bornes in force; the
"expired" contributor belongs to the Grand-Figeac whose convention ended yesterday.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from factories import EDIT_SOURCE, EpciPoints, Factory, account, convention, epci_points, wipe_editing
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services.editing import conventions
from geo_service.settings import Settings

ROLES = ("anonymous", "admin", "editor", "contributor", "contributor_expired", "reader")
LAYERS = ("wifi_hotspots", "premises")
POSITIONS = ("inside", "outside")
OPERATIONS = ("create", "update", "delete")
_marker = itertools.count(1)


class World:
    """Accounts (token per role), the EPCI points, and a factory for the features updated or deleted."""

    def __init__(self, tokens: dict[str, str], points: EpciPoints, factory: Factory):
        self.tokens, self.points, self.factory = tokens, points, factory

    def headers(self, role: str, **extra: str) -> dict[str, str]:
        auth = {"Authorization": f"Bearer {self.tokens[role]}"} if role in self.tokens else {}
        return {**auth, **extra}

    def point(self, role: str, position: str) -> tuple[float, float]:
        # "inside" is inside the account's own EPCI; the expired contributor's EPCI is the other one.
        home_is_mine = role != "contributor_expired"
        inside = position == "inside"
        return self.points.inside if inside == home_is_mine else self.points.outside


@pytest.fixture(scope="module")
def world(loaded_boundaries: Engine, registry: LayerRegistry) -> Iterator[World]:
    today = conventions.local_day()
    with loaded_boundaries.begin() as conn:
        wipe_editing(conn, registry)
        points = epci_points(conn)
        tokens = {
            "admin": account(conn, "m-admin", "admin"),
            "editor": account(conn, "m-editor", "editor"),
            "contributor": account(conn, "m-contrib", "epci_contributor", epci=points.mine),
            "contributor_expired": account(conn, "m-expired", "epci_contributor", epci=points.other),
            "reader": account(conn, "m-reader", "epci_reader", epci=points.mine),
        }
        convention(conn, registry, points.mine, "ascendante", ["wifi_hotspots"], starts_on=today - timedelta(days=30))
        convention(conn, registry, points.mine, "descendante", ["wifi_hotspots", "premises"],
                   starts_on=today - timedelta(days=30))
        convention(conn, registry, points.other, "ascendante", ["wifi_hotspots"], starts_on=date(2020, 1, 1),
                   ends_on=today - timedelta(days=1), reference="CONV-FIGEAC-2020")
    factory = Factory(registry)
    yield World(tokens, points, factory)
    with loaded_boundaries.begin() as conn:
        factory.cleanup(conn)
        wipe_editing(conn, registry)


@pytest.fixture(scope="module")
def client(settings: Settings, world: World) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="http://localhost") as c:
        yield c


def expected_status(role: str, layer: str, position: str, operation: str) -> int:
    if role == "anonymous":
        return 401
    if role in ("admin", "editor"):
        return {"create": 201, "update": 200, "delete": 204}[operation]
    if role == "contributor" and layer == "wifi_hotspots" and position == "inside":
        return 202
    return 403


def new_feature(layer: str, point: tuple[float, float], marker: str) -> dict:
    props = {"wifi_hotspots": {"borne_id": marker, "code_insee": "46042", "lieu": "Place de test",
                               "ssid": "WIFI public lotois", "statut": "installee"},
             "premises": {"imb_id": marker, "adresse": "1 rue du Test", "code_insee": "46042", "nb_logements": 2,
                          "etat": "deploye"}}[layer]
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(point)},
            "properties": {**props, "source": EDIT_SOURCE}}


LABEL = {"wifi_hotspots": "lieu", "premises": "adresse"}
KEY = {"wifi_hotspots": "borne_id", "premises": "imb_id"}


def row(engine: Engine, layer: str, where: str, value: object) -> dict | None:
    with engine.connect() as conn:
        found = conn.execute(text(f"SELECT fid, {LABEL[layer]} AS label, version, validation_state, deleted_at "
                                  f"FROM {layer} WHERE {where} = :v"), {"v": value}).mappings().first()
    return dict(found) if found else None


def requests_for(engine: Engine, layer: str, fid: int) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(
            "SELECT kind, status, properties FROM change_requests WHERE layer_id = :l AND fid = :f"),
            {"l": layer, "f": fid}).mappings()]


CASES = list(itertools.product(ROLES, LAYERS, POSITIONS, OPERATIONS))


@pytest.mark.parametrize(("role", "layer", "position", "operation"), CASES,
                         ids=["-".join(c) for c in CASES])
def test_rights_matrix(client: TestClient, world: World, loaded_boundaries: Engine, role: str, layer: str,
                       position: str, operation: str):
    engine, point = loaded_boundaries, world.point(role, position)
    expected = expected_status(role, layer, position, operation)
    url = f"/ogc/collections/{layer}/items"
    if operation == "create":
        marker = f"matrix-{next(_marker)}"
        r = client.post(url, json=new_feature(layer, point, marker), headers=world.headers(role))
        assert r.status_code == expected, r.text
        stored = row(engine, layer, KEY[layer], marker)
        if expected in (201, 202):
            assert stored is not None
            assert stored["validation_state"] == ("published" if expected == 201 else "proposed")
            kinds = [(cr["kind"], cr["status"]) for cr in requests_for(engine, layer, stored["fid"])]
            assert kinds == ([] if expected == 201 else [("create", "pending")])
        else:
            assert stored is None
        return
    with engine.begin() as conn:
        fid = world.factory.feature(conn, layer, point, source=EDIT_SOURCE, **{LABEL[layer]: "Avant"})
    if operation == "update":
        r = client.patch(f"{url}/{fid}", json={"properties": {LABEL[layer]: "Après"}},
                         headers=world.headers(role, **{"If-Match": '"v1"'}))
    else:
        r = client.delete(f"{url}/{fid}", headers=world.headers(role, **{"If-Match": '"v1"'}))
    assert r.status_code == expected, r.text
    stored = row(engine, layer, "fid", fid)
    assert stored is not None
    pending = requests_for(engine, layer, fid)
    if expected == 200:
        assert (stored["label"], stored["version"]) == ("Après", 2) and not pending
    elif expected == 204:
        assert stored["deleted_at"] is not None and stored["version"] == 2 and not pending
    else:
        # Refused, or a proposal: the published row is exactly as before.
        assert (stored["label"], stored["version"], stored["deleted_at"]) == ("Avant", 1, None)
        if expected == 202:
            assert [(p["kind"], p["status"]) for p in pending] == [(operation, "pending")]
            if operation == "update":
                assert pending[0]["properties"][LABEL[layer]] == "Après"
        else:
            assert not pending


def test_refusals_say_why_in_french(client: TestClient, world: World):
    url = "/ogc/collections/wifi_hotspots/items"
    outside = client.post(url, json=new_feature("wifi_hotspots", world.points.outside, "why-1"),
                          headers=world.headers("contributor"))
    assert outside.status_code == 403
    assert outside.headers["content-type"] == "application/problem+json"
    assert "hors du périmètre" in outside.json()["detail"] and "Grand Cahors" in outside.json()["detail"]
    expired = client.post(url, json=new_feature("wifi_hotspots", world.points.outside, "why-2"),
                          headers=world.headers("contributor_expired"))
    assert expired.status_code == 403 and "a pris fin le" in expired.json()["detail"]
    assert "CONV-FIGEAC-2020" in expired.json()["detail"]
    premises = client.post("/ogc/collections/premises/items",
                           json=new_feature("premises", world.points.inside, "why-3"),
                           headers=world.headers("contributor"))
    assert premises.status_code == 403 and "contributeur EPCI" in premises.json()["detail"]
    reader = client.post(url, json=new_feature("wifi_hotspots", world.points.inside, "why-4"),
                         headers=world.headers("reader"))
    assert reader.status_code == 403 and "lecteur EPCI" in reader.json()["detail"]
    anonymous = client.post(url, json=new_feature("wifi_hotspots", world.points.inside, "why-5"))
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("start", "end", "allowed"), [("inside", "outside", False), ("outside", "inside", False),
                                                       ("inside", "inside", True)])
def test_a_contributor_moves_only_within_its_perimeter(client: TestClient, world: World, loaded_boundaries: Engine,
                                                        start: str, end: str, allowed: bool):
    points = {"inside": world.points.inside, "outside": world.points.outside}
    with loaded_boundaries.begin() as conn:
        fid = world.factory.feature(conn, "wifi_hotspots", points[start], source=EDIT_SOURCE)
    target = points[end] if start != end else (points[end][0] + 0.001, points[end][1])
    r = client.patch(f"/ogc/collections/wifi_hotspots/items/{fid}",
                     json={"geometry": {"type": "Point", "coordinates": list(target)}},
                     headers=world.headers("contributor", **{"If-Match": '"v1"'}))
    assert r.status_code == (202 if allowed else 403), r.text
    if not allowed:
        which = "L'entité existante" if start == "outside" else "La géométrie"
        assert r.json()["detail"].startswith(which)
    assert len(requests_for(loaded_boundaries, "wifi_hotspots", fid)) == (1 if allowed else 0)


def test_ending_a_convention_stops_writes_at_once(client: TestClient, world: World, registry: LayerRegistry,
                                                  loaded_boundaries: Engine):
    url = "/ogc/collections/third_places/items"
    body = {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(world.points.inside)},
            "properties": {"tl_id": "end-1", "nom": "Tiers-lieu", "adresse": "Place", "code_insee": "46042",
                           "source": EDIT_SOURCE}}
    assert client.post(url, json=body, headers=world.headers("contributor")).status_code == 403
    with loaded_boundaries.begin() as conn:
        conv = convention(conn, registry, world.points.mine, "ascendante", ["third_places"],
                          starts_on=conventions.local_day(), reference="CONV-TL")
    assert client.post(url, json=body, headers=world.headers("contributor")).status_code == 202
    with loaded_boundaries.begin() as conn:
        conventions.end_convention(conn, conv)
    body["properties"]["tl_id"] = "end-2"
    refused = client.post(url, json=body, headers=world.headers("contributor"))
    assert refused.status_code == 403 and "terminée" in refused.json()["detail"]


def test_a_disabled_account_or_revoked_token_cannot_write(client: TestClient, world: World,
                                                          loaded_boundaries: Engine):
    from geo_service.services.editing import accounts

    with loaded_boundaries.begin() as conn:
        token = account(conn, "m-gone", "editor")
        accounts.set_active(conn, "m-gone", False)
    r = client.post("/ogc/collections/wifi_hotspots/items", headers={"Authorization": f"Bearer {token}"},
                    json=new_feature("wifi_hotspots", world.points.inside, "gone-1"))
    assert r.status_code == 401
    assert client.get("/ogc/collections", headers={"Authorization": "Bearer gsk_not-a-token"}).status_code == 401
