"""``/api/export/{layer}?format=geojson|gpkg|csv``: a whole layer as a file, with its licence and attribution.

Anonymous readers get the public layers' published rows and public fields; accounts what their reader
allows (``services/editing/rights.py``). The file is built once per layer version and audience and then served from
disk (``services/publish/export_cache.py``), with an ETag of that version: a second download of an unchanged layer
reads a file, and a client that has it gets a 304. It is named after the layer and the day.
"""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response

from geo_service.api.caching import cache_headers, not_modified
from geo_service.api.deps import ReaderDep, RegistryDep, SettingsDep, engine_of, export_dir_of
from geo_service.errors import NotFound
from geo_service.services.publish import export_cache, layer_export

router = APIRouter(prefix="/api/export", tags=["Export"])


@router.get("/{layer_id}", summary="Exporter une couche (GeoJSON, GeoPackage, CSV) avec sa licence",
            responses={200: {"content": {media: {} for media in layer_export.FORMATS.values()}}})
def export_layer(request: Request, layer_id: str, registry: RegistryDep, reader: ReaderDep, settings: SettingsDep,
                 format: str = Query("geojson", description="geojson, gpkg ou csv")) -> Response:  # noqa: A002
    fmt = layer_export.check_format(format)
    if layer_id not in registry or not reader.can_read(registry.get(layer_id)):
        raise NotFound(f"Aucune couche « {layer_id} »")
    layer = registry.get(layer_id)
    exported = export_cache.export_file(engine_of(request), layer, reader, fmt, export_dir_of(request))
    # The copy compressed when it was built, for clients that accept gzip (browsers do): the GZip middleware
    # leaves an answer with a Content-Encoding alone. Each representation has its own ETag.
    packed = accepts_gzip(request)
    etag = f'{exported.etag[:-1]}-gzip"' if packed else exported.etag
    headers = cache_headers(settings, etag, vary="Accept-Encoding")
    if not_modified(request, etag, None):
        return Response(status_code=304, headers=headers)
    if packed:
        headers["Content-Encoding"] = "gzip"
    return FileResponse(exported.gzipped if packed else exported.path, media_type=layer_export.FORMATS[fmt],
                        headers=headers, filename=f"{layer.id}-{date.today().isoformat()}.{fmt}")


def accepts_gzip(request: Request) -> bool:
    """The GZip middleware's own test (Starlette's: "gzip" anywhere in ``Accept-Encoding``), so that an export is
    compressed exactly when any other answer would be."""
    return "gzip" in request.headers.get("accept-encoding", "")
