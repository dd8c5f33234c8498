"""Typed errors of the service and their single mapping to RFC 9457 problem-details JSON (French text)."""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


class ServiceError(Exception):
    """Base of the errors a user can cause; ``status`` and ``title`` shape the HTTP answer."""

    status = 400
    title = "Requête invalide"

    def __init__(self, detail: str, *, parameter: str | None = None, headers: dict[str, str] | None = None,
                 **extra: object):
        super().__init__(detail)
        self.detail = detail
        self.parameter = parameter
        # HTTP headers the answer must carry (WWW-Authenticate, ETag, Retry-After…).
        self.headers = headers or {}
        # More problem-details members, e.g. ``field`` and ``errors`` of an invalid feature.
        self.extra = extra


class InvalidParameter(ServiceError):
    status = 400
    title = "Paramètre invalide"


class NotFound(ServiceError):
    status = 404
    title = "Introuvable"


class OutsideTerritory(ServiceError):
    status = 422
    title = "Hors du territoire"


# -- editing, accounts and rights (services/editing.py, services/rights.py, services/accounts.py) --------------
class Unauthenticated(ServiceError):
    status = 401
    title = "Authentification requise"


class Forbidden(ServiceError):
    status = 403
    title = "Action non autorisée"


class MethodNotAllowed(ServiceError):
    status = 405
    title = "Méthode non autorisée"


class Conflict(ServiceError):
    status = 409
    title = "Conflit"


class PreconditionFailed(ServiceError):
    status = 412
    title = "Version périmée"


class PayloadTooLarge(ServiceError):
    status = 413
    title = "Contenu trop volumineux"


class UnsupportedMediaType(ServiceError):
    status = 415
    title = "Type de contenu non pris en charge"


class InvalidFeature(ServiceError):
    """A property or the geometry breaks the layer declaration; ``field`` names it (``geometry`` for the shape)."""

    status = 422
    title = "Entité invalide"


class PreconditionRequired(ServiceError):
    status = 428
    title = "En-tête If-Match requis"


class TooManyRequests(ServiceError):
    status = 429
    title = "Trop de tentatives"


class TerritoryNotLoaded(ServiceError):
    """The territory outline is not loaded yet: no point can be placed in or out of it."""

    status = 503
    title = "Territoire non chargé"


class DatabaseUnavailable(ServiceError):
    status = 503
    title = "Base de données indisponible"


class QueryTimeout(ServiceError):
    """PostgreSQL cancelled a statement that ran longer than the session allows (``settings.db``)."""

    status = 503
    title = "Requête trop longue"


class LockTimeout(ServiceError):
    """A statement waited too long for a lock held by another change (an edit, an import)."""

    status = 503
    title = "Données en cours de modification"


# -- open-data imports (services/importers/) -------------------------------------------------------------------
class ImportFileError(ServiceError):
    """A file (or URL) an import cannot use at all: unreadable, wrong format, missing columns. Nothing is written."""

    status = 422
    title = "Fichier d'import inutilisable"


# SQLSTATEs of a database that cannot be reached, is shutting down or starting, or has no connection left
# (PostgreSQL, appendix A: class 08, 57P01–57P03, 53300). A driver error without SQLSTATE is a failed connection.
_UNREACHABLE = ("08", "57P01", "57P02", "57P03", "53300")
# Seconds a client should wait before trying again while the database is away (a restart takes a few).
RETRY_AFTER_S = 5
log = logging.getLogger("geo_service")


def database_unavailable(exc: BaseException) -> bool:
    """Whether a database error means "the database is away" (503, try again) rather than a fault of ours."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith(_UNREACHABLE)


def problem(status: int, title: str, detail: str, **extra) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


# French for the validation errors a query string can cause; others keep pydantic's (English) message.
_VALIDATION_FR = {
    "missing": "il est obligatoire",
    "float_parsing": "un nombre est attendu (ex. 44.45)",
    "float_type": "un nombre est attendu (ex. 44.45)",
    "int_parsing": "un nombre entier est attendu",
    "finite_number": "un nombre fini est attendu",
    "greater_than_equal": "il doit être supérieur ou égal à {ge}",
    "less_than_equal": "il doit être inférieur ou égal à {le}",
    "greater_than": "il doit être supérieur à {gt}",
    "less_than": "il doit être inférieur à {lt}",
    "string_too_long": "{max_length} caractères au plus",
    "string_too_short": "{min_length} caractère(s) au moins",
}


def _french(error: dict) -> str:
    template = _VALIDATION_FR.get(error.get("type", ""))
    try:
        return template.format(**(error.get("ctx") or {})) if template else error["msg"]
    except (KeyError, IndexError):
        return error["msg"]


def database_problem(exc: Exception, statement_timeout_ms: int) -> ServiceError | None:
    """The problem a database error stands for, when a client can do something about it; ``None`` for a fault.

    ``exc`` is psycopg's error, raw or wrapped by SQLAlchemy. A cancelled statement names the time limit: the
    one carried by the error (``timeout_ms``, set where the read engine is used), else ``statement_timeout_ms``.
    """
    error = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(error, psycopg.errors.QueryCanceled):
        ms = getattr(error, "timeout_ms", None) or statement_timeout_ms
        seconds = f"{ms / 1000:g}".replace(".", ",")
        return QueryTimeout(f"La requête a dépassé le temps maximal accordé ({seconds} s) : restreignez la zone "
                            "ou le filtre, ou réessayez dans un moment")
    if isinstance(error, psycopg.errors.LockNotAvailable):
        return LockTimeout("Ces données sont en cours de modification par une autre opération : réessayez dans un "
                           "instant", headers={"Retry-After": "2"})
    if isinstance(error, psycopg.DataError) and "NUL" in str(error):
        # psycopg refuses the NUL character in text before sending it; no text of ours can hold one.
        return InvalidParameter("Caractère NUL (\\0, %00) interdit dans une valeur")
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as problem details; the mapping lives here and nowhere else."""

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        response = problem(exc.status, exc.title, exc.detail, parameter=exc.parameter, **exc.extra)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(DBAPIError)
    @app.exception_handler(psycopg.Error)
    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        # Raised through SQLAlchemy (DBAPIError) or straight from the driver (the read engine's own statements).
        if database_unavailable(exc):
            error = DatabaseUnavailable("La base de données est momentanément injoignable : réessayez dans "
                                        "quelques secondes", headers={"Retry-After": str(RETRY_AFTER_S)})
            return await _service_error(request, error)
        known = database_problem(exc, request.app.state.settings.db.statement_timeout_ms)
        if known is not None:  # a statement cut by its time limit, a lock wait, a NUL in text
            return await _service_error(request, known)
        log.exception("database error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(500, "Erreur interne", "Erreur interne du service : elle a été consignée")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        parameter = ".".join(str(p) for p in first["loc"][1:]) or None
        return problem(400, "Paramètre invalide",
                       f"Paramètre « {parameter} » invalide : {_french(first)}", parameter=parameter)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Introuvable", 405: "Méthode non autorisée", 413: "Contenu trop volumineux"}
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"Aucune ressource à l'adresse {request.url.path}"
        return problem(exc.status_code, titles.get(exc.status_code, "Erreur"), detail)
