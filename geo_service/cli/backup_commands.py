"""``geo-service backup`` / ``restore``: the whole state of the service in one archive file.

The work is done by ``backup.py`` with the PostgreSQL client programs of the private cluster
(``cluster.find_bin_dir``) or, for a database given by ``GEO_SERVICE_DATABASE_URL``, those on the PATH.
Registered on the main group at the end of ``geo_service/cli/app.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from geo_service.cli.state import fail


def _client():
    from geo_service.backup import PgClient
    from geo_service.cli.state import CliState
    from geo_service.cluster import find_bin_dir

    state = click.get_current_context().ensure_object(CliState)
    settings = state.settings
    on_path = None if settings.uses_private_cluster else shutil.which("pg_dump")
    bin_dir = Path(on_path).parent if on_path else find_bin_dir(settings.cluster, install=False)
    return state, PgClient(bin_dir, state.engine())


def _progress(message: str) -> None:
    click.echo(message, err=True)


@click.command("backup")
@click.argument("file", required=False, type=click.Path(path_type=Path))
def backup(file: Path | None) -> None:
    """Sauvegarde tout l'état du service (base entière : couches, historique, comptes, jetons, conventions…)
    dans une archive FILE ; un dossier ou rien : geo-service-AAAAMMJJ-HHMMSS.tar dedans (ou ici)."""
    from geo_service import backup as backup_service

    _, client = _client()
    target = backup_service.backup_path(file)
    try:
        manifest = backup_service.create_backup(client, target, progress=_progress)
    except backup_service.BackupError as exc:
        fail(str(exc))
    click.echo(f"Sauvegarde écrite : {target}")
    click.echo(f"  {manifest.summary()} ; SHA-256 {manifest.dump_sha256}")


@click.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Remplacer tout le contenu d'une base qui contient déjà des tables.")
def restore(file: Path, force: bool) -> None:
    """Restaure une archive de « geo-service backup » dans la base du service (vide, ou remplacée avec --force).

    L'archive est entièrement vérifiée (manifeste, empreinte, révision du schéma) avant de toucher la base, puis
    rejouée en une seule transaction : en cas d'erreur, la base reste telle qu'elle était.
    """
    from alembic.script import ScriptDirectory

    from geo_service import backup as backup_service
    from geo_service.db import alembic_config

    state, client = _client()
    script = ScriptDirectory.from_config(alembic_config(state.settings))
    known = {r.revision for r in script.walk_revisions()}
    try:
        report = backup_service.restore_backup(client, file, force=force, known_revisions=known, progress=_progress)
    except backup_service.BackupError as exc:
        fail(str(exc))
    manifest = report.manifest
    click.echo(f"Restauration terminée dans « {report.database} » : {len(manifest.tables)} tables, "
               f"{backup_service.format_count(manifest.rows)} lignes, comme dans la sauvegarde.")
    click.echo("Les sessions web ne sont pas sauvegardées : chacun se reconnecte ; "
               "les jetons d'accès restent valables.")
    head = script.get_current_head()
    if manifest.alembic_revision != head:
        click.echo(f"Le schéma restauré est à la révision {manifest.alembic_revision}, antérieure à celle de ce "
                   f"service ({head}) : lancez « geo-service db migrate ».")


COMMANDS = (backup, restore)
