"""Helpers of the import tests: run a kind on a fixture, read its issues, build the binary fixtures.

The text fixtures under ``fixtures/opendata/`` are written in each producer's published format; the
binary ones (gzip, zip, GeoPackage, shapefile) are built from them or from coordinates here, at test time.
"""

from __future__ import annotations

import gzip
import shutil
import zipfile
from pathlib import Path

import geopandas as gpd
from shapely.geometry import MultiPolygon, box
from sqlalchemy import Connection, Engine, text

from geo_service.layers import LayerRegistry
from geo_service.services.importers import ImportReport, run_import
from geo_service.settings import Settings

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "opendata"
CARTEFIBRE = FIXTURES / "carte_fibre_immeubles_2026_T2_20260902.csv"
# Gramat in Lambert-93: the coverage squares of the white-zone tests are drawn around it.
GRAMAT_L93 = (598388.0, 6408466.0)


def run(conn: Connection, registry: LayerRegistry, settings: Settings, kind: str, location, **kwargs) -> ImportReport:
    """One import in the test's transaction."""
    return run_import(conn, registry, settings.territory, kind, str(location), **kwargs)


def issues(report: ImportReport) -> dict[int | None, list[str]]:
    """Line → columns of the rejected rows (warnings excluded)."""
    found: dict[int | None, list[str]] = {}
    for issue in report.issues.first:
        if issue.rejected:
            found.setdefault(issue.line, []).append(issue.column)
    return found


def warnings(report: ImportReport) -> dict[int | None, list[str]]:
    found: dict[int | None, list[str]] = {}
    for issue in report.issues.first:
        if not issue.rejected:
            found.setdefault(issue.line, []).append(issue.reason)
    return found


def counts(report: ImportReport, table: str) -> tuple[int, int, int]:
    t = report.table(table)
    return t.inserted, t.updated, t.unchanged


def gzipped(name: str, folder: Path) -> Path:
    """A fixture compressed as the producer ships it (``base_imb_46.csv`` → ``base_imb_46.csv.gz``)."""
    target = folder / f"{name}.gz"
    with open(FIXTURES / name, "rb") as src, gzip.open(target, "wb") as out:
        shutil.copyfileobj(src, out)
    return target


def zipped(folder_name: str, target: Path) -> Path:
    """The files of a fixture folder in one zip archive."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((FIXTURES / folder_name).iterdir()):
            archive.write(path, path.name)
    return target


def coverage_gpkg(path: Path, features: list[dict]) -> Path:
    """An ARCEP-style coverage GeoPackage (EPSG:2154, MultiPolygon) from (field values + ``box`` in metres)."""
    rows = [{**{k: v for k, v in f.items() if k != "box"}, "geometry": MultiPolygon([box(*f["box"])])}
            for f in features]
    gpd.GeoDataFrame(rows, crs="EPSG:2154").to_file(path, layer="couverture", driver="GPKG")
    return path


def square_around(centre: tuple[float, float], dx0: float, dy0: float, dx1: float, dy1: float) -> tuple:
    x, y = centre
    return (x + dx0, y + dy0, x + dx1, y + dy1)


def delete_imported(engine: Engine, tables: tuple[str, ...], sources: tuple[str, ...] = ()) -> None:
    """Remove the rows committed imports wrote (by their source: every kind's dataset name, plus ``sources``)
    and the import lines of the load journal; other tests' rows and demo rows are left alone."""
    from geo_service.services.importers import kinds, white_zone_compute

    datasets = [k.dataset for k in kinds().values()] + [white_zone_compute.SOURCE, *sources]
    with engine.begin() as conn:
        for table in tables:
            conn.execute(text(f"DELETE FROM {table} WHERE source = ANY(:s)"), {"s": datasets})
        conn.execute(text("DELETE FROM dataset_loads WHERE kind = 'import'"))
        if {"premises", "addresses"} & set(tables):
            # The committed imports rebuilt the geocoder's index with their rows: rebuild it without them.
            from geo_service.services.resident import geocoder

            geocoder.refresh_search_index(conn)
