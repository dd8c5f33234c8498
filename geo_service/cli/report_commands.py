"""``geo-service reports``: residents' reports from the command line (the retention purge, run daily)."""

from __future__ import annotations

from datetime import datetime

import click

from geo_service.cli.state import transaction


@click.group()
def reports() -> None:
    """Signalements des résidents : purge des données personnelles."""


@reports.command("purge")
@click.option("--today", type=click.DateTime(["%Y-%m-%d"]),
              help="Purger comme si l'on était ce jour-là (défaut : aujourd'hui).")
def reports_purge(today: datetime | None) -> None:
    """Efface les adresses électroniques arrivées à leur date de purge (le signalement est gardé) et les empreintes
    d'adresses IP de plus d'un jour. À lancer chaque jour (cron ou minuterie systemd)."""
    from geo_service.services.reports import retention

    with transaction() as conn:
        result = retention.purge(conn, today.date() if today else None)
    click.echo(f"{result.emails} adresse(s) électronique(s) effacée(s), {result.address_hashes} empreinte(s) "
               "d'adresse IP effacée(s) ; les signalements sont conservés.")


COMMANDS = [reports]
