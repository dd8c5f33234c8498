"""Who may do what, route by route: every route of the application (read from ``create_app().routes``) is called
by each role, and the answer's status must be the one the table below gives. A route that the application has
and the table has not fails the test: a new route is not served until someone has decided who may use it.

Roles: the anonymous public; an administrator's token that was revoked; the token of an account that was then
disabled; an EPCI contributor whose convention has expired; an EPCI contributor of EPCI A acting on EPCI B's
area; an editor; an administrator. Accounts sign in by session (cookie and anti-CSRF token), as in a browser;
the revoked and disabled ones present their token, as a script would. Every write aims at a feature (or a
proposal, an account, a convention) made for that one request, in EPCI B's area, so each answer depends on the
role only. Runs on a database of its own.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from mbtiles_maker import make_mbtiles
from sqlalchemy import text

from geo_service.main import create_app
from geo_service.services.editing import accounts, conventions, feature_writes
from geo_service.services.editing.accounts import Principal
from geo_service.services.editing.feature_writes import EditContext, EditRules
from geo_service.services.observatory import snapshots
from geo_service.settings import MapSettings
from robustness.support import World, build_world, scratch_database

ROLES = ("anonymous", "revoked_token", "disabled_account", "expired_convention", "contributor_a_on_b", "editor",
         "admin")
_n = itertools.count(1)


# -- the rules ---------------------------------------------------------------------------------------------------
def expect(*statuses: int | str) -> dict[str, str]:
    """One expected status per role, in the order of ``ROLES``: an exact code (403) or a class ("2xx")."""
    assert len(statuses) == len(ROLES)
    return dict(zip(ROLES, (str(s) for s in statuses), strict=True))


def same(status: int | str) -> dict[str, str]:
    return expect(*[status] * len(ROLES))


# Who gets what. Reading public data needs no account, so credentials that are not valid any more are refused
# (401) only where the route looks at who asks (restricted fields, editing); sessions of accounts that cannot
# use a page are refused with 403, the public is sent to the login page (303) or told to authenticate (401).
#                                     anonymous revoked disabled expired contrib editor admin
PUBLIC_READ = same(200)
PUBLIC_READ_WHO = expect(200, 401, 401, 200, 200, 200, 200)  # the route reads the account (restricted fields)
TILE_WHO = expect("2xx", 401, 401, "2xx", "2xx", "2xx", "2xx")  # 204 for an empty tile
RULES: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/openapi.json"): PUBLIC_READ,
    ("GET", "/docs"): PUBLIC_READ,
    ("GET", "/"): same(307),
    ("GET", "/static"): same(200),
    ("GET", "/api/nearby"): PUBLIC_READ,
    ("GET", "/api/geocode"): PUBLIC_READ,
    ("GET", "/api/indicators"): PUBLIC_READ,
    ("GET", "/api/indicators/history"): PUBLIC_READ,
    ("GET", "/api/indicators/snapshots"): PUBLIC_READ,
    ("GET", "/observatory"): PUBLIC_READ,
    ("GET", "/observatory/areas/{level}.geojson"): PUBLIC_READ,
    ("GET", "/observatory/epci/{siren}"): PUBLIC_READ,
    ("GET", "/observatory/epci/{siren}.pdf"): PUBLIC_READ,
    ("GET", "/healthz"): PUBLIC_READ,
    ("GET", "/map"): PUBLIC_READ,
    ("GET", "/map/report"): PUBLIC_READ,
    ("GET", "/map/embed"): PUBLIC_READ,
    ("GET", "/map/embed/snippet"): PUBLIC_READ,
    ("GET", "/api/layers"): PUBLIC_READ,
    ("GET", "/api/layers/{layer_id}"): PUBLIC_READ,
    ("GET", "/ogc"): PUBLIC_READ,
    ("GET", "/ogc/api"): PUBLIC_READ_WHO,
    ("GET", "/ogc/conformance"): PUBLIC_READ,
    ("GET", "/ogc/collections"): PUBLIC_READ_WHO,
    ("GET", "/ogc/collections/{collectionId}"): PUBLIC_READ_WHO,
    ("GET", "/ogc/collections/{collectionId}/queryables"): PUBLIC_READ_WHO,
    ("GET", "/ogc/collections/{collectionId}/items"): PUBLIC_READ_WHO,
    ("GET", "/ogc/collections/{collectionId}/items/{featureId}"): PUBLIC_READ_WHO,
    ("GET", "/api/export/{layer_id}"): PUBLIC_READ_WHO,
    ("GET", "/ogc/tileMatrixSets"): PUBLIC_READ,
    ("GET", "/ogc/tileMatrixSets/{tileMatrixSetId}"): PUBLIC_READ,
    ("GET", "/ogc/collections/{collectionId}/tiles"): PUBLIC_READ_WHO,
    ("GET", "/ogc/collections/{collectionId}/tiles/{tileMatrixSetId}"): PUBLIC_READ_WHO,
    ("GET", "/ogc/collections/{collectionId}/tiles/{tileMatrixSetId}/tilejson.json"): PUBLIC_READ_WHO,
    ("GET", "/ogc/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"):
        TILE_WHO,
    ("GET", "/ogc/tiles"): PUBLIC_READ_WHO,
    # Styles and the QGIS project are the layer files' public look; the project names no account (the editing one
    # only the id of an authentication configuration each user creates in QGIS).
    ("GET", "/ogc/collections/{collectionId}/styles"): PUBLIC_READ_WHO,
    ("GET", "/ogc/collections/{collectionId}/styles/{styleId}"): PUBLIC_READ_WHO,
    ("GET", "/qgis/lot-numerique.qgz"): PUBLIC_READ,
    ("GET", "/qgis/lot-numerique-edition.qgz"): PUBLIC_READ,
    ("GET", "/ogc/tiles/{tileMatrixSetId}"): PUBLIC_READ_WHO,
    ("GET", "/ogc/tiles/{tileMatrixSetId}/tilejson.json"): PUBLIC_READ_WHO,
    ("GET", "/ogc/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"): TILE_WHO,
    ("GET", "/tiles/{layerId}/{z}/{x}/{y}.mvt"): TILE_WHO,
    # The self-hosted base map (a small MBTiles, below) is no one's data: the route reads no account.
    ("GET", "/basemap/{tileset}/{z}/{x}/{y}.{ext}"): same(200),
    ("OPTIONS", "/ogc/collections/{collectionId}/items"): expect(204, 401, 401, 204, 204, 204, 204),
    ("OPTIONS", "/ogc/collections/{collectionId}/items/{featureId}"): expect(204, 401, 401, 204, 204, 204, 204),
    # OGC API Part 4: only editors and administrators change EPCI B's bornes; the contributor of EPCI A is
    # outside its perimeter (403), the expired convention grants nothing (403).
    ("POST", "/ogc/collections/{collectionId}/items"): expect(401, 401, 401, 403, 403, 201, 201),
    ("PUT", "/ogc/collections/{collectionId}/items/{featureId}"): expect(401, 401, 401, 403, 403, 200, 200),
    ("PATCH", "/ogc/collections/{collectionId}/items/{featureId}"): expect(401, 401, 401, 403, 403, 200, 200),
    ("DELETE", "/ogc/collections/{collectionId}/items/{featureId}"): expect(401, 401, 401, 403, 403, 204, 204),
    # /admin pages: the login form is for everyone; the rest needs a session of the right role.
    # Signed in already: sent on to /admin. The form needs its pre-login anti-CSRF token (none sent here).
    ("GET", "/admin/login"): expect(200, 401, 401, 303, 303, 303, 303),
    ("POST", "/admin/login"): expect(403, 401, 401, 403, 403, 403, 403),
    ("POST", "/admin/logout"): expect(403, 401, 401, 303, 303, 303, 303),
    ("GET", "/admin"): expect(303, 401, 401, 200, 200, 200, 200),
    ("GET", "/admin/proposals"): expect(303, 401, 401, 403, 403, 200, 200),
    ("GET", "/admin/proposals/{request_id}"): expect(303, 401, 401, 403, 403, 200, 200),
    ("POST", "/admin/proposals/{request_id}"): expect(403, 401, 401, 403, 403, 403, 303),
    ("GET", "/admin/history/{layer_id}/{fid}"): expect(303, 401, 401, 403, 403, 200, 200),
    ("POST", "/admin/history/{layer_id}/{fid}"): expect(403, 401, 401, 403, 403, 303, 303),
    ("GET", "/admin/users"): expect(303, 401, 401, 403, 403, 403, 200),
    ("POST", "/admin/users"): expect(403, 401, 401, 403, 403, 403, 200),
    ("POST", "/admin/users/{username}"): expect(403, 401, 401, 403, 403, 403, 303),
    ("POST", "/admin/tokens"): expect(403, 401, 401, 403, 403, 403, 200),
    ("POST", "/admin/tokens/{token_id}"): expect(403, 401, 401, 403, 403, 403, 303),
    ("GET", "/admin/conventions"): expect(303, 401, 401, 403, 403, 403, 200),
    ("POST", "/admin/conventions"): expect(403, 401, 401, 403, 403, 403, 303),
    ("POST", "/admin/conventions/{convention_id}"): expect(403, 401, 401, 403, 403, 403, 303),
    ("GET", "/admin/edit"): expect(303, 401, 401, 200, 200, 200, 200),
    ("GET", "/admin/edit/{layer_id}"): expect(303, 401, 401, 403, 200, 200, 200),
    ("GET", "/admin/api/features/{layer_id}"): expect(401, 401, 401, 200, 200, 200, 200),
    ("GET", "/admin/import"): expect(303, 401, 401, 200, 200, 200, 200),
    # Imports: a layer one may not edit does not exist for one (404); an unknown change set is a 404 too; the
    # open-data file sent is not the expected one (422: the administrator got past the rights). Uploads are
    # private to whoever sent them: another account finds nothing (404).
    ("POST", "/admin/import"): expect(403, 401, 401, 404, 303, 303, 303),
    ("POST", "/admin/import/undo"): expect(403, 401, 401, 403, 403, 404, 404),
    ("POST", "/admin/import/open-data"): expect(403, 401, 401, 403, 403, 403, 422),
    ("GET", "/admin/import/{token}"): expect(303, 401, 401, 404, 404, 404, 200),
    ("POST", "/admin/import/{token}"): expect(404, 401, 401, 404, 404, 404, 200),
    # The moderation and history API (JSON).
    ("GET", "/admin/api/proposals"): expect(401, 401, 401, 403, 403, 200, 200),
    # Only administrators decide on proposals (editors see the queue).
    ("POST", "/admin/api/proposals/{request_id}/accept"): expect(401, 401, 401, 403, 403, 403, 200),
    ("POST", "/admin/api/proposals/{request_id}/reject"): expect(401, 401, 401, 403, 403, 403, 200),
    ("GET", "/admin/api/history.csv"): expect(401, 401, 401, 403, 403, 403, 200),
    ("GET", "/admin/api/history/{layer_id}/{fid}"): expect(401, 401, 401, 403, 403, 200, 200),
    ("POST", "/admin/api/history/{layer_id}/{fid}/revert"): expect(401, 401, 401, 403, 403, 200, 200),
    ("POST", "/admin/api/history/{layer_id}/{fid}/restore"): expect(401, 401, 401, 403, 403, 200, 200),
    # Residents' reports: anyone reports and follows their own (the token is the right); counts and Open311 are
    # public. The queue: staff everything; an EPCI contributor its own EPCI under a convention in force (A's
    # contributor finds no report of B: 404), none once the convention has expired (403).
    ("POST", "/api/reports"): same(201),
    ("GET", "/api/reports/stats"): PUBLIC_READ,
    ("GET", "/map/signaler"): PUBLIC_READ,
    ("POST", "/map/signaler"): PUBLIC_READ,
    ("GET", "/signalement/{token}"): PUBLIC_READ,
    ("GET", "/signalement/{token}/photo"): PUBLIC_READ,
    ("POST", "/signalement/{token}/photo"): same(201),
    ("GET", "/admin/reports"): expect(303, 401, 401, 403, 200, 200, 200),
    ("GET", "/admin/reports/{public_id}"): expect(303, 401, 401, 403, 404, 200, 200),
    ("POST", "/admin/reports/{public_id}"): expect(403, 401, 401, 403, 404, 303, 303),
    ("GET", "/admin/reports/{public_id}/photo"): expect(303, 401, 401, 403, 404, 200, 200),
    ("GET", "/open311/v2/services.json"): PUBLIC_READ,
    ("GET", "/open311/v2/services"): PUBLIC_READ,
    ("GET", "/open311/v2/services/{service_code}.json"): PUBLIC_READ,
    ("GET", "/open311/v2/requests.json"): PUBLIC_READ,
    ("GET", "/open311/v2/requests"): PUBLIC_READ,
    ("POST", "/open311/v2/requests.json"): same(201),
    ("POST", "/open311/v2/requests"): same(201),
    ("GET", "/open311/v2/requests/{service_request_id}.json"): PUBLIC_READ,
    ("GET", "/open311/v2/requests/{service_request_id}"): PUBLIC_READ,
}


# -- the world the requests act on -------------------------------------------------------------------------------
@dataclass
class Actor:
    """How a role presents itself: a session (cookie + anti-CSRF token) or a bearer token."""

    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str = ""
    token: str | None = None
    username: str | None = None

    def headers(self) -> dict[str, str]:
        found = {"X-CSRF-Token": self.csrf} if self.csrf else {}
        return {**found, "Authorization": f"Bearer {self.token}"} if self.token else found


@dataclass
class Matrix:
    world: World
    actors: dict[str, Actor]
    upload_dir: object

    def as_admin(self) -> EditContext:
        with self.world.engine.connect() as conn:
            account = accounts.get_account(conn, "rb-admin")
        principal = Principal(account.username, account.role, account.id, via="cli")
        return EditContext(principal, "cli", self.world.registry, EditRules.from_settings(self.world.settings))

    def borne(self, *, deleted: bool = False, versions: int = 1) -> int:
        """A new borne in EPCI B's area, written through the editing service (so it has a history)."""
        ctx = self.as_admin()
        lon, lat = self.world.outside
        n = next(_n)
        feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon + n * 1e-5, lat]},
                   "properties": {"borne_id": f"matrix-{n}", "code_insee": "46102", "lieu": "Mairie",
                                  "ssid": "WIFI public lotois", "statut": "installee"}}
        with self.world.engine.begin() as conn:
            fid = feature_writes.create_feature(conn, ctx, "wifi_hotspots", feature).fid
            for version in range(1, versions):
                feature_writes.patch_feature(conn, ctx, "wifi_hotspots", fid,
                                             {"properties": {"lieu": f"v{version + 1}"}}, version)
            if deleted:
                feature_writes.delete_feature(conn, ctx, "wifi_hotspots", fid, versions)
        return fid

    def version(self, fid: int) -> int:
        with self.world.engine.connect() as conn:
            return conn.execute(text("SELECT version FROM wifi_hotspots WHERE fid = :f"), {"f": fid}).scalar_one()

    def proposal(self) -> int:
        """A pending proposal of EPCI A's contributor (a new borne in its own area)."""
        with self.world.engine.connect() as conn:
            account = accounts.get_account(conn, "rb-contrib")
        principal = Principal(account.username, account.role, account.id, account.epci_siren, via="cli")
        ctx = EditContext(principal, "cli", self.world.registry, EditRules.from_settings(self.world.settings))
        lon, lat = self.world.inside
        n = next(_n)
        feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat + n * 1e-5]},
                   "properties": {"borne_id": f"proposal-{n}", "code_insee": "46102", "lieu": "Proposée",
                                  "ssid": "WIFI public lotois", "statut": "installee"}}
        with self.world.engine.begin() as conn:
            return feature_writes.create_feature(conn, ctx, "wifi_hotspots", feature).change_request_id

    def session(self, actor: Actor) -> Actor:
        """Another session of the same account (logging out closes the one it is sent with)."""
        if actor.username is None:
            return actor
        with self.world.engine.begin() as conn:
            account_id = accounts.get_account(conn, actor.username).id
            cookie, csrf = accounts.open_session(conn, account_id, "127.0.0.1", 1)
        return Actor(cookies={"gs_session": cookie}, csrf=csrf, username=actor.username)

    def account(self) -> str:
        name = f"rb-target-{next(_n)}"
        with self.world.engine.begin() as conn:
            accounts.create_account(conn, name, "editor", password=None)
        return name

    def token(self) -> int:
        """The number of a fresh token of a fresh account (revoking it touches no actor of the matrix)."""
        name = self.account()
        with self.world.engine.begin() as conn:
            accounts.issue_token(conn, name, "matrice")
            return next(t.id for t in accounts.list_tokens(conn) if t.username == name)

    def convention(self) -> int:
        with self.world.engine.begin() as conn:
            return conventions.add_convention(conn, self.world.registry, epci_siren=self.world.other,
                                              direction="descendante", layers=["third_places"],
                                              starts_on=conventions.local_day(), ends_on=None,
                                              reference=f"MAT-{next(_n)}")

    def report_point(self) -> tuple[float, float]:
        """A new point in EPCI B's area, away from the others (no duplicate); the hourly limits forgotten, since
        every call of the matrix comes from the same test client."""
        with self.world.engine.begin() as conn:
            conn.execute(text("UPDATE reports SET ip_hash = NULL, created_at = created_at - interval '2 hours'"))
        lon, lat = self.world.outside
        n = next(_n)
        return lon + (n % 20) * 0.002, lat + (n // 20) * 0.002

    def report(self, photo: bool = True) -> tuple[str, str]:
        """A report in EPCI B's area, with a photo (or not): its public number and follow-up token."""
        from geo_service.services.reports import report_photos, submission

        lon, lat = self.report_point()
        rules = submission.ReportRules.from_settings(self.world.settings)
        with self.world.engine.begin() as conn:
            received = submission.submit(conn, self.world.registry, rules,
                                         submission.Submission("other", lon, lat), ip_hash=None)
            if photo:
                report_photos.attach(conn, self.world.settings.resolved_photo_dir(), received.report_id,
                                     report_photos.reencode(tiny_png(), self.world.settings.reports))
        return received.public_id, received.token

    def upload(self, client: TestClient, actor: Actor) -> str:
        """An upload token of the administrator (kept files are private to whoever sent them)."""
        admin = self.actors["admin"]
        client.cookies.clear()
        client.cookies.update(admin.cookies)
        response = client.post("/admin/import", data={"layer": "wifi_hotspots", "csrf_token": admin.csrf},
                               files={"file": ("bornes.geojson", bornes_file(self.world))}, follow_redirects=False)
        assert response.status_code == 303, response.text[:500]
        return response.headers["location"].split("/admin/import/")[1].split("?")[0]


def tiny_png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 0, 145)).save(out, format="PNG")
    return out.getvalue()


