"""``/healthz``: liveness and a real round trip to PostGIS."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from geo_service.api.deps import EngineDep, RegistryDep
from geo_service.errors import RETRY_AFTER_S

router = APIRouter(tags=["service"])


@router.get("/healthz", summary="État du service et de la base")
def healthz(engine: EngineDep, registry: RegistryDep) -> JSONResponse:
    try:
        with engine.connect() as conn:
            postgis = conn.execute(text("SELECT postgis_lib_version()")).scalar_one()
    except SQLAlchemyError as exc:
        return JSONResponse({"status": "error", "database": "unreachable",
                             "detail": type(exc).__name__}, status_code=503,
                            headers={"Retry-After": str(RETRY_AFTER_S)})
    return JSONResponse({"status": "ok", "database": "ok", "postgis": postgis, "layers": len(registry)})
