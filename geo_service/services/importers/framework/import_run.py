"""The import framework: one call runs one kind of import on one file, in the caller's transaction.

``run_import`` opens the input (file, folder, URL or uploaded file object), hands it to the kind's ``run``
with an ``ImportContext`` (territory filter, stages, validation, issues, progress), then logs the load and
refreshes the geocoder. The caller owns the transaction, so an import is all or nothing: the CLI commits
at the end, a killed process leaves nothing; ``dry_run`` does everything inside a savepoint rolled back.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from calendar import monthrange
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property
from typing import BinaryIO, Protocol

from sqlalchemy import Connection, Table, text

from geo_service.db import unbounded
from geo_service.errors import ImportFileError, TerritoryNotLoaded
from geo_service.layers import LayerDecl, LayerRegistry
from geo_service.services.importers.framework import coordinates
from geo_service.services.importers.framework.csv_table import CodeFilter, CsvTable
from geo_service.services.importers.framework.import_report import ImportReport
from geo_service.services.importers.framework.sources import FileLimits, Member, Source, open_source
from geo_service.services.importers.framework.staging import Stage, Target
from geo_service.services.importers.framework.values import insee_code
from geo_service.services.resident import geocoder
from geo_service.settings import TerritorySettings
from geo_service.tables import metadata_for

ZONE, WHOLE_ZONE = "import_zone", "import_zone_whole"
# The geocoder's index is built from these: an import that changed them refreshes it.
GEOCODED_TABLES = ("premises", "addresses")


class Progress(Protocol):
    """How an import shows its progress; the CLI draws bars, the web API may ignore it."""

    def bar(self, label: str, total: int | None) -> Callable[[int], None]:
        """Start a bar of ``total`` bytes (None: unknown); returns ``advance(n)``. Ends the previous bar."""

    def step(self, message: str) -> None:
        """A stage of the import without a bar (checks and writing in the database)."""

    def close(self) -> None:
        """The import is over (or failed): end the current bar."""


class _Silent:
    def bar(self, label: str, total: int | None) -> Callable[[int], None]:
        return lambda n: None

    def step(self, message: str) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Kind:
    """One kind of import: the file it reads, the tables it writes, and the function that does it."""

    name: str
    description: str
    targets: str
    dataset: str
    publisher: str
    licence: str
    run: Callable[[ImportContext], None]
    refresh_geocoder: bool = False


@dataclass
class ImportContext:
    """Everything a kind needs: the connection, declarations, territory, input, report and provenance."""

    conn: Connection
    registry: LayerRegistry
    territory: TerritorySettings
    kind: Kind
    source: Source
    report: ImportReport
    options: Mapping[str, object]
    progress: Progress
    user: str
    licence: str
    _zone: bool = field(default=False, init=False)

    # --- declarations -------------------------------------------------------------------------------
    @cached_property
    def metadata(self):
        return metadata_for(self.registry)

    def layer(self, layer_id: str) -> LayerDecl:
        return self.registry.get(layer_id)

    def table(self, name: str) -> Table:
        return self.metadata.tables[name]

    def target(self, table: str, columns: tuple[str, ...] | list[str], key: tuple[str, ...] | None = None,
               **options) -> Target:
        """A target on a layer (key: its natural key) or on a service table (key given)."""
        if key is None:
            natural = self.layer(table).natural_key
            if natural is None:
                raise ImportFileError(f"la couche {table} n'a pas de clé naturelle : import impossible")
            key = (natural,)
        return Target.of(self.table(table), key, columns, **options)

    # --- provenance ---------------------------------------------------------------------------------
    def set_dataset(self, dataset: str, licence: str) -> None:
        """Name the dataset and its licence (the generic kind reads them from its mapping file)."""
        self.report.dataset, self.licence = dataset, licence

    @property
    def provenance(self) -> dict[str, object]:
        return {"source": self.report.dataset, "licence": self.licence, "source_date": self.report.source_date,
                "import_id": self.report.import_id, "updated_by": self.user}

    # --- reading ------------------------------------------------------------------------------------
    @contextmanager
    def csv(self, member: Member | None = None, **options) -> Iterator[CsvTable]:
        """A delimited file of the input, with a progress bar over its bytes."""
        member = member or self.source.main_table()
        self.source.advance = self.progress.bar(f"Lecture de {member.basename}", member.size)
        with self.source.open(member) as stream:
            table = CsvTable(stream, member.basename, **options)
            self.report.notes.append(f"{member.basename} : {table.dialect_note}")
            yield table
        self.source.advance = None

    def in_territory(self, code: str | None) -> bool:
        """Whether a commune or département code is the territory's (INSEE codes begin with the département)."""
        return bool(code) and code.startswith(self.territory.departement)

    def territory_rows(self, table: CsvTable, code_column: str | None, *, keep_without_code: bool = False
                       ) -> Iterator[tuple[int, str | None, dict[str, str]]]:
        """``(line, commune code, record)`` of each row of the territory; counts the rows read and those outside.

        ``keep_without_code``: a row without a commune code is kept too (it is placed by its position later).
        Rows whose code is plainly another département's are dropped before they are parsed (``CodeFilter``):
        a national file is mostly those.
        """
        file, code_at = table.label, table.index(code_column)
        skip = CodeFilter(code_at, self.territory.departement) if code_at is not None else None
        skipped = table.skipped
        try:
            for line, row in table.rows(self.bad_width(file, table.width), skip=skip):
                self.report.read += 1
                code = insee_code(row[code_at]) if code_at is not None else None
                if not (self.in_territory(code) or (keep_without_code and not code)):
                    self.report.outside += 1
                    continue
                yield line, code, table.record(row)
        finally:
            self.report.read += table.skipped - skipped
            self.report.outside += table.skipped - skipped

    # --- issues -------------------------------------------------------------------------------------
    def reject(self, file: str, line: int | None, column: str, value: object, reason: str) -> None:
        self.report.issues.reject(file, line, column, value, reason)

    def warn(self, file: str, line: int | None, column: str, value: object, reason: str) -> None:
        self.report.issues.warn(file, line, column, value, reason)

    def reject_problems(self, file: str, line: int, problems: Iterable[tuple[str, str]], record: Mapping[str, str],
                        values: Mapping[str, object], source_column: Mapping[str, str] | None = None) -> None:
        """Each validation problem as a rejected row, named by the file's column (``source_column``: field → column)."""
        for name, reason in problems:
            column = (source_column or {}).get(name, name)
            self.reject(file, line, column, record.get(column.lower(), values.get(name)), reason)

    def point(self, file: str, line: int, record: Mapping[str, str], x: str, y: str, crs: str = coordinates.WGS84,
              label: str | None = None) -> tuple[float, float] | None:
        """The row's position in degrees, or ``None`` once the row is rejected with the reason."""
        try:
            return coordinates.point(record.get(x), record.get(y), crs)
        except ValueError as exc:
            self.reject(file, line, label or f"{x}, {y}", f"{record.get(x)}, {record.get(y)}", str(exc))
            return None

    def bad_width(self, file: str, width: int) -> Callable[[int, int], None]:
        def report(line: int, count: int) -> None:
            self.reject(file, line, "(ligne)", f"{count} champs",
                        f"{count} champs au lieu de {width} : séparateur dans une valeur sans guillemets ?")
        return report

    # --- writing ------------------------------------------------------------------------------------
    def stage(self, target: Target, file: str) -> Stage:
        return Stage(self.conn, target, file, self.report.issues)

    def ensure_zone(self) -> None:
        """The territory outline grown by the tolerance, in small pieces (fast point tests) and whole."""
        if self._zone:
            return
        self.conn.execute(text(f"DROP TABLE IF EXISTS {ZONE}, {WHOLE_ZONE}"))
        self.conn.execute(text(f"""
            CREATE TEMP TABLE {WHOLE_ZONE} ON COMMIT DROP AS
            SELECT ST_Transform(ST_Buffer(ST_Transform(ST_Union(geom), 2154), :tol), 4326) AS geom FROM territory"""),
            {"tol": self.territory.tolerance_m})
        self.conn.execute(text(f"CREATE TEMP TABLE {ZONE} ON COMMIT DROP AS "
                               f"SELECT ST_Subdivide(geom, 128) AS geom FROM {WHOLE_ZONE}"))
        self.conn.execute(text(f"CREATE INDEX ON {ZONE} USING gist (geom)"))
        self.conn.execute(text(f"ANALYZE {ZONE}"))
        self._zone = True

    def write(self, stage: Stage, key_label: str, geometry_label: str | None = None, *, locate: bool = False,
              commune_name: str | None = None, update_only: bool = False, rows: bool = True) -> None:
        """The usual end of a kind: territory check, commune lookup, duplicates, then the upsert.

        ``rows``: the stage holds the file's rows (counted as kept), not features derived from them.
        """
        self.progress.step(f"Vérifications et écriture dans {stage.target.table}…")
        stage.finish()
        if stage.target.geometry:
            self.ensure_zone()
            self.report.outside += stage.keep_inside(ZONE, WHOLE_ZONE, self.territory.name,
                                                     self.territory.tolerance_m, geometry_label or "geom")
            if locate:
                stage.locate_communes(name=commune_name)
        stage.drop_duplicates(key_label)
        if rows:
            self.report.kept += stage.count
        counts = self.report.table(stage.target.table)
        if update_only:
            stage.update_existing(self.provenance, counts)
        else:
            stage.upsert(self.provenance, counts)


