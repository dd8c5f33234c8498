"""Open311 GeoReport v2 (JSON): ``/open311/v2/services``, ``/open311/v2/requests``, ``/open311/v2/requests/{id}``,
each also with the ``.json`` suffix the specification uses. Creation goes through the map's own intake."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse

from geo_service.api.deps import connection
from geo_service.api.router_helpers import follow_up_url, take_report
from geo_service.services.reports import open311

router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"])
# Errors in the specification's format (api/problems.py: for_client), French descriptions.
PROBLEM = {"description": "Erreur GeoReport v2 : liste de {code, description}, en français",
           "content": {"application/json": {}}}
PUBLIC = {"Cache-Control": "public, max-age=60"}


@router.get("/services.json", summary="Services (catégories de signalement)")
@router.get("/services", include_in_schema=False)
def services() -> JSONResponse:
    return JSONResponse(open311.services(), headers=PUBLIC)


@router.get("/services/{service_code}.json", summary="Définition d'un service (attributs)", responses={404: PROBLEM})
def service_definition(service_code: str) -> JSONResponse:
    return JSONResponse(open311.service_definition(service_code), headers=PUBLIC)


@router.get("/requests.json", summary="Demandes (signalements publics, sans donnée personnelle)",
            responses={400: PROBLEM})
@router.get("/requests", include_in_schema=False)
def list_requests(request: Request,
                  service_request_id: Annotated[str | None, Query(max_length=2000)] = None,
                  service_code: Annotated[str | None, Query(max_length=200)] = None,
                  start_date: Annotated[str | None, Query(max_length=40)] = None,
                  end_date: Annotated[str | None, Query(max_length=40)] = None,
                  status: Annotated[str | None, Query(max_length=20)] = None) -> JSONResponse:
    filters = open311.RequestFilters(service_request_id, service_code, start_date, end_date, status)
    with connection(request) as conn:
        found = open311.requests(conn, filters)
    return JSONResponse(found, headers=PUBLIC)


@router.post("/requests.json", summary="Créer une demande (mêmes règles que la carte)",
             responses={201: {"description": "Demande créée"},
                        200: {"description": "Déjà signalé : comptée sur la demande existante"},
                        400: PROBLEM, 422: PROBLEM, 429: PROBLEM})
@router.post("/requests", include_in_schema=False)
def create_request(request: Request,
                   service_code: Annotated[str, Form(max_length=40)],
                   lat: Annotated[str, Form(max_length=40)] = "",
                   long: Annotated[str, Form(max_length=40)] = "",
                   description: Annotated[str, Form(max_length=20000)] = "",
                   operator: Annotated[str, Form(alias="attribute[operator]", max_length=20)] = "",
                   technology: Annotated[str, Form(alias="attribute[technology]", max_length=20)] = "",
                   api_key: Annotated[str, Form(max_length=200)] = "",
                   email: Annotated[str, Form(max_length=254)] = "") -> JSONResponse:
    # api_key and email are accepted and not used: no key is needed, and Open311 carries no consent for an e-mail.
    received = take_report(request, open311.submission(service_code, lat, long, description,
                                                       {"operator": operator, "technology": technology}))
    body = [{"service_request_id": received.public_id, "service_notice": received.message,
             "account_id": None, "follow_up_url": follow_up_url(request, received.token)}]
    return JSONResponse(body, status_code=200 if received.duplicate else 201, headers={"Cache-Control": "no-store"})


@router.get("/requests/{service_request_id}.json", summary="Une demande", responses={404: PROBLEM})
@router.get("/requests/{service_request_id}", include_in_schema=False)
def one_request(request: Request, service_request_id: str) -> JSONResponse:
    with connection(request) as conn:
        found = open311.request_one(conn, service_request_id.removesuffix(".json"))
    return JSONResponse([found], headers=PUBLIC)

