"""Dependency aliases shared by the routers: settings, layer registry, database connection, who is asking."""

from __future__ import annotations

import asyncio
import base64
import hmac
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, TypeVar

import anyio
import psycopg
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from geo_service.db import postgis_version
from geo_service.db_routing import Replica
from geo_service.errors import Forbidden, NotFound, Unauthenticated
from geo_service.layers import LayerDecl, LayerRegistry
from geo_service.services.app_caches import AppCaches
from geo_service.services.basemap.basemap_choice import BasemapChoice
from geo_service.services.editing import accounts, rights
from geo_service.services.editing.accounts import ANONYMOUS_PRINCIPAL, Principal
from geo_service.services.publish.layer_versions import LayerVersions
from geo_service.services.publish.read_access import ANONYMOUS, Reader
from geo_service.settings import Settings

T = TypeVar("T")


# The three below are async only to stay on the event loop: FastAPI runs a sync dependency in the
# thread pool, a costly hop for reading an attribute.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_registry(request: Request) -> LayerRegistry:
    return request.app.state.registry


async def get_engine(request: Request) -> Engine:
    return engine_of(request)


def get_connection(request: Request) -> Iterator[Connection]:
    with engine_of(request).connect() as conn:
        yield conn


# The same things for handlers that need them at a chosen moment (a form checked first, a stream that outlives
# the handler): routers reach the application's state through these and nothing else.
def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def registry_of(request: Request) -> LayerRegistry:
    return request.app.state.registry


def caches_of(request: Request) -> AppCaches:
    """The application's caches (services/app_caches.py), built in the lifespan."""
    return request.app.state.caches


def layer_versions_of(request: Request) -> LayerVersions | None:
    """The layers' versions heard by LISTEN/NOTIFY (services/publish/layer_versions.py); None: listener turned off."""
    return request.app.state.layer_versions


def basemap_of(request: Request) -> BasemapChoice:
    """The base map the settings chose (services/basemap/basemap_choice.py), resolved in ``create_app``."""
    return request.app.state.basemap


# request.state key of the replica api/read_routing.py chose for a public read (absent or None: the primary).
READ_REPLICA = "read_replica"


def replica_of(state: object) -> Replica | None:
    """The read replica chosen for a request (from its ``request.state``), None for the primary."""
    return getattr(state, READ_REPLICA, None)


def engine_of(request: Request) -> Engine:
    """The engine reads of this request use: a read replica's for a public read (api/read_routing.py), else the
    primary's. Writes take ``transaction``, always on the primary."""
    replica = replica_of(request.state)
    return replica.engine if replica is not None else request.app.state.engine


def connection(request: Request) -> AbstractContextManager[Connection]:
    """A connection for a ``with`` block (committed by nobody: reads), on a replica for a public read."""
    return engine_of(request).connect()


def transaction(request: Request) -> AbstractContextManager[Connection]:
    """A transaction of the primary's engine, for a ``with`` block: committed at its end, rolled back on error."""
    return request.app.state.engine.begin()


def database_version(request: Request) -> str | None:
    """PostGIS's version after a real round trip (``/healthz``), None when the database cannot be reached."""
    return postgis_version(request.app.state.engine)


def replica_status(request: Request) -> list[dict] | None:
    """Each read replica's state for ``/healthz`` (db_routing.ReplicaSet.status), None when none is configured."""
    replicas = getattr(request.app.state, "replicas", None)
    return replicas.status() if replicas else None


def secret_key_of(request: Request) -> str:
    return request.app.state.secret_key


def export_dir_of(request: Request) -> Path:
    return request.app.state.export_dir


def hot_path_limiter(request: Request, threads: int) -> anyio.CapacityLimiter:
    """The hot path's own small thread pool: one per event loop (a limiter belongs to the loop it was made
    in, and an app may outlive one, as in tests)."""
    state = request.app.state
    loop = asyncio.get_running_loop()
    owner, limiter = getattr(state, "hot_path_limiter", (None, None))
    if owner is not loop:
        limiter = anyio.CapacityLimiter(threads)
        state.hot_path_limiter = (loop, limiter)
    return limiter


