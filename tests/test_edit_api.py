"""OGC API – Features Part 4 on ``/ogc/collections/{id}/items``: ETag / If-Match, bad inputs, history and revert,
logical deletion, the validation workflow, restricted reads; all against PostGIS, asserting the database.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from conftest import EPSG2154
from factories import EDIT_SOURCE, EpciPoints, Factory, account, convention, epci_points, wipe_editing
from fastapi.testclient import TestClient
from pyproj import Transformer
from sqlalchemy import Engine, text

from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services.editing import conventions
from geo_service.services.publish.ogc_documents import CONFORMANCE
from geo_service.settings import Settings

ITEMS = "/ogc/collections/wifi_hotspots/items"
_n = itertools.count(1)


class Ctx:
    def __init__(self, tokens: dict[str, str], points: EpciPoints, factory: Factory, engine: Engine):
        self.tokens, self.points, self.factory, self.engine = tokens, points, factory, engine

    def auth(self, role: str = "admin", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}", **extra}

    def scalar(self, sql: str, **params: object) -> object:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()


@pytest.fixture(scope="module")
def ctx(loaded_boundaries: Engine, registry: LayerRegistry) -> Iterator[Ctx]:
    today = conventions.local_day()
    with loaded_boundaries.begin() as conn:
        wipe_editing(conn, registry)
        points = epci_points(conn)
        tokens = {"admin": account(conn, "a-admin", "admin"), "editor": account(conn, "a-editor", "editor"),
                  "contributor": account(conn, "a-contrib", "epci_contributor", epci=points.mine),
                  "reader": account(conn, "a-reader", "epci_reader", epci=points.mine),
                  "stranger": account(conn, "a-stranger", "epci_reader", epci=points.other)}
        convention(conn, registry, points.mine, "ascendante", ["wifi_hotspots"], starts_on=today - timedelta(days=1))
        convention(conn, registry, points.mine, "descendante", ["third_places"], starts_on=today - timedelta(days=1))
    factory = Factory(registry)
    yield Ctx(tokens, points, factory, loaded_boundaries)
    with loaded_boundaries.begin() as conn:
        factory.cleanup(conn)
        wipe_editing(conn, registry)


@pytest.fixture(scope="module")
def client(settings: Settings, ctx: Ctx) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="http://localhost") as c:
        yield c


def borne(point: tuple[float, float], **props: object) -> dict:
    base = {"borne_id": f"api-{next(_n)}", "code_insee": "46042", "lieu": "Mairie", "ssid": "WIFI public lotois",
            "statut": "installee", "source": EDIT_SOURCE}
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(point)},
            "properties": {**base, **props}}


def count_bornes(ctx: Ctx, marker: str) -> int:
    return int(ctx.scalar("SELECT count(*) FROM wifi_hotspots WHERE borne_id = :m", m=marker))


# -- ETag, If-Match, optimistic locking ------------------------------------------------------------------------
def test_every_feature_has_an_etag_and_changes_need_if_match(client: TestClient, ctx: Ctx):
    created = client.post(ITEMS, json=borne(ctx.points.inside), headers=ctx.auth())
    assert created.status_code == 201 and created.headers["etag"] == '"v1"'
    location = created.headers["location"]
    assert location.endswith(f"{ITEMS}/{created.json()['id']}")
    got = client.get(location)
    assert got.status_code == 200 and got.headers["etag"] == '"v1"'
    assert client.get(location, params={"f": "html"}).headers["etag"].startswith('"v1-')
    assert client.get(location, headers={"If-None-Match": '"v1"'}).status_code == 304
    for method in ("put", "patch", "delete"):
        kwargs = {} if method == "delete" else {"json": borne(ctx.points.inside)}
        r = getattr(client, method)(location, headers=ctx.auth(), **kwargs)
        assert r.status_code == 428 and "If-Match" in r.json()["detail"], method
        assert client.request(method.upper(), location, headers=ctx.auth(**{"If-Match": "*"}),
                              **kwargs).status_code == 428
    assert client.get(location).headers["etag"] == '"v1"'  # nothing happened


def test_two_clients_updating_the_same_borne_the_second_gets_412(client: TestClient, ctx: Ctx):
    url = f"{ITEMS}/{client.post(ITEMS, json=borne(ctx.points.inside), headers=ctx.auth()).json()['id']}"
    etag_a = client.get(url).headers["etag"]
    etag_b = client.get(url).headers["etag"]
    first = client.patch(url, json={"properties": {"lieu": "Mairie (façade)"}},
                         headers=ctx.auth("admin", **{"If-Match": etag_a}))
    assert first.status_code == 200 and first.headers["etag"] == '"v2"'
    second = client.patch(url, json={"properties": {"lieu": "Salle des fêtes"}},
                          headers=ctx.auth("editor", **{"If-Match": etag_b}))
    assert second.status_code == 412 and second.headers["etag"] == '"v2"'
    assert "modifiée entre-temps" in second.json()["detail"]
    stored = client.get(url).json()["properties"]["lieu"]
    assert stored == "Mairie (façade)"
    assert ctx.scalar("SELECT version FROM wifi_hotspots WHERE fid = :f", f=int(url.rsplit("/", 1)[1])) == 2


def test_a_qgis_token_changes_features_without_if_match_but_not_the_rules(client: TestClient, ctx: Ctx):
    # QGIS 3.x sends no If-Match: its token (`geo-service user token --qgis`) is accepted without it.
    from geo_service.services.editing import accounts

    with ctx.engine.begin() as conn:
        qgis = accounts.create_token(conn, "a-editor", "QGIS", if_match_optional=True)
        qgis_contrib = accounts.create_token(conn, "a-contrib", "QGIS", if_match_optional=True)
    headers = {"Authorization": f"Bearer {qgis}"}
    url = f"{ITEMS}/{client.post(ITEMS, json=borne(ctx.points.inside), headers=headers).json()['id']}"
    fid = int(url.rsplit("/", 1)[1])
    patched = client.patch(url, json={"properties": {"lieu": "Halle"}}, headers=headers)
    assert patched.status_code == 200 and patched.headers["etag"] == '"v2"'
    replaced = client.put(url, json=borne(ctx.points.inside, lieu="Église"), headers=headers)
    assert replaced.status_code == 200 and replaced.headers["etag"] == '"v3"'
    # An If-Match it does send is still checked.
    stale = client.patch(url, json={"properties": {"lieu": "Gare"}}, headers={**headers, "If-Match": '"v1"'})
    assert stale.status_code == 412
    # Rights and perimeter are the account's, whatever the token.
    outside = client.patch(url, json={"geometry": {"type": "Point", "coordinates": list(ctx.points.outside)}},
                           headers={"Authorization": f"Bearer {qgis_contrib}"})
    assert outside.status_code == 403
    assert ctx.scalar("SELECT lieu FROM wifi_hotspots WHERE fid = :f", f=fid) == "Église"
    assert ctx.scalar("SELECT count(*) FROM feature_history WHERE layer_id = 'wifi_hotspots' AND fid = :f "
                      "AND actor = 'a-editor' AND path = 'api'", f=fid) == 3
    assert client.delete(url, headers=headers).status_code == 204
    assert ctx.scalar("SELECT deleted_at IS NOT NULL FROM wifi_hotspots WHERE fid = :f", f=fid) is True


def test_put_replaces_and_patch_merges(client: TestClient, ctx: Ctx):
    url = f"{ITEMS}/{client.post(ITEMS, json=borne(ctx.points.inside, rayon_m=80), headers=ctx.auth()).json()['id']}"
    patched = client.patch(url, json={"properties": {"exploitant": "Lot numérique", "rayon_m": None}},
                           headers=ctx.auth(**{"If-Match": '"v1"', "Content-Type": "application/merge-patch+json"}))
    assert patched.status_code == 200, patched.text
    props = patched.json()["properties"]
    assert props["exploitant"] == "Lot numérique" and props["rayon_m"] is None and props["lieu"] == "Mairie"
    replacement = borne(ctx.points.inside, lieu="Halle")
    replacement["properties"].pop("source")
    put = client.put(url, json=replacement, headers=ctx.auth(**{"If-Match": patched.headers["etag"]}))
    assert put.status_code == 200, put.text
    props = put.json()["properties"]
    assert props["lieu"] == "Halle" and props["exploitant"] is None  # replaced: absent fields are emptied
    assert props["source"] == EDIT_SOURCE  # provenance kept when not sent


# -- bad inputs: precise 4xx, nothing written --------------------------------------------------------------------
def _lambert(point: tuple[float, float]) -> list[float]:
    return list(Transformer.from_crs(4326, 2154, always_xy=True).transform(*point))


BAD = {
    "self-intersecting polygon": (
        "white_zones", lambda p: {"type": "Polygon", "coordinates": [[[p[0], p[1]], [p[0] + 0.01, p[1] + 0.01],
                                                                       [p[0] + 0.01, p[1]], [p[0], p[1] + 0.01],
                                                                       [p[0], p[1]]]]},
        {}, 422, "geometry", "auto-intersection"),
    "wrong geometry type": ("wifi_hotspots", lambda p: {"type": "LineString", "coordinates": [list(p), [p[0] + 0.01,
                                                                                                       p[1]]]},
                            {}, 422, "geometry", "attend une géométrie Point"),
    "outside the territory": ("wifi_hotspots", lambda p: {"type": "Point", "coordinates": [2.35, 48.85]},
                              {}, 422, "geometry", "hors du territoire"),
    "swapped axes": ("wifi_hotspots", lambda p: {"type": "Point", "coordinates": [p[1], p[0]]},
                     {}, 422, "geometry", "inversées"),
    "Lambert-93 numbers as degrees": ("wifi_hotspots", lambda p: {"type": "Point", "coordinates": _lambert(p)},
                                      {}, 422, "geometry", "Lambert-93"),
    "no geometry": ("wifi_hotspots", lambda p: None, {}, 422, "geometry", "obligatoire"),
    "unknown code value": ("wifi_hotspots", None, {"statut": "cassee"}, 422, "statut", "hors de la liste"),
    "missing required field": ("wifi_hotspots", None, {"lieu": None}, 422, "lieu", "obligatoire"),
    "pattern": ("wifi_hotspots", None, {"code_insee": "Cahors"}, 422, "code_insee", "format attendu"),
    "bound": ("wifi_hotspots", None, {"rayon_m": 900}, 422, "rayon_m", "maximum 500"),
    "type": ("wifi_hotspots", None, {"rayon_m": "loin"}, 422, "rayon_m", "entier attendu"),
    "date": ("wifi_hotspots", None, {"date_mise_en_service": "01/02/2024"}, 422, "date_mise_en_service", "AAAA-MM-JJ"),
    "unknown property": ("wifi_hotspots", None, {"couleur": "bleu"}, 422, "couleur", "Propriété inconnue"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_a_precise_4xx_and_writes_nothing(client: TestClient, ctx: Ctx, case: str):
    layer, geometry, props, status, field, words = BAD[case]
    marker = f"bad-{next(_n)}"
    point = ctx.points.inside
    if layer == "white_zones":
        body = {"type": "Feature", "geometry": geometry(point),
                "properties": {"kind": "mobile", "technologie": "4G", "operateur": "tous",
                               "source_calcul": "declaree", "source": EDIT_SOURCE}}
    else:
        body = borne(point, borne_id=marker, **props)
        if geometry is not None:
            body["geometry"] = geometry(point)
    before = ctx.scalar(f"SELECT count(*) FROM {layer}")
    history = ctx.scalar("SELECT count(*) FROM feature_history")
    r = client.post(f"/ogc/collections/{layer}/items", json=body, headers=ctx.auth())
    assert r.status_code == status, r.text
    problem = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert problem["field"] == field and words in problem["detail"], problem
    assert ctx.scalar(f"SELECT count(*) FROM {layer}") == before
    assert ctx.scalar("SELECT count(*) FROM feature_history") == history


def test_lambert93_is_accepted_when_declared(client: TestClient, ctx: Ctx):
    body = borne(ctx.points.inside)
    body["geometry"]["coordinates"] = _lambert(ctx.points.inside)
    r = client.post(ITEMS, json=body, headers=ctx.auth(**{"Content-Crs": f"<{EPSG2154}>"}))
    assert r.status_code == 201, r.text
    lon, lat = r.json()["geometry"]["coordinates"]
    assert abs(lon - ctx.points.inside[0]) < 1e-6 and abs(lat - ctx.points.inside[1]) < 1e-6
    unknown = client.post(ITEMS, json=borne(ctx.points.inside), headers=ctx.auth(**{"Content-Crs": "<EPSG:3857>"}))
    assert unknown.status_code == 400 and unknown.json()["parameter"] == "Content-Crs"


def test_duplicated_natural_key_is_a_409(client: TestClient, ctx: Ctx):
    body = borne(ctx.points.inside)
    assert client.post(ITEMS, json=body, headers=ctx.auth()).status_code == 201
    again = client.post(ITEMS, json=body, headers=ctx.auth())
    assert again.status_code == 409 and again.json()["field"] == "borne_id"
    assert count_bornes(ctx, body["properties"]["borne_id"]) == 1


def test_oversize_payload_is_a_413(client: TestClient, ctx: Ctx, settings: Settings):
    body = borne(ctx.points.inside)
    body["properties"]["lieu"] = "x" * (settings.editing.max_body_bytes + 10)
    r = client.post(ITEMS, json=body, headers=ctx.auth())
    assert r.status_code == 413 and "taille maximale" in r.json()["detail"]
    assert count_bornes(ctx, body["properties"]["borne_id"]) == 0

    def chunks():  # no Content-Length: counted while reading
        yield b'{"type": "Feature", "properties": {"lieu": "'
        for _ in range(settings.editing.max_body_bytes // 65536 + 2):
            yield b"y" * 65536
        yield b'"}}'

    streamed = client.post(ITEMS, content=chunks(), headers=ctx.auth(**{"Content-Type": "application/geo+json"}))
    assert streamed.status_code == 413


def test_malformed_bodies(client: TestClient, ctx: Ctx):
    assert client.post(ITEMS, content=b"{not json", headers=ctx.auth(**{"Content-Type": "application/geo+json"})
                       ).status_code == 400
    assert client.post(ITEMS, content=b"<xml/>", headers=ctx.auth(**{"Content-Type": "application/xml"})
                       ).status_code == 415
    assert client.post(ITEMS, json={"type": "FeatureCollection", "features": []}, headers=ctx.auth()
                       ).status_code == 400
    base_layer = client.post("/ogc/collections/communes/items", json=borne(ctx.points.inside), headers=ctx.auth())
    assert base_layer.status_code == 405 and base_layer.headers["allow"] == "GET, HEAD, OPTIONS"


# -- history, revert, logical deletion ----------------------------------------------------------------------------
def _state(ctx: Ctx, fid: int) -> tuple:
    with ctx.engine.connect() as conn:
        row = conn.execute(text("SELECT ST_AsEWKB(geom), borne_id, code_insee, commune, lieu, ssid, exploitant, "
                                "statut, emplacement, rayon_m, date_mise_en_service, source, licence, source_date "
                                "FROM wifi_hotspots WHERE fid = :f"), {"f": fid}).one()
    return (bytes(row[0]), *row[1:])


def test_edits_then_revert_restore_properties_and_geometry_bit_for_bit(client: TestClient, ctx: Ctx):
    x, y = ctx.points.inside
    # Coordinates with all their digits: a lossy path (rounding, text) would not give them back.
    original = borne((x + 0.000123456789012, y - 0.000987654321098), rayon_m=120, emplacement="exterieur",
                     date_mise_en_service="2021-03-15", exploitant="Lot numérique", licence="Licence Ouverte")
    created = client.post(ITEMS, json=original, headers=ctx.auth())
    fid = created.json()["id"]
    first = _state(ctx, fid)
    etag = created.headers["etag"]
    for change in ({"properties": {"lieu": "Place", "rayon_m": 50}},
                   {"geometry": {"type": "Point", "coordinates": [x + 0.0031, y + 0.0027]}},
                   {"properties": {"statut": "hors service", "emplacement": None, "exploitant": "Autre"}}):
        r = client.patch(f"{ITEMS}/{fid}", json=change, headers=ctx.auth("editor", **{"If-Match": etag}))
        assert r.status_code == 200, r.text
        etag = r.headers["etag"]
    assert _state(ctx, fid) != first
    history = client.get(f"/admin/api/history/wifi_hotspots/{fid}", headers=ctx.auth())
    assert history.status_code == 200
    assert [e["action"] for e in history.json()["entries"]] == ["update", "update", "update", "create"]
    assert {e["path"] for e in history.json()["entries"]} == {"api"}
    assert history.json()["entries"][0]["actor"] == "a-editor"
    reverted = client.post(f"/admin/api/history/wifi_hotspots/{fid}/revert", json={"version": 1},
                           headers=ctx.auth(**{"If-Match": etag}))
    assert reverted.status_code == 200, reverted.text
    assert reverted.headers["etag"] == '"v5"'
    assert _state(ctx, fid) == first
    contributor = client.post(f"/admin/api/history/wifi_hotspots/{fid}/revert", json={"version": 2},
                              headers=ctx.auth("contributor"))
    assert contributor.status_code == 403


def test_a_feature_written_before_the_history_can_be_reverted(client: TestClient, ctx: Ctx):
    with ctx.engine.begin() as conn:
        fid = ctx.factory.feature(conn, "wifi_hotspots", ctx.points.inside, source=EDIT_SOURCE, lieu="Import")
    first = _state(ctx, fid)
    r = client.patch(f"{ITEMS}/{fid}", json={"properties": {"lieu": "Corrigé"}},
                     headers=ctx.auth(**{"If-Match": '"v1"'}))
    assert r.status_code == 200
    assert client.post(f"/admin/api/history/wifi_hotspots/{fid}/revert", json={"version": 1},
                       headers=ctx.auth(**{"If-Match": '"v2"'})).status_code == 200
    assert _state(ctx, fid) == first


def test_deletion_is_logical_and_reversible(client: TestClient, ctx: Ctx):
    created = client.post(ITEMS, json=borne(ctx.points.inside), headers=ctx.auth())
    url, fid = f"{ITEMS}/{created.json()['id']}", created.json()["id"]
    assert client.delete(url, headers=ctx.auth(**{"If-Match": '"v1"'})).status_code == 204
    assert client.get(url).status_code == 404
    assert fid not in {f["id"] for f in client.get(ITEMS, params={"source": EDIT_SOURCE, "limit": 1000}
                                                   ).json()["features"]}
    assert ctx.scalar("SELECT deleted_at IS NOT NULL FROM wifi_hotspots WHERE fid = :f", f=fid) is True
    assert client.delete(url, headers=ctx.auth(**{"If-Match": '"v2"'})).status_code == 404
    restored = client.post(f"/admin/api/history/wifi_hotspots/{fid}/restore", headers=ctx.auth())
    assert restored.status_code == 200
    assert client.get(url).status_code == 200 and client.get(url).headers["etag"] == '"v3"'


def test_audit_export_lists_every_change(client: TestClient, ctx: Ctx):
    created = client.post(ITEMS, json=borne(ctx.points.inside), headers=ctx.auth())
    fid = created.json()["id"]
    client.patch(f"{ITEMS}/{fid}", json={"properties": {"lieu": "Audit"}}, headers=ctx.auth(**{"If-Match": '"v1"'}))
    r = client.get("/admin/api/history.csv", params={"layer": "wifi_hotspots"}, headers=ctx.auth())
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = [row for row in csv.DictReader(io.StringIO(r.text)) if row["fid"] == str(fid)]
    assert [row["action"] for row in rows] == ["create", "update"]
    assert json.loads(rows[1]["properties_after"])["lieu"] == "Audit"
    assert rows[1]["geometry_after"].startswith("POINT(") and rows[1]["actor"] == "a-admin"
    assert client.get("/admin/api/history.csv", headers=ctx.auth("contributor")).status_code == 403


# -- the validation workflow ----------------------------------------------------------------------------------
def test_a_proposal_is_invisible_until_accepted(client: TestClient, ctx: Ctx):
    proposed = client.post(ITEMS, json=borne(ctx.points.inside, lieu="Proposée"), headers=ctx.auth("contributor"))
    assert proposed.status_code == 202 and proposed.json()["status"] == "proposed"
    fid, request_id = proposed.json()["featureId"], proposed.json()["changeRequest"]
    assert client.get(f"{ITEMS}/{fid}").status_code == 404
    queue = client.get("/admin/api/proposals", headers=ctx.auth()).json()["proposals"]
    assert request_id in {p["id"] for p in queue}
    assert client.post(f"/admin/api/proposals/{request_id}/accept", json={},
                       headers=ctx.auth("editor")).status_code == 403
    accepted = client.post(f"/admin/api/proposals/{request_id}/accept", json={"comment": "Vu sur place"},
                           headers=ctx.auth())
    assert accepted.status_code == 200, accepted.text
    public = client.get(f"{ITEMS}/{fid}")
    assert public.status_code == 200 and public.json()["properties"]["lieu"] == "Proposée"
    again = client.post(f"/admin/api/proposals/{request_id}/accept", json={}, headers=ctx.auth())
    assert again.status_code == 409


def test_a_proposed_change_keeps_the_published_version_until_decided(client: TestClient, ctx: Ctx):
    with ctx.engine.begin() as conn:
        fid = ctx.factory.feature(conn, "wifi_hotspots", ctx.points.inside, source=EDIT_SOURCE, lieu="Publiée")
    url = f"{ITEMS}/{fid}"
    r = client.patch(url, json={"properties": {"lieu": "Proposée"}}, headers=ctx.auth("contributor", **{
        "If-Match": '"v1"'}))
    assert r.status_code == 202
    request_id = r.json()["changeRequest"]
    assert client.get(url).json()["properties"]["lieu"] == "Publiée"
    assert client.post(f"/admin/api/proposals/{request_id}/reject", json={}, headers=ctx.auth()).status_code == 400
    rejected = client.post(f"/admin/api/proposals/{request_id}/reject", json={"comment": "Nom inexact"},
                           headers=ctx.auth())
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert client.get(url).json()["properties"]["lieu"] == "Publiée"
    # A second proposal, then an administrator's own change: accepting the stale proposal is a conflict.
    second = client.patch(url, json={"properties": {"lieu": "Encore"}}, headers=ctx.auth("contributor", **{
        "If-Match": '"v1"'})).json()["changeRequest"]
    assert client.patch(url, json={"properties": {"ssid": "Autre"}}, headers=ctx.auth(**{"If-Match": '"v1"'})
                        ).status_code == 200
    conflict = client.post(f"/admin/api/proposals/{second}/accept", json={}, headers=ctx.auth())
    assert conflict.status_code == 409 and "a changé depuis la proposition" in conflict.json()["detail"]
    assert client.get(url).json()["properties"]["lieu"] == "Publiée"


def test_an_accepted_update_proposal_is_applied_exactly(client: TestClient, ctx: Ctx):
    with ctx.engine.begin() as conn:
        fid = ctx.factory.feature(conn, "wifi_hotspots", ctx.points.inside, source=EDIT_SOURCE, lieu="Avant")
    x, y = ctx.points.inside
    r = client.patch(f"{ITEMS}/{fid}", json={"properties": {"lieu": "Après"},
                                            "geometry": {"type": "Point", "coordinates": [x + 0.0011, y]}},
                     headers=ctx.auth("contributor", **{"If-Match": '"v1"'}))
    request_id = r.json()["changeRequest"]
    assert client.post(f"/admin/api/proposals/{request_id}/accept", json={}, headers=ctx.auth()).status_code == 200
    feature = client.get(f"{ITEMS}/{fid}").json()
    assert feature["properties"]["lieu"] == "Après" and feature["geometry"]["coordinates"] == [round(x + 0.0011, 6),
                                                                                                 round(y, 6)]
    actions = [(e["action"], e["actor"]) for e in client.get(f"/admin/api/history/wifi_hotspots/{fid}",
                                                             headers=ctx.auth()).json()["entries"]]
    assert actions == [("accept", "a-admin")]
    assert ctx.scalar("SELECT updated_by FROM wifi_hotspots WHERE fid = :f", f=fid) == "a-contrib"


# -- Part 4 discovery and conformance; restricted reads ------------------------------------------------------------
def test_options_advertise_the_methods_qgis_looks_for(client: TestClient, ctx: Ctx):
    items = client.options(ITEMS)
    assert items.status_code == 204 and "POST" in items.headers["allow"]
    one = client.options(f"{ITEMS}/123")
    assert {"PUT", "PATCH", "DELETE"} <= {m.strip() for m in one.headers["allow"].split(",")}
    assert "POST" not in client.options("/ogc/collections/communes/items").headers["allow"]


def test_part4_conformance_is_declared(client: TestClient):
    declared = set(client.get("/ogc/conformance").json()["conformsTo"])
    for name in ("create-replace-delete", "update", "features"):
        assert f"http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/{name}" in declared
    assert set(CONFORMANCE) == declared


def test_restricted_data_follows_descending_conventions(settings: Settings, registry: LayerRegistry, ctx: Ctx):
    third = registry.get("third_places")
    fields = [f.model_copy(update={"restricted": f.name == "telephone"}) for f in third.fields]
    restricted = third.model_copy(update={"fields": fields, "access": third.access.model_copy(
        update={"read": "restricted"})})
    app = create_app(settings)
    app.state.registry = LayerRegistry([restricted, *(la for la in registry if la.id != "third_places")])
    with ctx.engine.begin() as conn:
        fid = ctx.factory.feature(conn, "third_places", ctx.points.inside, source=EDIT_SOURCE,
                                  telephone="05 65 00 00 00")
    url = f"/ogc/collections/third_places/items/{fid}"
    with TestClient(app, base_url="http://localhost") as c:
        assert c.get(url).status_code == 404
        assert c.get(url, headers=ctx.auth("stranger")).status_code == 404  # no descending convention
        for role in ("reader", "contributor", "admin"):
            r = c.get(url, headers=ctx.auth(role))
            assert r.status_code == 200 and r.json()["properties"]["telephone"] == "05 65 00 00 00", role
            assert r.headers["cache-control"] == "private, no-cache" and "Authorization" in r.headers["vary"]
