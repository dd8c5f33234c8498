"""OGC API – Features Part 4 with a real client: OWSLib's ``Features`` over HTTP against the service under uvicorn.

OWSLib, like QGIS 3.x, creates, replaces and deletes features without ``If-Match``: with an ordinary token its
replacements and deletions are refused (428) and nothing changes; with a token made for such clients
(``geo-service user token --qgis``) they go through, with the account's rights and the history.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from browser_support import serve_app
from factories import EDIT_SOURCE, epci_points, wipe_editing
from owslib.ogcapi.features import Features
from sqlalchemy import Engine, text

from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services.editing import accounts
from geo_service.settings import Settings

_n = itertools.count(1)


@pytest.fixture(scope="module")
def world(loaded_boundaries: Engine, registry: LayerRegistry) -> Iterator[dict]:
    with loaded_boundaries.begin() as conn:
        wipe_editing(conn, registry)
        inside = epci_points(conn).inside
        accounts.create_account(conn, "c-editor", "editor", password=None)
        tokens = {"strict": accounts.create_token(conn, "c-editor", "script"),
                  "qgis": accounts.create_token(conn, "c-editor", "QGIS", if_match_optional=True)}
    yield {"inside": inside, **tokens}
    with loaded_boundaries.begin() as conn:
        wipe_editing(conn, registry)


@pytest.fixture(scope="module")
def server(settings: Settings, world: dict) -> Iterator[str]:
    with serve_app(create_app(settings)) as url:
        yield url


def client(server: str, token: str, **headers: str) -> Features:
    # Not Features(headers=…): OWSLib 0.3x updates its module-wide REQUEST_HEADERS with them, so the token
    # would follow every later OWSLib request of the test session (other modules' anonymous clients).
    api = Features(f"{server}/ogc")
    api.headers = {**api.headers, "Authorization": f"Bearer {token}", **headers}
    return api


def borne(world: dict, **props: object) -> dict:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(world["inside"])},
            "properties": {"borne_id": f"owslib-{next(_n)}", "code_insee": "46042", "lieu": "Mairie",
                           "ssid": "WIFI public lotois", "statut": "installee", "source": EDIT_SOURCE, **props}}


def stored(engine: Engine, key: str) -> tuple | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT fid, lieu, version, deleted_at IS NOT NULL FROM wifi_hotspots "
                                 "WHERE borne_id = :k"), {"k": key}).first()


def test_owslib_creates_replaces_and_deletes_with_a_qgis_token(server: str, world: dict, engine: Engine):
    api = client(server, world["qgis"])
    feature = borne(world)
    key = feature["properties"]["borne_id"]
    assert api.collection_item_create("wifi_hotspots", feature) is True
    fid, lieu, version, deleted = stored(engine, key)
    assert (lieu, version, deleted) == ("Mairie", 1, False)
    feature["properties"]["lieu"] = "Halle"
    assert api.collection_item_update("wifi_hotspots", str(fid), feature) is True
    assert stored(engine, key)[1:] == ("Halle", 2, False)
    # Read back through OWSLib: what it wrote is what the API serves.
    assert api.collection_item("wifi_hotspots", str(fid))["properties"]["lieu"] == "Halle"
    assert api.collection_item_delete("wifi_hotspots", str(fid)) is True
    assert stored(engine, key)[3] is True
    with engine.connect() as conn:
        actions = conn.execute(text("SELECT array_agg(action ORDER BY id) FROM feature_history "
                                    "WHERE layer_id = 'wifi_hotspots' AND fid = :f"), {"f": fid}).scalar()
    assert actions == ["create", "update", "delete"]


def test_without_if_match_an_ordinary_token_changes_nothing(server: str, world: dict, engine: Engine):
    api = client(server, world["strict"])
    feature = borne(world)
    key = feature["properties"]["borne_id"]
    api.collection_item_create("wifi_hotspots", feature)
    fid = stored(engine, key)[0]
    feature["properties"]["lieu"] = "Halle"
    with pytest.raises(RuntimeError, match="If-Match"):
        api.collection_item_update("wifi_hotspots", str(fid), feature)
    with pytest.raises(RuntimeError, match="If-Match"):
        api.collection_item_delete("wifi_hotspots", str(fid))
    assert stored(engine, key)[1:] == ("Mairie", 1, False)
    # The same client sending the ETag it read is accepted.
    assert client(server, world["strict"], **{"If-Match": '"v1"'}).collection_item_update(
        "wifi_hotspots", str(fid), feature) is True
    assert stored(engine, key)[1:] == ("Halle", 2, False)


def test_owslib_with_http_basic_authentication_edits_as_qgis_does(server: str, world: dict, engine: Engine):
    """QGIS's "Basic" authentication (any user name, the token as password): OWSLib sends its writes as JSON, so
    the rule that refuses Basic on a POST a foreign page could forge lets them through."""
    from owslib.util import Authentication

    api = Features(f"{server}/ogc", auth=Authentication("sig", world["qgis"]))
    feature = borne(world)
    key = feature["properties"]["borne_id"]
    assert api.collection_item_create("wifi_hotspots", feature) is True
    fid = stored(engine, key)[0]
    feature["properties"]["lieu"] = "Halle"
    assert api.collection_item_update("wifi_hotspots", str(fid), feature) is True
    assert stored(engine, key)[1:] == ("Halle", 2, False)
    assert api.collection_item_delete("wifi_hotspots", str(fid)) is True
    assert stored(engine, key)[3] is True
