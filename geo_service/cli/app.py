"""The ``geo-service`` command line. Each command calls the same domain services as the web API."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from geo_service.cli import (
    account_commands,
    backup_commands,
    basemap_commands,
    export_command,
    history_commands,
    qgis_commands,
    report_commands,
    snapshot_command,
)
from geo_service.cli.state import CliState, fail, pass_state
from geo_service.cluster import ClusterError, PrivateCluster
from geo_service.layers import LayerDeclarationError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Service géographique Lot numérique : base partagée des infrastructures et services numériques."""


# --- database ---------------------------------------------------------------------------------
@cli.group()
def db() -> None:
    """Base de données : cluster PostGIS privé (.pgdata/) et migrations."""


def _cluster(state: CliState) -> PrivateCluster:
    if not state.settings.uses_private_cluster:
        fail("GEO_SERVICE_DATABASE_URL est défini : le cluster privé n'est pas utilisé.")
    return PrivateCluster(state.settings.cluster)


@db.command("up")
@pass_state
def db_up(state: CliState) -> None:
    """Crée et démarre le cluster PostgreSQL/PostGIS privé (sans effet s'il tourne déjà)."""
    if not state.settings.uses_private_cluster:
        click.echo("GEO_SERVICE_DATABASE_URL est défini : base existante utilisée, rien à démarrer.")
        return
    try:
        click.echo(_cluster(state).up())
    except ClusterError as exc:
        fail(str(exc))


@db.command("down")
@pass_state
def db_down(state: CliState) -> None:
    """Arrête le cluster privé."""
    try:
        click.echo(_cluster(state).down())
    except ClusterError as exc:
        fail(str(exc))


@db.command("status")
@pass_state
def db_status(state: CliState) -> None:
    """Dit si le cluster privé tourne, où, et la version du schéma."""
    if not state.settings.uses_private_cluster:
        click.echo("Base externe (GEO_SERVICE_DATABASE_URL).")
    else:
        status = _cluster(state).status()
        click.echo(status.message)
        if not status.running:
            return
    from geo_service.db import current_revision

    try:
        click.echo(f"Schéma : révision {current_revision(state.settings) or 'aucune (lancez db migrate)'}")
    except Exception as exc:  # noqa: BLE001 - status must report, not crash
        click.echo(f"Base injoignable : {exc}")


@db.command("migrate")
@pass_state
def db_migrate(state: CliState) -> None:
    """Applique les migrations Alembic jusqu'à la dernière."""
    from geo_service.db import migrate

    state.registry  # noqa: B018 - validate layer files before touching the schema
    migrate(state.settings)
    click.echo("Schéma à jour.")


@db.command("revision")
@click.option("-m", "--message", required=True, help="Objet de la migration, ex. « ajout couche x »")
@pass_state
def db_revision(state: CliState, message: str) -> None:
    """Écrit une migration pour les couches ajoutées ou modifiées dans layers/."""
    from geo_service.db import new_revision

    new_revision(state.settings, message)


# --- layers -----------------------------------------------------------------------------------
@cli.group()
def layers() -> None:
    """Déclarations de couches (dossier layers/)."""


@layers.command("check")
@pass_state
def layers_check(state: CliState) -> None:
    """Valide chaque fichier de couche et les liste."""
    for layer in state.registry:
        click.echo(f"{layer.id:22} {layer.geometry:13} {len(layer.fields):3} champs  {layer.title}")
    click.echo(f"{len(state.registry)} couches valides.")


# --- data -------------------------------------------------------------------------------------
@cli.group()
def load() -> None:
    """Chargement des données de référence."""


@load.command("boundaries")
@click.option("--from", "from_dir", type=click.Path(path_type=Path), help="Dossier de fichiers GeoJSON.")
@click.option("--from-api", is_flag=True, help="Télécharger les limites actuelles depuis geo.api.gouv.fr.")
@click.option("--if-empty", is_flag=True, help="Ne rien faire si des communes sont déjà chargées.")
@pass_state
def load_boundaries(state: CliState, from_dir: Path | None, from_api: bool, if_empty: bool) -> None:
    """Charge les communes et les EPCI du territoire (remplace les précédents)."""
    from geo_service.services.importers import boundaries

    settings = state.settings
    if from_dir and from_api:
        fail("choisissez --from DOSSIER ou --from-api, pas les deux")
    if not from_dir and not from_api:
        from_dir = settings.resolved_boundaries_dir()
        from_api = from_dir is None
    with state.engine().begin() as conn:
        if if_empty and boundaries.commune_count(conn) > 0:
            click.echo("Limites déjà chargées : rien à faire.")
            return
        try:
            if from_api:
                click.echo(f"Téléchargement des limites depuis {settings.boundaries_api_url}…")
                report = boundaries.load_from_api(conn, settings.territory, settings.boundaries_api_url)
            else:
                click.echo(f"Lecture des limites dans {from_dir}…")
                report = boundaries.load_from_dir(conn, settings.territory, from_dir)
        except boundaries.BoundaryError as exc:
            fail(str(exc))
    click.echo(report.summary())