def report_body(m: Matrix) -> dict:
    lon, lat = m.report_point()
    return {"category": "other", "lon": lon, "lat": lat}


def bornes_file(world: World) -> bytes:
    lon, lat = world.outside
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
               "properties": {"borne_id": f"upload-{next(_n)}", "lieu": "Salle", "ssid": "WIFI public lotois",
                              "statut": "installee"}}
    return json.dumps({"type": "FeatureCollection", "features": [feature]}).encode()


def feature_body(world: World, fid: int | None = None) -> dict:
    lon, lat = world.outside
    n = next(_n)
    return {"type": "Feature", **({"id": fid} if fid else {}),
            "geometry": {"type": "Point", "coordinates": [lon + n * 1e-5, lat + 1e-4]},
            "properties": {"borne_id": f"matrix-body-{n}", "code_insee": "46102", "lieu": "Salle",
                           "ssid": "WIFI public lotois", "statut": "installee"}}


# A request per route: (path with its parameters, keyword arguments of TestClient.request).
Call = tuple[str, dict]
ITEMS = "/ogc/collections/wifi_hotspots/items"
TILE = "WebMercatorQuad/8/93/128"


def _calls() -> dict[tuple[str, str], Callable[[Matrix, TestClient, Actor], Call]]:
    def if_match(m: Matrix, fid: int) -> dict:
        return {"If-Match": f'"v{m.version(fid)}"'}

    def form(actor: Actor, **values: object) -> dict:
        return {"data": {"csrf_token": actor.csrf, **values}}

    fixed = {
        ("GET", "/api/nearby"): lambda m, c, a: ("/api/nearby", {"params": dict(zip(("lon", "lat"), m.world.inside,
                                                                                    strict=True))}),
        ("GET", "/api/geocode"): lambda m, c, a: ("/api/geocode", {"params": {"q": "Cahors"}}),
        ("GET", "/api/indicators"): lambda m, c, a: ("/api/indicators", {"params": {"level": "departement"}}),
        ("GET", "/api/indicators/history"): lambda m, c, a: (
            "/api/indicators/history", {"params": {"indicator": "locaux", "level": "departement"}}),
        ("GET", "/observatory/epci/{siren}"): lambda m, c, a: (f"/observatory/epci/{m.world.mine}", {}),
        ("GET", "/observatory/epci/{siren}.pdf"): lambda m, c, a: (f"/observatory/epci/{m.world.mine}.pdf", {}),
        ("GET", "/map/report"): lambda m, c, a: ("/map/report", {"params": dict(zip(("lon", "lat"), m.world.inside,
                                                                                     strict=True))}),
        ("GET", "/static"): lambda m, c, a: ("/static/vendor/leaflet/leaflet.js", {}),
        ("GET", "/basemap/{tileset}/{z}/{x}/{y}.{ext}"): lambda m, c, a: ("/basemap/plan/8/128/92.png", {}),
        ("GET", "/ogc/collections/{collectionId}/items/{featureId}"):
            lambda m, c, a: (f"{ITEMS}/{m.world.features['borne_other_epci']}", {}),
        ("OPTIONS", "/ogc/collections/{collectionId}/items/{featureId}"):
            lambda m, c, a: (f"{ITEMS}/{m.world.features['borne_other_epci']}", {}),
        ("POST", "/ogc/collections/{collectionId}/items"): lambda m, c, a: (ITEMS, {"json": feature_body(m.world)}),
        ("PUT", "/ogc/collections/{collectionId}/items/{featureId}"):
            lambda m, c, a: _with(f"{ITEMS}/{(fid := m.borne())}", json=feature_body(m.world, fid),
                                  headers=if_match(m, fid)),
        ("PATCH", "/ogc/collections/{collectionId}/items/{featureId}"):
            lambda m, c, a: _with(f"{ITEMS}/{(fid := m.borne())}", json={"properties": {"lieu": "Changé"}},
                                  headers=if_match(m, fid)),
        ("DELETE", "/ogc/collections/{collectionId}/items/{featureId}"):
            lambda m, c, a: _with(f"{ITEMS}/{(fid := m.borne())}", headers=if_match(m, fid)),
        ("POST", "/admin/login"): lambda m, c, a: ("/admin/login", {"data": {"username": "x", "password": "y"}}),
        ("POST", "/admin/logout"): lambda m, c, a: _with("/admin/logout", **form(other := m.session(a)),
                                                         cookies=other.cookies),
        ("GET", "/admin/proposals/{request_id}"): lambda m, c, a: (f"/admin/proposals/{m.proposal()}", {}),
        ("POST", "/admin/proposals/{request_id}"):
            lambda m, c, a: (f"/admin/proposals/{m.proposal()}", form(a, decision="accept")),
        ("GET", "/admin/history/{layer_id}/{fid}"): lambda m, c, a: (f"/admin/history/wifi_hotspots/{m.borne()}", {}),
        ("POST", "/admin/history/{layer_id}/{fid}"):
            lambda m, c, a: (f"/admin/history/wifi_hotspots/{m.borne(deleted=True)}", form(a, action="restore")),
        ("POST", "/admin/users"): lambda m, c, a: ("/admin/users", form(a, username=f"rb-new-{next(_n)}",
                                                                          role="editor")),
        ("POST", "/admin/users/{username}"): lambda m, c, a: (f"/admin/users/{m.account()}", form(a, action="disable")),
        ("POST", "/admin/tokens"): lambda m, c, a: ("/admin/tokens", form(a, username=m.account(), name="QGIS",
                                                                           days="365")),
        ("POST", "/admin/tokens/{token_id}"): lambda m, c, a: (f"/admin/tokens/{m.token()}", form(a)),
        ("POST", "/admin/conventions"): lambda m, c, a: ("/admin/conventions", {"data": {
            "csrf_token": a.csrf, "epci": m.world.other, "direction": "descendante", "layers": ["third_places"],
            "starts_on": conventions.local_day().isoformat(), "reference": f"MAT-{next(_n)}"}}),
        ("POST", "/admin/conventions/{convention_id}"): lambda m, c, a: (f"/admin/conventions/{m.convention()}",
                                                                         form(a)),
        ("POST", "/admin/import"): lambda m, c, a: ("/admin/import", {
            "data": {"layer": "wifi_hotspots", "csrf_token": a.csrf},
            "files": {"file": ("bornes.geojson", bornes_file(m.world))}}),
        ("POST", "/admin/import/undo"): lambda m, c, a: ("/admin/import/undo", form(a, change_set="inconnu")),
        ("POST", "/admin/import/open-data"): lambda m, c, a: ("/admin/import/open-data", {
            "data": {"kind": "wifi", "check_only": "1", "csrf_token": a.csrf},
            "files": {"file": ("bornes.csv", b"code_insee;lieu\n46042;Mairie\n")}}),
        ("GET", "/admin/import/{token}"):
            lambda m, c, a: (f"/admin/import/{m.upload(c, a)}", {"params": {"layer": "wifi_hotspots"}}),
        ("POST", "/admin/import/{token}"): lambda m, c, a: (f"/admin/import/{m.upload(c, a)}", form(
            a, layer="wifi_hotspots", action="check", map__borne_id="borne_id", map__lieu="lieu", map__ssid="ssid",
            map__statut="statut")),
        ("POST", "/admin/api/proposals/{request_id}/accept"):
            lambda m, c, a: (f"/admin/api/proposals/{m.proposal()}/accept", {"json": {}}),
        ("POST", "/admin/api/proposals/{request_id}/reject"):
            lambda m, c, a: (f"/admin/api/proposals/{m.proposal()}/reject", {"json": {"comment": "Doublon"}}),
        ("GET", "/admin/api/history/{layer_id}/{fid}"):
            lambda m, c, a: (f"/admin/api/history/wifi_hotspots/{m.borne()}", {}),
        ("POST", "/admin/api/history/{layer_id}/{fid}/revert"):
            lambda m, c, a: (f"/admin/api/history/wifi_hotspots/{m.borne(versions=2)}/revert",
                             {"json": {"version": 1}}),
        ("POST", "/admin/api/history/{layer_id}/{fid}/restore"):
            lambda m, c, a: (f"/admin/api/history/wifi_hotspots/{m.borne(deleted=True)}/restore", {}),
        ("POST", "/api/reports"): lambda m, c, a: ("/api/reports", {"json": report_body(m)}),
        ("POST", "/map/signaler"): lambda m, c, a: ("/map/signaler", {"data": {
            k: str(v) for k, v in report_body(m).items()}}),
        ("GET", "/map/signaler"): lambda m, c, a: ("/map/signaler", {"params": {"lon": m.world.inside[0],
                                                                                 "lat": m.world.inside[1]}}),
        ("GET", "/signalement/{token}"): lambda m, c, a: (f"/signalement/{m.report()[1]}", {}),
        ("GET", "/signalement/{token}/photo"): lambda m, c, a: (f"/signalement/{m.report()[1]}/photo", {}),
        ("POST", "/signalement/{token}/photo"): lambda m, c, a: (f"/signalement/{m.report(photo=False)[1]}/photo", {
            "files": {"photo": ("borne.png", tiny_png(), "image/png")}}),
        ("GET", "/admin/reports/{public_id}"): lambda m, c, a: (f"/admin/reports/{m.report()[0]}", {}),
        ("POST", "/admin/reports/{public_id}"): lambda m, c, a: (f"/admin/reports/{m.report()[0]}",
                                                                 form(a, status="acknowledged", answer="Vu")),
        ("GET", "/admin/reports/{public_id}/photo"): lambda m, c, a: (f"/admin/reports/{m.report()[0]}/photo", {}),
        ("GET", "/open311/v2/services/{service_code}.json"): lambda m, c, a: ("/open311/v2/services/mobile.json", {}),
        ("POST", "/open311/v2/requests.json"): lambda m, c, a: ("/open311/v2/requests.json", {"data": {
            "service_code": "other", "long": str((p := m.report_point())[0]), "lat": str(p[1])}}),
        ("POST", "/open311/v2/requests"): lambda m, c, a: ("/open311/v2/requests", {"data": {
            "service_code": "other", "long": str((p := m.report_point())[0]), "lat": str(p[1])}}),
        ("GET", "/open311/v2/requests/{service_request_id}.json"):
            lambda m, c, a: (f"/open311/v2/requests/{m.report()[0]}.json", {}),
        ("GET", "/open311/v2/requests/{service_request_id}"):
            lambda m, c, a: (f"/open311/v2/requests/{m.report()[0]}", {}),
    }
    return fixed


