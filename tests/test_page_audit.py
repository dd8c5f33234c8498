"""Every HTML page the service serves, audited by axe-core (WCAG 2.1 A and AA, and axe's best practices) on a
desktop and on a phone, in one Chromium against one server.

The pages are not listed by hand: every GET route of the application (``create_app().routes``) is requested as a
browser would (``Accept: text/html``), anonymously, or signed in as an administrator for ``/admin``, with its path
parameters taken from ``SAMPLES``; each one that answers HTML is audited. A new page is therefore audited as soon
as its route exists; a new path parameter without a sample fails the test, which says what to add.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from browser_support import AXE, BROWSER_MARKS, Visit, axe_violations, serve_app
from conftest import PASSWORD
from factories import EpciPoints, epci_world
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlalchemy import Engine, text

from geo_service import vendor
from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services.editing import accounts
from geo_service.settings import Settings

pytestmark = [*BROWSER_MARKS,
              pytest.mark.skipif(not AXE.is_file(), reason="axe-core absent (python -m geo_service.vendor l'installe)")]

VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}
LIEU = "Borne de l'audit des pages"
# Pages whose path names something only a scenario makes; each is audited by the test named.
AUDITED_ELSEWHERE = {
    "/admin/import/{token}": "test_edit_browser.py::test_bulk_import_through_the_pages (aperçu d'un fichier envoyé)",
}
# Rules waived on one page, and why. Swagger UI (/docs) is vendored as it is published: the markup of its
# operations (a button around the copy button, h4 after h2, its API description outside its own main landmark)
# and its theme's colours are its own; the page around it is ours and clean (the language).
WAIVED = {
    "/docs": {"nested-interactive": "Swagger UI : bouton de copie dans le bouton d'une opération",
              "heading-order": "Swagger UI : niveaux de titres de sa mise en page",
              "color-contrast": "Swagger UI : couleurs de son thème (méthodes HTTP, numéros de version)",
              "region": "Swagger UI : la description de l'API est rendue hors de son élément main"},
}
# What a page shows once it has done its own work (Swagger UI draws after reading /openapi.json), by path.
READY = {"/docs": ".swagger-ui .opblock", "/map/report": ".rpt-status", "/observatory": "#obs-map[data-drawn]"}
# Query strings that show a page in its fullest state (a report, a form filled in).
QUERIES = {
    "/map/report": "?address={address}",
    "/map/embed/snippet": "?layers=wifi_hotspots,third_places&lat=44.6&lon=1.6&zoom=11",
    "/ogc/collections/{collectionId}/items": "?limit=5",
    "/admin/proposals": "?status=all",
}


@dataclass(frozen=True)
class World:
    """What the sample paths name: a public collection and one of its features, a proposal, an edited feature,
    a resident's report and its follow-up token."""

    collection: str
    feature: int
    proposal: int
    edited: int
    address: str
    report: str = ""
    report_token: str = ""
    epci: str = ""


def route_paths(app: FastAPI) -> list[str]:
    """The path of every GET route of the application (static files aside)."""
    paths = {route.path for route in iter_route_contexts(app.routes)
             if "GET" in (getattr(route, "methods", None) or set()) and not route.path.startswith("/static")}
    return sorted(paths)


def samples(world: World) -> dict[str, str]:
    """A value for each path parameter of the routes (by name)."""
    return {"collectionId": world.collection, "featureId": str(world.feature), "layer_id": world.collection,
            "layerId": world.collection, "fid": str(world.edited), "request_id": str(world.proposal),
            "tileMatrixSetId": "WebMercatorQuad", "tileMatrix": "9", "tileRow": "185", "tileCol": "258",
            "z": "9", "x": "258", "y": "185", "tileset": "plan", "ext": "png",
            "public_id": world.report, "service_request_id": world.report, "token": world.report_token,
            "service_code": "fibre", "level": "commune", "siren": world.epci,
            "styleId": "carte"}


def concrete(path: str, world: World) -> str:
    """``path`` with its parameters filled in and its query, or an assertion naming the missing sample."""
    values = samples(world)
    missing = [name for name in re.findall(r"{(\w+)(?::\w+)?}", path) if name not in values]
    assert not missing, f"{path} : ajoutez une valeur pour {missing} dans SAMPLES (tests/test_page_audit.py)"
    url = re.sub(r"{(\w+)(?::\w+)?}", lambda m: values[m.group(1)], path)
    return url + QUERIES.get(path, "").format(address=world.address)


@pytest.fixture(scope="module")
def world(loaded_boundaries: Engine, demo_territory, observatory_snapshot,
          registry: LayerRegistry) -> Iterator[tuple[World, EpciPoints, dict[str, str]]]:
    """An administrator ``pa-admin`` and a contributor of Grand Cahors; a proposal of the contributor and a borne
    the administrator created (so that it has a history)."""
    with epci_world(loaded_boundaries, registry, "pa", reference="CONV-AUDIT") as points:
        with loaded_boundaries.begin() as conn:
            tokens = {who: accounts.create_token(conn, f"pa-{who}", "audit") for who in ("admin", "contrib")}
            feature = conn.execute(text("SELECT min(fid) FROM wifi_hotspots")).scalar_one()
            address = conn.execute(text(
                "SELECT numero || ' ' || nom_voie || ', ' || code_postal || ' ' || nom_commune FROM premises "
                "WHERE numero ~ '^[0-9]+$' ORDER BY imb_id LIMIT 1")).scalar_one()
        yield World("wifi_hotspots", feature, 0, 0, address), points, tokens
        with loaded_boundaries.begin() as conn:
            conn.execute(text("DELETE FROM wifi_hotspots WHERE lieu = :l"), {"l": LIEU})
            conn.execute(text("DELETE FROM reports WHERE description LIKE 'Audit des pages%'"))


