"""The editing scenario in a real headless Chromium: a contributor logs in and adds a Wi-Fi borne inside its EPCI
(it becomes a proposal), tries outside (refused, the message is shown), an administrator accepts it from the
queue, and it appears on the public map. Screenshots go to test-output/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import AXE, BROWSER_MARKS, SETTLE_MS, Visit, axe_violations, open_visit, serve_app
from conftest import PASSWORD
from factories import EpciPoints, epci_world
from playwright.sync_api import expect
from sqlalchemy import Engine, text

from geo_service import vendor
from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.settings import Settings

LIEU = "Borne de la place du marché (scénario)"

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def points(loaded_boundaries: Engine, registry: LayerRegistry) -> Iterator[EpciPoints]:
    with epci_world(loaded_boundaries, registry, "b", reference="CONV-CAHORS-WIFI") as found:
        yield found
        with loaded_boundaries.begin() as conn:
            conn.execute(text("DELETE FROM wifi_hotspots WHERE lieu = :l OR borne_id LIKE 'PAGE-%'"), {"l": LIEU})


@pytest.fixture(scope="module")
def server(settings: Settings, points: EpciPoints) -> Iterator[str]:
    if not (settings.web_dir / "static" / "vendor" / "@geoman-io" / "leaflet-geoman-free").is_dir():
        vendor.vendor(settings.web_dir)
    with serve_app(create_app(settings)) as url:
        yield url


def new_page(browser, visits: list[Visit]):
    """A 1280 × 900 page in a fresh context; its ``Visit`` (which collects the page's JS errors) joins ``visits``."""
    return open_visit(browser, visits, 1280, 900).page


def page_errors(visits: list[Visit]) -> list[str]:
    return [error for visit in visits for error in visit.errors]


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
                                                         loaded_boundaries: Engine, artefacts_dir: Path):
    visits: list[Visit] = []
    contributor = new_page(browser, visits)
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
    contributor.screenshot(path=str(artefacts_dir / "edit-contributor-proposal.png"), full_page=True)

    # Outside its EPCI: refused, and the reason is shown next to the map.
    fill_borne(contributor, "SCENARIO-2", points.outside)
    contributor.get_by_role("button", name="Enregistrer").click()
    alert = contributor.locator("#editor-error")
    alert.get_by_text("hors du périmètre").wait_for()
    expect(alert).to_contain_text("Grand Cahors", use_inner_text=True, timeout=SETTLE_MS)
    contributor.screenshot(path=str(artefacts_dir / "edit-contributor-refused.png"), full_page=True)
    with loaded_boundaries.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM wifi_hotspots WHERE borne_id = 'SCENARIO-2'")).scalar() == 0

    # The public does not see the proposal yet.
    public = new_page(browser, visits)
    public.goto(f"{server}/ogc/collections/wifi_hotspots/items?borne_id=SCENARIO-1&f=json")
    assert '"numberMatched":0' in public.content().replace(" ", "")

    # An administrator accepts it from the queue.
    admin = new_page(browser, visits)
    log_in(admin, server, "b-admin")
    admin.get_by_role("link", name="Propositions des EPCI").click()
    admin.locator("table.admin-table a").first.click()
    expect(admin.locator("table.admin-diff")).to_contain_text(LIEU, use_inner_text=True, timeout=SETTLE_MS)
    admin.wait_for_selector(".admin-map .leaflet-interactive")
    admin.get_by_label("Commentaire pour le contributeur").fill("Vérifié avec la mairie")
    admin.screenshot(path=str(artefacts_dir / "edit-admin-review.png"), full_page=True)
    admin.get_by_role("button", name="Accepter et publier").click()
    admin.get_by_text("Proposition acceptée").wait_for()

    # It appears on the public map.
    with public.expect_response(lambda r: "/api/layers/wifi_hotspots" in r.url and r.ok) as response:
        public.goto(f"{server}/map")
    features = response.value.json()["features"]
    assert any(f["properties"].get("lieu") == LIEU for f in features)
    public.wait_for_selector(".leaflet-container")
    public.screenshot(path=str(artefacts_dir / "edit-public-map.png"), full_page=True)
    assert page_errors(visits) == []


