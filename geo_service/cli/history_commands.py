"""``geo-service history`` (the audit trail, bringing back a version) and ``geo-service edit`` (bulk import of a file
through the editing rules, its change sets and their undoing): the same services as ``/admin``."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from geo_service.cli.state import current_state, fail, transaction
from geo_service.errors import ServiceError


# --- history ----------------------------------------------------------------------------------------------
@click.group()
def history() -> None:
    """Historique des modifications : export d'audit, retour à une version."""


@history.command("export")
@click.option("--layer", "layer_id", help="Seulement cette couche.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Depuis ce jour (inclus).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Jusqu'à ce jour (exclu).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Fichier CSV (défaut : sortie standard).")
def history_export(layer_id: str | None, since: datetime | None, until: datetime | None, output: Path | None) -> None:
    """Exporte la piste d'audit en CSV (qui, quand, par où, avant / après)."""
    from geo_service.services.editing import history as history_service
    from geo_service.services.editing.conventions import LOCAL_TIME

    bounds = [d.replace(tzinfo=LOCAL_TIME) if d else None for d in (since, until)]
    with transaction() as conn:
        chunks = history_service.export_csv(conn, layer_id=layer_id, since=bounds[0], until=bounds[1])
        if output:
            with output.open("w", encoding="utf-8", newline="") as f:
                f.writelines(chunks)
            click.echo(f"Historique écrit dans {output}", err=True)
        else:
            sys.stdout.writelines(chunks)


@history.command("revert")
@click.argument("layer_id")
@click.argument("fid", type=int)
@click.argument("version", type=int)
@click.option("--as", "username", required=True, help="Compte (administrateur ou éditeur) au nom duquel agir.")
def history_revert(layer_id: str, fid: int, version: int, username: str) -> None:
    """Rétablit exactement les propriétés et la géométrie d'une version antérieure d'une entité."""
    from geo_service.services.editing import feature_writes

    with transaction() as conn:
        ctx = _cli_context(conn, username)
        result = feature_writes.revert_feature(conn, ctx, layer_id, fid, version)
    click.echo(f"Entité {fid} de « {layer_id} » revenue à la version {version} (nouvelle version {result.version}).")


def _cli_context(conn, username: str, change_set: str | None = None):
    """The edit context of an account acting from the command line (its rights, path ``cli``)."""
    from geo_service.services.editing import accounts, feature_writes

    state = current_state()
    account = accounts.get_account(conn, username)
    if not account.active:
        raise ServiceError(f"Le compte « {username} » est désactivé")
    principal = accounts.Principal(account.username, account.role, account.id, account.epci_siren, via="cli")
    return feature_writes.EditContext(principal, "cli", state.registry,
                                      feature_writes.EditRules.from_settings(state.settings), change_set=change_set)


# --- bulk import through the editing rules ---------------------------------------------------------------------
@click.group("edit")
def edit() -> None:
    """Import en masse dans une couche avec les règles de l'édition (droits, périmètre, validation, historique)."""


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for value in values:
        column, sep, field = value.partition("=")
        if not sep or not column.strip() or not field.strip():
            fail(f"--map « {value} » : COLONNE=champ attendu")
        pairs[column.strip()] = field.strip()
    return pairs


@edit.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--layer", "layer_id", required=True, help="Couche de destination.")
@click.option("--as", "username", required=True, help="Compte au nom duquel importer (ses droits s'appliquent).")
@click.option("--map", "mapping", multiple=True, metavar="COLONNE=champ",
              help="Correspondance d'une colonne ; sans --map, les colonnes qui portent le nom d'un champ.")
