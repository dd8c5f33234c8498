"""``geo-service user|convention|history …``: accounts, conventions and the audit trail from the command line.

The commands call the same services as ``/admin`` and the API (``services/editing/accounts.py``, ``conventions.py``,
``editing.py``, ``history.py``); registered on the main group at the end of ``geo_service/cli/app.py``.
Secrets (generated passwords, tokens) are printed once and never stored in clear.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import click

from geo_service.errors import ServiceError


def _state():
    # The CLI's lazily built settings/registry/engine (geo_service.cli._State), shared by every command.
    from geo_service.cli.app import _State

    return click.get_current_context().ensure_object(_State)


def _fail(message: str) -> None:
    from geo_service.cli.app import fail

    fail(message)


@contextmanager
def _transaction() -> Iterator:
    """One transaction per command; a refused operation ends with its French message and exit code 1."""
    try:
        with _state().engine().begin() as conn:
            yield conn
    except ServiceError as exc:
        _fail(exc.detail)


def _read_secret(from_stdin: bool) -> str | None:
    return sys.stdin.readline().rstrip("\n") if from_stdin else None


# --- accounts ---------------------------------------------------------------------------------------------
@click.group()
def user() -> None:
    """Comptes : administrateurs, éditeurs, contributeurs et lecteurs EPCI."""


@user.command("add")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(["admin", "editor", "epci_contributor", "epci_reader"]),
              help="Rôle du compte.")
@click.option("--epci", "epci_siren", help="SIREN de l'EPCI (rôles EPCI seulement).")
@click.option("--name", "display_name", help="Nom affiché.")
@click.option("--email", help="Adresse électronique.")
@click.option("--password-stdin", is_flag=True, help="Lire le mot de passe sur l'entrée standard (sinon : généré).")
def user_add(username: str, role: str, epci_siren: str | None, display_name: str | None, email: str | None,
             password_stdin: bool) -> None:
    """Crée un compte ; sans --password-stdin, un mot de passe est généré et affiché une seule fois."""
    from geo_service.services.editing import accounts

    password = _read_secret(password_stdin)
    generated = None if password else accounts.generate_password()
    with _transaction() as conn:
        accounts.create_account(conn, username, role, password=password or generated, epci_siren=epci_siren,
                                display_name=display_name, email=email)
    click.echo(f"Compte « {username.strip().lower()} » créé ({accounts.ROLE_LABELS[role]}).")
    if generated:
        click.echo(f"Mot de passe (affiché une seule fois) : {generated}")


@user.command("list")
def user_list() -> None:
    """Liste les comptes."""
    from geo_service.services.editing import accounts

    with _transaction() as conn:
        rows = accounts.list_accounts(conn)
    for a in rows:
        state = "actif" if a.active else "désactivé"
        last = f"dernière connexion {a.last_login_at:%d/%m/%Y %H:%M}" if a.last_login_at else "jamais connecté"
        click.echo(f"{a.username:20} {accounts.ROLE_LABELS[a.role]:18} {a.epci_siren or '-':10} {state:10} {last}")
    click.echo(f"{len(rows)} compte(s).")


@user.command("disable")
@click.argument("username")
def user_disable(username: str) -> None:
    """Désactive un compte : ses sessions sont fermées et ses jetons révoqués aussitôt."""
    from geo_service.services.editing import accounts

    with _transaction() as conn:
        accounts.set_active(conn, username, False)
    click.echo(f"Compte « {username} » désactivé ; ses sessions sont fermées et ses jetons révoqués.")


@user.command("enable")
@click.argument("username")
def user_enable(username: str) -> None:
    """Réactive un compte désactivé."""
    from geo_service.services.editing import accounts

    with _transaction() as conn:
        accounts.set_active(conn, username, True)
    click.echo(f"Compte « {username} » réactivé.")


@user.command("password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Lire le nouveau mot de passe sur l'entrée standard.")
def user_password(username: str, password_stdin: bool) -> None:
    """Change le mot de passe d'un compte (généré et affiché une fois sans --password-stdin)."""
    from geo_service.services.editing import accounts

    password = _read_secret(password_stdin) or accounts.generate_password()
    with _transaction() as conn:
        accounts.set_password(conn, username, password)
    click.echo("Mot de passe changé ; les sessions ouvertes du compte sont fermées et ses jetons révoqués.")
    if not password_stdin:
        click.echo(f"Nouveau mot de passe (affiché une seule fois) : {password}")


