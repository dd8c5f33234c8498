"""Accounts: argon2 passwords, personal access tokens, web login with session cookie and CSRF, throttling, CLI."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from conftest import PASSWORD
from factories import EDIT_SOURCE, EpciPoints, epci_world
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.cli.app import cli
from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services.editing import accounts
from geo_service.settings import AuthSettings, Settings


@pytest.fixture(scope="module")
def points(loaded_boundaries: Engine, registry: LayerRegistry) -> Iterator[EpciPoints]:
    with epci_world(loaded_boundaries, registry, "w") as found:
        yield found


@pytest.fixture
def fresh_attempts(loaded_boundaries: Engine) -> None:
    with loaded_boundaries.begin() as conn:
        conn.execute(text("DELETE FROM login_attempts"))


def make_client(settings: Settings, base_url: str = "http://localhost", **auth: object) -> TestClient:
    configured = settings.model_copy(update={"auth": AuthSettings(**auth)}) if auth else settings
    return TestClient(create_app(configured), base_url=base_url)


def form_token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the form carries a csrf_token"
    return match.group(1)


def log_in(client: TestClient, username: str, password: str = PASSWORD, follow: bool = False):
    token = form_token(client.get("/admin/login").text)
    return client.post("/admin/login", data={"username": username, "password": password, "csrf_token": token},
                       follow_redirects=follow)


def test_passwords_and_tokens_are_stored_hashed(loaded_boundaries: Engine, points: EpciPoints):
    with loaded_boundaries.begin() as conn:
        stored = conn.execute(text("SELECT password_hash FROM accounts WHERE username = 'w-admin'")).scalar_one()
        token = accounts.create_token(conn, "w-admin", "script")
        digests = conn.execute(text("SELECT token_hash, prefix FROM account_tokens t JOIN accounts a "
                                    "ON a.id = t.account_id WHERE a.username = 'w-admin'")).all()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert token.startswith("gsk_") and all(token not in (d, p) or p == token[:10] for d, p in digests)
    assert accounts.digest(token) in {d for d, _ in digests}


def test_login_sets_a_protected_session_cookie_and_logout_ends_it(settings: Settings, points: EpciPoints,
                                                                 fresh_attempts: None):
    with make_client(settings) as client:
        r = log_in(client, "w-admin")
        assert r.status_code == 303 and r.headers["location"] == "/admin"
        cookie = r.headers["set-cookie"]
        assert "gs_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Secure" not in cookie  # localhost
        home = client.get("/admin")
        assert home.status_code == 200 and "w-admin" in home.text and "administrateur" in home.text
        assert home.headers["cache-control"] == "private, no-cache"
        assert client.post("/admin/logout", data={}).status_code == 403  # no CSRF token
        assert client.get("/admin", follow_redirects=False).status_code == 200
        out = client.post("/admin/logout", data={"csrf_token": form_token(home.text)}, follow_redirects=False)
        assert out.status_code == 303
        assert client.get("/admin", follow_redirects=False).headers["location"].startswith("/admin/login")
    with make_client(settings, base_url="http://geo.lot.fr") as remote:
        assert "Secure" in log_in(remote, "w-admin").headers["set-cookie"]


def test_login_form_without_csrf_token_is_refused(settings: Settings, points: EpciPoints, fresh_attempts: None):
    with make_client(settings) as client:
        client.get("/admin/login")
        r = client.post("/admin/login", data={"username": "w-admin", "password": PASSWORD})
        assert r.status_code == 403 and "anti-CSRF" in r.text
        forged = client.post("/admin/login", data={"username": "w-admin", "password": PASSWORD,
                                                   "csrf_token": "0" * 64})
        assert forged.status_code == 403
        assert "gs_session" not in client.cookies


def test_wrong_password_then_throttling_per_account(settings: Settings, points: EpciPoints, fresh_attempts: None):
    with make_client(settings) as client:
        for _ in range(AuthSettings().max_failures_per_account):
            r = log_in(client, "w-admin", "mauvais-mot-de-passe")
            assert r.status_code == 401 and "Identifiant ou mot de passe incorrect" in r.text
        # The right password no longer helps until the window has passed.
        locked = log_in(client, "w-admin")
        assert locked.status_code == 429 and "Trop de tentatives" in locked.text
        assert int(locked.headers["retry-after"]) > 0
        assert "gs_session" not in client.cookies
        other = log_in(client, "w-contrib")  # another account from the same address still may
        assert other.status_code == 303


def test_throttling_per_ip(settings: Settings, points: EpciPoints, fresh_attempts: None):
    with make_client(settings, max_failures_per_ip=3) as client:
        for name in ("inconnu-1", "inconnu-2", "inconnu-3"):
            assert log_in(client, name, "x" * 12).status_code == 401
        r = log_in(client, "w-admin")
        assert r.status_code == 429 and "cette adresse" in r.text


def test_session_writes_need_the_csrf_header(settings: Settings, points: EpciPoints, fresh_attempts: None):
    body = {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(points.inside)},
            "properties": {"borne_id": "csrf-1", "code_insee": "46042", "lieu": "Mairie", "ssid": "W",
                           "statut": "installee", "source": EDIT_SOURCE}}
    with make_client(settings) as client:
        home = log_in(client, "w-contrib", follow=True)
        refused = client.post("/ogc/collections/wifi_hotspots/items", json=body)
        assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
        token = form_token(home.text)
        accepted = client.post("/ogc/collections/wifi_hotspots/items", json=body, headers={"X-CSRF-Token": token})
        assert accepted.status_code == 202


def test_disabling_an_account_closes_its_sessions(settings: Settings, loaded_boundaries: Engine,
                                                  points: EpciPoints, fresh_attempts: None):
    with loaded_boundaries.begin() as conn:
        accounts.create_account(conn, "w-temp", "editor", password=PASSWORD)
    with make_client(settings) as client:
        assert log_in(client, "w-temp").status_code == 303
        assert client.get("/admin", follow_redirects=False).status_code == 200
        with loaded_boundaries.begin() as conn:
            accounts.set_active(conn, "w-temp", False)
        assert client.get("/admin", follow_redirects=False).status_code == 303
        assert log_in(client, "w-temp").status_code == 401


def test_cli_users_tokens_and_conventions(settings: Settings, loaded_boundaries: Engine, points: EpciPoints,
                                          registry: LayerRegistry):
    runner = CliRunner()
    env = {"GEO_SERVICE_DATABASE_URL": settings.database_url, "GEO_SERVICE_ADMIN_PASSWORD": ""}

    def run(*args: str, input: str | None = None):
        result = runner.invoke(cli, list(args), env=env, input=input, catch_exceptions=False)
        return result

    added = run("user", "add", "cli-editor", "--role", "editor")
    assert added.exit_code == 0 and "Mot de passe (affiché une seule fois)" in added.output
    generated = added.output.rsplit(": ", 1)[1].strip()
    with loaded_boundaries.begin() as conn:
        assert accounts.login(conn, "cli-editor", generated, "cli", AuthSettings()) is not None
    assert run("user", "add", "cli-editor", "--role", "editor").exit_code == 1
    wrong = run("user", "add", "cli-epci", "--role", "epci_contributor")
    assert wrong.exit_code == 1 and "exige un EPCI" in wrong.output
    assert run("user", "add", "cli-epci", "--role", "epci_reader", "--epci", points.other, "--password-stdin",
               input=PASSWORD + "\n").exit_code == 0
    token = run("user", "token", "cli-editor", "--name", "QGIS").output.strip().splitlines()[-1]
    assert token.startswith("gsk_")
    with TestClient(create_app(settings), base_url="http://localhost") as client:
        assert client.get("/ogc/collections", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        listing = run("user", "list").output
        assert "cli-editor" in listing and "éditeur" in listing
        assert run("user", "disable", "cli-editor").exit_code == 0
        assert client.get("/ogc/collections", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert run("convention", "add", "--epci", points.other, "--direction", "ascendante", "--layers", "premises",
               "--reference", "X").exit_code == 1  # premises are not open to EPCI contributions
    added = run("convention", "add", "--epci", points.other, "--direction", "ascendante", "--layers", "all",
                "--start", "2024-01-01", "--reference", "CONV-CLI")
    assert added.exit_code == 0, added.output
    number = int(re.search(r"n° (\d+)", added.output).group(1))
    assert "EN VIGUEUR" in run("convention", "list", "--epci", points.other).output
    assert "immédiatement" in run("convention", "end", str(number)).output
    assert "terminée" in run("convention", "list", "--epci", points.other).output
    # ensure-admin: nothing to do while an active administrator exists.
    assert "rien à faire" in run("user", "ensure-admin").output


def test_cli_ensure_admin_creates_the_first_administrator(settings: Settings, loaded_boundaries: Engine,
                                                          registry: LayerRegistry, points: EpciPoints):
    with loaded_boundaries.begin() as conn:
        conn.execute(text("UPDATE accounts SET active = false WHERE role = 'admin'"))
    runner = CliRunner()
    env = {"GEO_SERVICE_DATABASE_URL": settings.database_url, "GEO_SERVICE_ADMIN_PASSWORD": PASSWORD,
           "GEO_SERVICE_AUTH__FIRST_ADMIN": "premier-admin"}
    result = runner.invoke(cli, ["user", "ensure-admin"], env=env, catch_exceptions=False)
    assert result.exit_code == 0 and "premier-admin" in result.output and PASSWORD not in result.output
    with loaded_boundaries.begin() as conn:
        assert accounts.login(conn, "premier-admin", PASSWORD, "cli", AuthSettings()).role == "admin"
        conn.execute(text("UPDATE accounts SET active = false WHERE username = 'premier-admin'"))
    env["GEO_SERVICE_ADMIN_PASSWORD"] = ""
    env["GEO_SERVICE_AUTH__FIRST_ADMIN"] = "second-admin"
    generated = runner.invoke(cli, ["user", "ensure-admin"], env=env, catch_exceptions=False)
    assert "affiché une seule fois" in generated.output
    with loaded_boundaries.begin() as conn:
        conn.execute(text("UPDATE accounts SET active = true WHERE username = 'w-admin'"))


def test_qgis_basic_authentication_takes_a_token_not_a_password(settings: Settings, loaded_boundaries: Engine,
                                                                points: EpciPoints):
    import base64

    with loaded_boundaries.begin() as conn:
        token = accounts.create_token(conn, "w-admin", "QGIS")

    def basic(user: str, secret: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}

    with make_client(settings) as client:
        ok = client.options("/ogc/collections/wifi_hotspots/items", headers=basic("w-admin", token))
        assert ok.status_code == 204 and ok.headers["cache-control"] == "private, no-cache"
        assert client.get("/ogc/collections", headers=basic("w-admin", PASSWORD)).status_code == 401
