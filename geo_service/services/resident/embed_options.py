"""``/map/embed`` for lot.fr and other sites: the options of the URL and the iframe snippet.

An embed must never break the host page: an unknown layer name, a coordinate that is not a number or an
unknown language is ignored and named in a visible notice inside the map ("Couche inconnue ignorée : …"),
and the rest of the options still apply. The editor who pastes a wrong snippet sees why at once; a resident
on lot.fr still gets a working map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from html import escape
from urllib.parse import urlencode

from geo_service.layers import LayerRegistry
from geo_service.services.resident.map_page import LANGUAGES, MAX_ZOOM, MIN_ZOOM, LayerGroupView

MAX_LAYERS_PARAM = 500  # characters of `layers=` considered; beyond is not a list of layer ids
DEFAULT_HEIGHT = 500


@dataclass
class EmbedOptions:
    """What the embed shows: layers (known and public), optional centre and zoom, chrome language, notices."""

    layers: list[str]  # layer ids, or toggle ids of split layers ("white_zones:tous")
    lat: float | None = None
    lon: float | None = None
    zoom: int | None = None
    lang: str = "fr"
    notices: list[str] = field(default_factory=list)

    def query(self) -> dict[str, str]:
        """The URL parameters that reproduce these options (for the snippet and "open the full map")."""
        out = {"layers": ",".join(self.layers)}
        if self.lat is not None and self.lon is not None:
            out.update(lat=f"{self.lat:.5f}", lon=f"{self.lon:.5f}")
        if self.zoom is not None:
            out["zoom"] = str(self.zoom)
        if self.lang != "fr":
            out["lang"] = self.lang
        return out


def _number(value: str | None, name: str, bound: float, notices: list[str]) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not -bound <= number <= bound:
        notices.append(f"Paramètre {name} ignoré : « {value[:30]} » n'est pas un nombre entre -{bound:g} et {bound:g}.")
        return None
    return number


def parse_options(registry: LayerRegistry, layers: str | None, lat: str | None, lon: str | None,
                  zoom: str | None, lang: str | None) -> EmbedOptions:
    """Read the embed's URL parameters; what cannot be used is dropped and explained in ``notices``."""
    notices: list[str] = []
    # A layer's id, or one of its toggles' (white_zones:orange) when it is split by style.toggle_by.
    public = [name for layer in registry if layer.is_public
              for name in dict.fromkeys([layer.id, *(t.id for t in layer.toggles())])]
    defaults = [t.id for layer in registry if layer.is_public for t in layer.toggles() if t.visible]
    if layers is None or not layers.strip():
        chosen = defaults
    else:
        names = [n.strip() for n in layers[:MAX_LAYERS_PARAM].split(",") if n.strip()]
        chosen = [n for n in dict.fromkeys(names) if n in public]
        unknown = [n for n in dict.fromkeys(names) if n not in public]
        if unknown:
            shown = ", ".join(n[:40] for n in unknown[:5]) + (" …" if len(unknown) > 5 else "")
            notices.append(f"Couche{'s' if len(unknown) > 1 else ''} inconnue{'s' if len(unknown) > 1 else ''} "
                           f"ignorée{'s' if len(unknown) > 1 else ''} : {shown}.")
        if not chosen:
            chosen = defaults
            notices.append("Aucune couche connue demandée : couches par défaut affichées.")
    y, x = _number(lat, "lat", 90, notices), _number(lon, "lon", 180, notices)
    if (y is None) != (x is None):
        notices.append("Centre ignoré : indiquez lat et lon ensemble.")
        y = x = None
    level = None
    if zoom is not None and zoom.strip():
        try:
            level = int(zoom)
        except ValueError:
            level = None
        if level is None or not MIN_ZOOM <= level <= MAX_ZOOM:
            notices.append(f"Paramètre zoom ignoré : un entier de {MIN_ZOOM} à {MAX_ZOOM} est attendu.")
            level = None
    language = (lang or "fr").strip().lower()
    if language not in LANGUAGES:
        notices.append(f"Langue « {language[:10]} » non disponible : français utilisé.")
        language = "fr"
    return EmbedOptions(chosen, y, x, level, language, notices)


def shows(options: EmbedOptions, layer_id: str, toggle_id: str) -> bool:
    """Does the embed show this toggle: named itself, or its whole layer named?"""
    return toggle_id in options.layers or layer_id in options.layers


def shown_groups(groups: list[LayerGroupView], options: EmbedOptions) -> list[LayerGroupView]:
    """The panel's groups reduced to the chosen layers, all drawn; of a split layer, the chosen toggles only."""
    out = []
    for group in groups:
        layers = []
        for view in group.layers:
            parts = tuple(replace(p, visible=True) for p in view.parts if shows(options, view.id, p.id))
            if view.id in options.layers or parts:
                layers.append(replace(view, visible=True, parts=parts))
        if layers:
            out.append(LayerGroupView(group.title, layers))
    return out


def embed_url(base_url: str, options: EmbedOptions) -> str:
    return f"{base_url.rstrip('/')}/map/embed?{urlencode(options.query())}"


def iframe_code(base_url: str, options: EmbedOptions, title: str, height: int = DEFAULT_HEIGHT) -> str:
    """The HTML to paste in a page: a titled, lazy iframe without referrer."""
    src = escape(embed_url(base_url, options), quote=True)
    return (f'<iframe src="{src}" title="{escape(title, quote=True)}" width="100%" height="{int(height)}" '
            f'style="border:0" loading="lazy" referrerpolicy="no-referrer"></iframe>')


# The few words of the embed's own chrome, in the languages it offers (layer names stay French); {operator} is
# who runs the service, {of_territory} the territory with its article (« du Lot », « de l'Aveyron »).
TEXTS: dict[str, dict[str, str]] = {
    "fr": {"legend": "Légende et couches", "open": "Ouvrir la carte complète", "demo": "Données de démonstration",
           "map": "Carte des services numériques {of_territory} — {operator}", "notices": "Remarques sur cette carte"},
    "en": {"legend": "Legend and layers", "open": "Open the full map", "demo": "Demonstration data",
           "map": "Map of digital services — {operator}", "notices": "Notes about this map"},
}


def chrome_texts(lang: str, operator: str, of_territory: str) -> dict[str, str]:
    """The embed's own words in ``lang``, naming the operator and the territory."""
    return {key: value.format(operator=operator, of_territory=of_territory) for key, value in TEXTS[lang].items()}