@pytest.mark.skipif(not AXE.is_file(), reason="axe-core absent (python -m geo_service.vendor l'installe)")
def test_admin_pages_have_no_wcag_aa_violation(browser, server: str, points: EpciPoints):
    visits: list[Visit] = []
    page = new_page(browser, visits)
    page.goto(f"{server}/admin/login")
    assert axe_violations(page) == []
    log_in(page, server, "b-admin")
    for path in ("/admin", "/admin/edit/wifi_hotspots", "/admin/proposals?status=all", "/admin/users",
                 "/admin/conventions"):
        page.goto(f"{server}{path}")
        page.wait_for_load_state("networkidle")
        assert axe_violations(page) == [], path
    assert page_errors(visits) == []


def test_bulk_import_through_the_pages(browser, server: str, points: EpciPoints, loaded_boundaries: Engine,
                                       tmp_path: Path, artefacts_dir: Path):
    """An administrator sends a CSV, reads the preview and the suggested mapping, checks (a refused row is
    listed), imports the corrected file, then undoes the import."""
    x, y = points.inside
    rows = ["borne_id;lieu;ssid;statut;lon;lat",
            f"PAGE-1;Halle;WIFI public lotois;installee;{x:.6f};{y:.6f}",
            f"PAGE-2;Gare;WIFI public lotois;allumee;{x + 0.002:.6f};{y:.6f}"]
    csv_file = tmp_path / "bornes_page.csv"
    csv_file.write_text("\n".join(rows) + "\n", encoding="utf-8")
    visits: list[Visit] = []
    page = new_page(browser, visits)
    log_in(page, server, "b-admin")
    page.get_by_role("link", name="Importer un fichier").click()
    page.get_by_label("Couche de destination").select_option("wifi_hotspots")
    page.get_by_label("Fichier à importer").set_input_files(str(csv_file))
    page.get_by_role("button", name="Envoyer et prévisualiser").click()
    expect(page.get_by_role("heading", name="Le fichier")).to_be_visible(timeout=SETTLE_MS)
    # The suggested mapping and coordinates are preselected.
    expect(page.get_by_label("Statut *")).to_have_value("statut")
    expect(page.get_by_label("Colonne de la longitude ou du x")).to_have_value("lon")
    if AXE.is_file():
        assert axe_violations(page) == []
    page.get_by_role("button", name="Vérifier (rien n'est écrit)").click()
    report = page.locator(".admin-report")
    expect(report).to_contain_text("1 ligne refusée", timeout=SETTLE_MS)
    expect(report.locator("table")).to_contain_text("allumee")
    page.screenshot(path=str(artefacts_dir / "import-check.png"), full_page=True)
    with loaded_boundaries.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM wifi_hotspots WHERE borne_id LIKE 'PAGE-%'")).scalar() == 0

    csv_file.write_text("\n".join(rows[:2]) + "\n", encoding="utf-8")
    page.get_by_role("link", name="Importer un fichier").click()
    page.get_by_label("Couche de destination").select_option("wifi_hotspots")
    page.get_by_label("Fichier à importer").set_input_files(str(csv_file))
    page.get_by_role("button", name="Envoyer et prévisualiser").click()
    page.get_by_role("button", name="Importer", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Import enregistré", timeout=SETTLE_MS)
    with loaded_boundaries.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM wifi_hotspots WHERE borne_id = 'PAGE-1' "
                                 "AND deleted_at IS NULL")).scalar() == 1
    page.get_by_role("button", name="Annuler ce lot").click()
    expect(page.get_by_role("status")).to_contain_text("Import annulé", timeout=SETTLE_MS)
    with loaded_boundaries.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM wifi_hotspots WHERE borne_id = 'PAGE-1' "
                                 "AND deleted_at IS NULL")).scalar() == 0
    assert page_errors(visits) == []
