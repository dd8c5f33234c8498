"""The one mapping of errors to RFC 9457 problem details: status codes, French texts and headers.

The domain raises the errors of ``geo_service/errors.py`` (which know nothing of HTTP); this module decides the
status code of each kind, the headers a client needs (``WWW-Authenticate``, ``Allow``, ``Retry-After``, the
current ``ETag``), and turns database faults and request-validation errors into the same French problem details.
"""

from __future__ import annotations

import json
import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from geo_service import errors
from geo_service.errors import ServiceError

PROBLEM_JSON = "application/problem+json"
BEARER_CHALLENGE = 'Bearer realm="geo-service", charset="UTF-8"'
log = logging.getLogger("geo_service")

# The status of each kind of error (a subclass not listed takes its nearest listed ancestor's).
STATUS: dict[type[ServiceError], int] = {
    errors.ServiceError: 400,
    errors.InvalidParameter: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.MethodNotAllowed: 405,
    errors.Conflict: 409,
    errors.PreconditionFailed: 412,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.OutsideTerritory: 422,
    errors.InvalidFeature: 422,
    errors.ImportFileError: 422,
    errors.PreconditionRequired: 428,
    errors.TooManyRequests: 429,
    errors.TerritoryNotLoaded: 503,
    errors.DatabaseUnavailable: 503,
    errors.QueryTimeout: 503,
    errors.LockTimeout: 503,
}


def status_of(exc: ServiceError) -> int:
    """The HTTP status of an error: its class's, or its nearest ancestor's."""
    return next(STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS)


def version_etag(version: int) -> str:
    """The ETag of a feature's version (``"v7"``), as the OGC API and the editor send and expect it."""
    return f'"v{version}"'


def headers_of(exc: ServiceError) -> dict[str, str]:
    """The headers a client needs to act on the error."""
    headers = {}
    if isinstance(exc, errors.Unauthenticated):
        headers["WWW-Authenticate"] = BEARER_CHALLENGE
    if isinstance(exc, errors.MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.allowed)
    if isinstance(exc, errors.PreconditionFailed) and exc.current_version is not None:
        headers["ETag"] = version_etag(exc.current_version)
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(exc.retry_after_s)
    return headers


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


def problem_of(exc: ServiceError) -> JSONResponse:
    """The problem-details answer of a domain error, with its status and headers."""
    response = problem(status_of(exc), exc.title, exc.detail, parameter=exc.parameter, **exc.extra)
    response.headers.update(headers_of(exc))
    return response


# An unexpected error is answered by Starlette's outermost middleware, outside SecurityHeaders: its answer
# carries the strictest headers itself (it has no page to frame, no script to run).
_FAULT_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                  "Referrer-Policy": "strict-origin-when-cross-origin",
                  "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'", "Cache-Control": "no-store"}


# Open311 GeoReport v2 clients read an error as a list of ``{"code", "description"}`` (the specification's error
# format, with the HTTP status); the same French texts and headers, shaped for them under /open311/.
OPEN311_PREFIX = "/open311/"


def for_client(request: Request, response: JSONResponse) -> JSONResponse:
    """``response`` as the client of this path expects an error: problem details, or Open311's list."""
    if not request.url.path.startswith(OPEN311_PREFIX):
        return response
    body = json.loads(response.body)
    shaped = JSONResponse([{"code": response.status_code, "description": f"{body['title']} : {body['detail']}"}],
                          status_code=response.status_code)
    shaped.headers.update({k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")})
    return shaped


def install_problem_handlers(app: FastAPI) -> None:
    """Every error leaves as problem details; the mapping lives here and nowhere else."""

    @app.exception_handler(Exception)
    async def _fault(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        response = problem(500, "Erreur interne", "Erreur interne du service : elle a été consignée")
        response.headers.update(_FAULT_HEADERS)
        return response

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return for_client(request, problem_of(exc))

    @app.exception_handler(DBAPIError)
    @app.exception_handler(psycopg.Error)
    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        # Raised through SQLAlchemy (DBAPIError) or straight from the driver (the read engine's own statements):
        # the database away, a statement cut by its time limit, a lock wait, a NUL in text; else a fault of ours.
        known = errors.database_problem(exc, request.app.state.settings.db.statement_timeout_ms)
        if known is not None:
            return for_client(request, problem_of(known))
        log.exception("database error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(500, "Erreur interne", "Erreur interne du service : elle a été consignée")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        parameter = ".".join(str(p) for p in first["loc"][1:]) or None
        return for_client(request, problem(400, "Paramètre invalide",
                                           f"Paramètre « {parameter} » invalide : {_french(first)}",
                                           parameter=parameter))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Introuvable", 405: "Méthode non autorisée", 413: "Contenu trop volumineux"}
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"Aucune ressource à l'adresse {request.url.path}"
        return for_client(request, problem(exc.status_code, titles.get(exc.status_code, "Erreur"), detail))
