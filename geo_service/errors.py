"""Typed errors of the service and their single mapping to RFC 9457 problem-details JSON (French text)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


class ServiceError(Exception):
    """Base of the errors a user can cause; ``status`` and ``title`` shape the HTTP answer."""

    status = 400
    title = "Requête invalide"

    def __init__(self, detail: str, *, parameter: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.parameter = parameter


class InvalidParameter(ServiceError):
    status = 400
    title = "Paramètre invalide"


class NotFound(ServiceError):
    status = 404
    title = "Introuvable"


class OutsideTerritory(ServiceError):
    status = 422
    title = "Hors du territoire"


class DatabaseUnavailable(ServiceError):
    status = 503
    title = "Base de données indisponible"


def problem(status: int, title: str, detail: str, **extra) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as problem details; the mapping lives here and nowhere else."""

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return problem(exc.status, exc.title, exc.detail, parameter=exc.parameter)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        parameter = ".".join(str(p) for p in first["loc"][1:]) or None
        return problem(400, "Paramètre invalide",
                       f"Paramètre « {parameter} » invalide : {first['msg']}", parameter=parameter)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Introuvable", 405: "Méthode non autorisée"}
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"Aucune ressource à l'adresse {request.url.path}"
        return problem(exc.status_code, titles.get(exc.status_code, "Erreur"), detail)
