"""Residents' reports (« Signaler un problème »): intake and its refusals, duplicates, the follow-up link, the
officers' queue and who sees what, status changes and their history, the counts, the purge, the photos.

Against the real PostGIS with the territory's boundaries; the application through Starlette's test client.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from conftest import CLI
from factories import epci_points, wipe_editing
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text

from geo_service.main import create_app
from geo_service.services.editing import accounts, conventions
from geo_service.services.reports import retention

PROBLEM_JSON = "application/problem+json"


def wipe_reports(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM report_status_history; DELETE FROM report_confirmations; DELETE FROM reports"))


def count_reports(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT (SELECT count(*) FROM reports) + (SELECT count(*) FROM report_confirmations)"
                                 )).scalar_one()


@pytest.fixture(scope="module")
def world(loaded_boundaries, registry, settings, tmp_path_factory) -> Iterator[dict]:
    """Accounts (admin, an EPCI contributor of Grand Cahors under a convention in force, one of Grand-Figeac
    without), the two EPCI points, and an application with generous limits."""
    engine = loaded_boundaries
    wipe_reports(engine)
    with engine.begin() as conn:
        wipe_editing(conn, registry)
        points = epci_points(conn)
        for name, role, epci in (("rp-admin", "admin", None), ("rp-contrib", "epci_contributor", points.mine),
                                 ("rp-nocontract", "epci_contributor", points.other)):
            accounts.create_account(conn, name, role, password=None, epci_siren=epci)
        conventions.add_convention(conn, registry, epci_siren=points.mine, direction="ascendante",
                                   layers=["wifi_hotspots"], starts_on=conventions.local_day() - timedelta(days=1),
                                   ends_on=None, reference="CONV-SIGNAL")
    tuned = settings.model_copy(update={"reports": settings.reports.model_copy(update={
        "max_per_ip_per_hour": 1000, "max_per_area_per_hour": 1000,
        "photo_dir": tmp_path_factory.mktemp("photos")})})
    with TestClient(create_app(tuned)) as client:
        yield {"engine": engine, "points": points, "client": client, "settings": tuned}
    wipe_reports(engine)
    with engine.begin() as conn:
        wipe_editing(conn, registry)


def session(engine, client: TestClient, username: str) -> str:
    """Sign ``username`` in on ``client`` (session cookie); returns the session's anti-CSRF token."""
    with engine.begin() as conn:
        cookie, csrf = accounts.open_session(conn, accounts.get_account(conn, username).id, "127.0.0.1", 1)
    client.cookies.clear()
    client.cookies.set("gs_session", cookie)
    return csrf


