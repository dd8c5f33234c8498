"""``/api/export/{layer}?format=geojson|gpkg|csv``: a whole layer as a file, with its licence and attribution.

Anonymous readers get the public layers' published rows and public fields; accounts what their reader
allows (``services/rights.py``). The file is named after the layer and the day.
"""

from __future__ import annotations

import shutil
from datetime import date

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from geo_service.api.deps import ReaderDep, RegistryDep
from geo_service.errors import NotFound
from geo_service.services import export

router = APIRouter(prefix="/api/export", tags=["Export"])


@router.get("/{layer_id}", summary="Exporter une couche (GeoJSON, GeoPackage, CSV) avec sa licence",
            responses={200: {"content": {media: {} for media in export.FORMATS.values()}}})
def export_layer(request: Request, layer_id: str, registry: RegistryDep, reader: ReaderDep,
                 format: str = Query("geojson", description="geojson, gpkg ou csv")) -> Response:  # noqa: A002
    fmt = export.check_format(format)
    if layer_id not in registry or not reader.can_read(registry.get(layer_id)):
        raise NotFound(f"Aucune couche « {layer_id} »")
    layer = registry.get(layer_id)
    name = f"{layer.id}-{date.today().isoformat()}.{fmt}"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    engine = request.app.state.engine
    if fmt == "gpkg":
        with engine.connect() as conn:
            path = export.geopackage(conn, layer, reader)
        cleanup = BackgroundTask(shutil.rmtree, path.parent, ignore_errors=True)
        return FileResponse(path, media_type=export.FORMATS[fmt], filename=name, background=cleanup)
    writer = export.geojson if fmt == "geojson" else export.csv_rows

    def chunks():
        # Its own connection: it lives as long as the response streams.
        with engine.connect() as conn:
            yield from writer(conn, layer, reader)

    return StreamingResponse(chunks(), media_type=export.FORMATS[fmt], headers=disposition)
