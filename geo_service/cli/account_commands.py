"""``geo-service user|convention …``: accounts, tokens and conventions from the command line.

The commands call the same services as ``/admin`` (``services/editing/accounts.py``, ``conventions.py``);
registered on the main group by ``geo_service/cli/app.py``.
Secrets (generated passwords, tokens) are printed once and never stored in clear.
"""

from __future__ import annotations

from datetime import datetime

import click

from geo_service.cli.state import current_state, read_secret, transaction


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

    password = read_secret(password_stdin)
    generated = None if password else accounts.generate_password()
    with transaction() as conn:
        accounts.create_account(conn, username, role, password=password or generated, epci_siren=epci_siren,
                                display_name=display_name, email=email)
    click.echo(f"Compte « {username.strip().lower()} » créé ({accounts.ROLE_LABELS[role]}).")
    if generated:
        click.echo(f"Mot de passe (affiché une seule fois) : {generated}")


@user.command("list")
def user_list() -> None:
    """Liste les comptes."""
    from geo_service.services.editing import accounts

    with transaction() as conn:
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

    with transaction() as conn:
        accounts.set_active(conn, username, False)
    click.echo(f"Compte « {username} » désactivé ; ses sessions sont fermées et ses jetons révoqués.")


@user.command("enable")
@click.argument("username")
def user_enable(username: str) -> None:
    """Réactive un compte désactivé."""
    from geo_service.services.editing import accounts

    with transaction() as conn:
        accounts.set_active(conn, username, True)
    click.echo(f"Compte « {username} » réactivé.")


@user.command("password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Lire le nouveau mot de passe sur l'entrée standard.")
def user_password(username: str, password_stdin: bool) -> None:
    """Change le mot de passe d'un compte (généré et affiché une fois sans --password-stdin)."""
    from geo_service.services.editing import accounts

    password = read_secret(password_stdin) or accounts.generate_password()
    with transaction() as conn:
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

    with transaction() as conn:
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

    with transaction() as conn:
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

    settings = current_state().settings
    given = (settings.admin_password.get_secret_value() if settings.admin_password else "") or None
    with transaction() as conn:
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
    registry = current_state().registry
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

    state = current_state()
    with transaction() as conn:
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
    with transaction() as conn:
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

    with transaction() as conn:
        c = conventions.end_convention(conn, convention_id, on.date() if on else None)
    when = "immédiatement" if c.status == "terminee" else f"après le {c.ends_on:%d/%m/%Y}"
    click.echo(f"Convention n° {c.id} ({c.reference}) : fin {when}.")


COMMANDS = (user, convention)
