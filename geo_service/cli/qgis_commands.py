"""``geo-service qgis project``: the QGIS project the service serves at ``/qgis/lot-numerique.qgz``, as a file.

Registered on the main group at the end of ``geo_service/cli/app.py``.
"""

from __future__ import annotations

from pathlib import Path

import click

from geo_service.cli.state import current_state, fail
from geo_service.services.qgis import qgis_project


@click.group("qgis")
def qgis() -> None:
    """QGIS : le projet des couches du service."""


@qgis.command("project")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path(qgis_project.PROJECT_FILE),
              show_default=True, help="Fichier .qgz à écrire.")
@click.option("--editing", is_flag=True,
              help=f"Couches modifiables : elles nomment la configuration d'authentification « "
                   f"{qgis_project.AUTHCFG_ID} » que chaque utilisateur crée dans QGIS avec son jeton.")
@click.option("--url", "base_url", default=None,
              help="Adresse publique du service (défaut : GEO_SERVICE_PUBLIC_BASE_URL, sinon celle de serve).")
def project(output: Path, editing: bool, base_url: str | None) -> None:
    """Écrit le projet QGIS : couches publiques en OGC API – Features, stylées comme la carte, en Lambert-93."""
    state = current_state()
    settings = state.settings
    base_url = (base_url or settings.public_base_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        fail(f"adresse du service invalide : « {base_url} » (http:// ou https://)")
    options = qgis_project.ProjectOptions(base_url=base_url, title=settings.operator.name, editing=editing)
    with state.engine().connect() as conn:
        archive = qgis_project.project_archive(conn, state.registry, options)
    if output.suffix != ".qgz":
        fail(f"« {output} » : le projet s'écrit dans un fichier .qgz")
    output.write_bytes(archive)
    click.echo(f"Projet QGIS écrit : {output} ({len(archive)} octets, service {base_url}"
               + (f", authentification « {qgis_project.AUTHCFG_ID} » à créer dans QGIS)" if editing else ")"))


COMMANDS = [qgis]
