"""What the routers share: templates, the /admin page kit (CSRF tokens, roles, error pages), request bodies and
versions of the OGC API writes, and the edit context of a web request. Routers import this module, never each
other."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from geo_service.api.deps import basemap_of, registry_of, secret_key_of, settings_of, transaction
from geo_service.api.problems import status_of, version_etag
from geo_service.api.security_headers import csp_nonce
from geo_service.api.urls import absolute_url
from geo_service.errors import (
    Forbidden,
    InvalidParameter,
    PreconditionFailed,
    PreconditionRequired,
    ServiceError,
    UnsupportedMediaType,
)
from geo_service.layers import LayerRegistry
from geo_service.services import untrusted_json
from geo_service.services.editing.accounts import Principal
from geo_service.services.editing.feature_writes import EditContext, EditRules
from geo_service.services.publish.crs import CRS84, Crs, parse_crs
from geo_service.services.reports import notifications, report_photos, report_queue
from geo_service.services.reports import submission as submission_service
from geo_service.services.reports.submission import Received, ReportRules, Submission, ip_digest
from geo_service.services.resident.opening_hours import french_date
from geo_service.services.resident.report_wording import parse_date, source_lines
from geo_service.settings import Settings


@lru_cache
def templates_for(web_dir: Path) -> Jinja2Templates:
    """One Jinja environment per template folder (settings may differ between apps, e.g. in tests)."""
    templates = Jinja2Templates(directory=web_dir / "templates",
                                context_processors=[_security_context, _identity_context])
    templates.env.filters["date_fr"] = _date_fr
    templates.env.filters["source_lines"] = source_lines
    return templates


_ETAG = re.compile(r'^(?:W/)?"v(\d{1,9})(?:-[0-9a-z]+)?"$')


# A feature nests at most 6 levels (a MultiPolygon in its geometry); the standard parser recurses on each level.
BODY_MAX_DEPTH = 32


def feature_etag(version: int, *variant: object) -> str:
    """The ETag of a feature: ``"v<version>"``, with a suffix for other representations (HTML, another CRS,
    restricted fields) so each stays distinct; ``If-Match`` reads the version from any of them."""
    if not any(variant):
        return version_etag(version)
    suffix = hashlib.sha256(json.dumps([str(v) for v in variant]).encode()).hexdigest()[:8]
    return f'"v{version}-{suffix}"'


def content_crs(request: Request) -> Crs:
    """The CRS of the body's geometries (Part 2 ``Content-Crs: <uri>``); CRS84 when absent."""
    value = request.headers.get("content-crs")
    return CRS84 if not value else parse_crs(value.strip().strip("<>"), "Content-Crs")


async def _raw_body(request: Request) -> bytes:
    # Read asynchronously here so that the handlers can be plain functions (run in the thread pool, where the
    # blocking database calls belong). The size limit applies while reading (api/limits.py).
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]


def json_body(request: Request, raw: bytes, types: tuple[str, ...]) -> object:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in types:
        raise UnsupportedMediaType(f"Type de contenu « {media or 'absent'} » non pris en charge ; types acceptés : "
                                   f"{', '.join(types)}")
    try:
        return untrusted_json.loads(raw, BODY_MAX_DEPTH)
    except untrusted_json.TooDeep:
        raise InvalidParameter(f"Corps JSON trop imbriqué : plus de {BODY_MAX_DEPTH} niveaux de tableaux ou d'objets",
                               parameter="body", limit=BODY_MAX_DEPTH) from None
    except (ValueError, UnicodeDecodeError) as exc:
        # NaN, Infinity and numbers beyond a double are not JSON (RFC 8259), though Python's parser reads them.
        raise InvalidParameter(f"Corps JSON invalide : {exc}", parameter="body") from None


def expected_version(request: Request, principal: Principal) -> int | None:
    """The version named by ``If-Match`` (one ETag of ours); required, so that no change is blind — except
    for a token made for a client that never sends it (QGIS): ``None``, the change is not version-checked."""
    value = request.headers.get("if-match")
    if value is None or not value.strip():
        if principal.if_match_optional:
            return None
        raise PreconditionRequired("En-tête If-Match requis : renvoyez l'ETag de l'entité lue (GET) pour ne pas "
                                   "écraser sans le savoir la modification de quelqu'un d'autre")
    if value.strip() == "*":
        raise PreconditionRequired("If-Match: * n'est pas accepté : envoyez l'ETag de la version que vous modifiez")
    match = _ETAG.match(value.strip())
    if match is None:
        raise PreconditionFailed(f"If-Match « {value} » ne correspond à aucune version de l'entité")
    return int(match.group(1))


STAFF = ("admin", "editor")


