"""HTML pages for residents: ``/map`` ("Services près de chez vous"), rendered from ``web/templates/``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from geo_service.api.deps import ConnectionDep, RegistryDep, SettingsDep
from geo_service.services import map_view

router = APIRouter(include_in_schema=False)


@lru_cache
def templates_for(web_dir: Path) -> Jinja2Templates:
    """One Jinja environment per template folder (settings may differ between apps, e.g. in tests)."""
    return Jinja2Templates(directory=web_dir / "templates")


@router.get("/map", response_class=HTMLResponse)
def resident_map(request: Request, conn: ConnectionDep, registry: RegistryDep, settings: SettingsDep) -> HTMLResponse:
    """The resident map: layer toggles and legend from the registry; map.js fetches the features."""
    # Root-relative URLs that still work when the service is mounted under a prefix by a proxy.
    base = request.scope.get("root_path", "").rstrip("/")
    page = map_view.build_map_page(conn, registry, settings.map, settings.territory.name, base_path=base)
    return templates_for(settings.web_dir).TemplateResponse(request, "map/index.html", {"page": page, "base": base})
