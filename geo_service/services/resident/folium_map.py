"""The Leaflet map object of ``/map`` and ``/embed``, built with Folium restricted to self-hosted assets.

``LocalMap`` replaces Folium's CDN links (Leaflet, jQuery, Bootstrap, Font Awesome, awesome-markers) with
our vendored Leaflet and markercluster only, and its header drops Folium's page-wide styles and its
``user-scalable=no`` viewport, which would forbid zooming the page (WCAG 1.4.4).

Apart from ``map_page`` because Folium loads pandas: ≈ 75 MB of resident memory in a process that imports it.
``map_page`` imports this module on the first map page, so a process serving only the API, the tiles and the
reports never carries it (``tests/test_process_memory.py``).
"""

from __future__ import annotations

from typing import Any

import folium
from folium.template import Template

from geo_service.services.basemap import basemap_choice
from geo_service.services.basemap.basemap_choice import BasemapChoice
from geo_service.services.resident.map_page import MAX_ZOOM, MIN_ZOOM, Bounds, FoliumParts
from geo_service.settings import MapSettings


def vendor_assets(static_base: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The (name, url) JS and CSS lists the page loads, all under our own ``/static/vendor/``."""
    vendor = f"{static_base}/vendor"
    js = [("leaflet", f"{vendor}/leaflet/leaflet.js"),
          ("markercluster", f"{vendor}/leaflet.markercluster/leaflet.markercluster.js")]
    css = [("leaflet_css", f"{vendor}/leaflet/leaflet.css"),
           # MarkerCluster.Default.css is not linked: map.css draws clusters in each layer's colour.
           ("markercluster_css", f"{vendor}/leaflet.markercluster/MarkerCluster.css")]
    return js, css


class LocalMap(folium.Map):
    """A ``folium.Map`` that loads only the given local assets and renders an accessible, page-friendly div."""

    _template = Template(
        """
        {% macro header(this, kwargs) %}{% endmacro %}

        {% macro html(this, kwargs) %}
            <div class="folium-map" id={{ this.get_name()|tojson }} role="region"
                 aria-label="{{ this.aria_label|e }}"></div>
        {% endmacro %}

        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = L.map(
                {{ this.get_name()|tojson }},
                {
                    center: {{ this.location|tojson }},
                    crs: L.CRS.{{ this.crs }},
                    ...{{ this.options|tojavascript }}
                }
            );
        {% endmacro %}
        """
    )

    def __init__(self, *, aria_label: str, js: list[tuple[str, str]], css: list[tuple[str, str]],
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.aria_label = aria_label
        # Folium gives min/max zoom to its tile layer only; without tiles the map needs them itself
        # (markercluster refuses a map without maxZoom). map.js draws its own foldable, text-only
        # "Sources des données" in place of Leaflet's attribution control.
        self.options.update(min_zoom=MIN_ZOOM, max_zoom=MAX_ZOOM, zoom_snap=0.5, attribution_control=False)
        # Instance attributes shadow Folium's class-level CDN lists.
        self.default_js = js
        self.default_css = css


def build_folium(bounds: Bounds, settings: MapSettings, static_base: str,
                 aria_label: str, basemap: BasemapChoice | None = None, base_path: str = "") -> FoliumParts:
    """Render the Folium map centred on the territory, over the base map the settings chose (none: no tiles).

    The fit to the territory is map.js's (``config.bounds``), done without animation: Folium's ``fit_bounds``
    animates from the initial zoom, and Leaflet drops every ``setView`` asked during a zoom animation — a
    shared link's zoom was lost that way, now and then.
    """
    js, css = vendor_assets(static_base)
    (south, west), (north, east) = bounds
    m = LocalMap(aria_label=aria_label, js=js, css=css, location=[(south + north) / 2, (west + east) / 2],
                 zoom_start=9, tiles=None, zoom_control=False, control_scale=False)
    plan = (basemap or basemap_choice.resolve(settings)).plan
    if plan is not None:
        tiles = plan.for_page(base_path)
        # Leaflet enlarges the deepest tiles beyond max_native_zoom, and asks for none outside a file's bounds.
        options = {"min_native_zoom": plan.min_zoom, "max_native_zoom": plan.max_zoom, "max_zoom": MAX_ZOOM}
        if tiles["bounds"]:
            options["bounds"] = tiles["bounds"]
        folium.TileLayer(tiles=tiles["url"], attr=plan.attribution, name=plan.label, **options).add_to(m)
    figure = m.get_root()
    figure.render()
    # Branca adds a <meta http-equiv> charset; our base template declares it once already.
    figure.header._children.pop("meta_http", None)
    return FoliumParts(map_name=m.get_name(), header=figure.header.render(), html=figure.html.render(),
                       script=figure.script.render())
