"""``/healthz``: liveness and a real round trip to PostGIS."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from geo_service.api.deps import RegistryDep, database_version
from geo_service.errors import RETRY_AFTER_S

router = APIRouter(tags=["service"])


@router.get("/healthz", summary="État du service et de la base")
def healthz(request: Request, registry: RegistryDep) -> JSONResponse:
    postgis = database_version(request)
    if postgis is None:
        return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503,
                            headers={"Retry-After": str(RETRY_AFTER_S)})
    return JSONResponse({"status": "ok", "database": "ok", "postgis": postgis, "layers": len(registry)})
