"""``/map/embed`` (the map for an iframe on lot.fr) and ``/map/embed/snippet`` (the page that writes the iframe).

The embed sets no cookie, loads nothing from elsewhere and may be cached; who may frame it (CSP
``frame-ancestors`` from ``settings.map.embed_frame_ancestors``) is said by the security headers middleware
(``api/security_headers.py``, configured in ``main.create_app``). Options it cannot use are shown as notices
(see ``services/resident/embed_options.py``).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from geo_service.api.deps import ConnectionDep, RegistryDep, SettingsDep, basemap_of, caches_of
from geo_service.api.router_helpers import templates_for
from geo_service.api.urls import site_url
from geo_service.services.resident import embed_options, map_page

router = APIRouter(include_in_schema=False)


def _base(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


@router.get("/map/embed", response_class=HTMLResponse)
def embed_page(request: Request, conn: ConnectionDep, registry: RegistryDep, settings: SettingsDep,
               layers: str | None = Query(None, description="Couches, séparées par des virgules"),
               lat: str | None = Query(None), lon: str | None = Query(None), zoom: str | None = Query(None),
               lang: str | None = Query(None, description="fr ou en")) -> HTMLResponse:
    """The map alone, for an iframe: the chosen layers with their legend, sources, and a link to /map."""
    base = _base(request)
    options = embed_options.parse_options(registry, layers, lat, lon, zoom, lang)
    page = map_page.build_map_page(conn, caches_of(request), settings.map, settings.territory.of_name, base_path=base,
                                   lang=options.lang, basemap=basemap_of(request))
    page.config["locate"] = False  # geolocation inside a foreign page needs the host's permission
    context = {"page": page, "base": base, "groups": embed_options.shown_groups(page.groups, options),
               "options": options,
               "texts": embed_options.chrome_texts(options.lang, settings.operator.name, settings.territory.of_name),
               "full_map": f"{base}/map?{urlencode(options.query())}"}
    # The security headers (the CSP and who may frame this page) are the middleware's (api/security_headers.py).
    return templates_for(settings.web_dir).TemplateResponse(
        request, "map/embed.html", context,
        headers={"Cache-Control": f"public, max-age={settings.api.cache_max_age_s}"})


@router.get("/map/embed/snippet", response_class=HTMLResponse)
def snippet_page(request: Request, registry: RegistryDep, settings: SettingsDep,
                 layers: Annotated[list[str] | None, Query()] = None, lat: str | None = Query(None),
                 lon: str | None = Query(None),
                 zoom: str | None = Query(None), lang: str | None = Query(None),
                 height: int = Query(embed_options.DEFAULT_HEIGHT, ge=200, le=2000)) -> HTMLResponse:
    """A French page (a plain GET form) that writes the iframe code for the chosen layers, centre and zoom."""
    base = _base(request)
    options = embed_options.parse_options(registry, ",".join(layers or []) or None, lat, lon, zoom, lang)
    context = {"base": base, "options": options, "height": height, "languages": map_page.LANGUAGES,
               "toggles": [(t, embed_options.shows(options, t.layer_id, t.id))
                           for layer in registry if layer.is_public for t in layer.toggles()],
               "code": embed_options.iframe_code(
                   site_url(request), options,
                   embed_options.chrome_texts("fr", settings.operator.name, settings.territory.of_name)["map"],
                   height),
               "preview": f"{base}/map/embed?{urlencode(options.query())}",
               "min_zoom": map_page.MIN_ZOOM, "max_zoom": map_page.MAX_ZOOM}
    return templates_for(settings.web_dir).TemplateResponse(request, "map/snippet.html", context)
