"""The Content-Security-Policy in a real headless Chromium: every page (the map, the embed, /docs, OGC HTML, the
admin pages) works under it with no violation and no request leaving 127.0.0.1, and it is enforced: a script
injected without the response's nonce does not run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser_support import BROWSER_MARKS, Visit, open_visit, serve_app, wait_until
from factories import wipe_editing
from sqlalchemy import Engine

from geo_service import vendor
from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services.editing import accounts
from geo_service.settings import Settings

pytestmark = BROWSER_MARKS
PASSWORD = "un-mot-de-passe-solide"
# Every violation the page reports, collected from its first script on (before the page's own).
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI + " " + e.sourceFile + ":" + e.lineNumber);
});
"""
# What shows each page has settled: drawn map geometries, the operations list, the login form.
DRAWN = "document.querySelectorAll('.leaflet-container path').length > 0"
PAGES = {
    "/map": DRAWN,
    "/map/embed": DRAWN,
    "/map/embed/snippet": "document.querySelector('iframe') !== null",
    "/map/report": "document.querySelector('form') !== null",
    "/docs": "document.querySelectorAll('.opblock').length > 5",
    "/ogc?f=html": "document.querySelector('main') !== null",
    "/ogc/collections/communes/items?f=html&limit=3": DRAWN,
    "/admin/login": "document.querySelector('input[name=password]') !== null",
}


@pytest.fixture(scope="module")
def server(settings: Settings, loaded_boundaries: Engine, registry: LayerRegistry) -> Iterator[str]:
    vendored = settings.web_dir / "static" / "vendor"
    if not (vendored / "swagger-ui-dist" / "swagger-ui-bundle.js").is_file() or \
            not (vendored / "@geoman-io" / "leaflet-geoman-free").is_dir():
        vendor.vendor(settings.web_dir)
    with loaded_boundaries.begin() as conn:
        wipe_editing(conn, registry)
        accounts.create_account(conn, "csp-admin", "admin", password=PASSWORD)
    with serve_app(create_app(settings)) as url:
        yield url
    with loaded_boundaries.begin() as conn:
        wipe_editing(conn, registry)


def open_recording(browser, visits: list[Visit]) -> Visit:
    visit = open_visit(browser, visits)
    visit.context.add_init_script(RECORD_VIOLATIONS)
    return visit


def violations(visit: Visit) -> list[str]:
    reported = visit.page.evaluate("window.__cspViolations")
    return reported + [m for m in visit.console if "Content Security Policy" in m]


def settle(visit: Visit, url: str, ready: str) -> None:
    visit.goto(url)
    assert wait_until(visit.page, f"() => {ready}"), f"{url} n'a pas atteint l'état attendu : {ready}"


@pytest.mark.parametrize("path", list(PAGES))
def test_the_page_works_under_its_csp(browser, server: str, visits, path: str):
    visit = open_recording(browser, visits)
    settle(visit, f"{server}{path}", PAGES[path])
    assert violations(visit) == [], path


def test_admin_pages_work_under_their_csp(browser, server: str, visits):
    visit = open_recording(browser, visits)
    page = visit.page
    page.goto(f"{server}/admin/login")
    page.get_by_label("Identifiant").fill("csp-admin")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(f"{server}/admin")
    for path, ready in (("/admin", "document.querySelector('main') !== null"),
                        ("/admin/edit/wifi_hotspots", DRAWN), ("/admin/import", "document.forms.length > 0"),
                        ("/admin/users", "document.forms.length > 0")):
        settle(visit, f"{server}{path}", ready)
        assert violations(visit) == [], path


def test_a_script_without_the_nonce_does_not_run(browser, server: str, visits):
    visit = open_recording(browser, visits)
    settle(visit, f"{server}/map", DRAWN)
    visit.page.evaluate("""() => {
        const injected = document.createElement("script");
        injected.textContent = "window.__injected = true";
        document.body.appendChild(injected);
        const inline = document.createElement("div");
        inline.innerHTML = '<img src="x" onerror="window.__injected = true">';
        document.body.appendChild(inline);
    }""")
    assert wait_until(visit.page, "() => window.__cspViolations.length >= 2"), violations(visit)
    assert visit.page.evaluate("window.__injected === undefined")
    assert all(v.startswith("script-src") for v in visit.page.evaluate("window.__cspViolations"))
    visit.requests.clear()  # the refused image "x" was a request to 127.0.0.1 anyway