@click.option("--x", "x_column", help="CSV : colonne de la longitude ou du x Lambert-93.")
@click.option("--y", "y_column", help="CSV : colonne de la latitude ou du y Lambert-93.")
@click.option("--crs", default=None, help="CSV : EPSG:4326 (défaut, degrés) ou EPSG:2154 (Lambert-93).")
@click.option("--source", "source_name", help="Nom du jeu de données (provenance).")
@click.option("--licence", help="Licence des données.")
@click.option("--check", is_flag=True, help="Vérifier seulement : rapport des lignes refusées, rien n'est écrit.")
def edit_import(file: Path, layer_id: str, username: str, mapping: tuple[str, ...], x_column: str | None,
                y_column: str | None, crs: str | None, source_name: str | None, licence: str | None,
                check: bool) -> None:
    """Importe FILE (GeoJSON, GeoPackage, shapefile zippé, CSV) : tout ou rien, un lot annulable."""
    from geo_service.services.importers import bulk_import
    from geo_service.services.importers.framework.sources import FileLimits, check_file

    state = current_state()
    if layer_id not in state.registry:
        fail(f"couche inconnue « {layer_id} » ; couches : {', '.join(state.registry.ids)}")
    limits = FileLimits.from_settings(state.settings, command_line=True)
    try:
        check_file(file, file.name, bulk_import.ACCEPTED_KINDS, limits)
        seen = bulk_import.preview(file, file.name, state.registry.get(layer_id), sample=5,
                                   max_rows=state.settings.editing.max_import_rows, limits=limits)
    except ServiceError as exc:
        fail(exc.detail)
    columns = _pairs(mapping) or seen.suggested
    column_mapping = bulk_import.ColumnMapping(
        layer_id, columns, x=x_column or seen.x, y=y_column or seen.y, crs=crs or seen.crs or "EPSG:4326",
        source=source_name, licence=licence)
    click.echo("Correspondance : " + ", ".join(f"{c} → {f}" for c, f in columns.items()), err=True)
    with transaction() as conn:
        ctx = _cli_context(conn, username, bulk_import.new_change_set())
        report = bulk_import.run(conn, ctx, file, file.name, column_mapping, commit=not check,
                                 max_rows=state.settings.editing.max_import_rows, limits=limits)
    for issue in report.rejected:
        click.echo(f"ligne {issue.line} · {issue.column} · « {issue.value} » : {issue.reason}")
    click.echo(f"{report.read} lues, {report.created} créées, {report.updated} modifiées, "
               f"{report.unchanged} inchangées, {report.proposed} proposées, {report.rejected_rows} refusées.",
               err=True)
    if report.rejected:
        fail("Import refusé : rien n'a été écrit (corrigez les lignes ci-dessus).")
    if report.committed and not report.changed:
        click.echo("Rien à changer : la couche contient déjà ces données.", err=True)
    elif report.committed:
        click.echo(f"Lot {report.change_set} enregistré (annulable : geo-service edit revert {report.change_set}).",
                   err=True)
    else:
        click.echo("Vérification seulement : rien n'a été écrit.", err=True)


@edit.command("revert")
@click.argument("change_set")
@click.option("--as", "username", required=True, help="Compte (administrateur ou éditeur) au nom duquel agir.")
def edit_revert(change_set: str, username: str) -> None:
    """Annule un import entier : entités créées supprimées, entités modifiées revenues à leur version d'avant."""
    from geo_service.services.importers import bulk_import

    with transaction() as conn:
        report = bulk_import.revert_change_set(conn, _cli_context(conn, username), change_set)
    click.echo(f"Lot {change_set} annulé : {report.deleted} entité(s) supprimée(s), "
               f"{report.reverted} revenue(s) à leur version d'avant.")


@edit.command("imports")
def edit_imports() -> None:
    """Liste les derniers imports (lots) enregistrés dans l'historique."""
    from geo_service.services.importers import bulk_import

    with transaction() as conn:
        rows = bulk_import.change_sets(conn)
    for row in rows:
        state = " (annulé)" if row["reverted"] else ""
        click.echo(f"{row['change_set']}\t{row['layer']}\t{row['actor']}\t{row['at']:%Y-%m-%d %H:%M}\t"
                   f"{row['changes']} changement(s){state}")


COMMANDS = (history, edit)
