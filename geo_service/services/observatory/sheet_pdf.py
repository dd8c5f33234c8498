"""The EPCI sheet as PDF: the same HTML as the page, printed by WeasyPrint with its print stylesheet (A4).

WeasyPrint reads nothing from the network: the only resources a sheet names are the service's own static files
(its stylesheet), which ``local_fetcher`` maps to the static folder on disk; any other URL is refused, so a
value that slipped into the page could not make the service fetch a foreign address. Fonts are the system's
(DejaVu, Debian's ``fonts-dejavu-core``) through fontconfig, never downloaded. WeasyPrint needs Pango
(Debian's ``libpango-1.0-0``, ``libpangoft2-1.0-0``, ``libharfbuzz-subset0``: ``.ci/system-deps``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The base URL the sheet is printed under: an address that resolves nowhere, so nothing can be fetched by chance.
PRINT_BASE = "https://fiche.invalid"


def local_fetcher(static_dir: Path, static_prefix: str = "/static/"):
    """A WeasyPrint URL fetcher that only reads files under ``static_dir`` (by their /static/ URL)."""
    root = static_dir.resolve()

    def fetch(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        prefix = PRINT_BASE + static_prefix
        if not url.startswith(prefix):
            raise ValueError(f"Ressource non disponible pour l'impression : {url[:80]}")
        path = (root / url[len(prefix):].split("?")[0].split("#")[0]).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise ValueError(f"Ressource non disponible pour l'impression : {url[:80]}")
        media = "text/css" if path.suffix == ".css" else "image/svg+xml" if path.suffix == ".svg" else None
        return {"string": path.read_bytes(), "mime_type": media, "redirected_url": url}

    return fetch


def pdf(html: str, static_dir: Path) -> bytes:
    """``html`` (root-relative links to /static/) printed as a PDF document."""
    # Imported on the first sheet printed: WeasyPrint weighs ≈ 40 MB in every process that imports it.
    import weasyprint

    document = weasyprint.HTML(string=html, base_url=PRINT_BASE + "/", url_fetcher=local_fetcher(static_dir))
    return document.write_pdf()