# --- the service entry point ------------------------------------------------------------------------
def run(conn: Connection, registry: LayerRegistry, territory: TerritorySettings, spec: Kind,
        location: str | BinaryIO, *, filename: str | None = None, source_date: date | None = None,
        options: Mapping[str, object] | None = None, user: str = "import", dry_run: bool = False,
        progress: Progress | None = None, limits: FileLimits | None = None,
        lift_time_limit: bool = False) -> ImportReport:
    """Import ``location`` (path, http(s) URL or binary file object) as ``spec``, in the caller's transaction.

    Raises ``ImportFileError`` (nothing written) when the file cannot be used; rows that break the layer
    declarations are rejected and listed in ``report.issues``, the others are written. ``lift_time_limit``: on a
    connection of the web engine (statements bounded in time), national files are upserted in statements that
    may run longer, as on the command line.
    """
    kind = spec.name
    if lift_time_limit:
        unbounded(conn)
    progress = progress or _Silent()
    if not conn.execute(text("SELECT EXISTS (SELECT 1 FROM territory)")).scalar():
        raise TerritoryNotLoaded("contour du territoire absent : lancez d'abord « geo-service load boundaries »")
    started = time.perf_counter()
    savepoint = conn.begin_nested() if dry_run else None
    with open_source(location, filename=filename, advance=progress.bar, limits=limits) as source:
        report = ImportReport(kind=kind, source=source.name, import_id=_import_id(kind), dataset=spec.dataset,
                              source_date=source_date or guess_source_date(source.name, source.modified),
                              dry_run=dry_run)
        ctx = ImportContext(conn, registry, territory, spec, source, report, options or {}, progress, user,
                            spec.licence)
        try:
            spec.run(ctx)
            if spec.refresh_geocoder and not dry_run and any(
                    t.changed for t in report.tables if t.table in GEOCODED_TABLES):
                progress.step("Mise à jour de l'index du géocodeur…")
                _refresh_geocoder(conn)
        except BaseException:
            report.issues.close()
            raise
        finally:
            progress.close()
    report.duration_s = time.perf_counter() - started
    if savepoint is not None:
        savepoint.rollback()
    else:
        _journal(conn, ctx)
    return report


