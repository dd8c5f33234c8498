"""The editing scenario in a real headless Chromium: a contributor logs in and adds a Wi-Fi borne inside its EPCI
(it becomes a proposal), tries outside (refused, the message is shown), an administrator accepts it from the
queue, and it appears on the public map. Screenshots go to test-output/.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn
from factories import EpciPoints, convention, epci_points, wipe_editing
from sqlalchemy import Engine, text

from geo_service import vendor
from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services import accounts, conventions
from geo_service.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "un-mot-de-passe-solide"
LIEU = "Borne de la place du marché (scénario)"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium absent : installez le paquet chromium"),
]


@pytest.fixture(scope="module")
def points(loaded_boundaries: Engine, registry: LayerRegistry) -> Iterator[EpciPoints]:
    with loaded_boundaries.begin() as conn:
        wipe_editing(conn, registry)
        found = epci_points(conn)
        accounts.create_account(conn, "b-admin", "admin", password=PASSWORD)
        accounts.create_account(conn, "b-contrib", "epci_contributor", password=PASSWORD, epci_siren=found.mine)
        convention(conn, registry, found.mine, "ascendante", ["wifi_hotspots"],
                   starts_on=conventions.local_day() - timedelta(days=1), reference="CONV-CAHORS-WIFI")
    yield found
    with loaded_boundaries.begin() as conn:
        conn.execute(text("DELETE FROM wifi_hotspots WHERE lieu = :l"), {"l": LIEU})
        wipe_editing(conn, registry)


@pytest.fixture(scope="module")
def server(settings: Settings, points: EpciPoints) -> Iterator[str]:
    if not (settings.web_dir / "static" / "vendor" / "@geoman-io" / "leaflet-geoman-free").is_dir():
        vendor.vendor(settings.web_dir)
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn n'a pas démarré")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def new_page(browser, errors: list[str]):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR", service_workers="block")
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


def log_in(page, server: str, username: str) -> None:
    page.goto(f"{server}/admin/login")
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(f"{server}/admin")


def fill_borne(page, borne_id: str, point: tuple[float, float]) -> None:
    page.get_by_role("button", name="Nouvelle entité").click()
    page.get_by_label("Longitude").fill(f"{point[0]:.6f}")
    page.get_by_label("Latitude").fill(f"{point[1]:.6f}")
    page.get_by_label("Latitude").press("Tab")  # "change": the marker is placed
    page.locator("#editor-map .leaflet-marker-icon").last.wait_for()
    form = page.locator("#editor-form")
    form.get_by_label("Identifiant de la borne").fill(borne_id)
    form.get_by_label("Code INSEE").fill("46042")
    form.get_by_label("Lieu").fill(LIEU)
    form.get_by_label("Nom du réseau (SSID)").fill("WIFI public lotois")
    form.get_by_label("Statut").select_option("installee")


def test_contribution_refusal_validation_and_publication(browser, server: str, points: EpciPoints,
                                                         loaded_boundaries: Engine, test_output: Path):
    errors: list[str] = []
    contributor = new_page(browser, errors)
    log_in(contributor, server, "b-contrib")
    contributor.goto(f"{server}/admin/edit/wifi_hotspots")
    contributor.wait_for_selector(".leaflet-container")
    assert "propositions" in contributor.locator(".admin-note").inner_text()

    # Inside its EPCI: a proposal.
    fill_borne(contributor, "SCENARIO-1", points.inside)
    contributor.get_by_role("button", name="Enregistrer").click()
    status = contributor.locator("#editor-status")
    status.get_by_text("Proposition enregistrée").wait_for()
    with loaded_boundaries.connect() as conn:
        state = conn.execute(text("SELECT validation_state FROM wifi_hotspots WHERE borne_id = 'SCENARIO-1'")).scalar()
    assert state == "proposed"
    contributor.screenshot(path=str(test_output / "edit-contributor-proposal.png"), full_page=True)

    # Outside its EPCI: refused, and the reason is shown next to the map.
    fill_borne(contributor, "SCENARIO-2", points.outside)
    contributor.get_by_role("button", name="Enregistrer").click()
    alert = contributor.locator("#editor-error")
    alert.get_by_text("hors du périmètre").wait_for()
    assert "Grand Cahors" in alert.inner_text()
    contributor.screenshot(path=str(test_output / "edit-contributor-refused.png"), full_page=True)
    with loaded_boundaries.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM wifi_hotspots WHERE borne_id = 'SCENARIO-2'")).scalar() == 0

    # The public does not see the proposal yet.
    public = new_page(browser, errors)
    public.goto(f"{server}/ogc/collections/wifi_hotspots/items?borne_id=SCENARIO-1&f=json")
    assert '"numberMatched":0' in public.content().replace(" ", "")

    # An administrator accepts it from the queue.
    admin = new_page(browser, errors)
    log_in(admin, server, "b-admin")
    admin.get_by_role("link", name="Propositions des EPCI").click()
    admin.locator("table.admin-table a").first.click()
    assert LIEU in admin.locator("table.admin-diff").inner_text()
    admin.wait_for_selector(".admin-map .leaflet-interactive")
    admin.get_by_label("Commentaire pour le contributeur").fill("Vérifié avec la mairie")
    admin.screenshot(path=str(test_output / "edit-admin-review.png"), full_page=True)
    admin.get_by_role("button", name="Accepter et publier").click()
    admin.get_by_text("Proposition acceptée").wait_for()

    # It appears on the public map.
    with public.expect_response(lambda r: "/api/layers/wifi_hotspots" in r.url and r.ok) as response:
        public.goto(f"{server}/map")
    features = response.value.json()["features"]
    assert any(f["properties"].get("lieu") == LIEU for f in features)
    public.wait_for_selector(".leaflet-container")
    public.screenshot(path=str(test_output / "edit-public-map.png"), full_page=True)
    assert errors == []


AXE = Path(__file__).resolve().parent.parent / "web" / "node_modules" / "axe-core" / "axe.min.js"


def audit(page) -> list:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})")
    return [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:5]) for v in result["violations"]]


@pytest.mark.skipif(not AXE.is_file(), reason="axe-core absent (python -m geo_service.vendor l'installe)")
def test_admin_pages_have_no_wcag_aa_violation(browser, server: str, points: EpciPoints):
    errors: list[str] = []
    page = new_page(browser, errors)
    page.goto(f"{server}/admin/login")
    assert audit(page) == []
    log_in(page, server, "b-admin")
    for path in ("/admin", "/admin/edit/wifi_hotspots", "/admin/proposals?status=all", "/admin/users",
                 "/admin/conventions"):
        page.goto(f"{server}{path}")
        page.wait_for_load_state("networkidle")
        assert audit(page) == [], path
    assert errors == []
