"""The items query of a collection: query parameters checked into an ``ItemsQuery``, then SQL run by PostGIS.

Features are written as GeoJSON by PostGIS (``json_build_object``) and streamed a batch at a time, so a
page of 10,000 features costs the service no more memory than a page of 10. Identifiers come from the
table built from the layer declaration; every value the client sends is a bound parameter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import JSON, Connection, Select, Text, and_, any_, cast, func, literal, null, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from geo_service.errors import InvalidParameter, NotFound
from geo_service.services.ogc import cql2
from geo_service.services.ogc.collection import Collection, Prop
from geo_service.services.ogc.crs import CRS84, BBox, Crs, parse_bbox, parse_crs
from geo_service.services.ogc.filters import to_condition

STREAM_BATCH = 1000
# Query parameters of OGC API Features Parts 1–3 that are not property filters.
STANDARD_PARAMETERS = frozenset({
    "f", "bbox", "bbox-crs", "crs", "limit", "offset", "datetime", "filter", "filter-lang", "filter-crs",
    "sortby", "properties", "skipGeometry",
})


@dataclass(frozen=True)
class ItemsQuery:
    limit: int
    offset: int = 0
    crs: Crs = CRS84
    conditions: tuple[ColumnElement[bool], ...] = ()
    order_by: tuple[ColumnElement, ...] = ()
    properties: tuple[Prop, ...] = ()
    skip_geometry: bool = False
    bbox: BBox | None = field(default=None, compare=False)


def _integer(value: str, parameter: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidParameter(f"{parameter} doit être un entier, reçu « {value} »", parameter=parameter) from None
    if number < minimum:
        raise InvalidParameter(f"{parameter} doit être supérieur ou égal à {minimum}", parameter=parameter)
    return number


def _single(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise InvalidParameter(f"Paramètre « {key} » répété", parameter=key)
        params[key] = value
    return params


def parse_items_query(collection: Collection, pairs: Iterable[tuple[str, str]], *, default_limit: int,
                      max_limit: int) -> ItemsQuery:
    """Check every query parameter of ``/items`` and turn it into SQL pieces; any mistake is a 400 naming it."""
    params = _single(pairs)
    unknown = [k for k in params if k not in STANDARD_PARAMETERS and k not in collection.props]
    if unknown:
        raise InvalidParameter(f"Paramètre inconnu « {unknown[0]} » : ni paramètre standard ni propriété "
                               f"interrogeable de « {collection.id} »", parameter=unknown[0])
    limit = _integer(params["limit"], "limit", 1) if "limit" in params else default_limit
    if limit > max_limit:
        raise InvalidParameter(f"limit ne peut dépasser {max_limit}", parameter="limit")
    offset = _integer(params["offset"], "offset", 0) if "offset" in params else 0
    crs = parse_crs(params.get("crs"), "crs")
    conditions = [collection.visible_rows()]
    bbox = None
    if "bbox" in params:
        bbox = parse_bbox(params["bbox"], parse_crs(params.get("bbox-crs"), "bbox-crs"))
        conditions.append(func.ST_Intersects(collection.geom, bbox.envelope()))
    elif "bbox-crs" in params:
        parse_crs(params["bbox-crs"], "bbox-crs")
    if "datetime" in params:
        conditions.extend(datetime_conditions(collection, params["datetime"]))
    filter_crs = parse_crs(params.get("filter-crs"), "filter-crs")
    lang = params.get("filter-lang", "cql2-text")
    if "filter" in params:
        conditions.append(to_condition(cql2.parse(params["filter"], lang), collection, filter_crs))
    elif lang not in cql2.LANGUAGES:
        cql2.parse("", lang)  # refuses the language, naming filter-lang
    conditions.extend(property_condition(collection.props[k], v) for k, v in params.items() if k in collection.props)
    return ItemsQuery(
        limit=limit, offset=offset, crs=crs, conditions=tuple(conditions), bbox=bbox,
        order_by=tuple(sort_order(collection, params.get("sortby", ""))),
        properties=tuple(select_properties(collection, params.get("properties"))),
        skip_geometry=_boolean(params.get("skipGeometry", "false"), "skipGeometry"),
    )


def _boolean(value: str, parameter: str) -> bool:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidParameter(f"{parameter} vaut true ou false, reçu « {value} »", parameter=parameter)


def datetime_conditions(collection: Collection, value: str) -> list[ColumnElement[bool]]:
    """``datetime`` (instant, ``a/b``, ``../b``, ``a/..``) on the layer's date field.

    A collection without a date field has no temporal information: per OGC API Features Part 1 the
    parameter is then checked and ignored, so one URL can query every collection.
    """
    try:
        if "/" in value:
            start, end = (cql2.parse_instant(v) for v in value.split("/", 1))
        else:
            start = end = cql2.parse_instant(value)
            if start is None:
                raise ValueError("un instant ne peut être « .. »")
    except ValueError as exc:
        raise InvalidParameter(f"datetime : {exc}", parameter="datetime") from None
    if start is not None and end is not None and _as_datetime(start) > _as_datetime(end):
        raise InvalidParameter("datetime : le début de l'intervalle suit sa fin", parameter="datetime")
    prop = collection.date_prop
    if prop is None:
        return []
    if prop.type == "date":
        # A day-precision column: compare days, so 2024-05-02T10:00Z falls on 2024-05-02.
        start, end = (v.date() if isinstance(v, datetime) else v for v in (start, end))
    conditions = []
    if start is not None:
        conditions.append(prop.column >= literal(start))
    if end is not None:
        conditions.append(prop.column <= literal(end))
    return conditions or [prop.column.isnot(None)]


def _as_datetime(value: date) -> datetime:
    moment = value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)
    return moment.replace(tzinfo=None)


def property_condition(prop: Prop, raw: str) -> ColumnElement[bool]:
    """``?statut=installee``: equality on a queryable, the value read with the property's declared type."""
    try:
        if prop.type == "integer":
            value: object = int(raw)
        elif prop.type == "number":
            value = float(raw)
        elif prop.type == "boolean":
            value = _boolean(raw, prop.name)
        elif prop.is_temporal:
            value = cql2.parse_instant(raw)
            if value is None:
                raise ValueError("date attendue")
        else:
            value = raw
    except (ValueError, InvalidParameter):
        raise InvalidParameter(f"{prop.name} : valeur « {raw} » invalide pour le type {prop.type}",
                               parameter=prop.name) from None
    codes = prop.field.code_values if prop.field else None
    if codes is not None and value not in codes:
        allowed = ", ".join(str(c) for c in codes)
        raise InvalidParameter(f"{prop.name} : valeur « {raw} » hors de la liste ({allowed})", parameter=prop.name)
    if prop.type == "string_list":
        return literal(value) == any_(prop.column)
    return prop.column == literal(value)


