"""Which base map the service's maps draw, from the settings: a preset, a custom URL, the self-hosted file, or none.

Resolved once when the application starts (``main.create_app``): the maps' tile layers, the attribution shown,
and the one outside host the Content-Security-Policy lets images come from all derive from the ``BasemapChoice``.

Presets (README, « Fond de carte »):

- ``ign-plan``: Plan IGN v2 from the IGN Géoplateforme's WMTS (layer GEOGRAPHICALGRIDSYSTEMS.PLANIGNV2, tile matrix
  set PM, no key), Licence Ouverte 2.0; the aerial photographs (ORTHOIMAGERY.ORTHOPHOTOS) come from the same server.
- ``osm``: OpenStreetMap-compatible tiles, tile.openstreetmap.org unless ``basemap_url`` names another server. The
  OSMF's tile usage policy allows light use with the attribution shown and no heavy or bulk downloading; a public
  service with many visitors should use its own server or a provider (``basemap_url``).
- ``self-hosted``: ``{basemap_dir}/plan.mbtiles`` (and ``photo.mbtiles``) served by the service at
  ``/basemap/{plan|photo}/{z}/{x}/{y}.{format}``: no request leaves the deployment's servers.
- ``custom``: ``basemap_url`` with ``basemap_attribution``.
- ``none``: the maps draw the communes and EPCI outlines only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from geo_service.services.basemap import mbtiles_archive
from geo_service.settings import MapSettings

log = logging.getLogger(__name__)

# The Géoplateforme's WMTS GetTile request in the PM (Web Mercator) tile matrix set, whose matrices are the web
# maps' z/x/y grid: TILEROW is y from the north, TILECOL is x. Leaflet fills {z}, {x} and {y}.
_IGN_WMTS = ("https://data.geopf.fr/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER={layer}&STYLE=normal"
             "&TILEMATRIXSET=PM&FORMAT={format}&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}")
IGN_PLAN_URL = _IGN_WMTS.format(layer="GEOGRAPHICALGRIDSYSTEMS.PLANIGNV2", format="image/png")
IGN_PHOTO_URL = _IGN_WMTS.format(layer="ORTHOIMAGERY.ORTHOPHOTOS", format="image/jpeg")
IGN_PLAN_ATTRIBUTION = "Fond de carte : Plan IGN © IGN – Géoplateforme (Licence Ouverte 2.0)"
IGN_PHOTO_ATTRIBUTION = "Photographies aériennes © IGN – Géoplateforme (Licence Ouverte 2.0)"
OSM_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_ATTRIBUTION = "Fond de carte © les contributeurs d'OpenStreetMap (ODbL, openstreetmap.org/copyright)"
SELF_HOSTED_ATTRIBUTION = "Fond de carte hébergé par le service"
CUSTOM_ATTRIBUTION = "Fond de carte"
TILE_PATH = "/basemap/{tileset}/{{z}}/{{x}}/{{y}}.{format}"
TILESETS = {"plan": "Plan", "photo": "Photographies aériennes"}


@dataclass(frozen=True)
class TileSource:
    """One raster tile layer as the maps draw it."""

    tileset: str  # "plan" or "photo"
    label: str  # French, for the editor's layer switch
    url: str  # a Leaflet URL template; relative (to the service) when self-hosted
    attribution: str  # plain text, shown on the map and in the page
    min_zoom: int = 0
    max_zoom: int = 19  # deepest tiles that exist: Leaflet enlarges them beyond
    bounds: mbtiles_archive.Bbox | None = None  # where tiles exist (self-hosted): Leaflet asks for no others
    file: Path | None = None  # the MBTiles of a self-hosted source
    format: str = "png"  # of a self-hosted source's tiles (the extension its URL ends with)

    def for_page(self, base_path: str) -> dict:
        """What a map script needs, with a self-hosted URL under the service's path prefix."""
        url = base_path + self.url if self.file is not None else self.url
        west, south, east, north = self.bounds or (None, None, None, None)
        return {"tileset": self.tileset, "label": self.label, "url": url, "attribution": self.attribution,
                "minZoom": self.min_zoom, "maxNativeZoom": self.max_zoom,
                "bounds": [[south, west], [north, east]] if self.bounds else None}


