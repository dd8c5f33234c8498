"""« Signaler un problème » in a real Chromium: a resident on a phone, keyboard only, reports a wrong fibre state
from the report panel and gets the follow-up link; an officer finds it in /admin/reports (map and list) and answers;
the answer shows through the link; an EPCI contributor's queue holds only its perimeter's reports; the pages pass
the axe-core WCAG 2.1 AA audit on a desktop and a phone. Screenshots go to test-output/ (artefacts_dir).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser_support import AXE, BROWSER_MARKS, Visit, axe_violations, open_visit, serve_app, wait_until
from factories import epci_world
from PIL import Image
from playwright.sync_api import expect
from sqlalchemy import Engine, text

from geo_service import vendor
from geo_service.main import create_app
from geo_service.services.editing import accounts
from geo_service.settings import Settings

pytestmark = BROWSER_MARKS
PHONE = {"width": 390, "height": 844, "is_mobile": True, "has_touch": True}


def wipe_reports(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM report_status_history; DELETE FROM report_confirmations; DELETE FROM reports"))


@pytest.fixture(scope="module")
def premise(engine: Engine, demo_territory) -> dict:
    """A demo premise of Figeac (numbered) and the label the geocoder gives it."""
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT numero, nom_voie, code_postal, nom_commune, ST_X(geom) AS lon, ST_Y(geom) AS lat "
            "FROM premises WHERE nom_commune = 'Figeac' AND numero ~ '^[0-9]+$' ORDER BY imb_id LIMIT 1"
        )).mappings().one()
    return {**row, "label": f"{row['numero']} {row['nom_voie']}, {row['code_postal']} {row['nom_commune']}"}


@pytest.fixture(scope="module")
def world(engine: Engine, registry, demo_territory):
    """``rpb-admin`` and ``rpb-contrib`` (Grand Cahors, convention in force); no report before or after."""
    wipe_reports(engine)
    with epci_world(engine, registry, "rpb") as points:
        yield points
    wipe_reports(engine)


@pytest.fixture(scope="module")
def server(settings: Settings, world) -> Iterator[str]:
    if not (settings.web_dir / "static" / "vendor" / "leaflet" / "leaflet.js").is_file() or not AXE.is_file():
        vendor.vendor(settings.web_dir)
    roomy = settings.model_copy(update={"reports": settings.reports.model_copy(update={"max_per_ip_per_hour": 100})})
    with serve_app(create_app(roomy)) as url:
        yield url


def signed_in(browser, visits: list[Visit], engine: Engine, server: str, username: str, **viewport) -> Visit:
    """A browser context holding a session of ``username`` (the cookie the login form would have set)."""
    size = {"width": 1280, "height": 900, **viewport}
    visit = open_visit(browser, visits, size.pop("width"), size.pop("height"), **size)
    with engine.begin() as conn:
        cookie, _ = accounts.open_session(conn, accounts.get_account(conn, username).id, "127.0.0.1", 1)
    visit.context.add_cookies([{"name": "gs_session", "value": cookie, "url": server}])
    return visit


def tab_until(page, text: str, presses: int = 60) -> None:
    """Press Tab until the focused element's text starts with ``text`` (the keyboard's way to reach it)."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("(document.activeElement.textContent || '').trim()").startswith(text):
            return
    raise AssertionError(f"« {text} » never got the focus with Tab")


