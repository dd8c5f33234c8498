"""The officers' queue (``/admin/reports``): who sees which reports, the list and its filters, status changes.

Administrators and editors see every report. An EPCI contributor sees and answers the reports located in its EPCI,
and only while an ascending convention of its EPCI is in force (``editing.conventions``): the same condition that
lets it keep layers up to date. Each status change (or new public answer) is a row of ``report_status_history``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

from geo_service.errors import Forbidden, InvalidParameter, NotFound
from geo_service.services.editing.accounts import Principal
from geo_service.services.editing.conventions import conventions_for, local_day
from geo_service.services.editing.rights import epci_name, require_account
from geo_service.services.reports.report_categories import BY_CODE, STATUS_LABELS, details_label
from geo_service.settings import LOCAL_TIME
from geo_service.tables import REPORT_STATUSES

MAX_ANSWER_CHARS = 2000
# Where a report may go from each status: forward, or back to "in progress" to reopen a closed one.
TRANSITIONS = {
    "new": ("acknowledged", "in_progress", "resolved", "not_reproducible", "duplicate"),
    "acknowledged": ("in_progress", "resolved", "not_reproducible", "duplicate"),
    "in_progress": ("acknowledged", "resolved", "not_reproducible", "duplicate"),
    "resolved": ("in_progress",),
    "not_reproducible": ("in_progress",),
    "duplicate": ("in_progress",),
}
AGES = {"7": 7, "30": 30, "90": 90, "365": 365}  # filter "age": reports of the last N days


def queue_scope(conn: Connection, principal: Principal) -> str | None:
    """``None`` for every report (admin, editor), else the SIREN of the only EPCI whose reports ``principal`` sees."""
    require_account(principal)
    if principal.role in ("admin", "editor"):
        return None
    if principal.role == "epci_contributor" and principal.epci_siren:
        day = local_day()
        if any(c.direction == "ascendante" and c.in_force(day) for c in conventions_for(conn, principal.epci_siren)):
            return principal.epci_siren
        raise Forbidden(f"Aucune convention ascendante en vigueur pour {epci_name(conn, principal.epci_siren)} : "
                        "les signalements de votre périmètre ne vous sont pas ouverts")
    raise Forbidden("Les signalements sont réservés aux agents du Département et aux contributeurs des EPCI")


@dataclass(frozen=True)
class Filters:
    category: str | None = None
    commune: str | None = None
    epci: str | None = None
    status: str | None = None
    age: str | None = None

    def checked(self) -> Filters:
        if self.category and self.category not in BY_CODE:
            raise InvalidParameter("Catégorie inconnue", parameter="category")
        if self.status and self.status not in REPORT_STATUSES:
            raise InvalidParameter("État inconnu", parameter="status")
        if self.age and self.age not in AGES:
            raise InvalidParameter("Ancienneté inconnue : " + ", ".join(AGES), parameter="age")
        for name in ("commune", "epci"):
            value = getattr(self, name)
            if value and (len(value) > 12 or not value.isalnum()):
                raise InvalidParameter(f"Code {name} invalide", parameter=name)
        return self


@dataclass(frozen=True)
class QueueRow:
    id: int
    public_id: str
    category: str
    category_label: str
    details_label: str
    description: str
    lon: float
    lat: float
    commune: str | None
    code_insee: str | None
    epci: str | None
    epci_siren: str | None
    status: str
    status_label: str
    public_answer: str | None
    created_at: datetime
    updated_at: datetime
    layer_id: str | None
    feature_id: int | None
    people: int
    has_photo: bool

    def geojson(self) -> dict:
        return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [self.lon, self.lat]},
                "properties": {"id": self.public_id, "label": f"{self.public_id} — {self.category_label}",
                               "status": self.status}}


_SELECT = (
    "SELECT r.id, r.public_id, r.category, r.details, r.description, ST_X(r.geom), ST_Y(r.geom), c.nom_actuel, "
    "r.code_insee, e.nom, r.epci_siren, r.status, r.public_answer, r.created_at, r.updated_at, r.layer_id, "
    "r.feature_id, 1 + (SELECT count(*) FROM report_confirmations k WHERE k.report_id = r.id), "
    "r.photo_path IS NOT NULL FROM reports r "
    "LEFT JOIN LATERAL (SELECT nom_actuel FROM communes WHERE code_insee_actuel = r.code_insee LIMIT 1) c ON true "
    "LEFT JOIN epci e ON e.siren = r.epci_siren ")


def _row(row) -> QueueRow:
    cat = BY_CODE[row[2]]
    return QueueRow(row[0], row[1], cat.code, cat.label, details_label(cat, row[3] or {}), row[4], row[5], row[6],
                    row[7], row[8], row[9], row[10], row[11], STATUS_LABELS[row[11]], row[12],
                    row[13].astimezone(LOCAL_TIME), row[14].astimezone(LOCAL_TIME), row[15], row[16], row[17], row[18])


def list_reports(conn: Connection, scope: str | None, filters: Filters, limit: int = 500) -> list[QueueRow]:
    """The reports ``scope`` may see that match ``filters``, newest first."""
    filters = filters.checked()
    where, params = ["true"], {"limit": limit}
    if scope is not None:
        where.append("r.epci_siren = :scope")
        params["scope"] = scope
    for name, column in (("category", "r.category"), ("commune", "r.code_insee"), ("epci", "r.epci_siren"),
                         ("status", "r.status")):
        if getattr(filters, name):
            where.append(f"{column} = :{name}")
            params[name] = getattr(filters, name)
    if filters.age:
        where.append("r.created_at > now() - make_interval(days => :age)")
        params["age"] = AGES[filters.age]
    sql = _SELECT + "WHERE " + " AND ".join(where) + " ORDER BY r.created_at DESC, r.id DESC LIMIT :limit"
    return [_row(r) for r in conn.execute(text(sql), params)]


def get_report(conn: Connection, scope: str | None, public_id: str) -> QueueRow:
    row = conn.execute(text(_SELECT + "WHERE r.public_id = :p"), {"p": public_id[:20]}).first()
    if row is None or (scope is not None and row[10] != scope):
        # Outside one's perimeter, a report does not exist (its number tells nothing).
        raise NotFound(f"Aucun signalement n° {public_id[:20]} dans votre périmètre")
    return _row(row)


@dataclass(frozen=True)
class HistoryLine:
    at: datetime
    actor: str
    from_label: str
    to_label: str
    public_answer: str | None


def history(conn: Connection, report_id: int) -> list[HistoryLine]:
    rows = conn.execute(text(
        "SELECT at, actor, from_status, to_status, public_answer FROM report_status_history WHERE report_id = :r "
        "ORDER BY id"), {"r": report_id})
    return [HistoryLine(r[0].astimezone(LOCAL_TIME), r[1], STATUS_LABELS[r[2]], STATUS_LABELS[r[3]], r[4])
            for r in rows]


@dataclass(frozen=True)
class StatusChange:
    """What changed, with what a notification needs (the e-mail only when consent was given and not yet purged)."""

    report_id: int
    public_id: str
    category_label: str
    from_status: str
    to_status: str
    public_answer: str | None
    email: str | None


def change_status(conn: Connection, principal: Principal, public_id: str, status: str, answer: str | None,
                  duplicate_of: str | None = None) -> StatusChange:
    """Move a report to ``status`` with a public answer, as ``principal`` (within its scope), recorded in history."""
    scope = queue_scope(conn, principal)
    report = get_report(conn, scope, public_id)
    answer = (answer or "").strip() or None
    if answer and len(answer) > MAX_ANSWER_CHARS:
        raise InvalidParameter(f"Réponse trop longue : {MAX_ANSWER_CHARS} caractères au plus", parameter="answer")
    if status not in REPORT_STATUSES:
        raise InvalidParameter("État inconnu", parameter="status")
    if status == report.status:
        if answer is None or answer == report.public_answer:
            raise InvalidParameter("Rien à changer : choisissez un autre état ou écrivez une nouvelle réponse",
                                   parameter="status")
    elif status not in TRANSITIONS[report.status]:
        allowed = ", ".join(STATUS_LABELS[s] for s in TRANSITIONS[report.status])
        raise InvalidParameter(f"Un signalement « {report.status_label} » ne peut passer qu'à : {allowed}",
                               parameter="status")
    original_id = None
    if status == "duplicate":
        if not duplicate_of:
            raise InvalidParameter("Indiquez le numéro du signalement dont celui-ci est le doublon",
                                   parameter="duplicate_of")
        original = get_report(conn, scope, duplicate_of.strip().upper())
        if original.id == report.id:
            raise InvalidParameter("Un signalement ne peut pas être son propre doublon", parameter="duplicate_of")
        original_id = original.id
    final_answer = answer if answer is not None else report.public_answer
    email = conn.execute(text(
        "UPDATE reports SET status = :s, public_answer = :a, duplicate_of = :d, updated_at = now() WHERE id = :r "
        "RETURNING email"), {"s": status, "a": final_answer, "d": original_id, "r": report.id}).scalar()
    conn.execute(text(
        "INSERT INTO report_status_history (report_id, actor, from_status, to_status, public_answer) "
        "VALUES (:r, :who, :f, :t, :a)"),
        {"r": report.id, "who": principal.username, "f": report.status, "t": status, "a": answer})
    return StatusChange(report.id, report.public_id, report.category_label, report.status, status, final_answer,
                        email)


def queue_geojson(rows: list[QueueRow]) -> dict:
    """The rows as a FeatureCollection for the queue's map (the page writes it with tojson)."""
    return {"type": "FeatureCollection", "features": [r.geojson() for r in rows]}


def commune_of(conn: Connection, report_id: int) -> str | None:
    """The name of the commune a report lies in (for the officers' e-mail)."""
    return conn.execute(text(
        "SELECT c.nom_actuel FROM reports r JOIN communes c ON c.code_insee_actuel = r.code_insee "
        "WHERE r.id = :r LIMIT 1"), {"r": report_id}).scalar()


def photo_name(conn: Connection, scope: str | None, public_id: str) -> str:
    report = get_report(conn, scope, public_id)
    if not report.has_photo:
        raise NotFound("Pas de photo pour ce signalement")
    return conn.execute(text("SELECT photo_path FROM reports WHERE id = :r"), {"r": report.id}).scalar_one()