@user.command("token")
@click.argument("username")
@click.option("--name", "label", default="QGIS", show_default=True, help="Usage du jeton.")
@click.option("--days", type=click.IntRange(min=1), default=365, show_default=True,
              help="Durée de validité en jours.")
@click.option("--no-expiry", is_flag=True, help="Sans expiration (jusqu'à révocation) : à réserver aux comptes de "
                                                "service surveillés.")
@click.option("--revoke-all", is_flag=True, help="Révoquer tous les jetons du compte au lieu d'en créer un.")
@click.option("--qgis", "if_match_optional", is_flag=True,
              help="Pour QGIS, qui n'envoie pas If-Match : modifications et suppressions acceptées sans If-Match "
                   "(la dernière écriture l'emporte ; droits, contrôles et historique inchangés).")
def user_token(username: str, label: str, days: int, no_expiry: bool, revoke_all: bool,
               if_match_optional: bool) -> None:
    """Crée un jeton d'accès personnel (Authorization: Bearer …), affiché une seule fois."""
    from geo_service.services.editing import accounts
    from geo_service.services.editing.conventions import LOCAL_TIME

    with _transaction() as conn:
        if revoke_all:
            count = accounts.revoke_tokens(conn, username)
        else:
            issued = accounts.issue_token(conn, username, label, None if no_expiry else days,
                                          if_match_optional=if_match_optional)
    if revoke_all:
        click.echo(f"{count} jeton(s) révoqué(s).")
        return
    until = (f"valable jusqu'au {issued.expires_at.astimezone(LOCAL_TIME):%d/%m/%Y à %H:%M}"
             if issued.expires_at else "sans expiration")
    click.echo(f"Jeton « {label} » de « {username} », {until} (affiché une seule fois, conservez-le en lieu sûr) :")
    click.echo(issued.secret)


@user.command("tokens")
def user_tokens() -> None:
    """Liste les jetons en cours (non révoqués) : compte, usage, début du jeton, expiration, dernier usage."""
    from geo_service.services.editing import accounts
    from geo_service.services.editing.conventions import LOCAL_TIME

    with _transaction() as conn:
        rows = accounts.list_tokens(conn)
    for t in rows:
        until = "sans expiration" if t.expires_at is None else \
            f"{'expiré le' if t.expired else 'expire le'} {t.expires_at.astimezone(LOCAL_TIME):%d/%m/%Y}"
        used = f"utilisé le {t.last_used_at.astimezone(LOCAL_TIME):%d/%m/%Y}" if t.last_used_at else "jamais utilisé"
        click.echo(f"n° {t.id:<5} {t.username:20} {t.name:16} {t.prefix}…  {until:22} {used}"
                   f"{'  (QGIS, sans If-Match)' if t.if_match_optional else ''}")
    click.echo(f"{len(rows)} jeton(s) en cours.")


@user.command("ensure-admin")
def user_ensure_admin() -> None:
    """Crée le premier administrateur s'il n'en existe aucun (mot de passe : GEO_SERVICE_ADMIN_PASSWORD, sinon
    généré et affiché une seule fois)."""
    from geo_service.services.editing import accounts

    settings = _state().settings
    given = (settings.admin_password.get_secret_value() if settings.admin_password else "") or None
    with _transaction() as conn:
        if accounts.active_admin_exists(conn):
            click.echo("Un administrateur actif existe déjà : rien à faire.")
            return
        generated = accounts.ensure_admin(conn, settings.auth.first_admin, given)
    click.echo(f"Administrateur « {settings.auth.first_admin} » créé.")
    if generated:
        click.echo("Mot de passe (affiché une seule fois ; « geo-service user password » pour le changer) : "
                   f"{generated}")


