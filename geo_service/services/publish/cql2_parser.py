"""CQL2 text and JSON parsing into pygeofilter's syntax tree, with the gaps of pygeofilter 0.4 closed.

pygeofilter's CQL2-text grammar predates CQL2 1.0 on a few points that matter to our users; rather than
copy it, we load it and amend it with Lark's ``%override``/``%extend``:

- strings may contain a doubled quote (``'Maison de l''emploi'``), French names need it;
- ``DATE``, ``TIMESTAMP`` and ``INTERVAL`` accept CQL2 1.0 literals (dates, ``'..'`` open ends, any case);
- ``BBOX(x1, y1, x2, y2)`` is a geometry literal (CQL2), not the old ECQL predicate;
- temporal operators are functions, ``T_AFTER(a, b)``, as in CQL2 1.0 (pygeofilter reads them infix);
- the CQL2 1.0 temporal names (``T_DISJOINT``, ``T_STARTS``, ``T_FINISHES``…) exist, and ``T_INTERSECTS``
  is no longer read as ``T_OVERLAPS``: it becomes ``NOT (T_BEFORE OR T_AFTER)``, its definition in CQL2.

The JSON encoding goes through pygeofilter's parser after the same renamings.

A filter comes from anyone on the internet: before any SQL, ``parse`` holds it to ``FilterLimits`` (length,
nesting, size, ``IN`` lists, AND/OR chains), checked without recursion, so that a hostile filter costs
milliseconds and earns a 400 that says the limit, never a RecursionError.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path

import lark
from pygeofilter import ast, values
from pygeofilter.parsers import cql2_json
from pygeofilter.parsers.cql2_text import parser as cql2_text

from geo_service.errors import InvalidParameter
from geo_service.services import untrusted_json
from geo_service.settings import ApiSettings

# pygeofilter turns Lark's logger to DEBUG at import, which prints grammar notes on every start.
lark.logger.setLevel(logging.WARNING)

LANGUAGES = ("cql2-text", "cql2-json")
_GRAMMAR = Path(cql2_text.__file__).with_name("grammar.lark")
_AMENDMENTS = r"""
%override SINGLE_QUOTED: /'(?:[^']|'')*'/
%override date: "DATE"i "(" SINGLE_QUOTED ")"
%override timestamp: "TIMESTAMP"i "(" SINGLE_QUOTED ")"
%override interval: "INTERVAL"i "(" SINGLE_QUOTED "," SINGLE_QUOTED ")"
%override temporal_predicate: _binary_temporal_predicate_func "(" expression "," expression ")" -> binary_temporal_predicate
%override spatial_predicate: _binary_spatial_predicate_func "(" expression "," expression ")" -> binary_spatial_predicate
%extend literal: "BBOX"i "(" full_number "," full_number "," full_number "," full_number ")" -> bbox_literal
%extend _binary_temporal_predicate_func: "T_DISJOINT"i | "T_STARTS"i | "T_STARTEDBY"i | "T_FINISHES"i | "T_FINISHEDBY"i
"""  # noqa: E501 — Lark rules cannot be wrapped
# CQL2 1.0 names of temporal operators that pygeofilter knows under their draft names.
_TEMPORAL_RENAMES = {"t_starts": "t_begins", "t_startedby": "t_begunby", "t_finishes": "t_ends",
                     "t_finishedby": "t_endedby"}


@dataclass(frozen=True)
class FilterLimits:
    """How large a filter may be (``settings.api.filter_*``); see ``check_limits``."""

    max_chars: int = 16_384
    max_depth: int = 20
    max_nodes: int = 1_000
    max_list: int = 500
    max_terms: int = 100

    @classmethod
    def from_settings(cls, api: ApiSettings) -> FilterLimits:
        return cls(api.filter_max_chars, api.filter_max_depth, api.filter_max_nodes, api.filter_max_list,
                   api.filter_max_terms)


DEFAULT_LIMITS = FilterLimits()


def _too_large(detail: str, limit: int) -> InvalidParameter:
    return InvalidParameter(f"filter : {detail}", parameter="filter", limit=limit)


def chain_terms(node: ast.And | ast.Or) -> list[object]:
    """The terms of a chain of one operator, in order: pygeofilter nests ``a AND b AND c`` as
    ``And(And(a, b), c)``, as deep as the chain is long; flattened without recursion."""
    kind, terms, stack = type(node), [], [node]
    while stack:
        item = stack.pop()
        if type(item) is kind:
            stack.extend((item.rhs, item.lhs))
        else:
            terms.append(item)
    return terms


def check_limits(tree: object, limits: FilterLimits) -> None:
    """Refuse a syntax tree beyond ``limits``, walking it with a stack (a deep tree must not overflow ours).

    A chain of one operator (``a AND b AND c``) is one level holding its terms; parentheses are no level.
    """
    nodes = 0
    stack: list[tuple[object, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > limits.max_nodes:
            raise _too_large(f"expression trop grande (plus de {limits.max_nodes} éléments)", limits.max_nodes)
        if depth > limits.max_depth:
            raise _too_large(f"expression trop imbriquée (plus de {limits.max_depth} niveaux)", limits.max_depth)
        if isinstance(node, ast.And | ast.Or):
            children = chain_terms(node)
            if len(children) > limits.max_terms:
                word = "AND" if isinstance(node, ast.And) else "OR"
                raise _too_large(f"{len(children)} conditions reliées par {word}, au plus {limits.max_terms} "
                                 "(une liste de valeurs s'écrit avec IN)", limits.max_terms)
        elif isinstance(node, ast.In | list):
            values = node.sub_nodes if isinstance(node, ast.In) else node
            if len(values) > limits.max_list:
                raise _too_large(f"liste de {len(values)} valeurs, au plus {limits.max_list}", limits.max_list)
            children = [node.lhs, *values] if isinstance(node, ast.In) else values
        elif isinstance(node, ast.Node):
            children = node.get_sub_nodes()
        else:
            continue
        stack.extend((child, depth + 1) for child in children)


def parse_instant(value: str) -> date | datetime | None:
    """An ISO 8601 date or timestamp; ``..`` (or empty) is an open end, returned as ``None``.

    >>> parse_instant("2020-01-31")
    datetime.date(2020, 1, 31)
    >>> parse_instant("2020-01-31T10:00:00Z").tzinfo is not None
    True
    """
    value = value.strip()
    if value in ("", ".."):
        return None
    try:
        if "T" in value.upper() or " " in value:
            return datetime.fromisoformat(value.replace("z", "Z"))
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"date ou horodatage ISO 8601 invalide : « {value} »") from None


def _temporal(op: str, lhs: ast.Node, rhs: ast.Node) -> ast.Node:
    op = _TEMPORAL_RENAMES.get(op, op)
    if op in ("t_intersects", "t_disjoint"):
        disjoint = ast.Or(ast.TimeBefore(lhs, rhs), ast.TimeAfter(lhs, rhs))
        return ast.Not(disjoint) if op == "t_intersects" else disjoint
    from pygeofilter.cql2 import TEMPORAL_PREDICATES_MAP

    return TEMPORAL_PREDICATES_MAP[op](lhs, rhs)


@lark.v_args(inline=True)
class _Transformer(cql2_text.CQLTransformer):
    """pygeofilter's transformer, for the rules we amended."""

    def SINGLE_QUOTED(self, token):  # noqa: N802 — Lark names terminal callbacks after the terminal
        return token[1:-1].replace("''", "'")

    def date(self, value):
        instant = parse_instant(value)
        if not isinstance(instant, date) or isinstance(instant, datetime):
            raise ValueError(f"DATE attend une date AAAA-MM-JJ, reçu « {value} »")
        return instant

    def timestamp(self, value):
        instant = parse_instant(value)
        if not isinstance(instant, datetime):
            raise ValueError(f"TIMESTAMP attend un horodatage AAAA-MM-JJThh:mm:ssZ, reçu « {value} »")
        return instant

    def interval(self, start, end):
        return values.Interval(parse_instant(start), parse_instant(end))

    def bbox_literal(self, x1, y1, x2, y2):
        return values.Envelope(x1, x2, y1, y2)

    def binary_temporal_predicate(self, op, lhs, rhs):
        return _temporal(str(op).lower(), lhs, rhs)