@pytest.fixture(scope="module")
def reported(browser, server: str, premise: dict, artefacts_dir: Path) -> dict:
    """The resident's report, made on a phone with the keyboard only; its follow-up link and number."""
    visit = Visit(browser, PHONE["width"], PHONE["height"], is_mobile=True, has_touch=True)
    try:
        page = visit.goto(f"{server}/map").page
        page.keyboard.press("Tab")  # skip link "Aller à la recherche d'adresse"
        page.keyboard.press("Enter")
        page.keyboard.type(f"{premise['numero']} {premise['nom_voie']} fig", delay=15)
        page.locator("#recherche-liste [role=option]").first.wait_for()
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        page.locator("#rapport .rpt-status").wait_for()
        tab_until(page, "Signaler un problème ici")
        page.keyboard.press("Enter")
        form = page.locator("#rapport .problem-form")
        form.wait_for()
        focused = page.locator(":focus")
        expect(focused).to_have_text("Signaler un problème")
        page.keyboard.press("Tab")  # the first category, already chosen: the fibre state at this address
        expect(focused).to_have_value("fibre")
        expect(focused).to_be_checked()
        page.keyboard.press("Tab")  # the text (the mobile details stay hidden for a fibre report)
        expect(focused).to_have_attribute("name", "description")
        page.keyboard.type("La carte dit raccordable prochainement, mais la fibre est déjà posée devant chez moi.")
        page.screenshot(path=str(artefacts_dir / "reports-phone-form.png"))
        tab_until(page, "Envoyer le signalement")
        page.keyboard.press("Enter")
        link = page.locator("#lien-suivi-panneau")
        link.wait_for()
        expect(page.locator(":focus")).to_have_text("Signalement envoyé")
        expect(page.locator("#rapport .problem-done")).to_contain_text("est enregistré")
        page.screenshot(path=str(artefacts_dir / "reports-phone-sent.png"))
        assert visit.errors == [] and visit.foreign_requests() == []
        url = link.get_attribute("href")
    finally:
        visit.close()
    [found] = httpx.get(f"{server}/open311/v2/requests.json").json()
    return {"url": url, "id": found["service_request_id"]}


def test_a_resident_reports_by_keyboard_on_a_phone_an_officer_answers_the_link_shows_it(
        browser, server: str, engine: Engine, reported: dict, visits, artefacts_dir: Path):
    follow = open_visit(browser, visits, PHONE["width"], PHONE["height"], is_mobile=True).goto(reported["url"]).page
    expect(follow.locator("#suivi-etat")).to_have_text("Nouveau")

    officer = signed_in(browser, visits, engine, server, "rpb-admin").goto(f"{server}/admin/reports").page
    row = officer.locator("#signalements tbody tr", has_text=reported["id"])
    expect(row).to_contain_text("État ou date de la fibre erroné")
    expect(row).to_contain_text("Figeac")
    assert wait_until(officer, "() => document.querySelector('.admin-map--reports[data-ready]') && "
                               "document.querySelectorAll('.admin-map--reports .leaflet-interactive').length >= 1")
    officer.screenshot(path=str(artefacts_dir / "reports-admin-queue.png"), full_page=True)
    row.get_by_role("link", name=reported["id"]).click()
    expect(officer.locator("#etat-signalement")).to_have_text("Nouveau")
    officer.get_by_label("Nouvel état").select_option("resolved")
    officer.get_by_label("Réponse publique").fill(
        "Vérifié sur place : le local est raccordable, la carte est corrigée.")
    officer.get_by_role("button", name="Enregistrer").click()
    expect(officer.locator("[role=status]")).to_contain_text("État enregistré")
    expect(officer.locator("#etat-signalement")).to_have_text("Résolu")

    follow.reload()
    expect(follow.locator("#suivi-etat")).to_have_text("Résolu")
    expect(follow.locator("#suivi-reponse")).to_have_text(
        "Vérifié sur place : le local est raccordable, la carte est corrigée.")
    follow.screenshot(path=str(artefacts_dir / "reports-phone-follow-up.png"), full_page=True)


def test_an_epci_contributor_sees_only_the_reports_of_its_perimeter(browser, server: str, engine: Engine, world,
                                                                    reported: dict, visits):
    lon, lat = world.inside
    mine = httpx.post(f"{server}/api/reports", json={"category": "wifi", "lon": lon, "lat": lat}).json()["id"]
    page = signed_in(browser, visits, engine, server, "rpb-contrib").goto(f"{server}/admin/reports").page
    expect(page.locator("#signalements")).to_contain_text(mine)
    assert reported["id"] not in page.locator("#signalements").text_content()  # Figeac is not Grand Cahors
    assert wait_until(page, "() => document.querySelector('.admin-map--reports[data-ready]')")


@pytest.mark.parametrize("width", [1280, 390], ids=["desktop", "phone"])
def test_axe_finds_no_wcag_aa_violation_on_the_report_pages(browser, server: str, engine: Engine, reported: dict,
                                                           premise: dict, visits, width: int):
    public = open_visit(browser, visits, width, 844)
    for url in (f"{server}/map/signaler?lon={premise['lon']}&lat={premise['lat']}", reported["url"]):
        public.goto(url)
        assert axe_violations(public.page) == [], url
    officer = signed_in(browser, visits, engine, server, "rpb-admin", width=width, height=844)
    for path in ("/admin/reports", f"/admin/reports/{reported['id']}"):
        officer.goto(server + path)
        assert axe_violations(officer.page) == [], path


