"""Personal access tokens: revoked with the password or the account, an expiry from /admin (a year by default,
shown), and HTTP Basic credentials that no other site can make a browser spend on a change."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from browser_support import CHROMIUM, serve_app, serve_folder
from click.testing import CliRunner
from conftest import PASSWORD
from factories import EDIT_SOURCE, EpciPoints, epci_world
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.cli.app import cli
from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services.editing import accounts
from geo_service.services.editing.conventions import LOCAL_TIME
from geo_service.settings import AuthSettings, Settings


@pytest.fixture(scope="module")
def points(loaded_boundaries: Engine, registry: LayerRegistry) -> Iterator[EpciPoints]:
    with epci_world(loaded_boundaries, registry, "t", contributor=False) as found:
        yield found


@pytest.fixture(scope="module")
def app(settings: Settings, points: EpciPoints):
    return create_app(settings)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(token: str, user: str = "qgis") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


def works(client: TestClient, token: str) -> bool:
    status = client.get("/ogc/collections", headers=bearer(token)).status_code
    assert status in (200, 401)
    return status == 200


def new_account(engine: Engine, username: str, role: str = "editor") -> str:
    """An account with a password and one token (returned)."""
    with engine.begin() as conn:
        accounts.create_account(conn, username, role, password=PASSWORD)
        return accounts.create_token(conn, username, "script")


def admin_client(app) -> TestClient:
    client = TestClient(app, base_url="http://localhost")
    client.__enter__()
    token = csrf_of(client.get("/admin/login").text)
    r = client.post("/admin/login", data={"username": "t-admin", "password": PASSWORD, "csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@pytest.fixture(scope="module")
def admin(app) -> Iterator[TestClient]:
    client = admin_client(app)
    yield client
    client.__exit__(None, None, None)


# -- revocation --------------------------------------------------------------------------------------------------
def test_a_password_change_revokes_tokens_and_sessions(loaded_boundaries: Engine, points: EpciPoints):
    token = new_account(loaded_boundaries, "t-pw")
    with loaded_boundaries.begin() as conn:
        account_id = accounts.get_account(conn, "t-pw").id
        cookie, _ = accounts.open_session(conn, account_id, "127.0.0.1", 1)
        assert accounts.principal_from_token(conn, token) is not None
        accounts.set_password(conn, "t-pw", "un-autre-mot-de-passe")
    with loaded_boundaries.begin() as conn:
        assert accounts.principal_from_token(conn, token) is None
        assert accounts.principal_from_session(conn, cookie) is None
        revoked = conn.execute(text("SELECT revoked_at IS NOT NULL FROM account_tokens WHERE account_id = :a"),
                               {"a": account_id}).scalars().all()
        assert revoked == [True]
        # A token made after the change works: only the old ones are gone.
        assert accounts.principal_from_token(conn, accounts.create_token(conn, "t-pw", "neuf")) is not None


def test_a_disabled_account_keeps_none_of_its_tokens_when_enabled_again(loaded_boundaries: Engine,
                                                                        points: EpciPoints):
    token = new_account(loaded_boundaries, "t-off")
    with loaded_boundaries.begin() as conn:
        accounts.set_active(conn, "t-off", False)
        assert accounts.principal_from_token(conn, token) is None
        accounts.set_active(conn, "t-off", True)
        assert accounts.principal_from_token(conn, token) is None
        assert all(t.username != "t-off" for t in accounts.list_tokens(conn))


def test_cli_password_and_disable_revoke_tokens(settings: Settings, loaded_boundaries: Engine, app,
                                                points: EpciPoints):
    runner = CliRunner()
    env = {"GEO_SERVICE_DATABASE_URL": settings.database_url}
    first = new_account(loaded_boundaries, "t-cli")
    with TestClient(app, base_url="http://localhost") as client:
        assert works(client, first)
        changed = runner.invoke(cli, ["user", "password", "t-cli", "--password-stdin"], env=env,
                                input="encore-un-mot-de-passe\n", catch_exceptions=False)
        assert changed.exit_code == 0 and "jetons révoqués" in changed.output
        assert not works(client, first)
        second = runner.invoke(cli, ["user", "token", "t-cli"], env=env).output.strip().splitlines()[-1]
        assert works(client, second)
        disabled = runner.invoke(cli, ["user", "disable", "t-cli"], env=env)
        assert disabled.exit_code == 0 and "jetons révoqués" in disabled.output
        assert runner.invoke(cli, ["user", "enable", "t-cli"], env=env).exit_code == 0
        assert not works(client, second)


def test_admin_pages_new_password_and_disable_revoke_tokens(loaded_boundaries: Engine, admin: TestClient,
                                                            points: EpciPoints):
    first = new_account(loaded_boundaries, "t-web")
    assert works(admin, first)
    shown = admin.post("/admin/users/t-web", data={"action": "password", "csrf_token": csrf_of(admin.get(
        "/admin/users").text)})
    assert shown.status_code == 200 and "jetons d'accès révoqués" in html.unescape(shown.text)
    new_password = re.search(r'id="secret"[^>]*value="([^"]+)"', shown.text).group(1)
    with loaded_boundaries.begin() as conn:
        assert accounts.login(conn, "t-web", new_password, "test", AuthSettings()) is not None
    assert not works(admin, first)
    with loaded_boundaries.begin() as conn:
        second = accounts.create_token(conn, "t-web", "script")
    csrf = csrf_of(admin.get("/admin/users").text)
    assert admin.post("/admin/users/t-web", data={"action": "disable", "csrf_token": csrf},
                      follow_redirects=False).status_code == 303
    assert admin.post("/admin/users/t-web", data={"action": "enable", "csrf_token": csrf},
                      follow_redirects=False).status_code == 303
    assert not works(admin, second)


# -- expiry ------------------------------------------------------------------------------------------------------
def stored_expiry(engine: Engine, prefix: str) -> tuple:
    with engine.connect() as conn:
        return conn.execute(text("SELECT created_at, expires_at FROM account_tokens WHERE prefix = :p"),
                            {"p": prefix}).one()


def test_a_token_made_in_admin_expires_in_a_year_unless_told_otherwise(loaded_boundaries: Engine, admin: TestClient,
                                                                       points: EpciPoints):
    new_account(loaded_boundaries, "t-exp")
    form = admin.get("/admin/users").text
    assert re.search(r'<option value="365" selected>1 an</option>', form), "a year is the default choice"
    made = admin.post("/admin/tokens", data={"username": "t-exp", "name": "QGIS poste SIG",
                                             "csrf_token": csrf_of(form)})
    assert made.status_code == 200
    secret = re.search(r'id="secret"[^>]*value="(gsk_[^"]+)"', made.text).group(1)
    created, expires = stored_expiry(loaded_boundaries, secret[:10])
    assert expires - created == timedelta(days=365)
    assert f"Valable jusqu'au {expires.astimezone(LOCAL_TIME):%d/%m/%Y à %H:%M} (1 an)" in html.unescape(made.text)
    listing = admin.get("/admin/users").text
    row = next(r for r in listing.split("<tr>") if secret[:10] in r)
    assert "QGIS poste SIG" in row and f"expire le {expires.astimezone(LOCAL_TIME):%d/%m/%Y}" in row
    assert works(admin, secret)

    month = admin.post("/admin/tokens", data={"username": "t-exp", "name": "essai", "days": "30", "qgis": "1",
                                              "csrf_token": csrf_of(listing)})
    short = re.search(r'value="(gsk_[^"]+)"', month.text).group(1)
    created, expires = stored_expiry(loaded_boundaries, short[:10])
    assert expires - created == timedelta(days=30) and "(30 jours)" in month.text
    forever = admin.post("/admin/tokens", data={"username": "t-exp", "name": "x", "days": "0",
                                                "csrf_token": csrf_of(listing)})
    assert forever.status_code == 400 and "Durée de validité inconnue" in forever.text
    assert 'id="secret"' not in forever.text


def test_an_expired_token_is_refused_and_listed_as_expired(loaded_boundaries: Engine, admin: TestClient,
                                                           points: EpciPoints):
    token = new_account(loaded_boundaries, "t-old")
    with loaded_boundaries.begin() as conn:
        conn.execute(text("UPDATE account_tokens SET expires_at = now() - interval '1 day' WHERE prefix = :p"),
                     {"p": token[:10]})
    assert not works(admin, token)
    row = next(r for r in admin.get("/admin/users").text.split("<tr>") if token[:10] in r)
    assert "expiré le" in row


def test_an_administrator_revokes_one_token(loaded_boundaries: Engine, admin: TestClient, points: EpciPoints):
    token = new_account(loaded_boundaries, "t-rev")
    with loaded_boundaries.begin() as conn:
        kept = accounts.create_token(conn, "t-rev", "autre")
        token_id = next(t.id for t in accounts.list_tokens(conn) if t.prefix == token[:10])
    page = admin.get("/admin/users").text
    assert admin.post(f"/admin/tokens/{token_id}", data={}).status_code == 403  # no CSRF token
    done = admin.post(f"/admin/tokens/{token_id}", data={"csrf_token": csrf_of(page)}, follow_redirects=True)
    assert "Jeton révoqué" in done.text and token[:10] not in done.text
    assert not works(admin, token) and works(admin, kept)


def test_cli_tokens_last_a_year_unless_days_or_no_expiry(settings: Settings, loaded_boundaries: Engine,
                                                         points: EpciPoints):
    runner = CliRunner()
    env = {"GEO_SERVICE_DATABASE_URL": settings.database_url}
    new_account(loaded_boundaries, "t-days")
    for args, lifetime in (([], timedelta(days=365)), (["--days", "7"], timedelta(days=7)), (["--no-expiry"], None)):
        result = runner.invoke(cli, ["user", "token", "t-days", *args], env=env, catch_exceptions=False)
        assert result.exit_code == 0
        secret = result.output.strip().splitlines()[-1]
        created, expires = stored_expiry(loaded_boundaries, secret[:10])
        if lifetime is None:
            assert expires is None and "sans expiration" in result.output
        else:
            assert expires - created == lifetime
            assert f"valable jusqu'au {expires.astimezone(LOCAL_TIME):%d/%m/%Y}" in result.output
    listing = runner.invoke(cli, ["user", "tokens"], env=env).output
    assert listing.count("t-days") == 4 and "sans expiration" in listing


# -- HTTP Basic: no change a cross-site page could make a browser send ------------------------------------------
@pytest.fixture(scope="module")
def deleted_borne(loaded_boundaries: Engine, points: EpciPoints, app) -> tuple[int, str]:
    """A Wi-Fi borne created then deleted through the API by an editor; returns (fid, that editor's token)."""
    token = new_account(loaded_boundaries, "t-basic")
    body = {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(points.inside)},
            "properties": {"borne_id": "basic-1", "code_insee": "46042", "lieu": "Mairie", "ssid": "W",
                           "statut": "installee", "source": EDIT_SOURCE}}
    with TestClient(app, base_url="http://localhost") as client:
        created = client.post("/ogc/collections/wifi_hotspots/items", json=body, headers=bearer(token))
        assert created.status_code == 201, created.text
        fid = created.json()["id"]
        gone = client.delete(f"/ogc/collections/wifi_hotspots/items/{fid}",
                             headers={**bearer(token), "If-Match": created.headers["etag"]})
        assert gone.status_code == 204
    return fid, token


