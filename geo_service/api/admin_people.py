"""``/admin/users`` and ``/admin/conventions``: accounts and EPCI conventions, for administrators.

The same services as ``geo-service user …`` / ``convention …``. A generated password or a new token is
shown once, on the page that answers the form, and never again. Tokens made here always expire (a year
unless another duration is chosen); a token without expiry can only be made on the command line.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from geo_service.api.deps import PrincipalDep, RegistryDep, SettingsDep, connection, transaction
from geo_service.api.problems import status_of
from geo_service.api.router_helpers import check_csrf, error_page, login_redirect, page, require_role
from geo_service.errors import InvalidParameter, ServiceError
from geo_service.layers import LayerRegistry
from geo_service.services.editing import accounts, conventions
from geo_service.services.editing.accounts import Principal
from geo_service.services.editing.conventions import LOCAL_TIME
from geo_service.settings import Settings

router = APIRouter(prefix="/admin", include_in_schema=False)
MESSAGES = {"disabled": "Compte désactivé : ses sessions sont fermées et ses jetons révoqués.",
            "enabled": "Compte réactivé (ses anciens jetons restent révoqués).",
            "revoked": "Jeton révoqué : il est refusé dès maintenant.",
            "convention": "Convention enregistrée.", "ended": "Convention terminée : ses droits cessent aussitôt."}
# Durations offered when an administrator creates a token (days → label); the default is the first year.
TOKEN_DURATIONS = {30: "30 jours", 90: "90 jours", 365: "1 an", 730: "2 ans"}


def _epcis(request: Request) -> list[tuple[str, str]]:
    with connection(request) as conn:
        return conventions.epci_choices(conn)


# -- accounts -------------------------------------------------------------------------------------------------------
def _users_page(request: Request, settings: Settings, principal: Principal, error: str | None = None,
                status: int = 200, form: dict | None = None) -> Response:
    try:
        require_role(principal, ("admin",))
        with connection(request) as conn:
            rows = accounts.list_accounts(conn)
            tokens = accounts.list_tokens(conn)
    except ServiceError as exc:
        return error_page(request, settings, principal, exc)
    return page(request, settings, principal, "admin/users.html",
                {"rows": rows, "tokens": tokens, "roles": accounts.ROLE_LABELS, "epcis": _epcis(request),
                 "durations": TOKEN_DURATIONS, "default_days": accounts.DEFAULT_TOKEN_DAYS, "local_time": LOCAL_TIME,
                 "error": error, "form": form or {}, "message": MESSAGES.get(request.query_params.get("done", ""))},
                status=status)


@router.get("/users", response_class=HTMLResponse)
def users(request: Request, settings: SettingsDep, principal: PrincipalDep) -> Response:
    if not principal.authenticated:
        return login_redirect(request)
    return _users_page(request, settings, principal)


@router.post("/users", response_class=HTMLResponse)
def create_user(request: Request, settings: SettingsDep, principal: PrincipalDep,
                username: Annotated[str, Form()] = "", role: Annotated[str, Form()] = "",
                epci: Annotated[str, Form()] = "", display_name: Annotated[str, Form()] = "",
                email: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "") -> Response:
    password = accounts.generate_password()
    try:
        check_csrf(request, principal, csrf_token)
        require_role(principal, ("admin",))
        with transaction(request) as conn:
            accounts.create_account(conn, username, role, password=password, epci_siren=epci or None,
                                    display_name=display_name or None, email=email or None)
    except ServiceError as exc:
        form = {"username": username, "role": role, "epci": epci, "display_name": display_name, "email": email}
        return _users_page(request, settings, principal, exc.detail, status_of(exc), form)
    return page(request, settings, principal, "admin/secret.html",
                {"what": f"Mot de passe du compte « {username.strip().lower()} »", "secret": password,
                 "back": "/admin/users"})


@router.post("/users/{username}", response_class=HTMLResponse)
def change_user(request: Request, username: str, settings: SettingsDep, principal: PrincipalDep,
                action: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "") -> Response:
    """Disable or re-enable an account, or give it a new generated password (shown once)."""
    password = accounts.generate_password()
    try:
        check_csrf(request, principal, csrf_token)
        require_role(principal, ("admin",))
        if action == "disable" and username == principal.username:
            raise InvalidParameter("Vous ne pouvez pas désactiver votre propre compte")
        with transaction(request) as conn:
            if action in ("disable", "enable"):
                accounts.set_active(conn, username, action == "enable")
            elif action == "password":
                accounts.set_password(conn, username, password)
            else:
                raise InvalidParameter("Action inconnue")
    except ServiceError as exc:
        return _users_page(request, settings, principal, exc.detail, status_of(exc))
    if action == "password":
        return page(request, settings, principal, "admin/secret.html",
                    {"what": f"Nouveau mot de passe du compte « {username} »", "secret": password,
                     "note": "Ses sessions ouvertes sont fermées et ses jetons d'accès révoqués.",
                     "back": "/admin/users"})
    return RedirectResponse(f"/admin/users?done={action}d", status_code=303)


# -- personal access tokens --------------------------------------------------------------------------------------
def _token_days(value: str) -> int:
    if not value.strip():
        return accounts.DEFAULT_TOKEN_DAYS
    if value.strip().isdigit() and int(value) in TOKEN_DURATIONS:
        return int(value)
    raise InvalidParameter(f"Durée de validité inconnue « {value} » ; durées : {', '.join(TOKEN_DURATIONS.values())}",
                           parameter="days")


@router.post("/tokens", response_class=HTMLResponse)
def create_token(request: Request, settings: SettingsDep, principal: PrincipalDep,
                 username: Annotated[str, Form()] = "", name: Annotated[str, Form()] = "",
                 days: Annotated[str, Form()] = "", qgis: Annotated[str, Form()] = "",
                 csrf_token: Annotated[str, Form()] = "") -> Response:
    """A token for an account, valid for one of ``TOKEN_DURATIONS``; shown once with its expiry date."""
    try:
        check_csrf(request, principal, csrf_token)
        require_role(principal, ("admin",))
        chosen = _token_days(days)
        with transaction(request) as conn:
            issued = accounts.issue_token(conn, username, name, chosen, if_match_optional=bool(qgis))
    except ServiceError as exc:
        form = {"token_username": username, "token_name": name, "days": days, "qgis": bool(qgis)}
        return _users_page(request, settings, principal, exc.detail, status_of(exc), form)
    expires = issued.expires_at.astimezone(LOCAL_TIME)
    return page(request, settings, principal, "admin/secret.html",
                {"what": f"Jeton d'accès « {issued.name} » de « {username.strip().lower()} »",
                 "secret": issued.secret,
                 "note": f"Valable jusqu'au {expires:%d/%m/%Y à %H:%M} ({TOKEN_DURATIONS[chosen]}). À envoyer dans "
                         "l'en-tête Authorization: Bearer …, ou comme mot de passe HTTP Basic (QGIS).",
                 "back": "/admin/users#jetons"})


@router.post("/tokens/{token_id}", response_class=HTMLResponse)
def revoke_token(request: Request, token_id: int, settings: SettingsDep, principal: PrincipalDep,
                 csrf_token: Annotated[str, Form()] = "") -> Response:
    try:
        check_csrf(request, principal, csrf_token)
        require_role(principal, ("admin",))
        with transaction(request) as conn:
            accounts.revoke_token(conn, token_id)
    except ServiceError as exc:
        return _users_page(request, settings, principal, exc.detail, status_of(exc))
    return RedirectResponse("/admin/users?done=revoked#jetons", status_code=303)


# -- conventions ------------------------------------------------------------------------------------------------
def _conventions_page(request: Request, settings: Settings, principal: Principal, registry: LayerRegistry,
                      error: str | None = None, status: int = 200) -> Response:
    try:
        require_role(principal, ("admin",))
        with connection(request) as conn:
            rows = conventions.list_conventions(conn)
    except ServiceError as exc:
        return error_page(request, settings, principal, exc)
    day = conventions.local_day()
    return page(request, settings, principal, "admin/conventions.html",
                {"rows": [(c, c.in_force(day), c.why_not_in_force(day)) for c in rows],
                 "epcis": dict(_epcis(request)), "layers": [la for la in registry if la.editable],
                 "today": day.isoformat(), "error": error,
                 "message": MESSAGES.get(request.query_params.get("done", ""))}, status=status)


@router.get("/conventions", response_class=HTMLResponse)
def conventions_list(request: Request, settings: SettingsDep, principal: PrincipalDep,
                     registry: RegistryDep) -> Response:
    if not principal.authenticated:
        return login_redirect(request)
    return _conventions_page(request, settings, principal, registry)


def _day(value: str, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidParameter(f"Date invalide « {value} » (AAAA-MM-JJ)", parameter=name) from None


@router.post("/conventions", response_class=HTMLResponse)
def add_convention(request: Request, settings: SettingsDep, principal: PrincipalDep, registry: RegistryDep,
                   epci: Annotated[str, Form()] = "", direction: Annotated[str, Form()] = "",
                   layers: Annotated[list[str] | None, Form()] = None, starts_on: Annotated[str, Form()] = "",
                   ends_on: Annotated[str, Form()] = "", reference: Annotated[str, Form()] = "",
                   csrf_token: Annotated[str, Form()] = "") -> Response:
    try:
        check_csrf(request, principal, csrf_token)
        require_role(principal, ("admin",))
        with transaction(request) as conn:
            conventions.add_convention(
                conn, registry, epci_siren=epci, direction=direction, layers=layers or [],
                starts_on=_day(starts_on, "starts_on") or conventions.local_day(),
                ends_on=_day(ends_on, "ends_on"), reference=reference)
    except ServiceError as exc:
        return _conventions_page(request, settings, principal, registry, exc.detail, status_of(exc))
    return RedirectResponse("/admin/conventions?done=convention", status_code=303)


@router.post("/conventions/{convention_id}", response_class=HTMLResponse)
def end_convention(request: Request, convention_id: int, settings: SettingsDep, principal: PrincipalDep,
                   registry: RegistryDep, csrf_token: Annotated[str, Form()] = "") -> Response:
    try:
        check_csrf(request, principal, csrf_token)
        require_role(principal, ("admin",))
        with transaction(request) as conn:
            conventions.end_convention(conn, convention_id)
    except ServiceError as exc:
        return _conventions_page(request, settings, principal, registry, exc.detail, status_of(exc))
    return RedirectResponse("/admin/conventions?done=ended", status_code=303)