@pytest.fixture(scope="module")
def server(settings: Settings, world) -> Iterator[str]:
    if not AXE.is_file() or not (settings.web_dir / "static" / "vendor" / "leaflet" / "leaflet.js").is_file():
        vendor.vendor(settings.web_dir)
    with serve_app(create_app(settings)) as url:
        yield url


def borne(point: tuple[float, float], borne_id: str) -> dict:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(point)},
            "properties": {"borne_id": borne_id, "code_insee": "46042", "lieu": LIEU, "ssid": "WIFI",
                           "statut": "installee"}}


@pytest.fixture(scope="module")
def pages(settings: Settings, server: str, world) -> tuple[World, list[str]]:
    """The world with its proposal and edited borne made through the API, and the routes to try."""
    base, points, tokens = world
    items = f"{server}/ogc/collections/wifi_hotspots/items"
    made = httpx.post(items, json=borne(points.inside, "AUDIT-1"),
                      headers={"Authorization": f"Bearer {tokens['admin']}"})
    assert made.status_code == 201, made.text
    proposed = httpx.post(items, json=borne(points.inside, "AUDIT-2"),
                          headers={"Authorization": f"Bearer {tokens['contrib']}"})
    assert proposed.status_code == 202, proposed.text
    proposal = proposed.json()["changeRequest"]
    edited = int(made.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    reported = httpx.post(f"{server}/api/reports", json={
        "category": "fibre", "lon": points.inside[0], "lat": points.inside[1],
        "description": "Audit des pages : l'état de la fibre affiché est faux"})
    assert reported.status_code in (200, 201), reported.text
    report = reported.json()
    full = World(base.collection, base.feature, proposal, edited, base.address, report["id"],
                 report["follow_up_url"].rsplit("/", 1)[1], points.mine)
    return full, route_paths(create_app(settings))


def log_in(visit: Visit, server: str) -> None:
    page = visit.page
    page.goto(f"{server}/admin/login")
    page.get_by_label("Identifiant").fill("pa-admin")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(f"{server}/admin")


def html_pages(visit: Visit, server: str, world: World, paths: list[str], admin: bool) -> list[str]:
    """The URLs among ``paths`` that answer a browser's request with a 200 HTML page: to anyone (the login page
    among them), or, for ``admin``, the /admin pages to a signed-in administrator."""
    found = []
    for path in paths:
        if path in AUDITED_ELSEWHERE or (admin and not path.startswith("/admin")):
            continue
        url = concrete(path, world)
        answer = visit.context.request.get(server + url, headers={"Accept": "text/html,*/*;q=0.8"},
                                           max_redirects=0)
        if answer.status == 200 and answer.headers.get("content-type", "").startswith("text/html"):
            found.append(url)
    return found


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_every_html_page_is_clean_for_axe(browser, server: str, pages, viewport: str, artefacts_dir: Path):
    world, paths = pages
    width, height = VIEWPORTS[viewport]
    failures: dict[str, list] = {}
    audited: list[str] = []
    used: set[tuple[str, str]] = set()
    for admin in (False, True):
        visit = Visit(browser, width, height, is_mobile=viewport == "phone", has_touch=viewport == "phone")
        try:
            if admin:
                log_in(visit, server)
            for url in html_pages(visit, server, world, paths, admin):
                visit.goto(server + url)
                if url.split("?")[0] in READY:
                    visit.page.locator(READY[url.split("?")[0]]).first.wait_for()
                audited.append(url)
                waived = WAIVED.get(url.split("?")[0], {})
                found = axe_violations(visit.page)
                used |= {(url.split("?")[0], v[0]) for v in found if v[0] in waived}
                found = [v for v in found if v[0] not in waived]
                if found:
                    failures[url] = found
            assert visit.errors == [], visit.errors
            assert visit.foreign_requests() == [], visit.foreign_requests()
        finally:
            visit.close()
    (artefacts_dir / f"page-audit-{viewport}.txt").write_text("\n".join(audited) + "\n", encoding="utf-8")
    failures = {url: found for url, found in failures.items() if found}
    assert failures == {}, "\n".join(f"{url} [{viewport}]: {found}" for url, found in failures.items())
    # A waiver that no longer applies goes (the page became clean, or the rule's id changed).
    assert used == {(path, rule) for path, rules in WAIVED.items() for rule in rules}, used
    # The pages the issue names are among those found from the routes.
    expected = ["/ogc", "/ogc/conformance", "/ogc/collections", f"/ogc/collections/{world.collection}",
                f"/ogc/collections/{world.collection}/items?limit=5",
                f"/ogc/collections/{world.collection}/items/{world.feature}",
                f"/ogc/collections/{world.collection}/queryables", "/map", "/map/embed", "/admin/login", "/admin",
                "/admin/users", "/admin/conventions", "/admin/edit", "/admin/import", "/docs", "/map/signaler",
                f"/signalement/{world.report_token}", "/admin/reports", f"/admin/reports/{world.report}",
                "/observatory", f"/observatory/epci/{world.epci}"]
    assert not [u for u in expected if not any(a.split("?")[0] == u.split("?")[0] for a in audited)], audited
