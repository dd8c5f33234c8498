"""``geo-service export``: a layer as a file (GeoJSON, GeoPackage, CSV) with its licence, like /api/export."""

from __future__ import annotations

from pathlib import Path

import click

from geo_service.cli.state import current_state, fail, transaction


# --- export ---------------------------------------------------------------------------------------------
@click.command("export")
@click.argument("layer_id")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(["geojson", "gpkg", "csv"]))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Fichier (défaut : <couche>.<format>).")
def export(layer_id: str, fmt: str, output: Path | None) -> None:
    """Exporte une couche publiée (GeoJSON, GeoPackage ou CSV) avec sa licence et son attribution."""
    from geo_service.services.publish import layer_export as export_service
    from geo_service.services.publish.read_access import ANONYMOUS

    state = current_state()
    if layer_id not in state.registry:
        fail(f"couche inconnue « {layer_id} » ; couches : {', '.join(state.registry.ids)}")
    layer = state.registry.get(layer_id)
    target = output or Path(f"{layer_id}.{fmt}")
    with transaction() as conn:
        # The public's view: what an export may be shared as (restricted fields stay in the service).
        if fmt == "gpkg":
            target.unlink(missing_ok=True)  # GDAL would add the layer to an existing file
            export_service.geopackage(conn, layer, ANONYMOUS, target)
        else:
            writer = export_service.geojson if fmt == "geojson" else export_service.csv_rows
            with target.open("w", encoding="utf-8", newline="") as f:
                f.writelines(writer(conn, layer, ANONYMOUS))
    click.echo(f"{layer.title} → {target} (licence : {layer.licence})")


COMMANDS = (export,)