def login_redirect(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/admin/login?next={request.url.path}", status_code=303)


def require_role(principal: Principal, roles: tuple[str, ...]) -> None:
    if principal.role not in roles:
        raise Forbidden("Cette page est réservée aux " + ("administrateurs" if roles == ("admin",) else
                                                         "administrateurs et éditeurs du Département"))


def error_page(request: Request, settings: Settings, principal: Principal, exc: ServiceError) -> HTMLResponse:
    return page(request, settings, principal, "admin/error.html", {"error": exc.detail, "title": exc.title},
                status=status_of(exc))


def edit_context(principal: Principal, registry: LayerRegistry, settings: Settings, *, crs: Crs = CRS84,
                 path: str | None = None) -> EditContext:
    """Who edits, with which rules; the path recorded in the history is ``web`` for a session (the pages, the web
    editor) and ``api`` for a token, unless given."""
    path = path or ("web" if principal.via == "session" else "api")
    return EditContext(principal, path, registry, EditRules.from_settings(settings), crs=crs)


OGC_PREFIX = "/ogc"


def ogc_base(request: Request) -> str:
    """The OGC API landing page's absolute URL (api/urls.py: public_base_url, else the request's)."""
    return absolute_url(request, OGC_PREFIX)


PRE_LOGIN_COOKIE = "gs_csrf"


_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


# -- CSRF and cookies ------------------------------------------------------------------------------------------
def _secret(request: Request) -> bytes:
    return secret_key_of(request).encode()


def _pre_login_token(request: Request, nonce: str) -> str:
    return hmac.new(_secret(request), f"login:{nonce}".encode(), hashlib.sha256).hexdigest()


def csrf_token(request: Request, principal: Principal) -> str:
    """The token forms of this page must send back."""
    if principal.via == "session" and principal.csrf_token:
        return principal.csrf_token
    return _pre_login_token(request, request.state.csrf_nonce)


def check_csrf(request: Request, principal: Principal, sent: str) -> None:
    """Refuse a form whose token is not this session's (or, before login, not bound to this browser's cookie)."""
    if principal.via == "session" and principal.csrf_token:
        expected = principal.csrf_token
    else:
        nonce = request.cookies.get(PRE_LOGIN_COOKIE, "")
        expected = _pre_login_token(request, nonce) if nonce else ""
    # Bytes: compare_digest refuses str holding non-ASCII characters (a TypeError, so a 500, for "é").
    if not (expected and sent and hmac.compare_digest(sent.encode(), expected.encode())):
        raise Forbidden("Jeton anti-CSRF manquant ou invalide : rechargez la page et recommencez")


def secure_cookies(request: Request, settings: Settings) -> bool:
    # Production: always, whatever Host the request names (behind a proxy it may well say localhost).
    mode = settings.auth.cookie_secure
    return settings.mode == "production" or mode == "always" or \
        (mode == "auto" and request.url.hostname not in _LOCAL_HOSTS)


def page(request: Request, settings: Settings, principal: Principal, template: str, context: dict,
         status: int = 200, headers: dict | None = None) -> HTMLResponse:
    """An /admin page: base context (static path, who is logged in, the form token), pre-login cookie if needed."""
    new_nonce = None
    if not (principal.via == "session" and principal.csrf_token):
        request.state.csrf_nonce = request.cookies.get(PRE_LOGIN_COOKIE) or secrets.token_urlsafe(24)
        new_nonce = request.state.csrf_nonce if PRE_LOGIN_COOKIE not in request.cookies else None
    base = request.scope.get("root_path", "").rstrip("/")
    response = templates_for(settings.web_dir).TemplateResponse(
        request, template, {"base": base, "static": f"{base}/static", "me": principal,
                            "csrf_token": csrf_token(request, principal),
                            "basemap": basemap_of(request).for_page(base),
                            **context},
        status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})
    if new_nonce:
        response.set_cookie(PRE_LOGIN_COOKIE, new_nonce, httponly=True, samesite="lax",
                            secure=secure_cookies(request, settings), path="/admin")
    return response


def _security_context(request: Request) -> dict[str, str]:
    # Every page may write the response's CSP nonce on its inline scripts: <script nonce="{{ csp_nonce }}">.
    return {"csp_nonce": csp_nonce(request)}


def _identity_context(request: Request) -> dict[str, Any]:
    # Who runs the service and for which territory: every page's header and title (settings, never hard-coded).
    settings: Settings = request.app.state.settings
    return {"operator": settings.operator, "territory": settings.territory}


def _date_fr(value: Any) -> str:
    day = parse_date(value) if not isinstance(value, date) else value
    return french_date(day) if day else ""




# -- residents' reports: one intake for the JSON API, the page without JavaScript and Open311 --------------------
def follow_up_url(request: Request, token: str) -> str:
    return absolute_url(request, f"/signalement/{token}")


def take_report(request: Request, submission: Submission, photo: bytes | None = None) -> Received:
    """Store a report (``services/reports/submission.py``: every check, then one transaction), keep its photo, and
    send the e-mails once it is committed."""
    settings = settings_of(request)
    # Checked and re-encoded before anything is stored: a bad photo refuses the whole report.
    jpeg = report_photos.reencode(photo, settings.reports) if photo else None
    with transaction(request) as conn:
        received = submission_service.submit(conn, registry_of(request), ReportRules.from_settings(settings),
                                             submission, ip_hash=ip_digest(secret_key_of(request), client_ip(request)))
        if jpeg and not received.duplicate:
            report_photos.attach(conn, settings.resolved_photo_dir(), received.report_id, jpeg)
        commune = report_queue.commune_of(conn, received.report_id)
    messages = []
    if received.email:
        messages.append(notifications.received(settings.smtp, received.email, received.public_id,
                                               received.category.label, follow_up_url(request, received.token),
                                               settings.reports.email_retention_days))
    if settings.reports.officer_emails and not received.duplicate:
        messages.append(notifications.new_report(settings.smtp, settings.reports.officer_emails, received.public_id,
                                                 received.category.label, commune,
                                                 absolute_url(request, f"/admin/reports/{received.public_id}")))
    notifications.send(settings.smtp, messages)
    return received


def client_ip(request: Request) -> str | None:
    """The client's address (a trusted proxy's X-Forwarded-For already applied by the middleware)."""
    return request.client.host if request.client else None