def _import_id(kind: str) -> str:
    return f"{kind}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


_FULL_DATE = re.compile(r"(?<!\d)(20\d{2})[-_]?(0[1-9]|1[0-2])[-_]?(0[1-9]|[12]\d|3[01])(?!\d)")
_QUARTER = re.compile(r"(?<!\d)(20\d{2})[-_ ]?[Tt]([1-4])(?!\d)")
_YEAR = re.compile(r"(?<!\d)(20\d{2})(?!\d)")


def guess_source_date(name: str, modified: date | None) -> date:
    """The date of the data: from the file name (``20260902``; ``2026_T2`` → end of quarter; ``2019`` → end of
    year), else the file's modification date, else today.

    >>> guess_source_date("carte_fibre_immeubles_2026_T2_20260902.csv", None)
    datetime.date(2026, 9, 2)
    >>> guess_source_date("2023_T2_couv_Metropole_SFR0_4G_data.gpkg", None)
    datetime.date(2023, 6, 30)
    """
    dates = []
    for match in _FULL_DATE.finditer(name):
        try:
            dates.append(date(int(match[1]), int(match[2]), int(match[3])))
        except ValueError:
            continue
    if dates:
        return max(dates)
    quarter = _QUARTER.search(name)
    if quarter:
        year, month = int(quarter[1]), int(quarter[2]) * 3
        return date(year, month, monthrange(year, month)[1])
    year = _YEAR.search(name)
    if year:
        return min(date(int(year[1]), 12, 31), modified or date.today())
    return modified or date.today()


def _journal(conn: Connection, ctx: ImportContext) -> None:
    """One line in the load journal, where the admin page finds who imported what, from which file."""
    r = ctx.report
    details = {"kind": r.kind, "import_id": r.import_id, "dataset": r.dataset, "licence": ctx.licence,
               "source_date": r.source_date.isoformat(), "file": r.source, "user": ctx.user,
               "duration_s": round(r.duration_s, 1), **r.counts()}
    conn.execute(text("INSERT INTO dataset_loads (kind, source, details) VALUES ('import', :source, "
                      "CAST(:details AS jsonb))"),
                 {"source": r.source, "details": json.dumps(details, ensure_ascii=False)})


def _refresh_geocoder(conn: Connection) -> None:
    """Rebuild the geocoder's index: it is derived from premises, addresses and communes."""
    geocoder.refresh_search_index(conn)
