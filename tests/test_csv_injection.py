"""Every CSV the service writes opens in a spreadsheet as data, never as formulas (OWASP "CSV injection").

The files are read as a person's spreadsheet reads them: LibreOffice Calc (headless, Debian's
``libreoffice-calc-nogui``) imports each CSV with its default options — formulas evaluated — and saves it as
.xlsx, which openpyxl reads back: no cell may be a formula, and each hostile text must be there as typed, behind
the one quote that marks it as text.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from factories import CAHORS, Factory, account, wipe_editing
from fastapi.testclient import TestClient
from import_helpers import FIXTURES
from sqlalchemy import Engine, text

from geo_service.cli.app import cli
from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services import csv_safe
from geo_service.services.editing import history
from geo_service.settings import PROJECT_ROOT, Settings

HOSTILE = ['=HYPERLINK("http://x","y")', "+1+1", "@SUM(A1)", "-2+3"]
SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
Cells = list[list[tuple[object, str]]]


@pytest.fixture(scope="module")
def calc() -> str:
    if SOFFICE is None:
        if os.environ.get("CI"):
            pytest.fail("LibreOffice Calc absent en CI : .ci/system-deps test doit installer libreoffice-calc-nogui")
        pytest.skip("LibreOffice Calc absent : sudo apt-get install -y --no-install-recommends libreoffice-calc-nogui "
                    "(ou bash .ci/system-deps test)")
    return SOFFICE


def as_spreadsheet(soffice: str, csv_file: Path, separator: str = ",") -> Cells:
    """The cells Calc makes of ``csv_file`` (UTF-8, ``separator``, Calc's other import defaults: formulas are
    evaluated), as (value, openpyxl type): ``s`` text, ``n`` number, ``f`` formula."""
    import openpyxl

    folder = csv_file.parent / f"{csv_file.stem}-calc"
    # A profile of its own: two Calc processes sharing one would wait for each other's lock.
    profile = (csv_file.parent / "calc-profile").as_uri()
    done = subprocess.run([soffice, f"-env:UserInstallation={profile}", "--headless", "--norestore",
                           f"--infilter=CSV:{ord(separator)},34,76,1", "--convert-to", "xlsx", "--outdir",
                           str(folder), str(csv_file)], capture_output=True, text=True, timeout=300)
    converted = folder / f"{csv_file.stem}.xlsx"
    assert converted.exists(), f"Calc n'a pas converti {csv_file.name} : {done.stdout} {done.stderr}"
    sheet = openpyxl.load_workbook(converted).active
    return [[(cell.value, cell.data_type) for cell in row] for row in sheet.iter_rows()]


def assert_read_as_typed_text(cells: Cells) -> None:
    formulas = [value for row in cells for value, kind in row if kind == "f"]
    assert formulas == [], "a spreadsheet would run these cells"
    texts = {value for row in cells for value, kind in row if kind == "s"}
    for typed in HOSTILE:
        assert csv_safe.TEXT_MARKER + typed in texts, f"{typed!r} is not shown as typed"


# -- the one helper ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("typed", [*HOSTILE, "=1+1", "\t=1+1", "\r=1+1", "-", "+33 5 65 00 00 00", "@", "-1.5e"])
def test_text_that_could_start_a_formula_gets_the_text_marker(typed: str):
    assert csv_safe.neutralise(typed) == "'" + typed


@pytest.mark.parametrize("value", ["-1.5", "+3", "2e-05", "-1,5", "12", "Mairie", "", "'=déjà marqué", -1.5, None])
def test_numbers_and_plain_text_are_left_alone(value: object):
    assert csv_safe.neutralise(value) == value


def test_every_csv_writer_of_the_service_goes_through_the_one_helper():
    """A new CSV writer that calls the csv module itself fails here: it must use ``csv_safe.writer``."""
    offenders = []
    for path in (PROJECT_ROOT / "geo_service").rglob("*.py"):
        if path.name == "csv_safe.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "csv" \
                    and node.attr in ("writer", "DictWriter"):
                offenders.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}")
    assert offenders == []


# -- the files, as a spreadsheet reads them --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hostile_place(loaded_boundaries: Engine, registry: LayerRegistry) -> Iterator[str]:
    """A published third place whose text fields hold the hostile texts (what a contributor or a file could store)."""
    factory = Factory(registry)
    with loaded_boundaries.begin() as conn:
        factory.feature(conn, "third_places", CAHORS, tl_id="csv-injection", nom=HOSTILE[0], adresse=HOSTILE[1],
                        commune=HOSTILE[2], telephone=HOSTILE[3])
    yield "csv-injection"
    with loaded_boundaries.begin() as conn:
        factory.cleanup(conn)


def test_a_layer_export_opens_as_text_in_a_spreadsheet(calc: str, settings: Settings, hostile_place: str,
                                                        tmp_path: Path):
    with TestClient(create_app(settings), base_url="http://localhost") as client:
        answer = client.get("/api/export/third_places", params={"format": "csv"})
    assert answer.status_code == 200
    exported = tmp_path / "third_places.csv"
    exported.write_bytes(answer.content)
    cells = as_spreadsheet(calc, exported)
    assert_read_as_typed_text(cells)
    header = [value for value, _ in cells[0]]
    row = next(r for r in cells if r[header.index("tl_id")][0] == hostile_place)
    # Numbers stay numbers: the coordinates are read as such, not as text.
    assert {row[header.index("lon")][1], row[header.index("lat")][1]} == {"n"}
    assert row[header.index("nom")][0] == "'" + HOSTILE[0]


@pytest.fixture(scope="module")
def hostile_history(loaded_boundaries: Engine, registry: LayerRegistry, hostile_place: str) -> Iterator[str]:
    """Entries of the audit trail whose comments hold the hostile texts; yields an administrator's token."""
    with loaded_boundaries.begin() as conn:
        wipe_editing(conn, registry)
        token = account(conn, "csv-admin", "admin")
        fid = conn.execute(text("SELECT fid FROM third_places WHERE tl_id = :k"), {"k": hostile_place}).scalar_one()
        for comment in HOSTILE:
            history.record(conn, "third_places", fid, "update", actor="csv-admin", path="cli", before=None,
                           after=None, comment=comment)
    yield token
    with loaded_boundaries.begin() as conn:
        wipe_editing(conn, registry)