@dataclass(frozen=True)
class BasemapChoice:
    plan: TileSource | None = None
    photo: TileSource | None = None
    # What went wrong while resolving (a self-hosted file missing or unreadable), for the start-up log.
    problems: list[str] = field(default_factory=list)

    @property
    def sources(self) -> list[TileSource]:
        return [s for s in (self.plan, self.photo) if s is not None]

    def hosted(self, tileset: str) -> TileSource | None:
        """The self-hosted source of ``tileset`` (what /basemap/{tileset}/… serves), if there is one."""
        return next((s for s in self.sources if s.tileset == tileset and s.file is not None), None)

    def image_sources(self) -> list[str]:
        """The CSP sources of the outside tile servers in use (none when self-hosted or none)."""
        return list(dict.fromkeys(s for s in (tile_source(src.url) for src in self.sources) if s))

    def for_page(self, base_path: str) -> dict:
        return {key: source.for_page(base_path) if source else None
                for key, source in (("plan", self.plan), ("photo", self.photo))}


def tile_source(url_template: str) -> str | None:
    """The CSP source of a raster tile URL template (``https://{s}.tile.example.org/{z}/{x}/{y}.png`` →
    ``https://*.tile.example.org``), or None for an empty or relative one (already 'self')."""
    parts = urlsplit(url_template)
    if not parts.scheme or not parts.netloc:
        return None
    host = parts.netloc.rsplit("@", 1)[-1]
    labels = host.split(".")
    if labels[0].startswith("{"):  # a subdomain template ({s}): CSP's wildcard, the leftmost label only
        labels[0] = "*"
    return f"{parts.scheme}://{'.'.join(labels)}"


def hosted_file(settings: MapSettings, tileset: str) -> Path:
    """Where ``geo-service basemap install`` puts the file of ``tileset`` (plan.mbtiles, photo.mbtiles)."""
    return settings.basemap_dir / f"{tileset}.mbtiles"


def _hosted(settings: MapSettings, tileset: str, problems: list[str]) -> TileSource | None:
    path = hosted_file(settings, tileset)
    try:
        info = mbtiles_archive.read_info(path)
    except mbtiles_archive.MbtilesError as exc:
        problems.append(f"fond de carte hébergé ({TILESETS[tileset].lower()}) indisponible : {exc}")
        return None
    if not info.raster:
        problems.append(f"{path} : tuiles {info.format} (vectorielles) servies à /basemap/{tileset}/…, mais les "
                        "cartes du service ne dessinent que des tuiles raster (png, jpg, webp)")
    attribution = settings.basemap_attribution if tileset == "plan" and settings.basemap_attribution else \
        info.attribution or SELF_HOSTED_ATTRIBUTION
    return TileSource(tileset, TILESETS[tileset], TILE_PATH.format(tileset=tileset, format=info.format),
                      attribution, info.min_zoom, info.max_zoom, info.bounds, path, info.format)


def _plan(settings: MapSettings, problems: list[str]) -> TileSource | None:
    own = settings.basemap_attribution
    match settings.basemap or ("custom" if settings.basemap_url else "none"):
        case "ign-plan":
            return TileSource("plan", TILESETS["plan"], IGN_PLAN_URL, own or IGN_PLAN_ATTRIBUTION)
        case "osm":
            return TileSource("plan", TILESETS["plan"], settings.basemap_url or OSM_URL, own or OSM_ATTRIBUTION)
        case "self-hosted":
            return _hosted(settings, "plan", problems)
        case "custom" if settings.basemap_url:
            return TileSource("plan", TILESETS["plan"], settings.basemap_url, own or CUSTOM_ATTRIBUTION)
        case "custom":
            problems.append("fond de carte « custom » sans GEO_SERVICE_MAP__BASEMAP_URL")
    return None


def _photo(settings: MapSettings, problems: list[str]) -> TileSource | None:
    aerial = settings.aerial
    if not aerial:  # follows the plan: IGN photographs with the IGN Plan, the installed file when self-hosted
        if settings.basemap == "ign-plan":
            aerial = "ign-ortho"
        elif settings.basemap == "self-hosted" and hosted_file(settings, "photo").is_file():
            aerial = "self-hosted"
    if aerial == "ign-ortho":
        return TileSource("photo", TILESETS["photo"], IGN_PHOTO_URL, IGN_PHOTO_ATTRIBUTION)
    if aerial == "self-hosted":
        return _hosted(settings, "photo", problems)
    return None


def resolve(settings: MapSettings) -> BasemapChoice:
    """The base map and aerial photographs the settings ask for (a self-hosted file is read and checked now)."""
    problems: list[str] = []
    plan = _plan(settings, problems)
    return BasemapChoice(plan, _photo(settings, problems), problems)


def start_up_warnings(choice: BasemapChoice, mode: str) -> list[str]:
    """What to log at start-up: the resolving problems, and a production map without a base map."""
    warnings = list(choice.problems)
    if mode == "production" and choice.plan is None:
        warnings.append("mode production sans fond de carte : les habitants ne verront pas les rues autour de chez "
                        "eux (GEO_SERVICE_MAP__BASEMAP, README « Fond de carte »)")
    return warnings
