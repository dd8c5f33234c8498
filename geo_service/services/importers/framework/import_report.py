"""What an import tells its user: counts per table, and every rejected row or corrected value (in French).

Issues go to a spooled CSV as they come (a bad national file may reject millions of rows: memory stays
flat) and the first ones are kept for the screen; ``write_issues`` copies them all to the user's report.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TextIO

from geo_service.services import csv_safe

REPORT_HEADER = ("fichier", "ligne", "colonne", "valeur", "motif", "suite")
KEPT_ON_SCREEN = 200
REJECTED, WARNING = "ligne rejetée", "valeur corrigée ou ignorée, ligne importée"


@dataclass(frozen=True)
class Issue:
    """One rejected row (``rejected``) or one value corrected or dropped in a row that was imported."""

    file: str
    line: int | None
    column: str
    value: str
    reason: str
    rejected: bool = True

    def as_row(self) -> tuple[str, str, str, str, str, str]:
        return (self.file, "" if self.line is None else str(self.line), self.column, self.value, self.reason,
                REJECTED if self.rejected else WARNING)

    def __str__(self) -> str:
        where = f"{self.file}, ligne {self.line}" if self.line is not None else self.file
        value = f" = « {self.value} »" if self.value else ""
        tail = "" if self.rejected else " (ligne importée)"
        return f"{where} : {self.column}{value} : {self.reason}{tail}"


class IssueLog:
    """All issues of one import: counted, the first ones in memory, every one in a temporary CSV."""

    def __init__(self) -> None:
        self.first: list[Issue] = []
        self.rejected_rows = 0
        self.warnings = 0
        # Closed by close(), or with the object: it lives as long as the report, not a block.
        self._spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=1 << 22, mode="w+", encoding="utf-8", newline="")
        self._writer = csv_safe.writer(self._spool, delimiter=";")
        self._last_rejected: tuple[str, int | None] | None = None

    def reject(self, file: str, line: int | None, column: str, value: object, reason: str) -> None:
        """A row that is not imported; several reasons for one row count as one rejected row."""
        if (file, line) != self._last_rejected or line is None:
            self.rejected_rows += 1
            self._last_rejected = (file, line)
        self._add(Issue(file, line, column, _text(value), reason, True))

    def warn(self, file: str, line: int | None, column: str, value: object, reason: str) -> None:
        """A value corrected or dropped in a row that is imported all the same."""
        self.warnings += 1
        self._add(Issue(file, line, column, _text(value), reason, False))

    def _add(self, issue: Issue) -> None:
        if len(self.first) < KEPT_ON_SCREEN:
            self.first.append(issue)
        self._writer.writerow(issue.as_row())

    @property
    def total(self) -> int:
        return self.rejected_rows + self.warnings

    def write_csv(self, out: TextIO) -> None:
        """Every issue, ``;``-separated with a French header (opens in a spreadsheet; the rejected values come
        from the imported file, so cells that could be formulas are neutralised by ``csv_safe``)."""
        csv_safe.writer(out, delimiter=";").writerow(REPORT_HEADER)
        self._spool.seek(0)
        shutil.copyfileobj(self._spool, out)
        self._spool.seek(0, io.SEEK_END)

    def write_file(self, path: Path) -> None:
        # UTF-8 with BOM: spreadsheets then read the accents right.
        with open(path, "w", encoding="utf-8-sig", newline="") as out:
            self.write_csv(out)

    def close(self) -> None:
        self._spool.close()


def _text(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 200 else text[:197] + "…"


@dataclass
class TableCounts:
    """What an import did to one table."""

    table: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    unmatched: int = 0  # update-only imports: rows whose key is not in the table

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted

    def sentence(self) -> str:
        parts = [f"{_n(self.inserted)} ajoutées", f"{_n(self.updated)} modifiées", f"{_n(self.unchanged)} inchangées"]
        if self.deleted:
            parts.append(f"{_n(self.deleted)} supprimées")
        if self.unmatched:
            parts.append(f"{_n(self.unmatched)} sans correspondance dans la table")
        return f"{self.table} : " + ", ".join(parts)


@dataclass
class ImportReport:
    """The summary of one import: rows read, kept, rejected, and what each table received."""

    kind: str
    source: str
    import_id: str
    dataset: str
    source_date: date
    dry_run: bool = False
    read: int = 0
    outside: int = 0
    kept: int = 0
    tables: list[TableCounts] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    issues: IssueLog = field(default_factory=IssueLog)

    def table(self, name: str) -> TableCounts:
        """The counts of ``name`` (created on first use, in order of first use)."""
        for counts in self.tables:
            if counts.table == name:
                return counts
        counts = TableCounts(name)
        self.tables.append(counts)
        return counts

    @property
    def rejected(self) -> int:
        return self.issues.rejected_rows

    @property
    def changed(self) -> int:
        return sum(t.changed for t in self.tables)

    def counts(self) -> dict[str, object]:
        """Plain figures, for the load journal and the admin page."""
        return {"lues": self.read, "hors_territoire": self.outside, "retenues": self.kept,
                "rejetees": self.rejected, "avertissements": self.issues.warnings,
                "tables": {t.table: {"ajoutees": t.inserted, "modifiees": t.updated, "inchangees": t.unchanged,
                                     "supprimees": t.deleted, "sans_correspondance": t.unmatched}
                           for t in self.tables}}

    def summary(self) -> str:
        """A few French lines for the command line."""
        seconds = f"{self.duration_s:.1f}".replace(".", ",")
        head = "Simulation (--dry-run, rien n'a été écrit)" if self.dry_run else "Import terminé"
        lines = [f"{head} en {seconds} s : {self.kind} ← {self.source}",
                 f"  {self.dataset}, données du {self.source_date:%d/%m/%Y}, import {self.import_id}",
                 f"  lignes lues : {_n(self.read)} ; hors territoire : {_n(self.outside)} ; "
                 f"retenues : {_n(self.kept)} ; rejetées : {_n(self.rejected)} ; "
                 f"avertissements : {_n(self.issues.warnings)}"]
        lines += [f"  {t.sentence()}" for t in self.tables]
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)


def _n(value: int) -> str:
    return f"{value:,}".replace(",", "\u202f")