def _with(path: str, **kwargs: object) -> Call:
    return path, kwargs


CALLS = _calls()
PARAMETERS = {"collectionId": "wifi_hotspots", "layer_id": "wifi_hotspots", "layerId": "wifi_hotspots",
              "tileMatrixSetId": "WebMercatorQuad", "tileMatrix": "8", "tileRow": "93", "tileCol": "128",
              "z": "8", "x": "128", "y": "93", "level": "commune", "styleId": "carte"}


def call_for(method: str, path: str) -> Callable[[Matrix, TestClient, Actor], Call]:
    """The request of a route: its own builder, else the path with the usual parameters filled in."""
    if (method, path) in CALLS:
        return CALLS[(method, path)]
    return lambda m, c, a: (path.format(**PARAMETERS), {})


def app_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route the application serves (HEAD goes with GET; mounts count as GET)."""
    found = set()
    for route in iter_route_contexts(app.routes):
        methods = getattr(route, "methods", None) or {"GET"}
        found |= {(m, route.path) for m in methods if m != "HEAD"}
    return sorted(found, key=lambda mp: (mp[1], mp[0]))


# -- fixtures ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def matrix(settings, registry, boundaries_dir, tmp_path_factory) -> Iterator[tuple[Matrix, TestClient]]:
    with scratch_database(settings, "access") as scratch:
        basemap_dir = tmp_path_factory.mktemp("basemap")
        make_mbtiles(basemap_dir / "plan.mbtiles", (1.0, 44.2, 2.2, 45.05), zooms=(8,))
        scratch = scratch.model_copy(update={
            "editing": scratch.editing.model_copy(update={"upload_dir": tmp_path_factory.mktemp("uploads")}),
            "map": MapSettings(basemap="self-hosted", basemap_dir=basemap_dir)})
        world = build_world(scratch, registry, boundaries_dir)
        today = conventions.local_day()
        with world.engine.begin() as conn:
            snapshots.take(conn, registry, (scratch.territory.departement, scratch.territory.name))
            revoked = accounts.create_token(conn, "rb-admin", "révoqué")
            accounts.revoke_tokens(conn, "rb-admin")
            accounts.create_account(conn, "rb-disabled", "admin", password=None)
            disabled = accounts.create_token(conn, "rb-disabled", "avant désactivation")
            accounts.set_active(conn, "rb-disabled", False)
            accounts.create_account(conn, "rb-expired", "epci_contributor", password=None, epci_siren=world.other)
            conventions.add_convention(conn, registry, epci_siren=world.other, direction="ascendante",
                                       layers=["wifi_hotspots"], starts_on=today - timedelta(days=365),
                                       ends_on=today - timedelta(days=1), reference="CONV-ECHUE")
            conventions.add_convention(conn, registry, epci_siren=world.other, direction="descendante",
                                       layers=["wifi_hotspots"], starts_on=today - timedelta(days=365),
                                       ends_on=None, reference="CONV-LECTURE")
            sessions = {}
            for role, username in (("expired_convention", "rb-expired"), ("contributor_a_on_b", "rb-contrib"),
                                   ("editor", "rb-editor"), ("admin", "rb-admin")):
                cookie, csrf = accounts.open_session(conn, accounts.get_account(conn, username).id, "127.0.0.1", 1)
                sessions[role] = Actor(cookies={"gs_session": cookie}, csrf=csrf, username=username)
        actors = {"anonymous": Actor(), "revoked_token": Actor(token=revoked),
                  "disabled_account": Actor(token=disabled), **sessions}
        app = create_app(scratch)
        with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as client:
            yield Matrix(world, actors, scratch.editing.upload_dir), client
        world.engine.dispose()


# -- the tests -----------------------------------------------------------------------------------------------------
def test_every_route_has_an_access_rule(settings):
    routes = app_routes(create_app(settings))
    missing = [f"{method} {path}" for method, path in routes if (method, path) not in RULES]
    assert not missing, "nouvelle route sans règle d'accès : " + ", ".join(missing)
    stale = [f"{method} {path}" for method, path in RULES if (method, path) not in routes]
    assert not stale, "règle d'accès pour une route qui n'existe plus : " + ", ".join(stale)


def _matches(status: int, expected: str) -> bool:
    return str(status) == expected or (expected.endswith("xx") and str(status)[0] == expected[0])


def test_each_role_gets_what_the_table_says_on_every_route(matrix, settings):
    m, client = matrix
    wrong = []
    for method, path in app_routes(create_app(settings)):
        rule = RULES.get((method, path))
        if rule is None:
            continue  # reported by the test above
        for role in ROLES:
            actor = m.actors[role]
            url, kwargs = call_for(method, path)(m, client, actor)
            headers = {**actor.headers(), **kwargs.pop("headers", {})}
            client.cookies.clear()
            client.cookies.update(kwargs.pop("cookies", actor.cookies))
            response = client.request(method, url, headers=headers, follow_redirects=False, **kwargs)
            if not _matches(response.status_code, rule[role]):
                wrong.append(f"{method} {path} as {role}: {response.status_code}, expected {rule[role]} "
                             f"({response.text[:160]!r})")
    assert not wrong, "\n".join(wrong)


def test_an_unknown_route_is_a_french_404_for_everyone(matrix):
    m, client = matrix
    for role in ROLES:
        actor = m.actors[role]
        client.cookies.clear()
        client.cookies.update(actor.cookies)
        response = client.get("/nulle-part", headers=actor.headers())
        assert response.status_code == 404 and response.json()["detail"].startswith("Aucune ressource"), role