# The public hot path (the resident map's report and address search, OGC API pages and features) runs its
# blocking work on at most this many threads per process: one computes while another waits for PostgreSQL.
# Left to the shared pool (40 threads), 16 concurrent requests became 8 threads per worker taking the GIL from
# each other and from the event loop: on 2 cores, ≈ 600 reports/s and a p99 of 70–190 ms, against ≈ 800–950
# reports/s and 28–39 ms with 2 threads (docs/benchmarks.md). How many: ``settings.api.hot_path_threads``.
async def in_hot_path(request: Request, work: Callable[..., T], *args: object) -> T:
    """``work(*args)`` on a thread of the hot path's own small pool, in one hop (handlers that call it are
    ``async``: a sync handler costs one hop for itself and one per sync dependency)."""
    threads = request.app.state.settings.api.hot_path_threads
    return await anyio.to_thread.run_sync(work, *args, limiter=hot_path_limiter(request, threads))


def read_only(request: Request, work: Callable[[Connection], T]) -> T:
    """Run ``work`` on a connection of the read engine (``db.make_read_engine``: autocommit, read-only, generic
    plans, no ping): for a single short statement, no BEGIN, ROLLBACK or ping around it. A connection found
    dead (there is no ping) is retried once, as ``api/resident_api.py`` does."""
    state = request.app.state
    replica = replica_of(request.state)
    engine = replica.read_engine if replica is not None else getattr(state, "read_engine", None)
    try:
        return _retried_once(engine or state.engine, work)
    except (psycopg.OperationalError, DBAPIError) as exc:
        if replica is not None:
            # Statements run on the driver connection (the report's prepared one) escape SQLAlchemy's error
            # event: a replica found away here leaves the rotation too, so api/read_routing.py answers elsewhere.
            replica.failed(exc)
        if engine is not None and isinstance(getattr(exc, "orig", exc), psycopg.errors.QueryCanceled):
            # The read engine's own time limit, for the problem the error becomes (errors.database_problem).
            getattr(exc, "orig", exc).timeout_ms = state.settings.db.read_statement_timeout_ms
        raise


def _retried_once(engine: Engine, work: Callable[[Connection], T]) -> T:
    for attempt in (1, 2):
        try:
            with engine.connect() as conn:
                try:
                    return work(conn)
                except psycopg.OperationalError:
                    # Raised by a statement run on the driver connection, which SQLAlchemy did not see: a
                    # connection found broken is dropped from the pool here, then retried like the others.
                    if attempt == 2 or not conn.connection.driver_connection.broken:
                        raise
                    conn.invalidate()
        except DBAPIError as exc:
            if not exc.connection_invalidated or attempt == 2:
                raise
    raise AssertionError("unreachable")


# async: no I/O, and a sync dependency would cost a trip to the thread pool.
async def get_public_layer(layer_id: str, registry: Annotated[LayerRegistry, Depends(get_registry)]) -> LayerDecl:
    """The layer named in the path, if it exists and anonymous readers may see it."""
    if layer_id not in registry or not registry.get(layer_id).is_public:
        raise NotFound(f"Aucune couche publique « {layer_id} »")
    return registry.get(layer_id)


# -- accounts: who is asking (services/editing/accounts.py), what they may read (services/editing/rights.py) ----
SESSION_COOKIE = "gs_session"
CSRF_HEADER = "X-CSRF-Token"