def is_deleted(engine: Engine, fid: int) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT deleted_at IS NOT NULL FROM wifi_hotspots WHERE fid = :f"),
                            {"f": fid}).scalar_one()


@pytest.mark.parametrize("content_type, body", [
    ("application/x-www-form-urlencoded", b""),
    ("multipart/form-data; boundary=x", b"--x--\r\n"),
    ("text/plain", b'{"comment": "x"}'),
    (None, b""),
])
def test_a_forged_post_with_basic_credentials_changes_nothing(app, loaded_boundaries: Engine,
                                                              deleted_borne: tuple[int, str],
                                                              content_type: str | None, body: bytes):
    """What a page of another site can make a browser send (an HTML form, or fetch in no-cors mode): the
    browser adds the Basic credentials it cached for the service, so the service must not act on them."""
    fid, token = deleted_borne
    headers = {**basic(token), "Origin": "http://autre-site.example"}
    if content_type:
        headers["Content-Type"] = content_type
    with TestClient(app, base_url="http://localhost") as client:
        forged = client.post(f"/admin/api/history/wifi_hotspots/{fid}/restore", content=body, headers=headers)
    assert forged.status_code == 403, forged.text
    assert "HTTP Basic" in forged.json()["detail"]
    assert is_deleted(loaded_boundaries, fid)


