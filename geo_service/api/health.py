"""``/healthz``: liveness, a real round trip to PostGIS, and the read replicas' states (if any)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from geo_service.api.deps import RegistryDep, database_version, replica_status
from geo_service.errors import RETRY_AFTER_S

router = APIRouter(tags=["service"])


@router.get("/healthz", summary="État du service et de la base")
def healthz(request: Request, registry: RegistryDep) -> JSONResponse:
    postgis = database_version(request)
    if postgis is None:
        return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503,
                            headers={"Retry-After": str(RETRY_AFTER_S)})
    body = {"status": "ok", "database": "ok", "postgis": postgis, "layers": len(registry)}
    replicas = replica_status(request)
    if replicas is not None:
        # Names and states only, never an address: the URLs may hold passwords and the page is public. A replica
        # out of rotation leaves the status "ok": the primary answers its reads (docs/scaling.md).
        body["replicas"] = replicas
    return JSONResponse(body)
