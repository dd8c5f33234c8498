"""Vendor the browser libraries: ``npm ci`` in ``web/``, then copy their dist files and licences to ``static/vendor/``.

Pages load Leaflet and its plugins from our own ``/static/vendor/`` and never from a CDN: a resident's visit
must not leak to a third party, and the map must work on a network that reaches only this service.
Run ``python -m geo_service.vendor`` (``make`` does) after a clone or a change of ``web/package-lock.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from geo_service.settings import PROJECT_ROOT

# Written into node_modules after a successful `npm ci`: the lock file it installed, to skip the next run.
STAMP = ".geo-service-lock.sha256"


@dataclass(frozen=True)
class Package:
    """One npm package: the files pages use (globs under the package) and its licence file."""

    name: str
    files: tuple[str, ...]
    licence: str


PACKAGES = (
    Package("leaflet", ("dist/leaflet.js", "dist/leaflet.js.map", "dist/leaflet.css", "dist/images/*.png"),
            "LICENSE"),
    Package("leaflet.markercluster",
            ("dist/leaflet.markercluster.js", "dist/leaflet.markercluster.js.map", "dist/MarkerCluster.css",
             "dist/MarkerCluster.Default.css"),
            "MIT-LICENCE.txt"),
    # The /admin editor: placing, moving and reshaping geometries (MIT; its dist bundle includes turf).
    Package("@geoman-io/leaflet-geoman-free",
            ("dist/leaflet-geoman.min.js", "dist/leaflet-geoman.min.js.map", "dist/leaflet-geoman.css"), "LICENSE"),
    # Vector tiles of the dense layers on /map (web/static/js/map-tiles.js). Its licence (Beerware) is stated in
    # its README, the package has no licence file. Its bundled build also holds the libraries below (BSD, ISC,
    # MIT): their licence texts are copied with it, their code is not copied twice.
    Package("leaflet.vectorgrid", ("dist/Leaflet.VectorGrid.bundled.min.js",), "README.md"),
    Package("pbf", (), "LICENSE"),
    Package("ieee754", (), "LICENSE"),
    Package("vector-tile", (), "LICENSE.txt"),
    Package("point-geometry", (), "package.json"),  # declares ISC; ships no licence text
    Package("topojson-client", (), "LICENSE.md"),
    Package("whatwg-fetch", (), "LICENSE"),
    # /docs (api/docs.py): Swagger UI, served from here rather than from a CDN. Apache-2.0: its NOTICE goes with it,
    # and the bundle's own list of the libraries it holds.
    Package("swagger-ui-dist", ("swagger-ui-bundle.js", "swagger-ui-bundle.js.LICENSE.txt", "swagger-ui.css",
                                "favicon-32x32.png", "NOTICE"), "LICENSE"),
)


class VendorError(RuntimeError):
    """Vendoring cannot complete (npm missing or failing, a declared file absent)."""


def _lock_digest(web_dir: Path) -> str:
    return hashlib.sha256((web_dir / "package-lock.json").read_bytes()).hexdigest()


def node_modules_current(web_dir: Path) -> bool:
    """True when ``node_modules`` was installed by ``npm ci`` from the present lock file."""
    stamp = web_dir / "node_modules" / STAMP
    return stamp.is_file() and stamp.read_text().strip() == _lock_digest(web_dir)


def npm_ci(web_dir: Path) -> None:
    """Install exactly what the lock file pins (``npm ci``), then stamp node_modules with the lock's digest."""
    npm = shutil.which("npm")
    if npm is None:
        raise VendorError("npm est introuvable : installez Node.js (20 ou plus) pour construire web/static/vendor/")
    result = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=web_dir)
    if result.returncode != 0:
        raise VendorError(f"npm ci a échoué dans {web_dir} (code {result.returncode})")
    (web_dir / "node_modules" / STAMP).write_text(_lock_digest(web_dir) + "\n")


def copy_dist(web_dir: Path, target: Path) -> list[Path]:
    """Replace ``target`` with the declared files of every package, keeping their layout under dist/."""
    if target.exists():
        shutil.rmtree(target)
    written: list[Path] = []
    licences: list[dict[str, str]] = []
    for package in PACKAGES:
        source = web_dir / "node_modules" / package.name
        version = json.loads((source / "package.json").read_text(encoding="utf-8"))["version"]
        dest = target / package.name
        for pattern in package.files:
            matches = sorted(source.glob(pattern))
            if not matches:
                raise VendorError(f"{package.name}@{version} : aucun fichier ne correspond à {pattern}")
            for path in matches:
                # dist/images/x.png → images/x.png: leaflet.css refers to its images relatively.
                relative = path.relative_to(source / "dist") if pattern.startswith("dist/") else path.name
                out = dest / relative
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)
                written.append(out)
        dest.mkdir(parents=True, exist_ok=True)  # a licence-only package has no file of its own
        shutil.copy2(source / package.licence, dest / "LICENSE")
        written.append(dest / "LICENSE")
        licences.append({"name": package.name, "version": version, "licence_file": f"{package.name}/LICENSE"})
    (target / "licences.json").write_text(json.dumps(licences, indent=2) + "\n", encoding="utf-8")
    return written


def vendor(web_dir: Path, force: bool = False) -> list[Path]:
    """Install the npm packages if needed and rebuild ``static/vendor/``; returns the files written."""
    if force or not node_modules_current(web_dir):
        npm_ci(web_dir)
    return copy_dist(web_dir, web_dir / "static" / "vendor")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m geo_service.vendor",
        description="Installe les bibliothèques du navigateur (npm ci) et les copie, avec leurs licences, "
                    "dans web/static/vendor/.",
    )
    parser.add_argument("--web-dir", type=Path, default=PROJECT_ROOT / "web", help="dossier web/ du projet")
    parser.add_argument("--force", action="store_true", help="relancer npm ci même si node_modules est à jour")
    args = parser.parse_args(argv)
    try:
        written = vendor(args.web_dir, force=args.force)
    except (VendorError, OSError) as exc:
        print(f"erreur : {exc}", file=sys.stderr)
        return 1
    print(f"{len(written)} fichiers copiés dans {args.web_dir / 'static' / 'vendor'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
