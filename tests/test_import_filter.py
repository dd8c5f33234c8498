"""The territory filter that drops other départements' rows of a national file before they are parsed.

It must change nothing but the time taken: the rows kept, their line numbers, the faulty rows reported and
the counts read / outside are those of reading every row with the csv module. The file below has what could
fool a filter working on raw lines: quoted fields holding the separator, a quote or a line break (with
another département's code on the continuation line), rows of other départements with too many fields,
blank lines, CRLF and lone CR line ends, codes written ``46042.0`` or `` 46042``, a Corsican code.
"""

from __future__ import annotations

import io

import pytest
from import_helpers import CARTEFIBRE, run
from sqlalchemy import text

from geo_service.services.importers.framework import csv_table
from geo_service.services.importers.framework.csv_table import CodeFilter, CsvTable
from geo_service.services.importers.framework.values import insee_code

HEADER = "x,y,imb_id,nom_voie,code_insee,imb_etat\r\n"
ROWS = [
    "1.44,44.45,A1,RUE DES LILAS,46042,deploye\r\n",
    "2.35,48.85,P1,RUE DE RIVOLI,75056,deploye\r\n",
    '1.44,44.45,A2,"RUE ""DU"" PONT, BIS",46042,cible\r\n',
    '2.35,48.85,P2,"QUAI,\r\n75056,75056,75056",75056,deploye\r\n',  # a line break inside quotes
    '1.44,44.45,A3,"CHEMIN\r\n12,75056,x,y",46042,signe\r\n',  # the continuation looks like another département
    "2.35,48.85,P3,RUE,75056,deploye,extra,fields\r\n",  # too many fields: reported even though it is elsewhere
    "\r\n",
    "1.44,44.45,A4,RUE,46042.0,deploye\r\n",
    "1.44,44.45,A5,RUE, 46042 ,deploye\r\n",
    "8.73,41.92,C1,RUE,2A004,deploye\r\n",
    "2.35,48.85,P4,RUE,75056\r\n",  # short row: padded
    "1.44,44.45,A6,RUE,46042\r\n",
    "2.35,48.85,P5,RUE,,deploye\r\n",  # no code
    "2.35,48.85,P6,RUE,750\r\n",
]


def _read(data: bytes, skip: bool) -> tuple[list, list, int]:
    table = CsvTable(io.BytesIO(data), "national.csv")
    at = table.index("code_insee")
    bad: list[tuple[int, int]] = []
    kept, read = [], 0
    for line, values in table.rows(lambda line, n: bad.append((line, n)), skip=CodeFilter(at, "46") if skip else None):
        read += 1
        code = insee_code(values[at])
        if code and code.startswith("46"):
            kept.append((line, values))
    return kept, bad, read + table.skipped


@pytest.mark.parametrize("block", [7, 64, 1 << 20])
@pytest.mark.parametrize("line_end", ["\r\n", "\n"])
def test_the_filter_keeps_exactly_what_reading_every_row_keeps(monkeypatch, block, line_end):
    monkeypatch.setattr(csv_table, "BLOCK_BYTES", block)  # blocks that cut lines, quotes and CRLF in two
    data = (HEADER + "".join(ROWS * 3)).replace("\r\n", line_end).encode()
    every_row = _read(data, skip=False)
    filtered = _read(data, skip=True)
    assert filtered == every_row
    kept, bad, read = filtered
    assert [values[2] for _, values in kept] == ["A1", "A2", "A3", "A4", "A5", "A6"] * 3
    assert [line for line, _ in kept][:6] == [2, 4, 7, 11, 12, 15]
    assert bad == [(9, 8), (25, 8), (41, 8)]
    assert read == 12 * 3  # the blank line is not a row, the faulty one is reported instead


def test_lines_of_elsewhere_are_dropped_unparsed():
    data = (HEADER + "".join(ROWS)).encode()
    table = CsvTable(io.BytesIO(data), "national.csv")
    list(table.rows(skip=CodeFilter(table.index("code_insee"), "46")))
    # P1, P4 and C1 (Corsica); P6 (a 3-digit code) and the quoted ones go to the csv reader.
    assert table.skipped == 3


def test_a_lone_carriage_return_file_reads_the_same(monkeypatch):
    monkeypatch.setattr(csv_table, "BLOCK_BYTES", 16)
    data = (HEADER + "".join(r for r in ROWS if '"' not in r)).replace("\r\n", "\r").encode()
    assert _read(data, skip=True) == _read(data, skip=False)


def test_a_national_cartefibre_file_reports_the_same_rows(conn, registry, settings, tmp_path, loaded_boundaries):
    """Other départements' rows around the fixture's: the same rows kept, rejected (with their lines) and written."""
    lines = CARTEFIBRE.read_text(encoding="utf-8").splitlines(keepends=True)
    elsewhere = [f"4.8{i % 10},45.7{i % 10},IMB/69123/X/{i:05d},{i},,RUE,DE LYON,,69123,69001,LYON,individuel,"
                 "deploye,PM_LYON,deploye,,FAFO,PA,,f\n" for i in range(2000)]
    national = tmp_path / "carte_fibre_immeubles_2026_T2_20260902.csv"
    national.write_text("".join([lines[0], *elsewhere, *lines[1:], *elsewhere]), encoding="utf-8")
    alone = run(conn, registry, settings, "arcep-immeubles", CARTEFIBRE, dry_run=True)
    report = run(conn, registry, settings, "arcep-immeubles", national)
    assert (report.read, report.outside, report.kept) == (alone.read + 4000, alone.outside + 4000, alone.kept)
    shift = len(elsewhere)
    assert [(i.line, i.column, i.reason) for i in report.issues.first] == [
        (i.line + shift, i.column, i.reason) for i in alone.issues.first]
    written = conn.execute(text("SELECT count(*) FROM premises WHERE imb_id LIKE 'IMB/46%/TEST/%'")).scalar()
    assert written == alone.kept
