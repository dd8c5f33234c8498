"""``geo-service basemap``: the base map in use, and the MBTiles file of a self-hosted one (check, install).

Registered on the main group at the end of ``geo_service/cli/app.py``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import click

from geo_service.cli.state import current_state, fail
from geo_service.services.basemap import basemap_choice, mbtiles_archive


@click.group("basemap")
def basemap() -> None:
    """Fond de carte : celui en service, et le fichier MBTiles d'un fond hébergé par le service."""


def _read(file: Path) -> mbtiles_archive.MbtilesInfo:
    try:
        return mbtiles_archive.read_info(file)
    except mbtiles_archive.MbtilesError as exc:
        fail(str(exc))
        raise  # not reached: fail() exits


@basemap.command("info")
@click.argument("file", type=click.Path(path_type=Path))
def info(file: Path) -> None:
    """Vérifie un fichier MBTiles et le décrit (format, zooms, emprise, attribution)."""
    for line in _read(file).lines():
        click.echo(line)


def _territory_box() -> mbtiles_archive.Bbox | None:
    """The territory's box (west, south, east, north) from the loaded boundaries, or None if none are loaded."""
    from geo_service.services.resident import map_page

    state = current_state()
    boundaries = [layer for layer in state.registry if layer.kind == "base" and layer.geometry in map_page.POLYGONS]
    with state.engine().connect() as conn:
        bounds = map_page.territory_bounds(conn, boundaries)
    if bounds == map_page.FALLBACK_BOUNDS:
        return None
    (south, west), (north, east) = bounds
    return west, south, east, north


@basemap.command("install")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--photo", is_flag=True, help="Photographies aériennes (photo.mbtiles) plutôt que le plan.")
@click.option("--skip-territory-check", is_flag=True,
              help="Ne pas vérifier que l'emprise couvre le territoire (pas de base de données nécessaire).")
def install(file: Path, photo: bool, skip_territory_check: bool) -> None:
    """Vérifie FILE (MBTiles : tables metadata et tiles, tuiles png/jpg/webp/pbf, emprise couvrant le territoire)
    et le copie dans le dossier des fonds de carte du service (GEO_SERVICE_MAP__BASEMAP_DIR)."""
    settings = current_state().settings
    found = _read(file)
    if not skip_territory_check:
        territory = _territory_box()
        if territory is None:
            fail("limites du territoire non chargées : impossible de vérifier l'emprise "
                 "(geo-service load boundaries, ou --skip-territory-check)")
        try:
            mbtiles_archive.check_covers(found, territory)
        except mbtiles_archive.MbtilesError as exc:
            fail(str(exc))
    tileset = "photo" if photo else "plan"
    target = basemap_choice.hosted_file(settings.map, tileset)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Copied beside the target, then renamed over it: the service never reads a half-copied file.
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{tileset}-", suffix=".mbtiles",
                                     delete=False) as part:
        temporary = Path(part.name)
    try:
        shutil.copyfile(file, temporary)
        mbtiles_archive.read_info(temporary)
        os.replace(temporary, target)
    except (OSError, mbtiles_archive.MbtilesError) as exc:
        temporary.unlink(missing_ok=True)
        fail(f"copie vers {target} impossible : {exc}")
    click.echo(f"Installé : {target} ({found.tile_count} tuiles {found.format}, zooms {found.min_zoom} à "
               f"{found.max_zoom}).")
    if not found.raster:
        click.echo("Attention : tuiles vectorielles, servies à /basemap/… mais non dessinées par les cartes "
                   "du service.")
    if settings.map.basemap != "self-hosted":
        click.echo("Pour le servir : GEO_SERVICE_MAP__BASEMAP=self-hosted, puis redémarrez le service.")
    else:
        click.echo("Redémarrez le service pour qu'il le prenne en compte.")


@basemap.command("status")
def status() -> None:
    """Dit quel fond de carte les cartes du service dessinent, d'où viennent les tuiles et ce qui manque."""
    settings = current_state().settings
    choice = basemap_choice.resolve(settings.map)
    click.echo(f"Réglage : GEO_SERVICE_MAP__BASEMAP={settings.map.basemap or '(vide)'}")
    for source in choice.sources:
        click.echo(f"{source.label} : {source.url}")
        click.echo(f"  attribution : {source.attribution}")
    if choice.plan is None:
        click.echo("Aucun fond de carte : les cartes ne dessinent que les communes et les EPCI.")
    click.echo(f"Hôtes autorisés par la CSP (img-src) : {' '.join(choice.image_sources()) or 'aucun hors du service'}")
    for warning in basemap_choice.start_up_warnings(choice, settings.mode):
        click.secho(f"Attention : {warning}", fg="yellow", err=True)


COMMANDS = (basemap,)
