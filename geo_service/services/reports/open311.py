"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2): the reports as FixMyStreet and its kin read them.

Services are the report categories (the mobile one carries its operator and technology as attributes). Requests are
the reports, with only what is public: category, place (point and commune), status (open or closed), the officers'
public answer as ``status_notes`` and dates. The resident's text, e-mail, address hash and photo never leave here.
A request created through Open311 goes through the same intake as the map's (``submission.submit``); Open311 has no
consent field, so an e-mail sent with it is not kept, and the follow-up link is given back instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from geo_service.errors import InvalidParameter, NotFound
from geo_service.services.reports.report_categories import BY_CODE, CATEGORIES, CLOSED, details_label
from geo_service.services.reports.submission import Submission

MAX_REQUESTS = 1000  # GeoReport v2: "at most 1000 requests" by default
DEFAULT_DAYS = 90  # and "the last 90 days" when no date is given
AGENCY = "Département — service SIG"


def services() -> list[dict]:
    return [{"service_code": c.code, "service_name": c.label, "description": c.description,
             "metadata": bool(c.sub_fields), "type": "realtime", "keywords": ", ".join(c.layers),
             "group": "Infrastructures et services numériques"} for c in CATEGORIES]


def service_definition(code: str) -> dict:
    if code not in BY_CODE:
        raise NotFound(f"Aucun service Open311 « {code[:40]} »")
    cat = BY_CODE[code]
    return {"service_code": cat.code, "attributes": [
        {"variable": True, "code": sub.name, "datatype": "singlevaluelist", "required": False,
         "datatype_description": None, "order": i + 1, "description": sub.label,
         "values": [{"key": key, "name": name} for key, name in sub.choices]}
        for i, sub in enumerate(cat.sub_fields)]}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _parse_date(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameter(f"{name} : date W3C attendue (ex. 2026-01-31T00:00:00+01:00)", parameter=name) \
            from None
    if parsed.tzinfo is None:
        raise InvalidParameter(f"{name} : indiquez le fuseau (ex. +01:00 ou Z)", parameter=name)
    return parsed


@dataclass(frozen=True)
class RequestFilters:
    service_request_id: str | None = None
    service_code: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    status: str | None = None


_SELECT = (
    "SELECT r.public_id, r.status, r.public_answer, r.category, r.details, r.created_at, r.updated_at, "
    "c.nom_actuel, r.code_insee, ST_X(r.geom), ST_Y(r.geom) FROM reports r "
    "LEFT JOIN LATERAL (SELECT nom_actuel FROM communes WHERE code_insee_actuel = r.code_insee LIMIT 1) c ON true ")


def _request(row) -> dict:
    cat = BY_CODE[row[3]]
    details = details_label(cat, row[4] or {})
    return {"service_request_id": row[0], "status": "closed" if row[1] in CLOSED else "open",
            "status_notes": row[2], "service_name": cat.label, "service_code": cat.code,
            "description": cat.label + (f" ({details})" if details else ""), "agency_responsible": AGENCY,
            "service_notice": None, "requested_datetime": _iso(row[5]), "updated_datetime": _iso(row[6]),
            "expected_datetime": None, "address": row[7], "address_id": None, "zipcode": None,
            "lat": round(row[10], 6), "long": round(row[9], 6), "media_url": None}


def requests(conn: Connection, filters: RequestFilters) -> list[dict]:
    where, params = [], {"limit": MAX_REQUESTS}
    if filters.service_request_id:
        ids = [i.strip().upper()[:20] for i in filters.service_request_id.split(",") if i.strip()][:MAX_REQUESTS]
        where.append("r.public_id = ANY(:ids)")
        params["ids"] = ids
    else:
        start, end = _parse_date(filters.start_date, "start_date"), _parse_date(filters.end_date, "end_date")
        if start is None and end is None:
            where.append("r.created_at > now() - make_interval(days => :days)")
            params["days"] = DEFAULT_DAYS
        if start is not None:
            where.append("r.created_at >= :start")
            params["start"] = start
        if end is not None:
            where.append("r.created_at <= :end")
            params["end"] = end
        if start and end and end - start > timedelta(days=DEFAULT_DAYS):
            raise InvalidParameter(f"Intervalle de dates trop long : {DEFAULT_DAYS} jours au plus",
                                   parameter="end_date")
    if filters.service_code:
        codes = [c.strip() for c in filters.service_code.split(",") if c.strip()]
        unknown = [c for c in codes if c not in BY_CODE]
        if unknown:
            raise InvalidParameter(f"Service inconnu « {unknown[0][:40]} »", parameter="service_code")
        where.append("r.category = ANY(:codes)")
        params["codes"] = codes
    if filters.status:
        if filters.status not in ("open", "closed"):
            raise InvalidParameter("status : open ou closed", parameter="status")
        closed = filters.status == "closed"
        where.append(f"r.status {'' if closed else 'NOT '}IN ({', '.join(repr(s) for s in CLOSED)})")
    sql = _SELECT + ("WHERE " + " AND ".join(where) if where else "") + " ORDER BY r.created_at DESC LIMIT :limit"
    return [_request(row) for row in conn.execute(text(sql), params)]


def request_one(conn: Connection, public_id: str) -> dict:
    row = conn.execute(text(_SELECT + "WHERE r.public_id = :p"), {"p": public_id.upper()[:20]}).first()
    if row is None:
        raise NotFound(f"Aucune demande Open311 « {public_id[:20]} »")
    return _request(row)


def submission(service_code: str | None, lat: str | None, long: str | None, description: str | None,
               attributes: dict[str, str]) -> Submission:
    """A GeoReport v2 POST as a submission (no e-mail: Open311 carries no consent)."""
    if lat in (None, "") or long in (None, ""):
        raise InvalidParameter("lat et long sont obligatoires (ce service ne situe pas address_string)",
                               parameter="lat")
    return Submission(service_code, long, lat, description or "", attributes)
