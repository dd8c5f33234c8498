"""GDAL (through pyogrio), able to open the vector formats the service reads and nothing else, offline.

GDAL chooses a driver by a file's content, among about 180: a file sent as GeoJSON may turn out to be a
virtual dataset (VRT) that reads another file of the server, a WFS/OAPIF/HTTP description that fetches a URL,
or one of many rarely used parsers. And even a plain GeoJSON may name its CRS by a link that GDAL fetches
(``"crs": {"type": "link", …}``), as may a shapefile's ``.prj``. So, before the first file is opened:

- every driver but GeoJSON, GeoPackage, shapefile and FlatGeobuf is deregistered from the process's GDAL
  (the driver manager is process-wide, so this holds for every thread), and ``GDAL_SKIP`` names the others
  so that a later ``GDALAllRegister`` does not bring them back;
- GDAL's HTTP client is replaced by a function that refuses every request (``CPLHTTPSetFetchCallback``).

The formats are also checked by their bytes before GDAL is called (``formats.py``), and the paths handed to
GDAL are always files the service wrote itself (never ``/vsicurl/`` or a URL). pyogrio exposes neither a
driver allow-list nor the HTTP hook, hence the few C calls below on the GDAL library pyogrio loaded; if that
library cannot be found, no file is opened at all rather than with every driver and the network.
"""

from __future__ import annotations

import ctypes
import threading
from collections import deque
from pathlib import Path
from typing import Any

from geo_service.errors import ImportFileError

# GDAL's short names of the drivers kept (GeoJSON, GeoPackage, shapefile, FlatGeobuf).
ALLOWED_DRIVERS = frozenset({"GeoJSON", "GPKG", "ESRI Shapefile", "FlatGeobuf"})
_lock = threading.Lock()
_restricted = False
_fetch = None
# GDAL's CPLHTTPFetchCallbackFunc: (url, options, progress, progress arg, write, write arg, user data) → result.
_FETCH = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                          ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
_CURLE_COULDNT_CONNECT = 7
# The last requests GDAL was refused (for the tests, and for diagnosis: what a file tried to reach).
refused_requests: deque[str] = deque(maxlen=100)


class _HttpResult(ctypes.Structure):
    """The head of GDAL's ``CPLHTTPResult`` (status, content type, error text); the rest stays zero."""

    _fields_ = [("nStatus", ctypes.c_int), ("pszContentType", ctypes.c_void_p), ("pszErrBuf", ctypes.c_void_p)]


def _gdal_library() -> ctypes.CDLL:
    """The GDAL shared library pyogrio loaded (wheel-bundled or the system's), found in the process's maps."""
    import pyogrio  # noqa: F401 - loads GDAL

    with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
        paths = {line.split(maxsplit=5)[-1].strip() for line in maps if "libgdal" in line}
    found = sorted(p for p in paths if Path(p).name.startswith("libgdal") and Path(p).exists())
    if not found:
        raise RuntimeError("bibliothèque GDAL introuvable : les fichiers géographiques ne peuvent pas être ouverts "
                           "en sécurité")
    library = ctypes.CDLL(found[0])
    library.GDALGetDriverCount.restype = ctypes.c_int
    library.GDALGetDriver.restype = ctypes.c_void_p
    library.GDALGetDriver.argtypes = [ctypes.c_int]
    library.GDALGetDriverShortName.restype = ctypes.c_char_p
    library.GDALGetDriverShortName.argtypes = [ctypes.c_void_p]
    library.GDALDeregisterDriver.argtypes = [ctypes.c_void_p]
    library.VSICalloc.restype = ctypes.c_void_p
    library.VSICalloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
    library.CPLStrdup.restype = ctypes.c_void_p
    library.CPLStrdup.argtypes = [ctypes.c_char_p]
    library.CPLHTTPSetFetchCallback.argtypes = [_FETCH, ctypes.c_void_p]
    return library


def _refuse_network(library: ctypes.CDLL) -> _FETCH:
    """A fetch function that answers every request with a connection failure, allocated by GDAL (which frees it)."""

    def refuse(url: bytes, *_rest: object) -> int:
        refused_requests.append(url.decode(errors="replace")[:200])
        result = library.VSICalloc(1, 256)  # larger than CPLHTTPResult, all zero
        head = _HttpResult.from_address(result)
        head.nStatus = _CURLE_COULDNT_CONNECT
        head.pszErrBuf = library.CPLStrdup(b"network access refused by geo-service")
        return result

    return _FETCH(refuse)


def restrict_gdal() -> None:
    """Keep only ``ALLOWED_DRIVERS`` in this process's GDAL, and no network (idempotent; cheap once done)."""
    global _restricted, _fetch
    if _restricted:
        return
    with _lock:
        if _restricted:
            return
        import pyogrio

        library = _gdal_library()
        names = [library.GDALGetDriverShortName(library.GDALGetDriver(i)).decode()
                 for i in range(library.GDALGetDriverCount())]
        refused = [name for name in names if name not in ALLOWED_DRIVERS]
        # Commas: some short names hold spaces. Read by GDALAllRegister, should anything call it again.
        pyogrio.set_gdal_config_options({"GDAL_SKIP": ",".join(refused)})
        for i in reversed(range(library.GDALGetDriverCount())):
            driver = library.GDALGetDriver(i)
            if library.GDALGetDriverShortName(driver).decode() not in ALLOWED_DRIVERS:
                library.GDALDeregisterDriver(driver)
        _fetch = _refuse_network(library)  # kept referenced: GDAL calls it for the life of the process
        library.CPLHTTPSetFetchCallback(_fetch, None)
        _restricted = True


def registered_drivers() -> set[str]:
    """The drivers this process's GDAL can open files with (for the tests and ``geo-service`` diagnostics)."""
    import pyogrio

    return set(pyogrio.list_drivers())


def _call(function, path: str, name: str, **options: Any):
    restrict_gdal()
    try:
        return function(path, **options)
    except Exception as exc:  # noqa: BLE001 - whatever a hostile file makes the parser raise, it is unreadable
        raise ImportFileError(f"{name} : fichier géographique illisible ({_short(exc)})") from exc


def _short(exc: Exception) -> str:
    # GDAL's messages name the server's temporary paths: keep the reason, not the path.
    message = str(exc).split(";")[0]
    return message if len(message) < 200 else message[:200] + " …"


def read_info(path: str, name: str, **options: Any) -> dict:
    """pyogrio's description of one layer (fields, crs, geometry_type, features)."""
    import pyogrio

    return _call(pyogrio.read_info, path, name, **options)


def list_layers(path: str, name: str):
    """The layers of a file and their geometry types."""
    import pyogrio

    return _call(pyogrio.list_layers, path, name)


def read_features(path: str, name: str, **options: Any):
    """One chunk of features (``pyogrio.raw.read``: meta, fids, geometries as WKB, field values)."""
    import pyogrio.raw

    return _call(pyogrio.raw.read, path, name, **options)
