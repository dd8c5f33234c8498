"""Reports' e-mails go through a real SMTP server: aiosmtpd, started here on 127.0.0.1, receives what the service
sends (the acknowledgement with the follow-up link, the officers' notice, the answer), never a mock."""

from __future__ import annotations

import email
import email.policy
import socket
import time
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from factories import epci_points, wipe_editing
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo_service.main import create_app
from geo_service.services.editing import accounts


class Inbox:
    """What the local SMTP server received, as parsed messages with their envelope recipients."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout_s: float = 10) -> list:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def mailing(loaded_boundaries, registry, settings, smtp) -> Iterator[tuple[TestClient, Inbox, tuple[float, float]]]:
    inbox, port = smtp
    engine = loaded_boundaries
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM report_status_history; DELETE FROM report_confirmations; DELETE FROM reports"))
        wipe_editing(conn, registry)
        point = epci_points(conn).inside
        accounts.create_account(conn, "mail-admin", "admin", password=None)
    configured = settings.model_copy(update={
        "smtp": settings.smtp.model_copy(update={"host": "127.0.0.1", "port": port, "starttls": False,
                                                 "from_address": "sig@lot.example"}),
        "reports": settings.reports.model_copy(update={"officer_emails": ["agents-sig@lot.example"]})})
    with TestClient(create_app(configured)) as client:
        yield client, inbox, point
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM report_status_history; DELETE FROM report_confirmations; DELETE FROM reports"))
        wipe_editing(conn, registry)


def test_the_resident_and_the_officers_receive_the_new_report_then_the_resident_the_answer(mailing, engine):
    client, inbox, (lon, lat) = mailing
    inbox.messages.clear()
    sent = client.post("/api/reports", json={"category": "wifi", "lon": lon, "lat": lat, "email": "habitant@exemple.fr",
                                             "consent": True, "description": "La borne ne répond plus"})
    assert sent.status_code == 201, sent.text
    body = sent.json()
    received = inbox.wait_for(2)
    by_recipient = {tuple(rcpt): message for rcpt, message in received}
    resident = by_recipient[("habitant@exemple.fr",)]
    assert resident["From"] == "sig@lot.example" and body["id"] in resident["Subject"]
    text_body = resident.get_content()
    assert body["follow_up_url"] in text_body and "365 jours" in text_body
    officers = by_recipient[("agents-sig@lot.example",)]
    assert f"/admin/reports/{body['id']}" in officers.get_content()
    # The officers' notice names no resident.
    assert "habitant@exemple.fr" not in officers.as_string()

    with engine.begin() as conn:
        cookie, csrf = accounts.open_session(conn, accounts.get_account(conn, "mail-admin").id, "127.0.0.1", 1)
    client.cookies.set("gs_session", cookie)
    done = client.post(f"/admin/reports/{body['id']}", data={"status": "resolved", "answer": "Borne remplacée",
                                                            "csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303
    answer = inbox.wait_for(3)[2]
    assert answer[0] == ["habitant@exemple.fr"]
    assert "Résolu" in answer[1]["Subject"] and "Borne remplacée" in answer[1].get_content()
    client.cookies.clear()


def test_no_email_without_consent_and_none_for_a_duplicate(mailing):
    client, inbox, (lon, lat) = mailing
    inbox.messages.clear()
    first = client.post("/api/reports", json={"category": "fibre", "lon": lon + 0.01, "lat": lat})
    assert first.status_code == 201
    assert [rcpt for rcpt, _ in inbox.wait_for(1)] == [["agents-sig@lot.example"]]
    again = client.post("/api/reports", json={"category": "fibre", "lon": lon + 0.0101, "lat": lat,
                                              "email": "voisin@exemple.fr", "consent": True})
    assert again.status_code == 200 and again.json()["duplicate"]
    time.sleep(0.5)  # nothing more is expected: give a stray message the time to show
    assert len(inbox.messages) == 1


def test_a_silent_smtp_server_does_not_lose_the_report(loaded_boundaries, settings, registry):
    # A port nobody listens on: the report is stored, the e-mail is logged as lost.
    configured = settings.model_copy(update={"smtp": settings.smtp.model_copy(update={
        "host": "127.0.0.1", "port": _free_port(), "starttls": False, "timeout_s": 2}),
        "reports": settings.reports.model_copy(update={"officer_emails": ["agents@lot.example"]})})
    with loaded_boundaries.connect() as conn:
        lon, lat = epci_points(conn).outside
    with TestClient(create_app(configured)) as client:
        sent = client.post("/api/reports", json={"category": "other", "lon": lon, "lat": lat + 0.03})
        assert sent.status_code == 201, sent.text
    with loaded_boundaries.begin() as conn:
        assert conn.execute(text("DELETE FROM reports WHERE public_id = :p"), {"p": sent.json()["id"]}).rowcount == 1


