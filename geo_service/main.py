"""Composition root: ``create_app(settings)`` builds the FastAPI application.

The layer registry is validated and the connection pool opened once, in the lifespan, and kept on
``app.state``; routers reach them through ``geo_service.api.deps``.
"""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from geo_service.api import (
    admin_editor,
    admin_import,
    admin_json,
    admin_login,
    admin_people,
    admin_reports,
    admin_review,
    basemap_tiles,
    docs,
    embed_pages,
    health,
    indicator_api,
    layer_features,
    observatory_pages,
    ogc_read,
    ogc_write,
    open311_api,
    qgis_files,
    report_api,
    report_pages,
    resident_pages,
    tile_routes,
)
from geo_service.api import export_files as export_api
from geo_service.api import resident_api as nearby_api
from geo_service.api.deps import SESSION_COOKIE
from geo_service.api.middleware import BodySizeLimit, PrivateWhenAuthenticated, QgisHeaderCase, TrustedHosts
from geo_service.api.problems import install_problem_handlers
from geo_service.api.read_routing import ReadRouting
from geo_service.api.security_headers import SecurityHeaders, SecurityPolicy
from geo_service.db import make_engine, make_read_engine
from geo_service.db_routing import ReplicaSet
from geo_service.layers import LayerRegistry
from geo_service.services.app_caches import AppCaches
from geo_service.services.basemap import basemap_choice
from geo_service.services.publish.layer_versions import LayerVersions
from geo_service.services.tile_cache import TileCache
from geo_service.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # Process-wide: how soon a thread waiting for the GIL (the event loop, a hot-path thread back from PostgreSQL)
    # gets it from one that computes; a setting so that the tail of /api/nearby can be measured with it.
    sys.setswitchinterval(settings.api.gil_switch_ms / 1000)
    # Validate layer files now: a bad declaration must stop start-up, naming file and field.
    registry = LayerRegistry.from_dir(settings.layers_dir)
    # The base map of every map, read once (a self-hosted file installed again needs a restart to change format).
    basemap = basemap_choice.resolve(settings.map)
    for warning in basemap_choice.start_up_warnings(basemap, settings.mode):
        logging.getLogger("geo_service").warning(warning)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = make_engine(settings, web=True)
        # Built from the registry the app holds now (a test may have swapped it before starting the app).
        app.state.caches = AppCaches(app.state.registry, TileCache(
            settings.tiles.cache_mb * 2**20, settings.tiles.cache_dir, settings.tiles.cache_dir_mb * 2**20))
        app.state.read_engine = make_read_engine(settings)
        # Read replicas (db.replica_urls): their engines and the background checks of their lag (db_routing.py).
        app.state.replicas = ReplicaSet(settings, app.state.engine)
        app.state.replicas.start()
        # The layers' change counters in memory, told of changes by PostgreSQL (a cached tile then costs no statement).
        app.state.layer_versions = LayerVersions(settings.libpq_url) if settings.db.listen_layer_changes else None
        if app.state.layer_versions is not None:
            app.state.layer_versions.start()
        # Made at the first export (services/publish/export_cache.py), so that an instance that exports nothing leaves
        # nothing in the temp folder.
        app.state.export_dir = settings.resolved_export_dir()
        try:
            yield
        finally:
            app.state.replicas.close()
            if app.state.layer_versions is not None:
                app.state.layer_versions.stop()
            app.state.engine.dispose()
            app.state.read_engine.dispose()

    app = FastAPI(
        title=f"{settings.operator.name} — service géographique",
        description="Infrastructures et services numériques du territoire : fibre, montée en débit, "
                    "mobile, zones blanches, Wi-Fi public, tiers-lieux et lieux d'aide au numérique.",
        version="0.1.0",
        lifespan=lifespan,
        # /docs is api/docs.py (Swagger UI self-hosted, under the CSP); ReDoc would load from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.basemap = basemap
    install_problem_handlers(app)
    # Signs the pre-login CSRF tokens (api/admin_login.py). Production refuses to start without one (settings);
    # in development a random key per process is enough (login forms then last as long as the process).
    app.state.secret_key = settings.secret_key or secrets.token_urlsafe(32)
    # Innermost: public reads to a replica, a read whose replica failed run again elsewhere (api/read_routing.py).
    app.add_middleware(ReadRouting, session_cookie=SESSION_COOKIE)
    # Level 6, not Starlette's 9: the same size within 1 %, five times less CPU (bench/, docs/benchmarks.md).
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)
    app.add_middleware(PrivateWhenAuthenticated, cookie_name=SESSION_COOKIE)
    app.add_middleware(BodySizeLimit, max_bytes=settings.editing.max_body_bytes,
                       larger={"/admin/import": settings.editing.max_upload_bytes})
    if settings.api.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.api.cors_origins, allow_methods=["GET"])
    # Added last, run first: the real client and scheme (trusted proxies only), then the security headers on every
    # answer (the host check's refusals included), then the host check.
    app.add_middleware(TrustedHosts, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(SecurityHeaders, policy=SecurityPolicy(
        framable={"/map/embed": settings.map.embed_frame_ancestors},
        image_sources=basemap.image_sources(),
        hsts=settings.mode == "production"))
    if settings.trusted_proxies:
        # uvicorn's own handling stays off (cli/app.py serve): here, tests see the same as production.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    # Outermost: the middlewares above rewrite header lists in lower case.
    app.add_middleware(QgisHeaderCase)
    # The hot paths are matched first: each request is tried against the routes in order (≈100 µs when
    # /ogc came sixth). The resident map's (a request per keystroke and per click), then the OGC API's.
    app.include_router(nearby_api.router)
    app.include_router(indicator_api.router)
    app.include_router(observatory_pages.router)
    app.include_router(ogc_read.router)
    app.include_router(embed_pages.router)
    app.include_router(health.router)
    app.include_router(layer_features.router)
    app.include_router(resident_pages.router)
    app.include_router(ogc_write.router)
    app.include_router(admin_login.router)
    app.include_router(admin_json.router)
    app.include_router(admin_review.router)
    app.include_router(admin_people.router)
    app.include_router(admin_editor.router)
    app.include_router(admin_import.router)
    app.include_router(export_api.router)
    app.include_router(tile_routes.router)
    app.include_router(basemap_tiles.router)
    app.include_router(docs.router)
    app.include_router(report_api.router)
    app.include_router(report_pages.router)
    app.include_router(admin_reports.router)
    app.include_router(open311_api.router)
    app.include_router(qgis_files.router)
    static_dir = settings.web_dir / "static"
    static_dir.mkdir(parents=True, exist_ok=True)
    app.mount("/static", StaticFiles(directory=static_dir), name="static")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/map")

    return app


def app_from_environment() -> FastAPI:
    """Factory for uvicorn (``geo-service serve``): settings from the environment."""
    return create_app(Settings())
