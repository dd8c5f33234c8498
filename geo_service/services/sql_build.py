"""Pieces of the SQL text the services write by hand: quoted identifiers and JSON objects of many columns.

Identifiers come from the layer registry only (validated ``^[a-z][a-z0-9_]*$`` names), never from user text;
values are always bound parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

# jsonb_build_object takes at most 100 arguments: pairs go in groups of 50, merged with ||.
PAIRS_PER_CALL = 50


def quote_ident(identifier: str) -> str:
    """A PostgreSQL quoted identifier.

    >>> quote_ident('code_insee'), quote_ident('a"b')
    ('"code_insee"', '"a""b"')
    """
    return '"' + identifier.replace('"', '""') + '"'


def jsonb_object_sql(pairs: Sequence[str]) -> str:
    """A jsonb object of ``'key', value`` pairs (SQL text), however many there are.

    >>> jsonb_object_sql(["'a', 1", "'b', t.b"])
    "jsonb_build_object('a', 1, 'b', t.b)"
    """
    groups = [", ".join(pairs[i:i + PAIRS_PER_CALL]) for i in range(0, len(pairs), PAIRS_PER_CALL)]
    return " || ".join(f"jsonb_build_object({group})" for group in groups)


def columns_object_sql(names: Sequence[str], alias: str | None = None) -> str:
    """A jsonb object of columns by their names (``{'name': alias."name", …}``)."""
    prefix = f"{alias}." if alias else ""
    return jsonb_object_sql([f"'{name}', {prefix}{quote_ident(name)}" for name in names])
