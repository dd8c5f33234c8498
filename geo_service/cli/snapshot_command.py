"""``geo-service snapshot``: the observatory's dated snapshot of the day (run after imports, or daily from cron)."""

from __future__ import annotations

import click

from geo_service.cli.state import current_state, transaction


@click.command("snapshot")
@click.option("--force", is_flag=True, help="Recalculer même si les couches sources n'ont pas changé.")
@click.option("--backfill", is_flag=True,
              help="Reconstituer aussi l'historique trimestriel des locaux d'après leurs dates "
                   "(jours sans instantané).")
def snapshot(force: bool, backfill: bool) -> None:
    """Calcule les indicateurs de l'observatoire et les enregistre à la date du jour (un instantané par jour :
    relancé le même jour, il le remplace, ou ne fait rien si les couches sources n'ont pas changé). À lancer après
    un import et chaque jour (cron ou minuterie systemd, docs/indicators.md)."""
    from geo_service.services.observatory import snapshots

    state = current_state()
    territory = state.settings.territory
    with transaction() as conn:
        if backfill:
            runs = snapshots.backfill(conn, state.registry, (territory.departement, territory.name))
            click.echo(f"{len(runs)} instantané(s) trimestriel(s) reconstitué(s) d'après les dates des locaux.")
        click.echo(snapshots.take(conn, state.registry, (territory.departement, territory.name),
                                  force=force).summary())


COMMANDS = [snapshot]
