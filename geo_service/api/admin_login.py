"""``/admin``: login, logout and the editors' home page (French HTML, forms protected against CSRF).

Sessions: an opaque random cookie (``gs_session``; HttpOnly, SameSite=Lax, Secure in production, elsewhere unless
on localhost) whose digest is stored with the session's anti-CSRF token (``services/editing/accounts.py``). Every
state-changing form carries a ``csrf_token`` field: the session's token once logged in (synchronizer token), and
before login an HMAC of a random ``gs_csrf`` cookie under the service's secret key (double submit, signed).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from geo_service.api.deps import SESSION_COOKIE, PrincipalDep, SettingsDep, connection, engine_of, transaction
from geo_service.api.problems import headers_of
from geo_service.api.router_helpers import PRE_LOGIN_COOKIE, check_csrf, page, secure_cookies
from geo_service.errors import Forbidden, TooManyRequests
from geo_service.services.editing import accounts, conventions, moderation_queue, rights

router = APIRouter(prefix="/admin", include_in_schema=False)












def _client_ip(request: Request) -> str:
    # The real client: behind a proxy of settings.trusted_proxies, the X-Forwarded-For address (main.py); from
    # anyone else the header is ignored, so a client cannot spread its failures over invented addresses.
    return request.client.host if request.client else "inconnue"


def _safe_next(target: str | None) -> str:
    # Only paths of this site: an open redirect would turn the login page into a phishing relay.
    return target if target and target.startswith("/") and not target.startswith("//") else "/admin"




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
    engine = engine_of(request)
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
        with transaction(request) as conn:
            accounts.close_session(conn, cookie)
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("", response_class=HTMLResponse)
def home(request: Request, settings: SettingsDep, principal: PrincipalDep) -> Response:
    """The editors' home: who is logged in, what they may do, and the proposals waiting (administrators)."""
    if not principal.authenticated:
        return RedirectResponse("/admin/login?next=/admin", status_code=303)
    with connection(request) as conn:
        mine = conventions.conventions_for(conn, principal.epci_siren) if principal.epci_siren else []
        day = conventions.local_day()
        context = {
            "epci": rights.epci_name(conn, principal.epci_siren) if principal.epci_siren else None,
            "conventions": [(c, c.in_force(day)) for c in mine],
            "pending": len(moderation_queue.list_requests(conn)) if principal.role == "admin" else None,
        }
    return page(request, settings, principal, "admin/index.html", context)
