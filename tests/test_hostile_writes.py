"""Hostile input on the write paths: JSON bodies nested without end or holding NaN/Infinity, NUL characters, and
anti-CSRF tokens that are not ASCII. Each is a 4xx problem (or the login page's 403) in French, never a 500,
and the database is unchanged.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator

import pytest
from conftest import PASSWORD
from factories import EDIT_SOURCE, EpciPoints, account, epci_points, wipe_editing
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services.editing import accounts
from geo_service.settings import Settings

ITEMS = "/ogc/collections/wifi_hotspots/items"
_n = itertools.count(1)


class Ctx:
    def __init__(self, token: str, points: EpciPoints, engine: Engine):
        self.token, self.points, self.engine = token, points, engine

    def auth(self, content_type: str = "application/geo+json", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": content_type, **extra}

    def counts(self) -> tuple[int, int, int]:
        """What a refused write must leave as it was: features, history, proposals."""
        with self.engine.connect() as conn:
            return tuple(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                         for t in ("wifi_hotspots", "feature_history", "change_requests"))


@pytest.fixture(scope="module")
def ctx(loaded_boundaries: Engine, registry: LayerRegistry) -> Iterator[Ctx]:
    with loaded_boundaries.begin() as conn:
        wipe_editing(conn, registry)
        points = epci_points(conn)
        token = account(conn, "h-admin", "admin")
        accounts.create_account(conn, "h-editor", "editor", password=PASSWORD)
    yield Ctx(token, points, loaded_boundaries)
    with loaded_boundaries.begin() as conn:
        wipe_editing(conn, registry)


@pytest.fixture(scope="module")
def client(settings: Settings, ctx: Ctx) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="http://localhost", raise_server_exceptions=False) as c:
        yield c


def feature(ctx: Ctx, **props: object) -> dict:
    base = {"borne_id": f"hostile-{next(_n)}", "code_insee": "46042", "lieu": "Mairie", "ssid": "WIFI",
            "statut": "installee", "source": EDIT_SOURCE}
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(ctx.points.inside)},
            "properties": {**base, **props}}


def with_value(ctx: Ctx, path: str, literal: str) -> bytes:
    """A valid feature's JSON with one value (a property, or the longitude) replaced by raw JSON text, which
    json.dumps cannot write."""
    body = feature(ctx)
    if path == "lon":
        body["geometry"]["coordinates"][0] = "@VALUE@"
    else:
        body["properties"][path] = "@VALUE@"
    return json.dumps(body).replace('"@VALUE@"', literal, 1).encode()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


BODIES = {
    "100,000 nested arrays as the body": lambda ctx: nested(100_000).encode(),
    "100,000 nested arrays in a property": lambda ctx: with_value(ctx, "lieu", nested(100_000)),
    "40 nested objects in a property": lambda ctx: with_value(ctx, "lieu", '{"a":' * 40 + "1" + "}" * 40),
    "NaN coordinate": lambda ctx: with_value(ctx, "lon", "NaN"),
    "Infinity in an integer property": lambda ctx: with_value(ctx, "rayon_m", "Infinity"),
    "-Infinity coordinate": lambda ctx: with_value(ctx, "lon", "-Infinity"),
    "1e400 coordinate": lambda ctx: with_value(ctx, "lon", "1e400"),
}


def hostile_body(ctx: Ctx, case: str) -> bytes:
    return BODIES[case](ctx)


@pytest.mark.parametrize("case", list(BODIES))
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_hostile_json_bodies_are_400_and_write_nothing(client: TestClient, ctx: Ctx, case: str, method: str):
    before = ctx.counts()
    if method == "POST":
        answer = client.post(ITEMS, content=hostile_body(ctx, case), headers=ctx.auth())
    else:
        created = client.post(ITEMS, json=feature(ctx), headers=ctx.auth())
        assert created.status_code == 201, created.text
        before = ctx.counts()
        url = created.headers["location"].replace("http://localhost", "")
        answer = client.patch(url, content=hostile_body(ctx, case),
                              headers=ctx.auth("application/merge-patch+json", **{"If-Match": created.headers["etag"]}))
    assert answer.status_code == 400, (answer.status_code, answer.text[:300])
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["parameter"] == "body" and problem["detail"].startswith("Corps JSON"), problem
    assert ctx.counts() == before


def test_nesting_says_the_limit(client: TestClient, ctx: Ctx):
    answer = client.post(ITEMS, content=nested(5000).encode(), headers=ctx.auth())
    assert answer.status_code == 400 and "niveaux" in answer.json()["detail"], answer.text[:300]


def test_an_ordinary_multipolygon_body_is_not_too_deep(client: TestClient, ctx: Ctx):
    lon, lat = ctx.points.inside
    ring = [[lon, lat], [lon + 0.01, lat], [lon + 0.01, lat + 0.01], [lon, lat + 0.01], [lon, lat]]
    body = {"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [[ring]]},
            "properties": {"kind": "mobile", "technologie": "4G", "operateur": "tous", "source_calcul": "declaree",
                           "source": EDIT_SOURCE}}
    answer = client.post("/ogc/collections/white_zones/items", json=body, headers=ctx.auth())
    assert answer.status_code == 201, answer.text[:300]


@pytest.mark.parametrize("field", ["lieu", "borne_id"])
def test_a_nul_character_in_a_property_is_a_4xx(client: TestClient, ctx: Ctx, field: str):
    before = ctx.counts()
    answer = client.post(ITEMS, json=feature(ctx, **{field: "Mai\x00rie"}), headers=ctx.auth())
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    assert answer.headers["content-type"] == "application/problem+json"
    assert "nul" in answer.json()["detail"].lower()
    assert ctx.counts() == before


def test_a_nul_character_in_the_login_form_is_a_4xx(settings: Settings, ctx: Ctx):
    with TestClient(create_app(settings), base_url="http://localhost", raise_server_exceptions=False) as browser:
        token = token_of(browser.get("/admin/login").text)
        answer = browser.post("/admin/login", data={"username": "h-edi\x00tor", "password": PASSWORD,
                                                    "csrf_token": token})
        assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
        assert "gs_session" not in browser.cookies


# -- anti-CSRF tokens that are not ASCII (hmac.compare_digest refuses to compare such str: a TypeError) ----------
def token_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest.mark.parametrize("sent", ["é" * 64, "jeton-ünicode", "\u2603"])
def test_a_non_ascii_csrf_token_at_login_is_a_403_page(settings: Settings, ctx: Ctx, sent: str):
    with TestClient(create_app(settings), base_url="http://localhost", raise_server_exceptions=False) as browser:
        browser.get("/admin/login")
        answer = browser.post("/admin/login", data={"username": "h-editor", "password": PASSWORD, "csrf_token": sent})
        assert answer.status_code == 403, answer.text[:300]
        assert "anti-CSRF" in answer.text and "gs_session" not in browser.cookies


def test_a_non_ascii_csrf_token_on_a_logged_in_form_and_header_is_a_403(settings: Settings, ctx: Ctx):
    with TestClient(create_app(settings), base_url="http://localhost", raise_server_exceptions=False) as browser:
        token = token_of(browser.get("/admin/login").text)
        logged = browser.post("/admin/login", data={"username": "h-editor", "password": PASSWORD,
                                                    "csrf_token": token}, follow_redirects=False)
        assert logged.status_code == 303, logged.text[:300]
        before = ctx.counts()
        # A header's bytes are read as Latin-1: "é" in UTF-8 arrives as a non-ASCII str.
        write = browser.post(ITEMS, json=feature(ctx), headers={"X-CSRF-Token": "é".encode()})
        assert write.status_code == 403 and "CSRF" in write.json()["detail"], write.text[:300]
        out = browser.post("/admin/logout", data={"csrf_token": "é" * 10}, follow_redirects=False)
        assert out.status_code == 403, out.text[:300]
        assert ctx.counts() == before
        assert browser.get("/admin", follow_redirects=False).status_code == 200  # still logged in