# --- conventions ------------------------------------------------------------------------------------------
@click.group()
def convention() -> None:
    """Conventions avec les EPCI (les droits des comptes EPCI en découlent)."""


def _layers_option(value: str, direction: str) -> list[str]:
    registry = _state().registry
    if value == "all":
        wanted = "epci_contributor"
        return [la.id for la in registry if la.editable and (direction == "descendante" or wanted in la.access.edit)]
    return [v.strip() for v in value.split(",") if v.strip()]


@convention.command("add")
@click.option("--epci", "epci_siren", required=True, help="SIREN de l'EPCI signataire.")
@click.option("--direction", required=True, type=click.Choice(["ascendante", "descendante"]),
              help="ascendante : l'EPCI alimente les couches ; descendante : il y accède.")
@click.option("--layers", "layer_list", required=True,
              help="Couches concernées, séparées par des virgules (ou « all »).")
@click.option("--start", "starts_on", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Date de début AAAA-MM-JJ (défaut : aujourd'hui).")
@click.option("--end", "ends_on", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Date de fin AAAA-MM-JJ.")
@click.option("--reference", required=True, help="Référence du document signé.")
def convention_add(epci_siren: str, direction: str, layer_list: str, starts_on: datetime | None,
                   ends_on: datetime | None, reference: str) -> None:
    """Enregistre une convention signée."""
    from geo_service.services.editing import conventions

    state = _state()
    with _transaction() as conn:
        new_id = conventions.add_convention(
            conn, state.registry, epci_siren=epci_siren, direction=direction,
            layers=_layers_option(layer_list, direction),
            starts_on=starts_on.date() if starts_on else conventions.local_day(),
            ends_on=ends_on.date() if ends_on else None, reference=reference)
    click.echo(f"Convention n° {new_id} enregistrée.")


@convention.command("list")
@click.option("--epci", "epci_siren", help="Seulement les conventions de cet EPCI.")
def convention_list(epci_siren: str | None) -> None:
    """Liste les conventions et dit si chacune est en vigueur aujourd'hui."""
    from geo_service.services.editing import conventions

    day = conventions.local_day()
    with _transaction() as conn:
        rows = conventions.list_conventions(conn, epci_siren)
    for c in rows:
        period = f"{c.starts_on:%d/%m/%Y} → {c.ends_on:%d/%m/%Y}" if c.ends_on else f"{c.starts_on:%d/%m/%Y} →"
        force = "EN VIGUEUR" if c.in_force(day) else c.why_not_in_force(day)
        click.echo(f"n° {c.id:<4} {c.epci_siren} {c.direction:11} {period:25} {c.reference:20} "
                   f"{','.join(c.layers)}  [{force}]")
    click.echo(f"{len(rows)} convention(s).")


@convention.command("end")
@click.argument("convention_id", type=int)
@click.option("--date", "on", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Dernier jour de la convention (défaut : aujourd'hui, effet immédiat).")
def convention_end(convention_id: int, on: datetime | None) -> None:
    """Met fin à une convention : sans --date, les droits qu'elle donnait cessent immédiatement."""
    from geo_service.services.editing import conventions

    with _transaction() as conn:
        c = conventions.end_convention(conn, convention_id, on.date() if on else None)
    when = "immédiatement" if c.status == "terminee" else f"après le {c.ends_on:%d/%m/%Y}"
    click.echo(f"Convention n° {c.id} ({c.reference}) : fin {when}.")


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
    with _transaction() as conn:
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

    with _transaction() as conn:
        ctx = _cli_context(conn, username)
        result = feature_writes.revert_feature(conn, ctx, layer_id, fid, version)
    click.echo(f"Entité {fid} de « {layer_id} » revenue à la version {version} (nouvelle version {result.version}).")


def _cli_context(conn, username: str, change_set: str | None = None):
    """The edit context of an account acting from the command line (its rights, path ``cli``)."""
    from geo_service.services.editing import accounts, feature_writes

    state = _state()
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
            _fail(f"--map « {value} » : COLONNE=champ attendu")
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

    state = _state()
    if layer_id not in state.registry:
        _fail(f"couche inconnue « {layer_id} » ; couches : {', '.join(state.registry.ids)}")
    limits = FileLimits.from_settings(state.settings, command_line=True)
    try:
        check_file(file, file.name, bulk_import.ACCEPTED_KINDS, limits)
        seen = bulk_import.preview(file, file.name, state.registry.get(layer_id), sample=5,
                                   max_rows=state.settings.editing.max_import_rows, limits=limits)
    except ServiceError as exc:
        _fail(exc.detail)
    columns = _pairs(mapping) or seen.suggested
    column_mapping = bulk_import.ColumnMapping(
        layer_id, columns, x=x_column or seen.x, y=y_column or seen.y, crs=crs or seen.crs or "EPSG:4326",
        source=source_name, licence=licence)
    click.echo("Correspondance : " + ", ".join(f"{c} → {f}" for c, f in columns.items()), err=True)
    with _transaction() as conn:
        ctx = _cli_context(conn, username, bulk_import.new_change_set())
        report = bulk_import.run(conn, ctx, file, file.name, column_mapping, commit=not check,
                                 max_rows=state.settings.editing.max_import_rows, limits=limits)
    for issue in report.rejected:
        click.echo(f"ligne {issue.line} · {issue.column} · « {issue.value} » : {issue.reason}")
    click.echo(f"{report.read} lues, {report.created} créées, {report.updated} modifiées, "
               f"{report.unchanged} inchangées, {report.proposed} proposées, {report.rejected_rows} refusées.",
               err=True)
    if report.rejected:
        _fail("Import refusé : rien n'a été écrit (corrigez les lignes ci-dessus).")
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

    with _transaction() as conn:
        report = bulk_import.revert_change_set(conn, _cli_context(conn, username), change_set)
    click.echo(f"Lot {change_set} annulé : {report.deleted} entité(s) supprimée(s), "
               f"{report.reverted} revenue(s) à leur version d'avant.")


@edit.command("imports")
def edit_imports() -> None:
    """Liste les derniers imports (lots) enregistrés dans l'historique."""
    from geo_service.services.importers import bulk_import

    with _transaction() as conn:
        rows = bulk_import.change_sets(conn)
    for row in rows:
        state = " (annulé)" if row["reverted"] else ""
        click.echo(f"{row['change_set']}\t{row['layer']}\t{row['actor']}\t{row['at']:%Y-%m-%d %H:%M}\t"
                   f"{row['changes']} changement(s){state}")


# --- export ---------------------------------------------------------------------------------------------
@click.command("export")
@click.argument("layer_id")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(["geojson", "gpkg", "csv"]))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Fichier (défaut : <couche>.<format>).")
def export(layer_id: str, fmt: str, output: Path | None) -> None:
    """Exporte une couche publiée (GeoJSON, GeoPackage ou CSV) avec sa licence et son attribution."""
    from geo_service.services.publish import layer_export as export_service
    from geo_service.services.publish.read_access import ANONYMOUS

    state = _state()
    if layer_id not in state.registry:
        _fail(f"couche inconnue « {layer_id} » ; couches : {', '.join(state.registry.ids)}")
    layer = state.registry.get(layer_id)
    target = output or Path(f"{layer_id}.{fmt}")
    with _transaction() as conn:
        # The public's view: what an export may be shared as (restricted fields stay in the service).
        if fmt == "gpkg":
            target.unlink(missing_ok=True)  # GDAL would add the layer to an existing file
            export_service.geopackage(conn, layer, ANONYMOUS, target)
        else:
            writer = export_service.geojson if fmt == "geojson" else export_service.csv_rows
            with target.open("w", encoding="utf-8", newline="") as f:
                f.writelines(writer(conn, layer, ANONYMOUS))
    click.echo(f"{layer.title} → {target} (licence : {layer.licence})")


COMMANDS = (user, convention, history, edit, export)
