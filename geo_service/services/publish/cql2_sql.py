"""CQL2 syntax trees (pygeofilter) translated into SQLAlchemy Core conditions over a collection's table.

We translate the tree ourselves rather than with pygeofilter's SQLAlchemy backend because the backend
cannot know our types: a literal must be checked against the declared type of the property it meets
(a 400, not a database error), dates need CQL2's interval semantics, and geometry literals arrive in
``filter-crs`` axis order. Every value becomes a bound parameter; every identifier comes from the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime

import shapely
import shapely.geometry
from pygeofilter import ast, values
from sqlalchemy import Date, DateTime, Text, and_, any_, cast, false, func, literal, not_, or_, true
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.sql.elements import ColumnElement

from geo_service.errors import InvalidParameter
from geo_service.services.publish.cql2_parser import chain_terms, parse_instant
from geo_service.services.publish.crs import Crs
from geo_service.services.publish.feature_reader import GEOMETRY_NAMES, Collection

_COMPARISONS = {
    ast.Equal: lambda a, b: a == b, ast.NotEqual: lambda a, b: a != b,
    ast.LessThan: lambda a, b: a < b, ast.LessEqual: lambda a, b: a <= b,
    ast.GreaterThan: lambda a, b: a > b, ast.GreaterEqual: lambda a, b: a >= b,
}
_SPATIAL = {
    ast.GeometryIntersects: func.ST_Intersects, ast.GeometryDisjoint: func.ST_Disjoint,
    ast.GeometryContains: func.ST_Contains, ast.GeometryWithin: func.ST_Within,
    ast.GeometryTouches: func.ST_Touches, ast.GeometryCrosses: func.ST_Crosses,
    ast.GeometryOverlaps: func.ST_Overlaps, ast.GeometryEquals: func.ST_Equals,
}
# CQL2 1.0 temporal operators on (start, end) pairs; an instant is a period whose start is its end.
_TEMPORAL = {
    ast.TimeAfter: lambda a0, a1, b0, b1: a0 > b1,
    ast.TimeBefore: lambda a0, a1, b0, b1: a1 < b0,
    ast.TimeBegins: lambda a0, a1, b0, b1: and_(a0 == b0, a1 < b1),          # T_STARTS
    ast.TimeBegunBy: lambda a0, a1, b0, b1: and_(a0 == b0, a1 > b1),         # T_STARTEDBY
    ast.TimeContains: lambda a0, a1, b0, b1: and_(a0 < b0, a1 > b1),
    ast.TimeDuring: lambda a0, a1, b0, b1: and_(a0 > b0, a1 < b1),
    ast.TimeEndedBy: lambda a0, a1, b0, b1: and_(a0 < b0, a1 == b1),         # T_FINISHEDBY
    ast.TimeEnds: lambda a0, a1, b0, b1: and_(a0 > b0, a1 == b1),            # T_FINISHES
    ast.TimeEquals: lambda a0, a1, b0, b1: and_(a0 == b0, a1 == b1),
    ast.TimeMeets: lambda a0, a1, b0, b1: a1 == b0,
    ast.TimeMetBy: lambda a0, a1, b0, b1: a0 == b1,
    ast.TimeOverlaps: lambda a0, a1, b0, b1: and_(a0 < b0, a1 > b0, a1 < b1),
    ast.TimeOverlappedBy: lambda a0, a1, b0, b1: and_(a0 > b0, a0 < b1, a1 > b1),
}
_ARRAY = {ast.ArrayEquals: "=", ast.ArrayContains: "@>", ast.ArrayContainedBy: "<@", ast.ArrayOverlaps: "&&"}
_FAMILIES = {"integer": "number", "number": "number", "date": "time", "datetime": "time"}


def _refuse(message: str) -> InvalidParameter:
    return InvalidParameter(f"filter : {message}", parameter="filter")


@dataclass(frozen=True)
class _Term:
    """A scalar operand: a property (or CASEI of one) with its declared type, or a literal value."""

    expr: ColumnElement | None = None
    type: str | None = None
    value: object = None

    @property
    def is_literal(self) -> bool:
        return self.expr is None


def to_condition(node: ast.Node, collection: Collection, filter_crs: Crs) -> ColumnElement[bool]:
    """The SQL condition of a parsed CQL2 filter on ``collection``; anything we cannot honour is a 400."""
    return _Translator(collection, filter_crs).condition(node)


class _Translator:
    def __init__(self, collection: Collection, filter_crs: Crs):
        self.collection, self.crs = collection, filter_crs

    def condition(self, node: object) -> ColumnElement[bool]:  # noqa: C901 — one branch per CQL2 node kind
        if isinstance(node, ast.And | ast.Or):
            # One flat AND/OR of the chain's terms: no recursion (and no SQL nesting) as deep as the chain is long.
            combine = and_ if isinstance(node, ast.And) else or_
            return combine(*(self.condition(term) for term in chain_terms(node)))
        if isinstance(node, ast.Not):
            return not_(self.condition(node.sub_node))
        if isinstance(node, ast.Include):
            return false() if node.not_ else true()
        if isinstance(node, bool):
            return true() if node else false()
        if type(node) in _COMPARISONS:
            return self.comparison(node)
        if isinstance(node, ast.Like):
            return self.like(node)
        if isinstance(node, ast.Between):
            return self.between(node)
        if isinstance(node, ast.In):
            return self.in_(node)
        if isinstance(node, ast.IsNull):
            lhs = self.geometry(node.lhs) if self._is_geometry(node.lhs) else self.scalar(node.lhs).expr
            if lhs is None:
                raise _refuse("IS NULL s'applique à une propriété")
            return lhs.isnot(None) if node.not_ else lhs.is_(None)
        if type(node) in _TEMPORAL:
            return _TEMPORAL[type(node)](*self.period(node.lhs), *self.period(node.rhs))
        if type(node) in _SPATIAL:
            return _SPATIAL[type(node)](self.geometry(node.lhs), self.geometry(node.rhs))
        if type(node) in _ARRAY:
            return self.array(node)
        if not isinstance(node, ast.Node):
            raise _refuse(f"« {node!r} » n'est pas une condition")
        name = getattr(getattr(node, "op", None), "value", None) or type(node).__name__
        raise _refuse(f"opérateur « {name} » non pris en charge")

    # -- scalars -----------------------------------------------------------------------------------------
    def _is_geometry(self, node: object) -> bool:
        return isinstance(node, ast.Attribute) and node.name in GEOMETRY_NAMES

    def scalar(self, node: object) -> _Term:
        if isinstance(node, ast.Attribute):
            if node.name in GEOMETRY_NAMES:
                raise _refuse("la géométrie se compare avec les fonctions spatiales (S_INTERSECTS…)")
            prop = self.collection.prop(node.name, "filter")
            return _Term(prop.column, prop.type)
        if isinstance(node, ast.Function):
            if node.name != "lower" or len(node.arguments) != 1:
                raise _refuse(f"fonction « {node.name} » non prise en charge (seule CASEI l'est)")
            inner = self.scalar(node.arguments[0])
            if inner.is_literal:
                if not isinstance(inner.value, str):
                    raise _refuse("CASEI s'applique à une chaîne")
                return _Term(value=inner.value.lower())
            if inner.type != "string":
                raise _refuse("CASEI s'applique à une propriété texte")
            return _Term(func.lower(inner.expr), "string")
        if isinstance(node, str | int | float | bool | date):
            return _Term(value=node)
        if isinstance(node, ast.Arithmetic):
            raise _refuse("l'arithmétique n'est pas prise en charge")
        raise _refuse(f"valeur « {node} » inattendue ici")

    def bind(self, term: _Term, prop_type: str | None, name: str = "") -> ColumnElement:
        """A literal checked against the type of the property it meets, as a typed bound parameter."""
        value = term.value
        if prop_type in ("integer", "number"):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if ok and not (math.isfinite(value) and -(2**63) <= value < 2**63):
                raise _refuse(f"le nombre {value!r:.40} dépasse ce que la propriété « {name} » peut valoir")
        elif prop_type in ("string", "string_list"):
            ok = isinstance(value, str)
        elif prop_type == "boolean":
            ok = isinstance(value, bool)
        elif prop_type in ("date", "datetime"):
            if isinstance(value, str):
                try:
                    value = parse_instant(value)
                except ValueError as exc:
                    raise _refuse(str(exc)) from None
            ok = isinstance(value, date)
        else:
            ok = True
        if not ok:
            raise _refuse(f"la valeur {value!r} ne convient pas à la propriété « {name} » (type {prop_type})")
        # The literal's own type, never the column's: 2.5 must not be cast to an integer column's type.
        return literal(value)

    def _pair(self, lhs: object, rhs: object) -> tuple[ColumnElement, ColumnElement, str | None]:
        a, b = self.scalar(lhs), self.scalar(rhs)
        if a.is_literal and b.is_literal:
            raise _refuse("une comparaison doit porter sur au moins une propriété")
        if not a.is_literal and not b.is_literal:
            if _FAMILIES.get(a.type, a.type) != _FAMILIES.get(b.type, b.type):
                raise _refuse(f"propriétés de types différents ({a.type}, {b.type})")
            return a.expr, b.expr, a.type
        name = _name_of(lhs if not a.is_literal else rhs)
        if a.is_literal:
            return self.bind(a, b.type, name), b.expr, b.type
        return a.expr, self.bind(b, a.type, name), a.type

    def comparison(self, node: ast.Comparison) -> ColumnElement[bool]:
        lhs, rhs, type_ = self._pair(node.lhs, node.rhs)
        if type_ == "string_list":
            # A list property "equals" a value when it holds it: ?services=visio and services = 'visio' agree.
            if type(node) not in (ast.Equal, ast.NotEqual):
                raise _refuse("une propriété liste ne se compare qu'avec = ou <>")
            column, value = (lhs, rhs) if isinstance(node.lhs, ast.Attribute) else (rhs, lhs)
            holds = value == any_(column)
            return holds if type(node) is ast.Equal else not_(holds)
        return _COMPARISONS[type(node)](lhs, rhs)

    def like(self, node: ast.Like) -> ColumnElement[bool]:
        lhs, pattern = self.scalar(node.lhs), self.scalar(node.pattern)
        if lhs.is_literal or lhs.type != "string" or not pattern.is_literal or not isinstance(pattern.value, str):
            raise _refuse("LIKE compare une propriété texte à un motif entre apostrophes")
        condition = lhs.expr.ilike(pattern.value) if node.nocase else lhs.expr.like(pattern.value)
        return not_(condition) if node.not_ else condition

    def between(self, node: ast.Between) -> ColumnElement[bool]:
        lhs = self.scalar(node.lhs)
        if lhs.is_literal or lhs.type not in ("integer", "number", "date", "datetime", "string"):
            raise _refuse("BETWEEN s'applique à une propriété numérique, date ou texte")
        name = _name_of(node.lhs)
        low, high = (self.bind(self.scalar(v), lhs.type, name) for v in (node.low, node.high))
        condition = lhs.expr.between(low, high)
        return not_(condition) if node.not_ else condition

    def in_(self, node: ast.In) -> ColumnElement[bool]:
        lhs = self.scalar(node.lhs)
        if lhs.is_literal:
            raise _refuse("IN s'applique à une propriété")
        name = _name_of(node.lhs)
        options = [self.bind(self.scalar(v), lhs.type, name) for v in node.sub_nodes]
        if lhs.type == "string_list":
            condition = lhs.expr.op("&&")(cast(array(options), ARRAY(Text)))
        else:
            condition = lhs.expr.in_(options)
        return not_(condition) if node.not_ else condition

    def array(self, node: ast.ArrayPredicate) -> ColumnElement[bool]:
        lhs = self.scalar(node.lhs)
        if lhs.is_literal or lhs.type != "string_list" or not isinstance(node.rhs, list):
            raise _refuse("les fonctions A_* comparent une propriété liste à une liste de valeurs")
        items = [self.bind(self.scalar(v), "string", _name_of(node.lhs)) for v in node.rhs]
        return lhs.expr.op(_ARRAY[type(node)])(cast(array(items), ARRAY(Text)))

    # -- time --------------------------------------------------------------------------------------------
    def period(self, node: object) -> tuple[ColumnElement, ColumnElement]:
        """An operand of a temporal function as (start, end); an open end is ±infinity."""
        if isinstance(node, ast.Attribute):
            prop = self.collection.prop(node.name, "filter") if node.name not in GEOMETRY_NAMES else None
            if prop is None or not prop.is_temporal:
                raise _refuse(f"« {node.name} » n'est pas une propriété date ; les fonctions T_* portent sur une date")
            return prop.column, prop.column
        if isinstance(node, values.Interval):
            bounds = [node.start, node.end]
            kind = DateTime(timezone=True) if any(isinstance(b, datetime) for b in bounds) else Date()
            start, end = (literal(b) if b is not None else cast(literal(inf), kind)
                          for b, inf in zip(bounds, ("-infinity", "infinity"), strict=True))
            return start, end
        if isinstance(node, str):
            try:
                node = parse_instant(node)
            except ValueError as exc:
                raise _refuse(str(exc)) from None
        if isinstance(node, date):
            return literal(node), literal(node)
        raise _refuse(f"« {node} » n'est ni une date, ni un horodatage, ni un intervalle")

    # -- space -------------------------------------------------------------------------------------------
    def geometry(self, node: object) -> ColumnElement:
        """A spatial operand: the features' geometry, or a literal brought from ``filter-crs`` to storage."""
        if isinstance(node, ast.Attribute):
            if node.name not in GEOMETRY_NAMES:
                raise _refuse(f"« {node.name} » n'est pas une géométrie ; la géométrie s'appelle « geometry »")
            return self.collection.geom
        if isinstance(node, values.Envelope):
            x0, x1, y0, y1 = node.x1, node.x2, node.y1, node.y2
            if x0 > x1 or y0 > y1:
                raise _refuse("BBOX : les coins sont inversés")
            shape = shapely.geometry.box(x0, y0, x1, y1)
        elif isinstance(node, values.Geometry):
            if "crs" in node.geometry:
                raise _refuse("les géométries avec SRID ne sont pas prises en charge ; utilisez filter-crs")
            try:
                shape = shapely.geometry.shape(node.geometry)
            except (ValueError, TypeError, AttributeError, shapely.errors.ShapelyError) as exc:
                raise _refuse(f"géométrie invalide — {exc}") from None
        else:
            raise _refuse(f"« {node} » n'est pas une géométrie")
        if not shape.is_valid:
            raise _refuse(f"géométrie invalide — {shapely.is_valid_reason(shape)}")
        if self.crs.bounds is not None:
            bx0, by0, bx1, by1 = self.crs.bounds
            x0, y0, x1, y1 = shape.bounds
            if x0 < bx0 or y0 < by0 or x1 > bx1 or y1 > by1:
                raise _refuse(f"géométrie hors du domaine de {self.crs.uri} (filter-crs)")
        return self.crs.to_storage(func.ST_GeomFromText(literal(shape.wkt), self.crs.srid))


def _name_of(node: object) -> str:
    if isinstance(node, ast.Attribute):
        return node.name
    if isinstance(node, ast.Function) and node.arguments:
        return _name_of(node.arguments[0])
    return ""
