"""What the private follow-up link shows: the report's status, the public answer and how many people reported it.

The link's token is compared by its SHA-256 (``reports.token_hash``, or a confirmation's for a person whose report
was counted as a duplicate). The page never shows the e-mail, the address hash, nor the free text: a person who
confirmed someone else's report must not read what that person wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, text

from geo_service.errors import Conflict, NotFound
from geo_service.services.reports import report_photos
from geo_service.services.reports.report_categories import BY_CODE, STATUS_LABELS, details_label
from geo_service.services.reports.submission import people_count, token_digest


@dataclass(frozen=True)
class StatusStep:
    at: datetime
    status: str
    status_label: str
    public_answer: str | None


@dataclass(frozen=True)
class FollowUp:
    report_id: int
    public_id: str
    category: str
    category_label: str
    details_label: str
    commune: str | None
    created_at: datetime
    updated_at: datetime
    status: str
    status_label: str
    public_answer: str | None
    people: int
    duplicate_of: str | None
    lon: float
    lat: float
    has_photo: bool
    steps: tuple[StatusStep, ...]


def _report_id(conn: Connection, token: str) -> int:
    if not token or len(token) > 100:
        raise NotFound("Lien de suivi inconnu")
    digest = token_digest(token)
    found = conn.execute(text(
        "SELECT id FROM reports WHERE token_hash = :h UNION ALL "
        "SELECT report_id FROM report_confirmations WHERE token_hash = :h LIMIT 1"), {"h": digest}).scalar()
    if found is None:
        raise NotFound("Lien de suivi inconnu : vérifiez qu'il est complet (copiez-le depuis le message reçu)")
    return found


def by_token(conn: Connection, token: str) -> FollowUp:
    """The report a follow-up token belongs to, as its reporter (or a confirmer) may see it."""
    report_id = _report_id(conn, token)
    row = conn.execute(text(
        "SELECT r.public_id, r.category, r.details, c.nom_actuel, r.created_at, r.updated_at, r.status, "
        "r.public_answer, d.public_id, ST_X(r.geom), ST_Y(r.geom), r.photo_path IS NOT NULL "
        "FROM reports r LEFT JOIN reports d ON d.id = r.duplicate_of "
        "LEFT JOIN LATERAL (SELECT nom_actuel FROM communes WHERE code_insee_actuel = r.code_insee LIMIT 1) c "
        "ON true WHERE r.id = :r"), {"r": report_id}).one()
    steps = tuple(StatusStep(at, status, STATUS_LABELS[status], answer) for at, status, answer in conn.execute(text(
        "SELECT at, to_status, public_answer FROM report_status_history WHERE report_id = :r ORDER BY id"),
        {"r": report_id}))
    cat = BY_CODE[row[1]]
    return FollowUp(report_id, row[0], cat.code, cat.label, details_label(cat, row[2] or {}), row[3], row[4], row[5],
                    row[6], STATUS_LABELS[row[6]], row[7], people_count(conn, report_id), row[8], row[9], row[10],
                    row[11], steps)


def photo_of(conn: Connection, token: str) -> str:
    """The photo file name of the report a follow-up token belongs to (only the reporter's own token)."""
    if not token or len(token) > 100:
        raise NotFound("Lien de suivi inconnu")
    name = conn.execute(text("SELECT photo_path FROM reports WHERE token_hash = :h"),
                        {"h": token_digest(token)}).scalar()
    if not name:
        raise NotFound("Pas de photo pour ce signalement")
    return name


def attach_photo(conn: Connection, photo_dir: Path, token: str, jpeg: bytes) -> None:
    """Join a re-encoded photo to the report of the reporter's own token (the map's panel sends the report first,
    then its photo); one photo per report."""
    if not token or len(token) > 100:
        raise NotFound("Lien de suivi inconnu")
    row = conn.execute(text("SELECT id, photo_path FROM reports WHERE token_hash = :h FOR UPDATE"),
                       {"h": token_digest(token)}).one_or_none()
    if row is None:
        raise NotFound("Lien de suivi inconnu : seule la personne qui a fait le signalement peut y joindre une photo")
    if row[1]:
        raise Conflict("Une photo est déjà jointe à ce signalement")
    report_photos.attach(conn, photo_dir, row[0], jpeg)