def sort_order(collection: Collection, value: str) -> list[ColumnElement]:
    """``sortby=+nom,-date``: declared properties only; the feature id breaks ties so pages never overlap."""
    order = []
    for item in (v.strip() for v in value.split(",") if v.strip()):
        # A '+' in a URL query decodes to a space; strip() above already took it.
        descending, name = item.startswith("-"), item.lstrip("+-")
        column = collection.prop(name, "sortby").column
        order.append(column.desc().nulls_last() if descending else column.asc().nulls_last())
    return [*order, collection.fid.asc()]


def select_properties(collection: Collection, value: str | None) -> list[Prop]:
    if value is None:
        return list(collection.props.values())
    return [collection.prop(name.strip(), "properties") for name in value.split(",") if name.strip()]


def _properties_json(props: Iterable[Prop]) -> ColumnElement:
    props = list(props)
    if not props:
        return cast(literal("{}"), JSON)
    if len(props) <= 50:
        return func.json_build_object(*(arg for p in props for arg in (literal(p.name), p.column)))
    # json_build_object takes at most 100 arguments: merge jsonb groups of 50 pairs instead.
    groups = [props[i:i + 50] for i in range(0, len(props), 50)]
    merged = func.jsonb_build_object(*(a for p in groups[0] for a in (literal(p.name), p.column)))
    for group in groups[1:]:
        merged = merged.op("||")(func.jsonb_build_object(*(a for p in group for a in (literal(p.name), p.column))))
    return merged


# Built expressions, reused: constructing a 30-property json_build_object (and its cache key) on every
# request cost more CPU than the rest of the handler. Elements are immutable; the key names the inputs.
_FEATURE_JSON: dict[tuple, ColumnElement] = {}


