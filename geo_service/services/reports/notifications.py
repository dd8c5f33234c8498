"""E-mails about reports, through the configured SMTP server (``settings.smtp``); none when it has no host.

Messages are plain text in French. A resident is written to only at the address given with consent (the
acknowledgement with the follow-up link, then each status change or answer); officers listed in
``reports.officer_emails`` hear of each new report, without the resident's address. Sending happens after the
database transaction, and a failure is logged, never turned into an error for the person who acted: the report
and its status are already stored.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from geo_service.settings import SmtpSettings

log = logging.getLogger(__name__)


def enabled(smtp: SmtpSettings) -> bool:
    return bool(smtp.host)


def _message(smtp: SmtpSettings, to: list[str], subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = smtp.from_address
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=smtp.from_address.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    return message


def received(smtp: SmtpSettings, to: str, public_id: str, category_label: str, follow_up_url: str,
             retention_days: int) -> EmailMessage:
    return _message(smtp, [to], f"Votre signalement n° {public_id} est enregistré", (
        "Bonjour,\n\n"
        f"Votre signalement n° {public_id} ({category_label}) est enregistré. Les agents vous répondront sur cette "
        f"page, que vous pouvez consulter à tout moment :\n\n{follow_up_url}\n\n"
        "Gardez ce lien pour vous : il donne accès au suivi de votre signalement.\n"
        f"Votre adresse électronique sera effacée au plus tard {retention_days} jours après votre signalement.\n"))


def status_changed(smtp: SmtpSettings, to: str, public_id: str, category_label: str, status_label: str,
                   answer: str | None) -> EmailMessage:
    answer_text = f"\nRéponse des agents :\n{answer}\n" if answer else ""
    return _message(smtp, [to], f"Signalement n° {public_id} : {status_label}", (
        "Bonjour,\n\n"
        f"Votre signalement n° {public_id} ({category_label}) est maintenant : {status_label}.\n{answer_text}\n"
        "Retrouvez son suivi avec le lien reçu lors de votre signalement.\n"))


def new_report(smtp: SmtpSettings, to: list[str], public_id: str, category_label: str, commune: str | None,
               queue_url: str) -> EmailMessage:
    where = f" à {commune}" if commune else ""
    return _message(smtp, to, f"Nouveau signalement n° {public_id} : {category_label}", (
        f"Un résident a signalé un problème{where} : {category_label}.\n\n"
        f"Le signalement dans la file des agents : {queue_url}\n"))


def send(smtp: SmtpSettings, messages: list[EmailMessage]) -> int:
    """Send ``messages`` in one SMTP session; returns how many left. Nothing is sent without ``smtp.host``."""
    if not messages or not enabled(smtp):
        return 0
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as client:
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
            if smtp.user:
                client.login(smtp.user, smtp.password.get_secret_value() if smtp.password else "")
            for message in messages:
                client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        # The report or the status is stored; only the e-mail is lost, and the follow-up page still tells.
        log.warning("courriel de signalement non envoyé (%s:%s) : %s", smtp.host, smtp.port, exc)
        return 0
    return len(messages)