def _token_from_header(value: str) -> tuple[str, str]:
    """The scheme and personal access token of ``Authorization: Bearer <token>``, or ``Basic`` with the token as
    password (QGIS's basic authentication); account passwords are never accepted here, only at the login form."""
    scheme, _, credentials = value.strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return "bearer", credentials.strip()
    if scheme.lower() == "basic":
        try:
            _user, _, token = base64.b64decode(credentials.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            token = ""
        if token:
            return "basic", token
    raise Unauthenticated("En-tête Authorization non reconnu : « Bearer <jeton> » attendu")


# A JSON body: what no HTML form can send, and what a script of another site can only send after a CORS
# preflight, which this service never grants with credentials.
_JSON_MEDIA_TYPE = re.compile(r"^application/([\w.-]+\+)?json$")


def _refuse_forgeable_basic(request: Request) -> None:
    """A browser replays the Basic credentials it has cached for a site on every request to it, including one a
    page of another site makes it send: a form, or ``fetch`` in ``no-cors`` mode. Those can only be GET, HEAD
    or POST with a form, text or no content type; PUT, PATCH and DELETE always need a CORS preflight. So with
    Basic, a POST must carry a JSON body type (QGIS and OWSLib do); GET and HEAD change nothing."""
    if request.method != "POST":
        return
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not _JSON_MEDIA_TYPE.match(media_type):
        raise Forbidden("Identifiants HTTP Basic refusés pour une requête POST qui n'est pas du JSON (c'est ce "
                        "qu'enverrait un formulaire d'un autre site) : envoyez Content-Type: application/json, "
                        "ou le jeton dans Authorization: Bearer")


async def get_principal(request: Request) -> Principal:
    """Who is asking: a token (``Authorization``), else a session cookie, else the anonymous public.

    A bad token is a 401 (a script must know); a stale session cookie just reads as anonymous.
    """
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    header = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    # async, with the thread pool only for credentials to look up: most reads are anonymous, and a sync
    # dependency costs a trip to the thread pool on every request.
    principal = await run_in_threadpool(_principal_from, request, header, cookie) if header or cookie \
        else ANONYMOUS_PRINCIPAL
    request.state.principal = principal
    return principal


def _principal_from(request: Request, header: str | None, cookie: str | None) -> Principal:
    if header:
        scheme, token = _token_from_header(header)
        if scheme == "basic":
            _refuse_forgeable_basic(request)
    with request.app.state.engine.begin() as conn:
        if header:
            found = accounts.principal_from_token(conn, token)
            if found is None:
                raise Unauthenticated("Jeton d'accès invalide, expiré ou révoqué")
            return found
        return accounts.principal_from_session(conn, cookie or "") or ANONYMOUS_PRINCIPAL


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_reader(request: Request) -> Reader:
    """What the request may read: the public, or more for accounts (``rights.reader_for``).

    Called as a function too (``api/ogc_read.py``): each dependency FastAPI resolves costs it more CPU per
    request than this does; the principal and the reader are therefore kept on the request.
    """
    cached = getattr(request.state, "reader", None)
    if cached is not None:
        return cached
    principal = await get_principal(request)
    reader = await run_in_threadpool(_reader_of, request, principal) if principal.authenticated else ANONYMOUS
    request.state.reader = reader
    return reader


def _reader_of(request: Request, principal: Principal) -> Reader:
    with request.app.state.engine.connect() as conn:
        return rights.reader_for(conn, principal)


def get_writer(request: Request, principal: PrincipalDep) -> Principal:
    """An account allowed to send changes. Through a session cookie, the request must also carry the
    session's anti-CSRF token (header ``X-CSRF-Token``): a cookie alone is what a forged request has."""
    rights.require_account(principal)
    if principal.via == "session":
        sent = request.headers.get(CSRF_HEADER, "")
        # Bytes: a header is read as Latin-1, and compare_digest refuses str holding non-ASCII characters.
        if not (principal.csrf_token and hmac.compare_digest(sent.encode(), principal.csrf_token.encode())):
            raise Forbidden("Jeton anti-CSRF manquant ou invalide (en-tête X-CSRF-Token) : rechargez la page")
    return principal


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[LayerRegistry, Depends(get_registry)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ConnectionDep = Annotated[Connection, Depends(get_connection)]
PublicLayerDep = Annotated[LayerDecl, Depends(get_public_layer)]
ReaderDep = Annotated[Reader, Depends(get_reader)]
WriterDep = Annotated[Principal, Depends(get_writer)]