def test_a_feature_popup_reports_a_problem_about_that_feature(browser, server: str, engine: Engine, visits):
    with engine.connect() as conn:
        fid, lon, lat = conn.execute(text(
            "SELECT fid, ST_X(geom), ST_Y(geom) FROM wifi_hotspots w WHERE deleted_at IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM wifi_hotspots o WHERE o.fid <> w.fid AND ST_DWithin(o.geom::geography, "
            "w.geom::geography, 300)) ORDER BY fid LIMIT 1")).one()
    page = open_visit(browser, visits).goto(f"{server}/map?lon={lon}&lat={lat}&zoom=18&layers=wifi_hotspots").page
    marker = page.locator(".geo-dot:has([data-layer=wifi_hotspots])").first
    marker.wait_for()
    marker.focus()
    page.keyboard.press("Enter")  # a marker is a button: Enter opens its popup
    button = page.locator(".leaflet-popup-content .rpt-report-button")
    button.wait_for()
    button.focus()
    page.keyboard.press("Enter")
    page.locator("#rapport .problem-form").wait_for()
    assert page.locator("#rapport input[name=category][value=wifi]").is_checked()
    picture = io.BytesIO()
    Image.new("RGB", (320, 240), (30, 90, 200)).save(picture, format="PNG")
    page.get_by_label("Photo (facultative)").set_input_files(
        {"name": "borne.png", "mimeType": "image/png", "buffer": picture.getvalue()})
    page.get_by_role("button", name="Envoyer le signalement").click()
    page.locator("#lien-suivi-panneau").wait_for()
    expect(page.locator("#rapport .problem-photo")).to_have_text("Photo jointe au signalement.")
    with engine.connect() as conn:
        about = conn.execute(text("SELECT layer_id, feature_id, category, public_id, photo_path IS NOT NULL "
                                  "FROM reports ORDER BY id DESC LIMIT 1")).one()
    assert tuple(about[:3]) == ("wifi_hotspots", fid, "wifi") and about[4]
    # The officer opens the concerned feature in the editor from the report.
    officer = signed_in(browser, visits, engine, server, "rpb-admin").goto(f"{server}/admin/reports/{about[3]}").page
    officer.get_by_role("link", name="ouvrir dans l'éditeur").click()
    expect(officer.locator("#editor-which")).to_contain_text(f"n° {fid}")


def count_reports(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT (SELECT count(*) FROM reports) + (SELECT count(*) FROM report_confirmations)"
                                 )).scalar_one()


def test_the_honeypot_and_the_rate_limit_refuse_in_french_in_the_panel_and_store_nothing(
        browser, settings: Settings, engine: Engine, world, visits):
    strict = settings.model_copy(update={"reports": settings.reports.model_copy(update={"max_per_ip_per_hour": 1})})
    lon, lat = world.outside
    with serve_app(create_app(strict)) as server:
        page = open_visit(browser, visits, PHONE["width"], PHONE["height"], is_mobile=True).goto(
            f"{server}/map?lon={lon}&lat={lat}").page
        page.get_by_role("button", name="Signaler un problème ici").click()
        page.locator("#rapport .problem-form").wait_for()
        before = count_reports(engine)
        # What a form-filling robot does: it fills every field, the hidden one too.
        page.evaluate("document.querySelector('#rapport input[name=website]').value = 'http://promo.example'")
        page.get_by_role("button", name="Envoyer le signalement").click()
        alert = page.locator("#rapport [role=alert]")
        expect(alert).to_contain_text("Envoi refusé")
        expect(alert).to_contain_text("robots")
        assert count_reports(engine) == before

        page.evaluate("document.querySelector('#rapport input[name=website]').value = ''")
        page.get_by_role("button", name="Envoyer le signalement").click()
        page.locator("#lien-suivi-panneau").wait_for()
        assert count_reports(engine) == before + 1

        page.goto(f"{server}/map?lon={lon + 0.01}&lat={lat}", wait_until="networkidle")
        page.get_by_role("button", name="Signaler un problème ici").click()
        page.locator("#rapport .problem-form").wait_for()
        page.locator("#rapport input[name=category][value=other]").check()
        page.get_by_role("button", name="Envoyer le signalement").click()
        expect(page.locator("#rapport [role=alert]")).to_contain_text("Trop de signalements envoyés depuis votre "
                                                                      "connexion")
        assert count_reports(engine) == before + 1
