"""A resident's report taken in: checked, held back when abusive, counted when already reported, else stored.

The same rules serve the map's panel (JSON), the page without JavaScript and Open311 clients. In order: the
honeypot (a field people never see), the values (category, bounded text, point, e-mail with consent), the point
inside the territory, the limits per address and per area, then duplicates. Every refusal raises before anything
is written. Limits are counted in the database — the reports and confirmations of the last hour — so they hold
across workers and restarts, as the login throttling does (``editing/accounts.py``); the client address is kept
only as a keyed hash (``ip_hash``), erased after a day by ``retention.purge``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta

import shapely
from sqlalchemy import Connection, text

from geo_service.errors import InvalidParameter, TooManyRequests
from geo_service.layers import LayerRegistry
from geo_service.services.editing.geometry_checks import Shape, check_in_territory
from geo_service.services.reports.report_categories import CLOSED, Category, category, checked_details
from geo_service.settings import Settings

# Plain enough to reject what is not an address, loose enough for every real one (RFC 5321 sizes).
_EMAIL = re.compile(r"^[^@\s<>\"',;]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$")
_CLOSED_SQL = ", ".join(f"'{s}'" for s in CLOSED)  # constants of ours, not user text
_PUBLIC_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud on the phone


@dataclass(frozen=True)
class ReportRules:
    """The limits of ``settings.reports`` and the territory a report must lie in."""

    max_text_chars: int
    max_per_ip_per_hour: int
    max_per_area_per_hour: int
    area_radius_m: float
    duplicate_distance_m: float
    duplicate_window_days: int
    email_retention_days: int
    territory_tolerance_m: float
    territory_name: str

    @classmethod
    def from_settings(cls, settings: Settings) -> ReportRules:
        r = settings.reports
        return cls(r.max_text_chars, r.max_per_ip_per_hour, r.max_per_area_per_hour, r.area_radius_m,
                   r.duplicate_distance_m, r.duplicate_window_days, r.email_retention_days,
                   settings.territory.tolerance_m, settings.territory.name)


@dataclass
class Submission:
    """What a resident sent, as plain values (a form's strings or a JSON body's)."""

    category: str | None
    lon: object
    lat: object
    description: str = ""
    details: dict = field(default_factory=dict)
    layer_id: str | None = None
    feature_id: object = None
    email: str | None = None
    consent: bool = False
    honeypot: str = ""


@dataclass(frozen=True)
class Received:
    """The answer to the resident: the follow-up token (shown once, stored hashed) and whether it was a duplicate."""

    public_id: str
    token: str
    duplicate: bool
    count: int  # people who reported this problem, this one included
    category: Category
    report_id: int
    email: str | None
    status: str = "new"  # a duplicate's: the status of the report it was counted on

    @property
    def message(self) -> str:
        if self.duplicate:
            people = "personne l'a" if self.count == 1 else "personnes l'ont"
            return (f"Ce problème a déjà été signalé ({self.count} {people} signalé, vous compris) : les agents en "
                    "sont informés. Suivez-le avec votre lien.")
        return f"Merci : votre signalement n° {self.public_id} est enregistré. Suivez-le avec votre lien."


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ip_digest(secret: str, client_ip: str | None) -> str | None:
    """A keyed hash of the client address: enough to count its reports, nothing to recover it from."""
    if not client_ip:
        return None
    return hmac.new(secret.encode(), f"report-ip:{client_ip}".encode(), hashlib.sha256).hexdigest()


def _coordinate(value: object, name: str, bound: float) -> float:
    try:
        number = float(str(value).replace(",", ".")) if isinstance(value, str) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidParameter(f"{name} doit être un nombre (degrés décimaux)", parameter=name) from None
    if number != number or not -bound <= number <= bound:
        raise InvalidParameter(f"{name} doit être compris entre -{bound:g} et {bound:g}", parameter=name)
    return number


def _checked(conn: Connection, registry: LayerRegistry, rules: ReportRules, sub: Submission
             ) -> tuple[Category, dict, str, float, float, str | None, int | None, str | None]:
    if sub.honeypot and sub.honeypot.strip():
        raise InvalidParameter("Envoi refusé : un champ caché, que seuls les robots remplissent, a été rempli. "
                               "Si vous êtes une personne, rechargez la page et recommencez.", parameter="website")
    cat = category(sub.category)
    details = checked_details(cat, sub.details or {})
    description = (sub.description or "").strip()
    if not isinstance(description, str) or len(description) > rules.max_text_chars:
        raise InvalidParameter(f"Texte trop long : {rules.max_text_chars} caractères au plus", parameter="description",
                               limit=rules.max_text_chars)
    if "\x00" in description:
        raise InvalidParameter("Caractère NUL interdit dans le texte", parameter="description")
    lon, lat = _coordinate(sub.lon, "lon", 180), _coordinate(sub.lat, "lat", 90)
    layer_id, feature_id = sub.layer_id or None, None
    if layer_id is not None:
        if layer_id not in registry or not registry.get(layer_id).is_public:
            raise InvalidParameter(f"Aucune couche publique « {str(layer_id)[:40]} »", parameter="layer")
        if sub.feature_id not in (None, ""):
            try:
                feature_id = int(str(sub.feature_id))
            except ValueError:
                raise InvalidParameter("feature_id doit être un entier", parameter="feature_id") from None
            if not 0 < feature_id < 2**63:
                raise InvalidParameter("feature_id hors limites", parameter="feature_id")
    email = (sub.email or "").strip() or None
    if email is not None:
        if len(email) > 254 or not _EMAIL.match(email):
            raise InvalidParameter("Adresse électronique invalide (ex. prenom.nom@exemple.fr)", parameter="email")
        if not sub.consent:
            raise InvalidParameter("Pour recevoir le suivi par courriel, cochez la case de consentement (ou laissez "
                                   "l'adresse vide)", parameter="consent")
    return cat, details, description, lon, lat, layer_id, feature_id, email


def _check_limits(conn: Connection, rules: ReportRules, ip_hash: str | None, point: bytes) -> None:
    if ip_hash is not None:
        sent = conn.execute(text(
            "SELECT (SELECT count(*) FROM reports WHERE ip_hash = :h AND created_at > now() - interval '1 hour') + "
            "(SELECT count(*) FROM report_confirmations WHERE ip_hash = :h AND at > now() - interval '1 hour')"),
            {"h": ip_hash}).scalar_one()
        if sent >= rules.max_per_ip_per_hour:
            raise TooManyRequests(f"Trop de signalements envoyés depuis votre connexion ({rules.max_per_ip_per_hour} "
                                  "par heure au plus) : réessayez dans une heure.", retry_after_s=3600,
                                  limit=rules.max_per_ip_per_hour)
    near = conn.execute(text(
        "SELECT count(*) FROM reports WHERE created_at > now() - interval '1 hour' AND "
        "ST_DWithin(geom::geography, ST_GeomFromEWKB(:p)::geography, :r)"),
        {"p": point, "r": rules.area_radius_m}).scalar_one()
    if near >= rules.max_per_area_per_hour:
        raise TooManyRequests(f"Trop de signalements reçus pour ce secteur dans l'heure ({rules.max_per_area_per_hour} "
                              "au plus) : réessayez plus tard.", retry_after_s=3600, limit=rules.max_per_area_per_hour)


def _duplicate(conn: Connection, rules: ReportRules, cat: Category, point: bytes) -> int | None:
    """The open report of the same category nearest to the point, close and recent enough, if any."""
    return conn.execute(text(
        f"SELECT id FROM reports WHERE category = :c AND status NOT IN ({_CLOSED_SQL}) "
        "AND created_at > now() - make_interval(days => :days) "
        "AND ST_DWithin(geom::geography, ST_GeomFromEWKB(:p)::geography, :d) "
        "ORDER BY geom::geography <-> ST_GeomFromEWKB(:p)::geography LIMIT 1"),
        {"c": cat.code, "days": rules.duplicate_window_days, "p": point, "d": rules.duplicate_distance_m}).scalar()


def people_count(conn: Connection, report_id: int) -> int:
    """The reporter plus everyone whose report was counted as the same problem."""
    return 1 + conn.execute(text("SELECT count(*) FROM report_confirmations WHERE report_id = :r"),
                            {"r": report_id}).scalar_one()


def _new_public_id() -> str:
    return "S" + "".join(secrets.choice(_PUBLIC_ID_ALPHABET) for _ in range(7))


def submit(conn: Connection, registry: LayerRegistry, rules: ReportRules, sub: Submission, *,
           ip_hash: str | None, today: date | None = None) -> Received:
    """Check ``sub`` and store it (or count it on the report it duplicates); raise before writing on refusal."""
    cat, details, description, lon, lat, layer_id, feature_id, email = _checked(conn, registry, rules, sub)
    shape = Shape(shapely.Point(lon, lat))
    check_in_territory(conn, shape, rules.territory_tolerance_m, rules.territory_name)
    _check_limits(conn, rules, ip_hash, shape.ewkb)
    token = secrets.token_urlsafe(32)
    if rules.duplicate_distance_m > 0 and (original := _duplicate(conn, rules, cat, shape.ewkb)) is not None:
        conn.execute(text(
            "INSERT INTO report_confirmations (report_id, token_hash, ip_hash, geom) "
            "VALUES (:r, :t, :h, ST_GeomFromEWKB(:p))"),
            {"r": original, "t": token_digest(token), "h": ip_hash, "p": shape.ewkb})
        public_id, status = conn.execute(text("SELECT public_id, status FROM reports WHERE id = :r"),
                                         {"r": original}).one()
        return Received(public_id, token, True, people_count(conn, original), cat, original, None, status)
    purge_on = (today or date.today()) + timedelta(days=rules.email_retention_days) if email else None
    for _attempt in range(5):
        public_id = _new_public_id()
        row = conn.execute(text(
            "INSERT INTO reports (public_id, token_hash, category, details, description, geom, layer_id, feature_id, "
            "code_insee, epci_siren, email, email_consent_at, email_purge_on, ip_hash) "
            "SELECT CAST(:pid AS text), CAST(:t AS text), CAST(:c AS text), CAST(:details AS jsonb), "
            "CAST(:txt AS text), p.g, CAST(:layer AS text), CAST(:fid AS bigint), c.code_insee_actuel, c.epci_siren, "
            "CAST(:email AS text), CASE WHEN CAST(:email AS text) IS NULL THEN NULL ELSE now() END, "
            "CAST(:purge AS date), CAST(:h AS text) "
            "FROM (SELECT ST_GeomFromEWKB(:p) AS g) p "
            "LEFT JOIN LATERAL (SELECT code_insee_actuel, epci_siren FROM communes "
            "  WHERE ST_Intersects(communes.geom, p.g) LIMIT 1) c ON true "
            "WHERE NOT EXISTS (SELECT 1 FROM reports WHERE public_id = :pid) RETURNING id"),
            {"pid": public_id, "t": token_digest(token), "c": cat.code, "details": _json(details), "txt": description,
             "layer": layer_id, "fid": feature_id, "email": email, "purge": purge_on, "h": ip_hash,
             "p": shape.ewkb}).scalar()
        if row is not None:
            return Received(public_id, token, False, 1, cat, row, email)
    raise RuntimeError("no free public id after 5 draws")


def _json(value: dict) -> str:
    return json.dumps(value, ensure_ascii=False)
