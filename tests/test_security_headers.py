"""Security headers on every route (api/security_headers.py), the Host check and public links (api/urls.py),
proxy headers from trusted proxies only, and the session cookie in production."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.main import create_app
from geo_service.services.basemap.basemap_choice import tile_source
from geo_service.settings import AuthSettings, MapSettings, Settings

# Plausible values for the path parameters of every route: the answer may be a 4xx, it must carry the headers.
PATH_VALUES = {"collectionId": "wifi_hotspots", "layer_id": "wifi_hotspots", "layerId": "wifi_hotspots",
               "tileMatrixSetId": "WebMercatorQuad", "tileMatrix": "0", "tileRow": "0", "tileCol": "0",
               "z": "0", "x": "0", "y": "0", "featureId": "1", "fid": "1", "request_id": "1",
               "convention_id": "1", "username": "personne", "token": "inconnu"}
EMBED_ANCESTORS = ["'self'", "https://www.lot.fr"]
HTML_PAGES = ["/map", "/map/embed", "/map/embed/snippet", "/map/report", "/ogc?f=html",
              "/ogc/collections/communes/items?f=html&limit=1", "/admin/login", "/docs"]


@pytest.fixture(scope="module")
def app_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"map": MapSettings(embed_frame_ancestors=EMBED_ANCESTORS)})


@pytest.fixture(scope="module")
def client(app_settings: Settings, loaded_boundaries: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings), raise_server_exceptions=False) as c:
        yield c


def every_request(app) -> list[tuple[str, str]]:
    """(method, path) for every route of the app, path parameters filled in."""
    out = []
    for route in iter_route_contexts(app.routes):
        path = route.path
        if path == "/static":
            out.append(("GET", "/static/vendor/leaflet/leaflet.js"))
            continue
        filled = re.sub(r"{(\w+)(:\w+)?}", lambda m: PATH_VALUES.get(m.group(1), "1"), path)
        out += [(method, filled) for method in sorted(route.methods or ["GET"]) if method != "HEAD"]
    return out


def csp(response) -> dict[str, str]:
    """The Content-Security-Policy as {directive: sources}."""
    directives = (d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";"))
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives if d[0]}


def test_every_route_carries_nosniff_and_its_frame_policy(client: TestClient):
    requests = every_request(client.app)
    assert len(requests) > 60 and ("GET", "/map/embed") in requests and ("POST", "/admin/login") in requests
    # Errors too: an unknown path, a bad parameter, a method not allowed.
    requests += [("GET", "/nulle-part"), ("GET", "/api/layers/wifi_hotspots?bbox=1,2"), ("DELETE", "/map")]
    for method, path in requests:
        r = client.request(method, path, follow_redirects=False)
        where = f"{method} {path} → {r.status_code}"
        assert r.status_code < 500, where
        assert r.headers.get("x-content-type-options") == "nosniff", where
        assert r.headers.get("referrer-policy") == "strict-origin-when-cross-origin", where
        policy = csp(r)
        if path == "/map/embed":
            assert policy["frame-ancestors"] == " ".join(EMBED_ANCESTORS), where
            assert "x-frame-options" not in r.headers, where
        else:
            assert policy["frame-ancestors"] == "'none'", where
            assert r.headers.get("x-frame-options") == "DENY", where
        assert "strict-transport-security" not in r.headers, where  # not in production
        if not r.headers.get("content-type", "").startswith("text/html"):
            assert policy["default-src"] == "'none'", where


class InlineScripts(HTMLParser):
    """The nonce attribute of every inline script that runs (not JSON data blocks)."""

    def __init__(self) -> None:
        super().__init__()
        self.nonces: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and "src" not in attributes and attributes.get("type") != "application/json":
            self.nonces.append(attributes.get("nonce"))


@pytest.mark.parametrize("url", HTML_PAGES)
def test_html_pages_allow_only_their_own_scripts(client: TestClient, url: str):
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    policy = csp(r)
    assert policy["default-src"] == "'self'"
    scripts = policy["script-src"].split()
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    nonce = next(s for s in scripts if s.startswith("'nonce-"))[len("'nonce-"):-1]
    assert len(nonce) >= 22
    assert (policy["object-src"], policy["base-uri"], policy["form-action"]) == ("'none'", "'self'", "'self'")
    assert policy["connect-src"] == "'self'" and policy["img-src"] == "'self' data:"
    parser = InlineScripts()
    parser.feed(r.text)
    assert all(n == nonce for n in parser.nonces), (url, parser.nonces, nonce)
    assert r.headers["cross-origin-opener-policy"] == "same-origin"
    geolocation = "geolocation=()" if url.startswith("/map/embed?") or url == "/map/embed" else "geolocation=(self)"
    assert r.headers["permissions-policy"].startswith(geolocation)
    # A nonce is good for one response only.
    assert client.get(url).headers["content-security-policy"] != r.headers["content-security-policy"]


def test_pages_with_an_inline_script_carry_the_nonce(client: TestClient):
    for url in ("/map", "/map/embed", "/docs", "/ogc/collections/communes/items?f=html&limit=1"):
        parser = InlineScripts()
        parser.feed(client.get(url).text)
        assert parser.nonces and all(parser.nonces), url


def test_a_revalidated_page_keeps_the_policy_of_its_cached_body(client: TestClient):
    first = client.get("/ogc?f=html")
    again = client.get("/ogc?f=html", headers={"If-None-Match": first.headers["etag"]})
    # A new CSP on the 304 would replace the cached one, and its new nonce would block the cached body's scripts.
    assert again.status_code == 304 and "content-security-policy" not in again.headers
    assert again.headers["x-content-type-options"] == "nosniff"


def test_the_base_map_server_is_allowed_for_images(settings: Settings, loaded_boundaries: Engine):
    assert tile_source("https://{s}.tile.openstreetmap.fr/osmfr/{z}/{x}/{y}.png") == "https://*.tile.openstreetmap.fr"
    assert tile_source("https://tiles.example.org:8443/{z}/{x}/{y}.png") == "https://tiles.example.org:8443"
    assert tile_source("") is None and tile_source("/tuiles/{z}/{x}/{y}.png") is None
    configured = settings.model_copy(update={"map": MapSettings(basemap_url="https://{s}.tile.example.org/{z}/{x}/{y}.png")})
    with TestClient(create_app(configured)) as c:
        assert csp(c.get("/map"))["img-src"] == "'self' data: https://*.tile.example.org"
        assert csp(c.get("/admin/login"))["img-src"] == "'self' data: https://*.tile.example.org"


def test_docs_are_served_from_this_service(client: TestClient):
    page = client.get("/docs").text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert "/static/vendor/swagger-ui-dist/swagger-ui-bundle.js" in sources
    assert all(s.startswith("/") for s in sources), sources
    assert "validatorUrl" in page and "cdn" not in page
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"):
        assert client.get(f"/static/vendor/swagger-ui-dist/{asset}").status_code == 200, asset
    assert client.get("/redoc").status_code == 404


# -- production: HSTS, public address, Secure cookie --------------------------------------------------------
def production(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(update={"mode": "production", "secret_key": "clé-de-test",
                                       "public_base_url": "https://carto.lot.fr", **update})


def test_hsts_only_in_production_and_over_https(settings: Settings, loaded_boundaries: Engine):
    with TestClient(create_app(production(settings)), base_url="https://carto.lot.fr") as c:
        assert c.get("/healthz").headers["strict-transport-security"] == "max-age=31536000"
        assert "strict-transport-security" in c.get("/map").headers
    with TestClient(create_app(production(settings)), base_url="http://localhost") as c:
        assert "strict-transport-security" not in c.get("/healthz").headers
    with TestClient(create_app(settings), base_url="https://localhost") as c:
        assert "strict-transport-security" not in c.get("/healthz").headers  # development


def test_production_refuses_to_start_without_its_public_address():
    with pytest.raises(ValueError, match="GEO_SERVICE_PUBLIC_BASE_URL"):
        Settings(mode="production", secret_key="x")
    with pytest.raises(ValueError, match="sans paramètres"):
        Settings(public_base_url="carto.lot.fr")
    assert Settings(public_base_url="https://carto.lot.fr/").public_base_url == "https://carto.lot.fr"
    assert Settings(public_base_url="https://carto.lot.fr").allowed_hosts == ["127.0.0.1", "localhost",
                                                                              "carto.lot.fr"]


def test_the_session_cookie_is_secure_in_production_whatever_the_host(settings: Settings, loaded_boundaries: Engine):
    # Behind a proxy the Host may well say localhost: production still sends Secure cookies.
    with TestClient(create_app(production(settings)), base_url="http://localhost") as c:
        assert "Secure" in c.get("/admin/login").headers["set-cookie"]
    with TestClient(create_app(settings), base_url="http://localhost") as c:  # development keeps "auto"
        assert "Secure" not in c.get("/admin/login").headers["set-cookie"]


# -- Host header and public links ----------------------------------------------------------------------------
def test_an_unknown_host_is_refused(settings: Settings, loaded_boundaries: Engine):
    defaults = settings.model_copy(update={"trusted_hosts": None})
    with TestClient(create_app(defaults), base_url="http://localhost") as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/healthz", headers={"Host": "127.0.0.1:8000"}).status_code == 200
        r = c.get("/ogc", headers={"Host": "evil.example"})
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
        assert "evil.example" in r.json()["detail"] and r.headers["x-content-type-options"] == "nosniff"
        assert c.get("/ogc/tiles/WebMercatorQuad/tilejson.json", headers={"Host": "evil.example"}).status_code == 400


def test_links_use_the_public_address_whatever_the_host(settings: Settings, loaded_boundaries: Engine):
    public = settings.model_copy(update={"public_base_url": "https://carto.lot.fr"})
    with TestClient(create_app(public), base_url="http://localhost") as c:
        tilejson = c.get("/ogc/collections/communes/tiles/WebMercatorQuad/tilejson.json").json()
        assert tilejson["tiles"][0].startswith("https://carto.lot.fr/ogc/collections/communes/tiles/")
        landing = c.get("/ogc").json()
        hrefs = [link["href"] for link in landing["links"]]
        assert hrefs and all(h.startswith("https://carto.lot.fr/") for h in hrefs), hrefs
        assert "https://carto.lot.fr/docs" in hrefs
        page = c.get("/ogc/collections/communes/items?limit=2&offset=2").json()
        links = {link["rel"]: link["href"] for link in page["links"]}
        assert links["self"] == "https://carto.lot.fr/ogc/collections/communes/items?limit=2&offset=2"
        assert links["next"].startswith("https://carto.lot.fr/ogc/collections/communes/items?")
        assert links["prev"].startswith("https://carto.lot.fr/")
        api = c.get("/ogc/api").json()
        assert api["servers"][0]["url"].startswith("https://carto.lot.fr/ogc")
        snippet = c.get("/map/embed/snippet").text
        assert "https://carto.lot.fr/map/embed?" in snippet and "localhost" not in snippet
    with TestClient(create_app(settings)) as c:  # without it: the request's own address (a trusted host)
        assert c.get("/ogc").json()["links"][0]["href"].startswith("http://testserver/ogc")


# -- behind a reverse proxy -----------------------------------------------------------------------------------
PROXY, CLIENT, OTHER_CLIENT, STRANGER = "10.20.0.1", "203.0.113.7", "203.0.113.8", "198.51.100.9"


@pytest.fixture
def attempts(loaded_boundaries: Engine) -> Iterator[Engine]:
    def clear() -> None:
        with loaded_boundaries.begin() as conn:
            conn.execute(text("DELETE FROM login_attempts WHERE ip IN (:a, :b, :c, :d)"),
                         {"a": PROXY, "b": CLIENT, "c": OTHER_CLIENT, "d": STRANGER})
    clear()
    yield loaded_boundaries
    clear()


def failed_login(client: TestClient, username: str, forwarded_for: str):
    page = client.get("/admin/login", headers={"X-Forwarded-For": forwarded_for}).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/admin/login", data={"username": username, "password": "mauvais", "csrf_token": token},
                       headers={"X-Forwarded-For": forwarded_for})


def recorded_ips(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT ip FROM login_attempts WHERE ip IN (:a, :b, :c, :d) ORDER BY id"),
                                 {"a": PROXY, "b": CLIENT, "c": OTHER_CLIENT, "d": STRANGER}).scalars())


def test_the_login_limit_counts_the_client_a_trusted_proxy_names(settings: Settings, attempts: Engine):
    behind = settings.model_copy(update={"trusted_proxies": [PROXY], "auth": AuthSettings(max_failures_per_ip=2)})
    app = create_app(behind)
    with TestClient(app, base_url="http://localhost", client=(PROXY, 41000)) as proxy:
        assert failed_login(proxy, "inconnu-1", CLIENT).status_code == 401
        assert failed_login(proxy, "inconnu-2", CLIENT).status_code == 401
        assert failed_login(proxy, "inconnu-3", CLIENT).status_code == 429  # that client, whatever the account
        assert failed_login(proxy, "inconnu-4", OTHER_CLIENT).status_code == 401  # another client is not locked out
    assert recorded_ips(attempts) == [CLIENT, CLIENT, OTHER_CLIENT]


def test_forwarded_headers_from_anyone_else_are_ignored(settings: Settings, attempts: Engine):
    behind = settings.model_copy(update={"trusted_proxies": [PROXY]})
    with TestClient(create_app(behind), base_url="http://localhost", client=(STRANGER, 41000)) as stranger:
        assert failed_login(stranger, "inconnu-1", CLIENT).status_code == 401
        assert failed_login(stranger, "inconnu-2", OTHER_CLIENT).status_code == 401
        r = stranger.get("/healthz", headers={"X-Forwarded-Proto": "https"})
        assert r.status_code == 200 and "strict-transport-security" not in r.headers
    assert recorded_ips(attempts) == [STRANGER, STRANGER]
    # Without trusted proxies (the default), even the proxy's headers are ignored.
    with TestClient(create_app(settings), base_url="http://localhost", client=(PROXY, 41000)) as proxy:
        assert failed_login(proxy, "inconnu-3", CLIENT).status_code == 401
    assert recorded_ips(attempts) == [STRANGER, STRANGER, PROXY]


def test_a_trusted_proxy_says_the_request_came_over_https(settings: Settings, loaded_boundaries: Engine):
    behind = production(settings, trusted_proxies=[PROXY])
    with TestClient(create_app(behind), base_url="http://localhost", client=(PROXY, 41000)) as proxy:
        assert "strict-transport-security" in proxy.get("/healthz", headers={"X-Forwarded-Proto": "https"}).headers
        assert "strict-transport-security" not in proxy.get("/healthz").headers


def test_an_unexpected_error_is_a_french_problem_with_the_strict_headers(settings):
    """A fault of ours (none is known) is answered outside the headers middleware: it carries them itself."""
    from fastapi.testclient import TestClient

    from geo_service.main import create_app

    app = create_app(settings)

    @app.get("/__panne")
    def broken() -> None:
        raise RuntimeError("panne")

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/__panne")
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == "Erreur interne du service : elle a été consignée"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert "panne" not in answer.text
