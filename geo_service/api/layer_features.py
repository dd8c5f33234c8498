"""``/api/layers``: the layer catalogue and each layer's features as streamed GeoJSON (the map's read path)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from geo_service.api.deps import EngineDep, PublicLayerDep, RegistryDep, SettingsDep
from geo_service.api.streams import started
from geo_service.layers import LayerDecl
from geo_service.services.publish import layer_geojson
from geo_service.services.publish.crs import CRS84, BBox, parse_bbox

if TYPE_CHECKING:  # types only: routers reach the database through deps.py and the services
    from sqlalchemy import Engine

router = APIRouter(prefix="/api/layers", tags=["couches"])


@router.get("", summary="Couches publiques et leur style")
def list_layers(registry: RegistryDep) -> list[dict]:
    return [
        {"id": layer.id, "title": layer.title, "description": layer.description, "group": layer.group,
         "geometry": layer.geometry, "attribution": layer.attribution, "licence": layer.licence,
         "style": layer.style.model_dump(), "popup": layer.popup,
         "fields": [f.model_dump(exclude_none=True) for f in layer.public_fields()]}
        for layer in registry if layer.is_public
    ]


def _stream(engine: Engine, layer: LayerDecl, bbox: BBox | None) -> Iterator[str]:
    # The connection lives as long as the response streams, not as long as the handler.
    with engine.connect() as conn:
        yield from layer_geojson.stream_geojson(conn, layer, bbox)


@router.get("/{layer_id}", summary="Toutes les entités d'une couche (GeoJSON)",
            response_class=StreamingResponse,
            responses={200: {"content": {"application/geo+json": {}}}, 404: {"description": "Couche inconnue"}})
def layer_features(layer: PublicLayerDep, engine: EngineDep, settings: SettingsDep,
                   bbox: str | None = Query(None, description="minLon,minLat,maxLon,maxLat (WGS84)")):
    box = parse_bbox(bbox, CRS84) if bbox is not None else None
    return StreamingResponse(
        started(_stream(engine, layer, box)), media_type="application/geo+json",
        headers={"Cache-Control": f"public, max-age={settings.api.cache_max_age_s}",
                 "Content-Disposition": f'inline; filename="{layer.id}.geojson"',
                 "X-Attribution": _ascii(layer.attribution)},
    )


def _ascii(value: str) -> str:
    # HTTP header values must be latin-1; attribution text is French (accents), so percent-encode.
    from urllib.parse import quote

    return quote(value, safe=" :,;()'/-")