def test_the_audit_trail_opens_as_text_in_a_spreadsheet(calc: str, settings: Settings, hostile_history: str,
                                                         tmp_path: Path):
    from_cli = tmp_path / "historique-cli.csv"
    result = CliRunner().invoke(cli, ["history", "export", "--layer", "third_places", "-o", str(from_cli)],
                                env={"GEO_SERVICE_DATABASE_URL": settings.database_url}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert_read_as_typed_text(as_spreadsheet(calc, from_cli))
    with TestClient(create_app(settings), base_url="http://localhost") as client:
        answer = client.get("/admin/api/history.csv", params={"layer": "third_places"},
                            headers={"Authorization": f"Bearer {hostile_history}"})
    assert answer.status_code == 200
    from_admin = tmp_path / "historique-admin.csv"
    from_admin.write_bytes(answer.content)
    assert_read_as_typed_text(as_spreadsheet(calc, from_admin))


def test_an_import_report_opens_as_text_in_a_spreadsheet(calc: str, settings: Settings, loaded_boundaries: Engine,
                                                          tmp_path: Path):
    """The rejected values of an import come straight from the file sent: the report must not run them."""
    rows = [f"TL-CSV-{n};Fablab;route;225557.779;5559882.747;{value}" for n, value in enumerate(HOSTILE)]
    source = tmp_path / "tiers-lieux.csv"
    source.write_text("identifiant;nom;adresse;x_3857;y_3857;services\n" + "\n".join(rows) + "\n", encoding="utf-8")
    report = tmp_path / "rejets.csv"
    result = CliRunner().invoke(
        cli, ["import", "generic", str(source), "--mapping", str(FIXTURES / "tiers_lieux_web_mercator.mapping.yaml"),
              "--dry-run", "--report", str(report)],
        env={"GEO_SERVICE_DATABASE_URL": settings.database_url}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    cells = as_spreadsheet(calc, report, separator=";")
    assert [value for value, _ in cells[0]][:4] == ["fichier", "ligne", "colonne", "valeur"]
    assert_read_as_typed_text(cells)