def test_basic_credentials_still_serve_reads_and_json_writes(app, loaded_boundaries: Engine,
                                                             deleted_borne: tuple[int, str], points: EpciPoints):
    fid, token = deleted_borne
    with TestClient(app, base_url="http://localhost") as client:
        assert client.get("/ogc/collections/wifi_hotspots/items", headers=basic(token)).status_code == 200
        restored = client.post(f"/admin/api/history/wifi_hotspots/{fid}/restore", content=b"",
                               headers={**basic(token), "Content-Type": "application/json"})
        assert restored.status_code == 200, restored.text
        assert not is_deleted(loaded_boundaries, fid)
        # PUT, PATCH and DELETE are never sent cross-site without a CORS preflight: no JSON rule for them.
        item = client.get(f"/ogc/collections/wifi_hotspots/items/{fid}", headers=basic(token))
        gone = client.delete(f"/ogc/collections/wifi_hotspots/items/{fid}",
                             headers={**basic(token), "If-Match": item.headers["etag"]})
        assert gone.status_code == 204, gone.text
        # A bearer token is never sent by a browser on its own: any content type goes.
        again = client.post(f"/admin/api/history/wifi_hotspots/{fid}/restore", content=b"",
                            headers={**bearer(token), "Content-Type": "text/plain"})
        assert again.status_code == 200, again.text


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium absent : installez le paquet chromium")
def test_a_page_of_another_site_cannot_spend_cached_basic_credentials(browser, settings: Settings, points: EpciPoints,
                                                                       loaded_boundaries: Engine,
                                                                       deleted_borne: tuple[int, str], tmp_path):
    """Real Chromium opens a page of another origin whose form posts itself to the service. The browser is made to
    add Basic credentials to every request for the service, as one that cached them would (after a proxy's login
    prompt, or a URL with user:password — the service itself only ever challenges with Bearer): refused, the
    feature stays deleted, while reads with the same credentials still work."""
    fid, token = deleted_borne
    with loaded_boundaries.begin() as conn:
        conn.execute(text("UPDATE wifi_hotspots SET deleted_at = now() WHERE fid = :f"), {"f": fid})
    with serve_app(create_app(settings)) as service:
        (tmp_path / "index.html").write_text(
            f'<!doctype html><form id="f" method="post" enctype="text/plain" '
            f'action="{service}/admin/api/history/wifi_hotspots/{fid}/restore">'
            '<input name="x" value="y"></form><script>document.getElementById("f").submit()</script>')
        with serve_folder(tmp_path) as foreign:
            context = browser.new_context()
            context.route(f"{service}/**", lambda route: route.continue_(
                headers={**route.request.headers, **{k.lower(): v for k, v in basic(token).items()}}))
            try:
                page = context.new_page()
                with page.expect_response(lambda r: "/restore" in r.url) as answer:
                    page.goto(f"{foreign}/index.html")
                response = answer.value
                assert response.request.header_value("origin") == foreign
                assert response.status == 403 and "HTTP Basic" in response.text()
                # The credentials do reach the service: a page only an editor may read opens with them.
                assert page.goto(f"{service}/admin/api/proposals").status == 200
            finally:
                context.close()
    assert is_deleted(loaded_boundaries, fid)


def test_an_authorization_header_of_another_scheme_is_a_401_with_the_bearer_challenge(settings):
    from fastapi.testclient import TestClient

    from geo_service.main import create_app

    with TestClient(create_app(settings)) as client:
        answer = client.post("/ogc/collections/wifi_hotspots/items", json={}, headers={"Authorization": "Digest abc"})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert "non reconnu" in answer.json()["detail"]
