"""``/api/nearby`` (the "près de chez vous" report) and ``/api/geocode`` (address and commune search)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic_core import to_json

from geo_service.api.deps import caches_of, in_hot_path, read_only, settings_of
from geo_service.api.resident_models import GeocodeResponse, NearbyReport
from geo_service.errors import InvalidParameter
from geo_service.services.resident import geocoder
from geo_service.services.resident import nearby_report as report_service  # the route is named nearby_report

router = APIRouter(tags=["près de chez vous"])

PROBLEM = {"description": "Problème (RFC 9457), message en français",
           "content": {"application/problem+json": {}}}
QUERY_DOC = f"Adresse ou commune, {geocoder.MAX_QUERY_LENGTH} caractères au plus"


def json_response(body: Any, max_age: int) -> Response:
    """The body serialised once, as is: the response models document it, the tests check it against them.

    pydantic-core's encoder (Rust) writes the same text as ``json.dumps(..., ensure_ascii=False,
    separators=(",", ":"))`` with ISO 8601 dates, in a tenth of the time: the standard library's took a sixth
    of a report's CPU. (Only floats below 1e-4 would be spelt differently, 0.00001 for 1e-05: none here.)
    """
    return Response(to_json(body), media_type="application/json",
                    headers={"Cache-Control": f"public, max-age={max_age}"})


def _report(request: Request, lon: float | None, lat: float | None, address: str | None) -> Response:
    settings, caches = settings_of(request), caches_of(request)
    territory = settings.territory
    if address is not None:
        report = read_only(request, lambda conn: report_service.report_for_address(conn, caches, territory,
                                                                                   address)[1])
    else:
        report = read_only(request, lambda conn: report_service.report(conn, caches, territory, lon, lat))
    return json_response(report, settings.api.cache_max_age_s)


def _geocode(request: Request, q: str | None, limit: int) -> Response:
    results = read_only(request, lambda conn: geocoder.search(conn, q, limit))
    return json_response({"query": (q or "").strip(), "results": [r.as_dict() for r in results]},
                         settings_of(request).api.cache_max_age_s)


# These two handlers are the hot path of the resident map (one call per keystroke, per click): they are
# `async` and run their blocking work in one thread hop (``deps.in_hot_path``), instead of one hop per sync dependency
# (settings, registry, connection) and one for the handler — a third of a report's time under load.
@router.get("/api/nearby", response_model=NearbyReport,
            summary="Rapport « près de chez vous » pour un point ou une adresse",
            responses={400: PROBLEM, 404: PROBLEM, 422: PROBLEM})
async def nearby_report(request: Request,
                        lon: float | None = Query(None, ge=-180, le=180, allow_inf_nan=False,
                                                  description="Longitude WGS84 (degrés), avec lat"),
                        lat: float | None = Query(None, ge=-90, le=90, allow_inf_nan=False,
                                                  description="Latitude WGS84 (degrés), avec lon"),
                        address: str | None = Query(None, description=f"{QUERY_DOC} ; à la place de lon et lat",
                                                    json_schema_extra={"maxLength": geocoder.MAX_QUERY_LENGTH})
                        ) -> Response:
    """Fibre, montée en débit, mobile et zones blanches, Wi-Fi public, tiers-lieux et lieux d'aide au numérique
    autour d'un point du territoire, chaque rubrique avec sa source et sa date. Hors du territoire : 422."""
    if address is not None:
        if lon is not None or lat is not None:
            raise InvalidParameter("Indiquez soit address, soit lon et lat, pas les deux.", parameter="address")
        geocoder.check_query(address)
    elif lon is None or lat is None:
        missing = "lat" if lon is not None else "lon"
        raise InvalidParameter("Indiquez lon et lat (degrés WGS84), ou address.", parameter=missing)
    return await in_hot_path(request, _report, request, lon, lat, address)


@router.get("/api/geocode", response_model=GeocodeResponse, summary="Recherche d'adresse ou de commune",
            responses={400: PROBLEM})
async def geocode(request: Request,
                  q: str | None = Query(None, description=QUERY_DOC,
                                        json_schema_extra={"maxLength": geocoder.MAX_QUERY_LENGTH}),
                  limit: int = Query(geocoder.DEFAULT_LIMIT, ge=1, le=geocoder.MAX_LIMIT,
                                     description="Nombre de réponses")) -> Response:
    """Adresses (numéro et voie), voies et communes du territoire, les plus pertinentes d'abord ; insensible
    aux accents, à la casse, aux abréviations (av, st, bd, rte, chem, imp, pl…) et aux petites fautes."""
    geocoder.check_query(q)
    return await in_hot_path(request, _geocode, request, q, limit)
