"""``/admin``: login, logout and the editors' home page (French HTML, forms protected against CSRF).

Sessions: an opaque random cookie (``gs_session``; HttpOnly, SameSite=Lax, Secure in production, elsewhere unless
on localhost) whose digest is stored with the session's anti-CSRF token (``services/editing/accounts.py``). Every
state-changing form carries a ``csrf_token`` field: the session's token once logged in (synchronizer token), and
before login an HMAC of a random ``gs_csrf`` cookie under the service's secret key (double submit, signed).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from geo_service.api.deps import SESSION_COOKIE, PrincipalDep, SettingsDep
from geo_service.api.problems import headers_of
from geo_service.api.resident_pages import templates_for
from geo_service.errors import Forbidden, TooManyRequests
from geo_service.services.editing import accounts, conventions, moderation_queue, rights
from geo_service.services.editing.accounts import Principal
from geo_service.settings import Settings

router = APIRouter(prefix="/admin", include_in_schema=False)
PRE_LOGIN_COOKIE = "gs_csrf"
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


# -- CSRF and cookies ------------------------------------------------------------------------------------------
def _secret(request: Request) -> bytes:
    return request.app.state.secret_key.encode()


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


def _client_ip(request: Request) -> str:
    # The real client: behind a proxy of settings.trusted_proxies, the X-Forwarded-For address (main.py); from
    # anyone else the header is ignored, so a client cannot spread its failures over invented addresses.
    return request.client.host if request.client else "inconnue"


def _safe_next(target: str | None) -> str:
    # Only paths of this site: an open redirect would turn the login page into a phishing relay.
    return target if target and target.startswith("/") and not target.startswith("//") else "/admin"


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
                            "basemap": {"url": settings.map.basemap_url,
                                        "attribution": settings.map.basemap_attribution},
                            **context},
        status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})
    if new_nonce:
        response.set_cookie(PRE_LOGIN_COOKIE, new_nonce, httponly=True, samesite="lax",
                            secure=secure_cookies(request, settings), path="/admin")
    return response


# -- handlers --------------------------------------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, settings: SettingsDep, principal: PrincipalDep, next: str = "/admin") -> Response:
    if principal.authenticated and principal.via == "session":
        return RedirectResponse(_safe_next(next), status_code=303)
    return page(request, settings, principal, "admin/login.html", {"next": _safe_next(next)})


@router.post("/login", response_class=HTMLResponse)
def login_submit(request: Request, settings: SettingsDep, principal: PrincipalDep,
                 username: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
                 csrf_token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/admin") -> Response:
    context = {"next": _safe_next(next), "username": username}
    anonymous = accounts.ANONYMOUS_PRINCIPAL
    try:
        check_csrf(request, anonymous, csrf_token)
    except Forbidden as exc:
        return page(request, settings, anonymous, "admin/login.html", {**context, "error": exc.detail}, 403)
    engine = request.app.state.engine
    try:
        with engine.begin() as conn:
            found = accounts.login(conn, username, password, _client_ip(request), settings.auth)
    except TooManyRequests as exc:
        return page(request, settings, anonymous, "admin/login.html", {**context, "error": exc.detail}, 429,
                    headers=headers_of(exc))
    if found is None or found.account_id is None:
        return page(request, settings, anonymous, "admin/login.html",
                    {**context, "error": "Identifiant ou mot de passe incorrect"}, 401)
    with engine.begin() as conn:
        cookie, _ = accounts.open_session(conn, found.account_id, _client_ip(request), settings.auth.session_hours)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=int(settings.auth.session_hours * 3600), httponly=True,
                        samesite="lax", secure=secure_cookies(request, settings), path="/")
    response.delete_cookie(PRE_LOGIN_COOKIE, path="/admin")
    return response


@router.post("/logout")
def logout(request: Request, principal: PrincipalDep, csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, principal, csrf_token)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with request.app.state.engine.begin() as conn:
            accounts.close_session(conn, cookie)
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("", response_class=HTMLResponse)
def home(request: Request, settings: SettingsDep, principal: PrincipalDep) -> Response:
    """The editors' home: who is logged in, what they may do, and the proposals waiting (administrators)."""
    if not principal.authenticated:
        return RedirectResponse("/admin/login?next=/admin", status_code=303)
    with request.app.state.engine.connect() as conn:
        mine = conventions.conventions_for(conn, principal.epci_siren) if principal.epci_siren else []
        day = conventions.local_day()
        context = {
            "epci": rights.epci_name(conn, principal.epci_siren) if principal.epci_siren else None,
            "conventions": [(c, c.in_force(day)) for c in mine],
            "pending": len(moderation_queue.list_requests(conn)) if principal.role == "admin" else None,
        }
    return page(request, settings, principal, "admin/index.html", context)