@cache
def _text_parser() -> lark.Lark:
    grammar = _GRAMMAR.read_text(encoding="utf-8") + _AMENDMENTS
    return lark.Lark(grammar, parser="lalr", maybe_placeholders=False, transformer=_Transformer(),
                     source_path=str(_GRAMMAR), import_paths=[str(_GRAMMAR.parent.parent)])


def _bbox_polygon(bbox: list) -> dict:
    # pygeofilter 0.4 reads a CQL2-JSON bbox as (x1, x2, y1, y2); we make it the polygon it stands for.
    if len(bbox) != 4 or not all(isinstance(n, int | float) for n in bbox):
        raise ValueError("bbox attend 4 nombres (les bbox en 3D ne sont pas prises en charge)")
    x0, y0, x1, y1 = bbox
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def _rename_json(node: object) -> object:
    """Apply the CQL2 1.0 temporal names and T_INTERSECTS/T_DISJOINT definitions to a CQL2-JSON tree."""
    if isinstance(node, list):
        return [_rename_json(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _rename_json(v) for k, v in node.items()}
    if isinstance(node.get("bbox"), list) and "op" not in node:
        return _bbox_polygon(node["bbox"])
    op = node.get("op")
    if isinstance(op, str) and op.lower() in (*_TEMPORAL_RENAMES, "t_intersects", "t_disjoint"):
        op = _TEMPORAL_RENAMES.get(op.lower(), op.lower())
        args = node.get("args")
        if op in ("t_intersects", "t_disjoint"):
            disjoint = {"op": "or", "args": [{"op": "t_before", "args": args}, {"op": "t_after", "args": args}]}
            return {"op": "not", "args": [disjoint]} if op == "t_intersects" else disjoint
        return {**node, "op": op}
    return node


def _first_line(message: str) -> str:
    lines = [line for line in str(message).splitlines() if line.strip()]
    return " ".join(lines[:3])[:300]


def _syntax_error(exc: lark.exceptions.LarkError, expression: str) -> str:
    """Where the parser stopped, in words a person can act on (Lark lists its grammar's token names)."""
    token = getattr(exc, "token", None)
    if isinstance(exc, lark.exceptions.UnexpectedEOF) or (token is not None and token.type == "$END"):
        return f"expression incomplète après « {expression.strip()[-40:]} »"
    column = getattr(exc, "column", None)
    if isinstance(column, int) and column > 0:
        found = str(token) if token is not None else getattr(exc, "char", expression[column - 1:column])
        return f"« {found} » inattendu à la colonne {column} : « {expression[max(0, column - 21):column + 19]} »"
    return _first_line(exc)


# Words, numbers, quoted strings and single signs: about the parser's tokens, counted at C speed.
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|[\w.]+|\S")
# Tokens per element a filter may hold: "a = 1" is three tokens and two elements, a coordinate two tokens.
_TOKENS_PER_NODE = 3


def parse(expression: str, lang: str, limits: FilterLimits = DEFAULT_LIMITS) -> ast.Node:
    """The syntax tree of a ``filter`` in ``lang``; any syntax error, or a filter beyond ``limits``, is a 400."""
    if lang not in LANGUAGES:
        raise InvalidParameter(f"filter-lang « {lang} » non pris en charge ; langages : {', '.join(LANGUAGES)}",
                               parameter="filter-lang")
    if len(expression) > limits.max_chars:
        raise _too_large(f"{len(expression)} caractères, au plus {limits.max_chars}", limits.max_chars)
    # Lark's parser costs ≈20 µs a token in Python: a filter with far more tokens than elements allowed is
    # refused before it is parsed (16,000 characters of "1," took 0.3 s to parse, 1 ms to count).
    if lang == "cql2-text" and len(_TOKENS.findall(expression)) > _TOKENS_PER_NODE * limits.max_nodes:
        raise _too_large(f"expression trop grande (plus de {limits.max_nodes} éléments)", limits.max_nodes)
    tree = _parse_text(expression) if lang == "cql2-text" else _parse_json(expression, limits)
    check_limits(tree, limits)
    return tree


def _parse_text(expression: str) -> ast.Node:
    # Lark's LALR parser keeps its own stack: deep parentheses cost memory, not recursion.
    try:
        return _text_parser().parse(expression)
    except lark.exceptions.VisitError as exc:
        raise InvalidParameter(f"filter : {_first_line(exc.orig_exc)}", parameter="filter") from None
    except lark.exceptions.LarkError as exc:
        raise InvalidParameter(f"filter : erreur de syntaxe CQL2 — {_syntax_error(exc, expression)}",
                               parameter="filter") from None
    except ValueError as exc:
        # Our literal checks (dates, timestamps) run while parsing.
        raise InvalidParameter(f"filter : {_first_line(exc)}", parameter="filter") from None


def _parse_json(expression: str, limits: FilterLimits) -> ast.Node:
    try:
        # Each level of an expression is an object and its "args" array; a geometry literal adds a few more.
        document = untrusted_json.loads(expression, 2 * limits.max_depth + 8)
    except untrusted_json.TooDeep:
        raise _too_large(f"expression trop imbriquée (plus de {limits.max_depth} niveaux)", limits.max_depth) from None
    except ValueError as exc:
        raise InvalidParameter(f"filter : JSON invalide — {_first_line(exc)}", parameter="filter") from None
    try:
        return cql2_json.parse(_rename_json(document))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        # Invalid JSON, or JSON that is not a CQL2 expression (pygeofilter raises these).
        raise InvalidParameter(f"filter : expression CQL2-JSON invalide — {type(exc).__name__} {_first_line(exc)}",
                               parameter="filter") from None
