"""Personal data kept no longer than said (docs/privacy.md): ``geo-service reports purge``.

E-mail addresses are erased on their purge date (the report's day plus ``reports.email_retention_days``), the
consent timestamp with them; the keyed hashes of client addresses, only needed for the hourly limits, after a day.
The reports themselves stay: their category, place, status and public answer are the service's memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class PurgeResult:
    emails: int
    address_hashes: int


def purge(conn: Connection, today: date | None = None) -> PurgeResult:
    """Erase e-mails due on or before ``today`` (default: the database's today) and address hashes older than a day."""
    emails = conn.execute(text(
        "UPDATE reports SET email = NULL, email_consent_at = NULL, email_purge_on = NULL "
        "WHERE email IS NOT NULL AND email_purge_on <= COALESCE(CAST(:today AS date), current_date)"),
        {"today": today}).rowcount
    hashes = conn.execute(text(
        "UPDATE reports SET ip_hash = NULL WHERE ip_hash IS NOT NULL AND created_at < now() - interval '1 day'"
    )).rowcount
    hashes += conn.execute(text(
        "UPDATE report_confirmations SET ip_hash = NULL WHERE ip_hash IS NOT NULL AND at < now() - interval '1 day'"
    )).rowcount
    return PurgeResult(emails, hashes)