@cli.command("demo")
@click.option("--seed", default=46, show_default=True, help="Graine du générateur (même graine, mêmes données).")
@click.option("--if-empty", is_flag=True, help="Ne rien faire si le territoire de démonstration existe déjà.")
@pass_state
def demo(state: CliState, seed: int, if_empty: bool) -> None:
    """Génère le territoire de démonstration (données synthétiques, remplace seulement les lignes de démo)."""
    from geo_service.services import demo as demo_service

    with state.engine().begin() as conn:
        if if_empty and demo_service.demo_present(conn):
            click.echo("Territoire de démonstration déjà présent : rien à faire.")
            return
        try:
            report = demo_service.generate(conn, state.registry, state.settings.territory, seed=seed,
                                           progress=lambda msg: click.echo(f"  {msg}"))
        except demo_service.DemoError as exc:
            fail(str(exc))
    click.echo(report.summary())


# --- open-data imports and white zones (services/importers, services/white_zones) ----------------
class _TerminalProgress:
    """Progress bars on stderr when it is a terminal; step messages always."""

    def __init__(self) -> None:
        self._bar = None

    def bar(self, label: str, total: int | None):
        self.close()
        if not total or not sys.stderr.isatty():
            if label:
                click.echo(f"  {label}…", err=True)
            return lambda n: None
        self._bar = click.progressbar(length=total, label=f"  {label}", file=sys.stderr, width=30)
        self._bar.__enter__()
        return self._bar.update

    def step(self, message: str) -> None:
        self.close()
        click.echo(f"  {message}", err=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def _cli_user() -> str:
    """Who runs the command, for ``updated_by`` (the web API passes the signed-in user instead)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


@cli.command("import")
@click.argument("kind", required=False, metavar="TYPE")
@click.argument("location", required=False, metavar="FICHIER_OU_URL")
@click.option("--list", "list_kinds", is_flag=True, help="Lister les types d'import et leurs couches cibles.")
@click.option("--dry-run", is_flag=True, help="Tout lire et vérifier, compter, puis ne rien écrire.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Écrire toutes les lignes rejetées et valeurs corrigées dans ce CSV.")
@click.option("--date", "source_date", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Date des données (défaut : lue dans le nom du fichier, sinon sa date).")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Fichier de correspondance colonnes → champs (type generic).")
@click.option("--niveau", type=click.Choice(["TBC", "BC", "CL"]),
              help="arcep-couverture : niveau exigé pour les zones blanches (défaut : le dernier utilisé, sinon BC).")
@click.option("--show", default=20, show_default=True, help="Nombre de rejets affichés à l'écran.")
@pass_state
def import_data(state: CliState, kind: str | None, location: str | None, list_kinds: bool, dry_run: bool,
                report_path: Path | None, source_date, mapping: Path | None, niveau: str | None, show: int) -> None:
    """Importe un fichier de données ouvertes (ARCEP, ANFR, BAN, schémas nationaux) dans les couches.

    TYPE est l'un des types de « geo-service import --list » ; FICHIER_OU_URL un fichier local, un dossier
    ou une URL http(s). Tout ou rien : une erreur ou une interruption ne laisse aucune écriture.
    """
    from geo_service.errors import ImportFileError, ServiceError
    from geo_service.services import importers
    from geo_service.services.importers.framework.sources import FileLimits

    available = importers.kinds()
    if list_kinds:
        for spec in available.values():
            click.echo(f"{spec.name:17} → {spec.targets}\n{'':20}{spec.description}")
        return
    if not kind or not location:
        fail("indiquez le type et le fichier : geo-service import TYPE FICHIER_OU_URL (types : --list)")
    if kind not in available:
        fail(f"type d'import inconnu « {kind} » ; types : {', '.join(available)}")
    options = {"mapping": str(mapping) if mapping else None, "niveau": niveau}
    progress = _TerminalProgress()
    try:
        # One transaction: committed when the import returns, rolled back on any error or interruption.
        with state.engine().begin() as conn:
            report = importers.run_import(
                conn, state.registry, state.settings.territory, kind, location, dry_run=dry_run,
                source_date=source_date.date() if source_date else None, options=options,
                user=f"import ({_cli_user()})", progress=progress,
                limits=FileLimits.from_settings(state.settings, command_line=True))
    except ImportFileError as exc:
        fail(f"{exc.detail} — rien n'a été importé.")
    except ServiceError as exc:
        fail(exc.detail)
    finally:
        progress.close()
    click.echo(report.summary())
    issues = report.issues
    for issue in issues.first[:show]:
        click.echo(f"  ⚠ {issue}")
    if report_path is not None:
        issues.write_file(report_path)
        click.echo(f"Rapport complet ({issues.total} lignes) : {report_path}")
    elif issues.total > show:
        click.echo(f"  … {issues.total - show} autres ; --report FICHIER.csv pour la liste complète")
    issues.close()


@cli.group("white-zones")
def white_zones_group() -> None:
    """Zones blanches mobiles calculées d'après la couche de couverture."""


@white_zones_group.command("compute")
@click.option("--technologie", required=True, type=click.Choice(["2G", "3G", "4G", "5G"]))
@click.option("--niveau", default="BC", show_default=True, type=click.Choice(["TBC", "BC", "CL"]),
              help="Niveau exigé : TBC très bonne, BC bonne (TBC ou BC), CL toute couverture.")
@click.option("--surface-min", default=1000.0, show_default=True, help="Fragments plus petits ignorés (m²).")
@pass_state
def white_zones_compute(state: CliState, technologie: str, niveau: str, surface_min: float) -> None:
    """Recalcule les zones blanches (par opérateur et pour tous) d'une technologie, hors démonstration."""
    from geo_service.services.importers import white_zone_compute

    with state.engine().begin() as conn:
        result = white_zone_compute.compute(conn, technologie, niveau, min_part_m2=surface_min,
                                     provenance={"updated_by": _cli_user()})
    click.echo(result.summary())


# --- serving ----------------------------------------------------------------------------------
@cli.command("serve")
@click.option("--host", default=None, help="Adresse d'écoute (défaut : 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (défaut : 8000).")
@click.option("--workers", default=1, show_default=True)
@pass_state
def serve(state: CliState, host: str | None, port: int | None, workers: int) -> None:
    """Sert l'API et la carte (http://127.0.0.1:8000/map)."""
    import uvicorn

    try:
        state.registry  # noqa: B018 - refuse to start on a bad layer file
    except LayerDeclarationError as exc:
        fail(str(exc))
    _use_jemalloc(state.settings.jemalloc)
    _limit_malloc_arenas(state.settings.malloc_arena_max)
    # proxy_headers off: X-Forwarded-* are read by the app itself, from settings.trusted_proxies only (main.py).
    uvicorn.run("geo_service.main:app_from_environment", factory=True,
                host=host or state.settings.host, port=port or state.settings.port,
                workers=workers, proxy_headers=False, http=state.settings.http_implementation)


# Where Debian's libjemalloc2 puts the library (amd64, arm64).
JEMALLOC_PATHS = ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2")
# Freed pages go back to the system after 5 s unused (jemalloc's default: 10 s), purged by its own thread.
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:5000,muzzy_decay_ms:5000"


def _use_jemalloc(enabled: bool) -> None:
    """Run this command again with jemalloc preloaded, if it is installed and not loaded yet (workers inherit it).

    Under glibc's malloc a worker kept creeping by ≈ 2 MB a minute under mixed traffic while Python's own caches
    stayed flat (freed memory glibc keeps); jemalloc held it flat (docs/benchmarks.md, "Mémoire d'un processus").
    """
    import os

    preload = os.environ.get("LD_PRELOAD", "")
    if not enabled or not sys.platform.startswith("linux") or "jemalloc" in preload:
        return  # already there (or asked for by hand): never execs twice
    library = next((path for path in JEMALLOC_PATHS if Path(path).exists()), None)
    if library is None:
        return
    os.environ["LD_PRELOAD"] = f"{library} {preload}".strip()
    os.environ.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    os.execv(sys.executable, sys.orig_argv)


def _limit_malloc_arenas(arenas: int) -> None:
    """Fewer glibc arenas: for this process now (mallopt) and for worker processes through their environment."""
    if not arenas or not sys.platform.startswith("linux"):
        return
    import contextlib
    import ctypes
    import ctypes.util
    import os

    os.environ.setdefault("MALLOC_ARENA_MAX", str(arenas))
    # Another C library has its own allocator: nothing to tune.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX


# --- the commands of the other modules: accounts and conventions, history and bulk edits, export, backup, basemap,
# residents' reports, the observatory's snapshot, QGIS
for module in (account_commands, history_commands, export_command, backup_commands, basemap_commands, report_commands,
               snapshot_command, qgis_commands):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    """Entry point: known errors end with a French message and exit code 1, not a traceback."""
    from sqlalchemy.exc import OperationalError

    try:
        cli()
    except (LayerDeclarationError, ClusterError) as exc:
        fail(str(exc))
    except OperationalError as exc:
        # SQLSTATE class 53: the server is there but out of disk, memory or connections; the transaction is undone.
        if (getattr(exc.orig, "sqlstate", None) or "").startswith("53"):
            disk = " (disque plein)" if exc.orig.sqlstate == "53100" else ""
            fail(f"la base de données manque d'espace ou de ressources{disk} : rien n'a été écrit ({exc.orig})")
        fail(f"base de données injoignable ({exc.orig}). Le cluster tourne-t-il ? « geo-service db status »")


if __name__ == "__main__":
    main()
