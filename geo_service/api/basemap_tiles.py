"""The self-hosted base map: ``/basemap/{plan|photo}/{z}/{x}/{y}.{format}``, tiles of the installed MBTiles.

Public (a base map is no one's data) and answered without reading the account. The ETag is made of the file's
size and modification time and the address, so a revalidation costs a ``stat`` and no read; a tile the file does
not hold is a 404, as is every tile when the base map is not self-hosted.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from geo_service.api.caching import cache_headers, etag_of, not_modified
from geo_service.api.deps import SettingsDep, basemap_of
from geo_service.errors import NotFound
from geo_service.services.basemap import mbtiles_archive
from geo_service.services.basemap.basemap_choice import TILESETS

router = APIRouter(tags=["Fond de carte"])
_GZIP_MAGIC = b"\x1f\x8b"


@router.get("/basemap/{tileset}/{z}/{x}/{y}.{ext}", summary="Une tuile du fond de carte hébergé par le service",
            response_class=Response,
            responses={200: {"content": {media: {} for media in mbtiles_archive.MEDIA_TYPES.values()},
                             "description": "La tuile, dans le format du fichier MBTiles installé"},
                       404: {"description": "Pas de fond de carte hébergé, ou pas de tuile à cette adresse"}})
def basemap_tile(request: Request, settings: SettingsDep, tileset: str, z: str, x: str, y: str,
                 ext: str) -> Response:
    zoom, col, row = mbtiles_archive.parse_address(z, x, y)
    source = basemap_of(request).hosted(tileset) if tileset in TILESETS else None
    if source is None or source.file is None:
        raise NotFound(f"Pas de fond de carte hébergé « {tileset} » sur ce service")
    fmt = source.format
    if ext != fmt:
        raise NotFound(f"Les tuiles de ce fond de carte sont au format {fmt}, pas « {ext} »")
    try:
        stat = source.file.stat()
    except OSError as exc:
        raise NotFound("Le fichier du fond de carte hébergé a disparu : réinstallez-le") from exc
    etag = etag_of("basemap", tileset, stat.st_size, stat.st_mtime_ns, zoom, col, row)
    headers = cache_headers(settings, etag, vary=None)
    if not_modified(request, etag, None):
        return Response(status_code=304, headers=headers)
    try:
        data = mbtiles_archive.read_tile(source.file, zoom, col, row)
    except mbtiles_archive.MbtilesError as exc:
        raise NotFound("Le fichier du fond de carte hébergé est illisible : réinstallez-le") from exc
    if data is None:
        raise NotFound(f"Pas de tuile {zoom}/{col}/{row} dans le fond de carte hébergé")
    if fmt == "pbf" and data.startswith(_GZIP_MAGIC):  # vector tiles are usually stored gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(data, media_type=mbtiles_archive.MEDIA_TYPES[fmt], headers=headers)
