"""Writing an import: rows COPYed to a temporary stage, checked in PostGIS, then upserted by natural key.

The stage is a temporary table shaped like the target (same column types), so flat memory holds for any
file size: Python keeps a chunk, PostgreSQL the rest. Once the file is read, the stage is checked as a
whole (point inside the territory outline, duplicate keys) and merged with one
``INSERT … ON CONFLICT (key) DO UPDATE … WHERE the row really changed``: a re-import of the same file
updates nothing — not ``updated_at``, not ``version``, and no statement runs at all when nothing differs
(statement triggers such as the layer change counter stay quiet). For that, a new row is written as its
merges make it (a union sorted without repeats, say), never as the file gave it: otherwise the second
import would compare the file's form with the merged one and find a change.

Identifiers in the SQL come from the layer declarations and the importers' code, never from a file.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from psycopg import sql
from sqlalchemy import Connection, Table, text

from geo_service.services.importers.framework.import_report import IssueLog, TableCounts

CHUNK_ROWS = 5000
PROVENANCE = ("source", "licence", "source_date", "import_id", "updated_by")
_names = itertools.count(1)


@dataclass(frozen=True)
class Target:
    """A table an import writes: its key, the columns the import owns, and how an update treats them.

    ``insert_only`` columns (``geom`` included) are set when the row is created and left alone afterwards
    (e.g. a placeholder name people may have edited); ``merge`` gives the SQL of the updated value of a
    column, with ``{old}`` and ``{new}`` standing for the existing and the imported row. A new row gets what
    the merge makes of it against no existing row (``{old}`` all NULL); a merge must give the same value
    when applied twice with the same imported row (a union, keeping an old value), so that an unchanged
    file finds every row unchanged.
    """

    table: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    geometry: bool = True
    insert_only: frozenset[str] = frozenset()
    merge: Mapping[str, str] = field(default_factory=dict)
    provenance: tuple[str, ...] = ()
    versioned: bool = False
    stamped: bool = False
    has_demo: bool = False

    @classmethod
    def of(cls, table: Table, key: Sequence[str], columns: Sequence[str], **options) -> Target:
        """A target on ``table`` (SQLAlchemy metadata), its provenance columns found from the table itself."""
        names = set(table.c.keys())
        missing = (set(key) | set(columns)) - names
        if missing:
            raise KeyError(f"{table.name} : colonnes inconnues {sorted(missing)}")
        return cls(table=table.name, key=tuple(key), columns=tuple(c for c in columns if c not in key),
                   geometry="geom" in names and options.pop("geometry", True),
                   provenance=tuple(p for p in PROVENANCE if p in names), versioned="version" in names,
                   stamped="updated_at" in names, has_demo="demo" in names, **options)

    @property
    def written(self) -> tuple[str, ...]:
        return (*self.key, *self.columns, *(("geom",) if self.geometry else ()))

    @property
    def updated(self) -> tuple[str, ...]:
        return tuple(c for c in (*self.columns, *(("geom",) if self.geometry else ())) if c not in self.insert_only)

    def new_value(self, column: str, new: str, old: str = "t") -> str:
        if column in self.merge:
            return "(" + self.merge[column].format(old=old, new=new) + ")"
        return f"{new}.{column}"

    def first_value(self, column: str, new: str) -> str:
        """SQL: the value of a merged column in a new row, its merge with no existing row."""
        return self.new_value(column, new, old=f"(NULL::{self.table})")

    def changed(self, new: str) -> str:
        """SQL: the existing row ``t`` differs from what the import would make of it."""
        olds = [f"t.{c}" for c in self.updated]
        news = [self.new_value(c, new) for c in self.updated]
        if self.has_demo:
            olds.append("t.demo")
            news.append("false")
        if not olds:
            return "false"
        return f"({', '.join(olds)}) IS DISTINCT FROM ({', '.join(news)})"


class Stage:
    """The rows of one import for one target, in a temporary table until they are merged."""

    def __init__(self, conn: Connection, target: Target, file: str, issues: IssueLog):
        self.conn, self.target, self.file, self.issues = conn, target, file, issues
        self.name = f"import_stage_{next(_names)}"
        self._names = (*target.key, *target.columns)  # the values of a row, in the staging table's order
        self.count = 0
        self._rows: list[tuple] = []
        columns = ", ".join(target.written)
        conn.execute(text(f"CREATE TEMP TABLE {self.name} ON COMMIT DROP AS SELECT {columns} "
                          f"FROM {target.table} WITH NO DATA"))
        conn.execute(text(f"ALTER TABLE {self.name} ADD COLUMN _line bigint, ADD COLUMN _by_code boolean"))

    def add(self, line: int | None, values: Mapping[str, object], geom: str | None = None,
            by_code: bool = True) -> None:
        """One row: ``values`` of the key and columns, ``geom`` as hex EWKB; ``by_code`` says it was kept
        because of its commune code (outside the outline it is then an error, not another département)."""
        row = (line, by_code, *map(values.get, self._names))
        self._rows.append((*row, geom) if self.target.geometry else row)
        if len(self._rows) >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        columns = ["_line", "_by_code", *self.target.key, *self.target.columns]
        if self.target.geometry:
            columns.append("geom")
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(self.name), sql.SQL(", ").join(map(sql.Identifier, columns)))
        # The raw psycopg connection shares SQLAlchemy's transaction: the caller still commits or rolls back.
        raw = self.conn.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in self._rows:
                copy.write_row(row)
        self.count += len(self._rows)
        self._rows.clear()

    def finish(self) -> int:
        """Send the last chunk, put merged columns in the form a new row is written in (so that inserting,
        comparing and updating all see the same values), and gather statistics; returns the rows staged."""
        self.flush()
        merged = [c for c in self.target.columns if c in self.target.merge]
        if merged:
            sets = ", ".join(f"{c} = {self.target.first_value(c, 's')}" for c in merged)
            self.conn.execute(text(f"UPDATE {self.name} s SET {sets}"))
        self.conn.execute(text(f"ANALYZE {self.name}"))
        return self.count

    # --- checks on the whole stage ------------------------------------------------------------------
    def keep_inside(self, zone: str, whole_zone: str, territory: str, tolerance_m: float, columns: str) -> int:
        """Drop rows outside the territory; those kept for their commune code are rejected (returns the others).

        ``zone`` is the outline with its tolerance cut in small pieces (fast for points), ``whole_zone`` the
        same in one piece (for lines and polygons, which may straddle pieces).
        """
        inside = (f"CASE WHEN GeometryType(s.geom) = 'POINT' THEN EXISTS (SELECT 1 FROM {zone} z "
                  f"WHERE ST_Covers(z.geom, s.geom)) ELSE ST_CoveredBy(s.geom, (SELECT geom FROM {whole_zone})) END")
        rows = self.conn.execute(text(f"""
            WITH gone AS (DELETE FROM {self.name} s WHERE NOT ({inside})
                          RETURNING s._line, s._by_code, ST_X(ST_PointOnSurface(s.geom)) AS lon,
                                    ST_Y(ST_PointOnSurface(s.geom)) AS lat)
            SELECT _line, _by_code, lon, lat FROM gone ORDER BY _line""")).all()
        elsewhere = 0
        for line, by_code, lon, lat in rows:
            if by_code:
                self.issues.reject(self.file, line, columns, f"{lon:.6f}, {lat:.6f}",
                                   f"hors du territoire ({territory}, à plus de {tolerance_m:g} m de son contour) "
                                   "alors que son code commune (ou département) est celui du territoire")
            else:
                elsewhere += 1
        self.count -= len(rows)
        return elsewhere

    def locate_communes(self, code: str = "code_insee", name: str | None = None) -> None:
        """Fill a missing commune code (and name) from the commune under the point, else the nearest one."""
        set_name = f", {name} = coalesce(s.{name}, c.nom_actuel)" if name else ""
        for match in ("ST_Covers(c.geom, s2.geom) ORDER BY c.code_insee", "true ORDER BY c.geom <-> s2.geom"):
            self.conn.execute(text(f"""
                UPDATE {self.name} s SET {code} = c.code_insee_actuel{set_name}
                FROM (SELECT s2.ctid AS row_id, (SELECT c.fid FROM communes c WHERE {match} LIMIT 1) AS fid
                      FROM {self.name} s2 WHERE s2.{code} IS NULL) m
                JOIN communes c ON c.fid = m.fid
                WHERE s.ctid = m.row_id"""))

    def drop_duplicates(self, label: str) -> None:
        """Keep the last row of each key (files list updates after the original) and reject the others."""
        key = ", ".join(self.target.key)
        rows = self.conn.execute(text(f"""
            WITH ranked AS (SELECT ctid AS row_id, _line, concat_ws(' / ', {key}) AS k,
                                   max(_line) OVER (PARTITION BY {key}) AS kept FROM {self.name}),
                 gone AS (DELETE FROM {self.name} s USING ranked r WHERE s.ctid = r.row_id AND r._line < r.kept
                          RETURNING r._line, r.k, r.kept)
            SELECT _line, k, kept FROM gone ORDER BY _line""")).all()
        for line, key_value, kept in rows:
            self.issues.reject(self.file, line, label, key_value,
                               f"identifiant en double dans le fichier : la ligne {kept} est gardée")
        self.count -= len(rows)

    # --- merging ------------------------------------------------------------------------------------
    def _join(self, left: str, right: str) -> str:
        return " AND ".join(f"{left}.{k} = {right}.{k}" for k in self.target.key)

    def _provenance_set(self) -> list[str]:
        sets = [f"{p} = :p_{p}" for p in self.target.provenance]
        if self.target.stamped:
            sets.append("updated_at = now()")
        if self.target.versioned:
            sets.append("version = t.version + 1")
        if self.target.has_demo:
            sets.append("demo = false")
        return sets

    def upsert(self, provenance: Mapping[str, object], counts: TableCounts) -> TableCounts:
        """Insert new keys, update changed rows, leave identical ones alone (``counts`` is filled)."""
        t = self.target
        params = {f"p_{p}": provenance.get(p) for p in t.provenance}
        new, changed, total = self.conn.execute(text(f"""
            SELECT count(*) FILTER (WHERE t.{t.key[0]} IS NULL),
                   count(*) FILTER (WHERE t.{t.key[0]} IS NOT NULL AND {t.changed('s')}), count(*)
            FROM {self.name} s LEFT JOIN {t.table} t ON {self._join('t', 's')}""")).one()
        inserted = updated = 0
        if new or changed:
            columns = ", ".join((*t.written, *t.provenance))
            values = ", ".join((*t.written, *(f":p_{p}" for p in t.provenance)))
            sets = [f"{c} = {t.new_value(c, 'excluded')}" for c in t.updated] + self._provenance_set()
            action = (f"DO UPDATE SET {', '.join(sets)} WHERE {t.changed('excluded')}" if t.updated
                      else "DO NOTHING")
            inserted, updated = self.conn.execute(text(f"""
                WITH up AS (INSERT INTO {t.table} AS t ({columns}) SELECT {values} FROM {self.name}
                            ON CONFLICT ({', '.join(t.key)}) {action} RETURNING (xmax = 0) AS inserted)
                SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up"""),
                params).one()
        counts.inserted += inserted
        counts.updated += updated
        counts.unchanged += total - inserted - updated
        return counts

    def update_existing(self, provenance: Mapping[str, object], counts: TableCounts) -> TableCounts:
        """Update rows whose key is already in the table; keys not found are counted, never inserted."""
        t = self.target
        params = {f"p_{p}": provenance.get(p) for p in t.provenance}
        matched, changed, total = self.conn.execute(text(f"""
            SELECT count(t.{t.key[0]}), count(*) FILTER (WHERE t.{t.key[0]} IS NOT NULL AND {t.changed('s')}),
                   count(*)
            FROM {self.name} s LEFT JOIN {t.table} t ON {self._join('t', 's')}""")).one()
        updated = 0
        if changed:
            sets = [f"{c} = {t.new_value(c, 's')}" for c in t.updated] + self._provenance_set()
            updated = self.conn.execute(text(f"""
                WITH up AS (UPDATE {t.table} t SET {', '.join(sets)} FROM {self.name} s
                            WHERE {self._join('t', 's')} AND {t.changed('s')} RETURNING 1)
                SELECT count(*) FROM up"""), params).scalar_one()
        counts.updated += updated
        counts.unchanged += matched - updated
        counts.unmatched += total - matched
        return counts

    def delete_missing(self, scope: str, counts: TableCounts) -> TableCounts:
        """Delete the table's rows of every ``scope`` value present in the stage whose key the stage lacks:
        the file is the whole truth for what it describes (e.g. all offers at one building)."""
        t = self.target
        deleted = self.conn.execute(text(f"""
            DELETE FROM {t.table} t WHERE t.{scope} IN (SELECT DISTINCT {scope} FROM {self.name})
              AND NOT EXISTS (SELECT 1 FROM {self.name} s WHERE {self._join('t', 's')})""")).rowcount
        counts.deleted += deleted
        return counts

    def lines(self) -> set[int]:
        """File lines of the rows still in the stage (after the checks)."""
        return set(self.conn.execute(text(f"SELECT _line FROM {self.name}")).scalars())

    def drop(self) -> None:
        self.conn.execute(text(f"DROP TABLE IF EXISTS {self.name}"))