def feature_json(collection: Collection, props: Iterable[Prop], crs: Crs, skip_geometry: bool) -> ColumnElement:
    """One feature as GeoJSON text, built by PostGIS (options 0: no ``crs`` member inside geometries)."""
    props = tuple(props)
    key = (collection.table, tuple((p.name, p.column) for p in props), crs, skip_geometry)
    built = _FEATURE_JSON.get(key)
    if built is None:
        geometry = null() if skip_geometry else cast(
            func.ST_AsGeoJSON(crs.from_storage(collection.geom), crs.decimals, 0), JSON)
        built = cast(func.json_build_object(
            literal("type"), literal("Feature"), literal("id"), collection.fid,
            literal("geometry"), geometry, literal("properties"), _properties_json(props)), JSON)
        if len(_FEATURE_JSON) >= 512:  # `properties=` makes many combinations: stay bounded
            _FEATURE_JSON.clear()
        _FEATURE_JSON[key] = built
    return built


def _page(collection: Collection, query: ItemsQuery) -> Select:
    # As text: the service passes PostGIS's JSON through without parsing it.
    feature = cast(feature_json(collection, query.properties, query.crs, query.skip_geometry), Text)
    return (select(feature)
            .where(and_(*query.conditions)).order_by(*query.order_by).limit(query.limit).offset(query.offset))


def _bad_input(exc: DBAPIError) -> bool:
    # Data exceptions (22xxx) and GEOS failures (XX000) come from the values a client sent.
    code = getattr(exc.orig, "sqlstate", None) or ""
    return code.startswith("22") or code == "XX000"


def count_matched(conn: Connection, collection: Collection, query: ItemsQuery) -> int:
    """``numberMatched``; run before streaming, so a filter PostGIS rejects is still a clean 400."""
    try:
        return conn.execute(select(func.count()).select_from(collection.table)
                            .where(and_(*query.conditions))).scalar_one()
    except DBAPIError as exc:
        if _bad_input(exc):
            raise InvalidParameter(f"Requête refusée par la base : {str(exc.orig).splitlines()[0]}",
                                   parameter="filter") from None
        raise


def feature_batches(conn: Connection, collection: Collection, query: ItemsQuery) -> Iterator[list[str]]:
    """The page's features as GeoJSON texts, a batch of rows at a time.

    Pages larger than a batch go through a server-side cursor (memory stays flat); a smaller page is a
    single round trip, since a cursor would cost five (DECLARE, three FETCH, CLOSE).
    """
    if not is_streamed(query):
        yield conn.execute(_page(collection, query)).scalars().all()
        return
    result = conn.execution_options(stream_results=True, yield_per=STREAM_BATCH).execute(_page(collection, query))
    for partition in result.partitions():
        yield [row[0] for row in partition]


def is_streamed(query: ItemsQuery) -> bool:
    """Whether the page is large enough to be streamed rather than built whole (at most STREAM_BATCH rows)."""
    return query.limit > STREAM_BATCH


def stream_feature_collection(conn: Connection, collection: Collection, query: ItemsQuery,
                              members: dict) -> Iterator[str]:
    """A GeoJSON FeatureCollection, streamed; ``numberReturned`` is counted on the way, then ``members``."""
    yield '{"type":"FeatureCollection","features":['
    returned = 0
    for batch in feature_batches(conn, collection, query):
        yield ("," if returned else "") + ",".join(batch)
        returned += len(batch)
    tail = json.dumps({"numberReturned": returned, **members}, ensure_ascii=False, default=str)
    yield "]," + tail[1:]


def fetch_feature(conn: Connection, collection: Collection, feature_id: str, crs: Crs) -> dict:
    """One visible feature by id, as a GeoJSON dict; an unknown, hidden or malformed id is a 404."""
    if not feature_id.isdigit() or len(feature_id) > 18:
        raise NotFound(f"Aucune entité « {feature_id} » dans « {collection.id} »")
    sql = (select(feature_json(collection, collection.props.values(), crs, False))
           .where(collection.visible_rows(), collection.fid == int(feature_id)))
    row = conn.execute(sql).first()
    if row is None:
        raise NotFound(f"Aucune entité « {feature_id} » dans « {collection.id} »")
    return row[0] if isinstance(row[0], dict) else json.loads(row[0])
