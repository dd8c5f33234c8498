"""CSV files that a spreadsheet opens as data, never as formulas (OWASP "CSV injection").

Excel, LibreOffice Calc and Google Sheets take a cell whose text starts with ``=``, ``+``, ``-`` or ``@`` for a
formula (``=HYPERLINK(…)`` sends the neighbouring cells to another site when clicked; old DDE formulas start
programs), and a leading tab or carriage return can hide one. Text in our files comes from people and from
imported files, so every CSV the service writes — layer exports, the audit trail, import reports — goes through
``writer`` below, which puts a single quote ``'`` in front of such a cell: the spreadsheet then keeps it as text
(Excel takes the quote as its "text" marker and hides it; LibreOffice shows it).

A cell that is a plain number (``-1.5``, ``+3``, ``2e-05``, ``-1,5``) is left as it is, whatever its column: a
spreadsheet reads it as a number, never as a formula, so numeric columns (negative coordinates, amounts) stay
numbers. Only text that could be a formula changes, by one leading character.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
TEXT_MARKER = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?")


def neutralise(value: object) -> object:
    """``value`` as a CSV cell a spreadsheet will not run: text that could start a formula gets a leading ``'``.

    >>> neutralise('=HYPERLINK("http://x","y")')
    '\\'=HYPERLINK("http://x","y")'
    >>> neutralise("-2+3"), neutralise("-1.5"), neutralise(-1.5), neutralise("Mairie")
    ("'-2+3", '-1.5', -1.5, 'Mairie')
    """
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) and not _PLAIN_NUMBER.fullmatch(value):
        return TEXT_MARKER + value
    return value


class SafeWriter:
    """A ``csv.writer`` whose every cell goes through ``neutralise``."""

    def __init__(self, out: TextIO, **fmtparams: Any) -> None:
        self._writer = csv.writer(out, **fmtparams)

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow([neutralise(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[object]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(out: TextIO, **fmtparams: Any) -> SafeWriter:
    """The one way the service writes CSV: ``csv.writer(out, **fmtparams)`` with formula-proof cells."""
    return SafeWriter(out, **fmtparams)