def report(client: TestClient, lon: float, lat: float, **fields) -> dict:
    body = {"category": "fibre", "lon": lon, "lat": lat, "description": "L'état affiché est faux", **fields}
    response = client.post("/api/reports", json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def token_of(follow_up_url: str) -> str:
    return follow_up_url.rsplit("/", 1)[1]


def test_a_report_is_stored_with_its_commune_and_epci_and_followed_through_its_link(world):
    client, engine, (lon, lat) = world["client"], world["engine"], world["points"].inside
    client.cookies.clear()
    answer = report(client, lon, lat, email="habitant@exemple.fr", consent=True)
    assert answer["status"] == "new" and not answer["duplicate"] and answer["count"] == 1
    assert re.fullmatch(r"S[A-Z2-9]{7}", answer["id"])
    with engine.connect() as conn:
        row = conn.execute(text("SELECT epci_siren, code_insee, email, email_consent_at IS NOT NULL, email_purge_on, "
                                "token_hash, ip_hash FROM reports WHERE public_id = :p"), {"p": answer["id"]}).one()
    assert row[0] == world["points"].mine and row[1] is not None
    assert row[2] == "habitant@exemple.fr" and row[3]
    assert row[4] == date.today() + timedelta(days=world["settings"].reports.email_retention_days)
    token = token_of(answer["follow_up_url"])
    assert token not in row[5] and len(row[5]) == 64 and row[6] is not None  # only digests are kept
    page = client.get(f"/signalement/{token}")
    assert page.status_code == 200
    assert "Nouveau" in page.text and answer["id"] in page.text
    # Never the personal data, nor the free text, on the follow-up page; a private page, not cached, no Referer.
    assert "habitant@exemple.fr" not in page.text and "L'état affiché est faux" not in page.text
    assert page.headers["cache-control"] == "no-store" and '<meta name="referrer" content="no-referrer">' in page.text
    assert client.get("/signalement/inconnu-" + "x" * 30).status_code == 404


REFUSALS = [
    ({"website": "http://spam.example"}, 400, "robots"),
    ({"category": "inconnue"}, 400, "category"),
    ({"description": "x" * 2001}, 400, "Texte trop long"),
    ({"lon": 5.0, "lat": 45.0}, 422, "hors du territoire"),
    ({"email": "habitant@exemple.fr"}, 400, "consentement"),
    ({"email": "pas-une-adresse", "consent": True}, 400, "Adresse électronique invalide"),
    ({"layer": "accounts"}, 400, "couche"),
    ({"lon": "NaN"}, 400, "lon"),
]


@pytest.mark.parametrize(("change", "status", "words"), REFUSALS, ids=[w for _, _, w in REFUSALS])
def test_refusals_are_french_problems_and_store_nothing(world, change, status, words):
    client, engine, (lon, lat) = world["client"], world["engine"], world["points"].inside
    before = count_reports(engine)
    body = {"category": "wifi", "lon": lon + 0.01, "lat": lat, **change}
    response = client.post("/api/reports", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert words.lower() in response.text.lower()
    assert count_reports(engine) == before


def test_the_page_without_javascript_refuses_the_honeypot_in_french_and_stores_nothing(world):
    client, engine, (lon, lat) = world["client"], world["engine"], world["points"].inside
    before = count_reports(engine)
    response = client.post("/map/signaler", data={"category": "wifi", "lon": str(lon), "lat": str(lat),
                                                  "website": "je suis un robot"})
    assert response.status_code == 400
    assert "Signalement non envoyé" in response.text and "robots" in response.text
    assert count_reports(engine) == before


def test_limits_per_address_and_per_area_refuse_with_429_and_store_nothing(world, settings):
    engine, (lon, lat) = world["engine"], world["points"].outside
    strict = settings.model_copy(update={"reports": settings.reports.model_copy(update={
        "max_per_ip_per_hour": 2, "duplicate_distance_m": 0})})
    with TestClient(create_app(strict), client=("198.51.100.7", 5000)) as client:
        for i in range(2):
            report(client, lon + i * 0.001, lat, category="other")
        before = count_reports(engine)
        refused = client.post("/api/reports", json={"category": "other", "lon": lon, "lat": lat + 0.002})
        assert refused.status_code == 429 and refused.headers["retry-after"] == "3600"
        assert "Trop de signalements envoyés depuis votre connexion" in refused.json()["detail"]
        assert count_reports(engine) == before
    area = settings.model_copy(update={"reports": settings.reports.model_copy(update={
        "max_per_area_per_hour": 2, "duplicate_distance_m": 0})})
    with TestClient(create_app(area), client=("198.51.100.8", 5000)) as client:
        # The two reports above lie in this area: a third, from another address, is one too many.
        refused = client.post("/api/reports", json={"category": "other", "lon": lon, "lat": lat + 0.001})
        assert refused.status_code == 429 and "pour ce secteur" in refused.json()["detail"]
        assert count_reports(engine) == before


def test_the_same_problem_nearby_is_counted_not_stored_twice(world):
    client, engine, (lon, lat) = world["client"], world["engine"], world["points"].inside
    first = report(client, lon + 0.02, lat + 0.02, category="mobile", details={"operator": "sfr", "technology": "4G"})
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM reports")).scalar_one()
    again = client.post("/api/reports", json={"category": "mobile", "lon": lon + 0.0202, "lat": lat + 0.02})
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["duplicate"] and body["id"] == first["id"] and body["count"] == 2
    assert "déjà été signalé (2 personnes" in body["message"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM reports")).scalar_one() == stored
    # The second person follows the same report through a link of their own.
    page = client.get(f"/signalement/{token_of(body['follow_up_url'])}")
    assert first["id"] in page.text and "2 personnes" in page.text
    # Another category at the same place is another problem.
    other = report(client, lon + 0.0202, lat + 0.02, category="wifi")
    assert not other["duplicate"]


def test_an_epci_contributor_sees_and_answers_only_the_reports_of_its_perimeter(world):
    client, engine, points = world["client"], world["engine"], world["points"]
    client.cookies.clear()
    mine = report(client, points.inside[0] + 0.03, points.inside[1], category="place")
    theirs = report(client, points.outside[0] + 0.03, points.outside[1], category="place")
    csrf = session(engine, client, "rp-contrib")
    listed = client.get("/admin/reports")
    assert listed.status_code == 200
    assert mine["id"] in listed.text and theirs["id"] not in listed.text
    assert client.get(f"/admin/reports/{theirs['id']}").status_code == 404
    refused = client.post(f"/admin/reports/{theirs['id']}", data={"status": "acknowledged", "csrf_token": csrf})
    assert refused.status_code == 404
    done = client.post(f"/admin/reports/{mine['id']}", data={"status": "acknowledged", "answer": "Vu, merci",
                                                            "csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303
    session(engine, client, "rp-nocontract")
    assert client.get("/admin/reports").status_code == 403
    client.cookies.clear()
    assert client.get("/admin/reports", follow_redirects=False).status_code == 303


def test_an_officer_answers_the_answer_shows_through_the_link_and_every_change_is_in_the_history(world):
    client, engine, (lon, lat) = world["client"], world["engine"], world["points"].inside
    client.cookies.clear()
    sent = report(client, lon - 0.02, lat - 0.01, category="wifi", description="<script>alert('x')</script>")
    token = token_of(sent["follow_up_url"])
    csrf = session(engine, client, "rp-admin")
    shown = client.get(f"/admin/reports/{sent['id']}")
    assert "&lt;script&gt;alert(" in shown.text and "<script>alert(" not in shown.text  # escaped
    assert client.post(f"/admin/reports/{sent['id']}", data={"status": "resolved", "csrf_token": "faux"}
                       ).status_code == 403
    same = client.post(f"/admin/reports/{sent['id']}", data={"status": "new", "csrf_token": csrf})
    assert same.status_code == 400 and "Rien à changer" in same.text
    for status, answer in (("in_progress", "Un technicien passe jeudi"), ("resolved", "Borne réparée le 3 mars")):
        done = client.post(f"/admin/reports/{sent['id']}", data={"status": status, "answer": answer,
                                                                "csrf_token": csrf}, follow_redirects=False)
        assert done.status_code == 303
    wrong = client.post(f"/admin/reports/{sent['id']}", data={"status": "acknowledged", "csrf_token": csrf})
    assert wrong.status_code == 400 and "ne peut passer qu" in wrong.text
    with engine.connect() as conn:
        steps = conn.execute(text(
            "SELECT h.actor, h.from_status, h.to_status, h.public_answer FROM report_status_history h JOIN reports r "
            "ON r.id = h.report_id WHERE r.public_id = :p ORDER BY h.id"), {"p": sent["id"]}).all()
    assert [tuple(s) for s in steps] == [("rp-admin", "new", "in_progress", "Un technicien passe jeudi"),
                                         ("rp-admin", "in_progress", "resolved", "Borne réparée le 3 mars")]
    client.cookies.clear()
    page = client.get(f"/signalement/{token}")
    assert "Résolu" in page.text and "Borne réparée le 3 mars" in page.text


def test_stats_count_by_commune_category_and_status_without_personal_data(world):
    client, (lon, lat) = world["client"], world["points"].inside
    report(client, lon + 0.04, lat - 0.03, category="other", email="stats@exemple.fr", consent=True,
           description="Texte privé")
    response = client.get("/api/reports/stats")
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == sum(s["count"] for s in body["by_status"]) == sum(c["count"] for c in body["by_category"])
    assert body["total"] == sum(c["count"] for c in body["by_commune"]) >= 1
    assert {s["status"] for s in body["by_status"]} >= {"new", "resolved"}
    assert "stats@exemple.fr" not in response.text and "Texte privé" not in response.text
    assert "/api/reports/stats" in client.get("/openapi.json").json()["paths"]


def test_the_purge_erases_emails_and_keeps_the_report(world):
    client, engine, (lon, lat) = world["client"], world["engine"], world["points"].inside
    sent = report(client, lon + 0.05, lat + 0.05, category="other", email="purge@exemple.fr", consent=True)
    retention_days = world["settings"].reports.email_retention_days
    with engine.begin() as conn:
        assert retention.purge(conn, date.today() + timedelta(days=retention_days - 1)).emails == 0
    env = {**os.environ, "GEO_SERVICE_DATABASE_URL": world["settings"].database_url}
    day = (date.today() + timedelta(days=retention_days)).isoformat()
    run = subprocess.run([CLI, "reports", "purge", "--today", day], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "adresse(s) électronique(s) effacée(s)" in run.stdout and not run.stdout.startswith("0 ")
    with engine.connect() as conn:
        row = conn.execute(text("SELECT email, email_consent_at, email_purge_on, category, status FROM reports "
                                "WHERE public_id = :p"), {"p": sent["id"]}).one()
    assert tuple(row) == (None, None, None, "other", "new")


def _jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (640, 480), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "FabricantTéléphone"  # Make
    exif[0x8825] = {1: "N", 2: (44.0, 26.0, 51.0), 3: "E", 4: (1.0, 26.0, 26.0)}  # GPS IFD
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def test_a_photo_is_checked_by_its_bytes_reencoded_without_exif_and_shown_only_to_officers_and_the_reporter(world):
    client, engine, (lon, lat) = world["client"], world["engine"], world["points"].inside
    client.cookies.clear()
    original = _jpeg_with_gps()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)  # the fixture does carry GPS
    before = count_reports(engine)
    fake = client.post("/map/signaler", data={"category": "wifi", "lon": str(lon), "lat": str(lat - 0.04)},
                       files={"photo": ("borne.jpg", b"<?php system($_GET['c']); ?>", "image/jpeg")})
    assert fake.status_code == 415 and "pas une photo JPEG" in fake.text
    assert count_reports(engine) == before
    sent = client.post("/map/signaler", data={"category": "wifi", "lon": str(lon), "lat": str(lat - 0.04),
                                              "description": "Borne cassée"},
                       files={"photo": ("borne.jpg", original, "image/jpeg")})
    assert sent.status_code == 200, sent.text
    link = re.search(r'id="lien-suivi" href="([^"]+)"', sent.text).group(1)
    token = token_of(link)
    photo = client.get(f"/signalement/{token}/photo")
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    stored = Image.open(io.BytesIO(photo.content))
    assert stored.format == "JPEG" and stored.size == (640, 480)
    assert not stored.getexif() and "exif" not in stored.info and b"Fabricant" not in photo.content
    with engine.connect() as conn:
        public_id = conn.execute(text("SELECT public_id FROM reports WHERE photo_path IS NOT NULL")).scalar_one()
    assert client.get(f"/admin/reports/{public_id}/photo", follow_redirects=False).status_code == 303
    session(engine, client, "rp-admin")
    assert client.get(f"/admin/reports/{public_id}/photo").content == photo.content
    client.cookies.clear()


def test_the_panel_joins_a_photo_to_its_report_with_the_follow_up_token(world):
    """The map's panel sends the report as JSON, then the photo with the token it got: checked by its bytes,
    re-encoded without metadata, one per report, never through a confirmer's or an unknown token."""
    client, engine, (lon, lat) = world["client"], world["engine"], world["points"].inside
    client.cookies.clear()
    sent = report(client, lon + 0.03, lat - 0.03, category="wifi", description="Borne éteinte")
    token = token_of(sent["follow_up_url"])
    with engine.connect() as conn:
        stored = lambda: conn.execute(text("SELECT photo_path FROM reports WHERE public_id = :p"),  # noqa: E731
                                      {"p": sent["id"]}).scalar_one()
        fake = client.post(f"/signalement/{token}/photo",
                           files={"photo": ("borne.jpg", b"GIF89a not a photo", "image/jpeg")})
        assert fake.status_code == 415 and "pas une photo" in fake.json()["detail"] and stored() is None
        unknown = client.post("/signalement/" + "x" * 43 + "/photo",
                              files={"photo": ("borne.jpg", _jpeg_with_gps(), "image/jpeg")})
        assert unknown.status_code == 404 and stored() is None
        confirmer = report(client, lon + 0.03, lat - 0.03, category="wifi")
        assert confirmer["duplicate"]
        refused = client.post(f"/signalement/{token_of(confirmer['follow_up_url'])}/photo",
                              files={"photo": ("borne.jpg", _jpeg_with_gps(), "image/jpeg")})
        assert refused.status_code == 404 and "seule la personne" in refused.json()["detail"]
        joined = client.post(f"/signalement/{token}/photo",
                             files={"photo": ("borne.jpg", _jpeg_with_gps(), "image/jpeg")})
        assert joined.status_code == 201, joined.text
        assert stored() is not None
        again = client.post(f"/signalement/{token}/photo",
                            files={"photo": ("borne.jpg", _jpeg_with_gps(), "image/jpeg")})
        assert again.status_code == 409 and "déjà jointe" in again.json()["detail"]
    photo = client.get(f"/signalement/{token}/photo")
    assert photo.status_code == 200 and b"Fabricant" not in photo.content
    assert not Image.open(io.BytesIO(photo.content)).getexif()


def test_the_page_without_javascript_takes_a_report_and_gives_the_link(world):
    client, (lon, lat) = world["client"], world["points"].inside
    form = client.get("/map/signaler", params={"lon": lon, "lat": lat, "layer": "wifi_hotspots", "fid": "12"})
    assert form.status_code == 200 and 'name="website"' in form.text and "365 jours" in form.text
    sent = client.post("/map/signaler", data={"category": "mobile", "operator": "orange", "technology": "4G",
                                              "lon": str(lon - 0.05), "lat": str(lat), "layer": "mobile_masts",
                                              "feature_id": "3"})
    assert sent.status_code == 200, sent.text
    assert "/signalement/" in sent.text and "est enregistré" in sent.text
