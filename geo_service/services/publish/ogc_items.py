"""The items query of a collection: query parameters checked into an ``ItemsQuery``, then SQL run by PostGIS.

Features are written as GeoJSON by PostGIS (``json_build_object``) and streamed a batch at a time, so a
page of 10,000 features costs the service no more memory than a page of 10. Identifiers come from the
table built from the layer declaration; every value the client sends is a bound parameter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

import psycopg
from sqlalchemy import (
    JSON,
    Connection,
    Float,
    Integer,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    column,
    func,
    literal,
    null,
    select,
    table,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.sql.elements import ColumnElement

from geo_service.errors import InvalidParameter, NotFound
from geo_service.services.publish import cql2_parser
from geo_service.services.publish.cql2_sql import to_condition
from geo_service.services.publish.crs import CRS84, BBox, Crs, envelope, parse_bbox, parse_crs
from geo_service.services.publish.feature_reader import Collection, Prop
from geo_service.services.publish.layer_state import TABLE as STATE_TABLE
from geo_service.services.publish.layer_state import LayerState

STREAM_BATCH = 1000
# PostgreSQL's integer (LIMIT/OFFSET are bound as such) and bigint (integer properties) ranges.
MAX_OFFSET = 2**31 - 1
_BIGINT = (-(2**63), 2**63 - 1)
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
    # ``sortby`` as (property, descending) pairs, what ``order_by`` was built from.
    sort: tuple[tuple[str, bool], ...] = ()
    # Only the visibility and bbox conditions: the statement is then compiled once for all requests of
    # the same shape (``read_page``), the box and the page bound as parameters.
    reusable: bool = False
    # The parameters that decide which features match (box, dates, filter, properties), as given: with the
    # layer's version and the reader, the key of ``numberMatched`` in ``AppCaches.matched``.
    match_key: tuple = field(default=(), compare=False)


def _filter_condition(collection: Collection, expression: str, lang: str, filter_crs: Crs,
                      limits: cql2_parser.FilterLimits) -> ColumnElement[bool]:
    """The SQL condition of a CQL2 filter, parsed and translated once per collection, reader, text, language and
    CRS (``AppCaches.filters``): parsing costs 1–2 ms a filter, more than the rest of a page's Python. A filter
    refused is not kept (its 400 is raised again)."""
    key = (collection.table.name, collection.reader, lang, expression, filter_crs, limits)
    return collection.caches.filters.get_or_build(
        key, lambda: to_condition(cql2_parser.parse(expression, lang, limits), collection, filter_crs))


# The standard parameters that decide which features match (not the page, its order, fields or CRS).
MATCH_PARAMETERS = frozenset({"bbox", "bbox-crs", "datetime", "filter", "filter-lang", "filter-crs"})


def _integer(value: str, parameter: str, minimum: int, maximum: int = MAX_OFFSET) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidParameter(f"{parameter} doit être un entier, reçu « {value[:40]} »",
                               parameter=parameter) from None
    if number < minimum:
        raise InvalidParameter(f"{parameter} doit être supérieur ou égal à {minimum}", parameter=parameter)
    if number > maximum:
        raise InvalidParameter(f"{parameter} ne peut dépasser {maximum}", parameter=parameter)
    return number


def _single(pairs: Iterable[tuple[str, str]], max_chars: int) -> dict[str, str]:
    """The parameters by name: each given once, of at most ``max_chars`` characters and without NUL (PostgreSQL
    refuses it in text, and no value of ours holds one)."""
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise InvalidParameter(f"Paramètre « {key} » répété", parameter=key)
        if len(value) > max_chars:
            raise InvalidParameter(f"Paramètre « {key} » trop long : {len(value)} caractères, au plus {max_chars}",
                                   parameter=key, limit=max_chars)
        if "\x00" in value:
            raise InvalidParameter(f"Paramètre « {key} » invalide : caractère NUL (%00) interdit", parameter=key)
        params[key] = value
    return params


def parse_items_query(collection: Collection, pairs: Iterable[tuple[str, str]], *, default_limit: int,
                      max_limit: int, filter_limits: cql2_parser.FilterLimits = cql2_parser.DEFAULT_LIMITS
                      ) -> ItemsQuery:
    """Check every query parameter of ``/items`` and turn it into SQL pieces; any mistake is a 400 naming it."""
    params = _single(pairs, filter_limits.max_chars)
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
        conditions.append(_filter_condition(collection, params["filter"], lang, filter_crs, filter_limits))
    elif lang not in cql2_parser.LANGUAGES:
        cql2_parser.parse("", lang)  # refuses the language, naming filter-lang
    conditions.extend(property_condition(collection.props[k], v) for k, v in params.items() if k in collection.props)
    sort = sort_spec(collection, params.get("sortby", ""))
    return ItemsQuery(
        limit=limit, offset=offset, crs=crs, conditions=tuple(conditions), bbox=bbox,
        order_by=tuple(_order_by(collection, sort)),
        properties=tuple(select_properties(collection, params.get("properties"))),
        skip_geometry=_boolean(params.get("skipGeometry", "false"), "skipGeometry"),
        sort=tuple((prop.name, descending) for prop, descending in sort),
        reusable=len(conditions) == 1 + (bbox is not None),
        match_key=tuple(sorted((k, v) for k, v in params.items() if k in MATCH_PARAMETERS or k in collection.props)),
    )


def _boolean(value: str, parameter: str) -> bool:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidParameter(f"{parameter} vaut true ou false, reçu « {value[:40]} »", parameter=parameter)


def datetime_conditions(collection: Collection, value: str) -> list[ColumnElement[bool]]:
    """``datetime`` (instant, ``a/b``, ``../b``, ``a/..``) on the layer's date field.

    A collection without a date field has no temporal information: per OGC API Features Part 1 the
    parameter is then checked and ignored, so one URL can query every collection.
    """
    try:
        if "/" in value:
            start, end = (cql2_parser.parse_instant(v) for v in value.split("/", 1))
        else:
            start = end = cql2_parser.parse_instant(value)
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
            if not _BIGINT[0] <= value <= _BIGINT[1]:
                raise ValueError("entier hors limites")
        elif prop.type == "number":
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError("nombre non fini")
        elif prop.type == "boolean":
            value = _boolean(raw, prop.name)
        elif prop.is_temporal:
            value = cql2_parser.parse_instant(raw)
            if value is None:
                raise ValueError("date attendue")
        else:
            value = raw
    except (ValueError, InvalidParameter):
        raise InvalidParameter(f"{prop.name} : valeur « {raw[:40]} » invalide pour le type {prop.type}",
                               parameter=prop.name) from None
    codes = prop.field.code_values if prop.field else None
    if codes is not None and value not in codes:
        allowed = ", ".join(str(c) for c in codes)
        raise InvalidParameter(f"{prop.name} : valeur « {raw} » hors de la liste ({allowed})", parameter=prop.name)
    if prop.type == "string_list":
        return literal(value) == any_(prop.column)
    return prop.column == literal(value)


def _once(names: Iterable[str], parameter: str) -> Iterator[str]:
    # Each property at most once: a list is then never longer than the layer's properties.
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidParameter(f"{parameter} : propriété « {name[:40]} » répétée", parameter=parameter)
        seen.add(name)
        yield name


def sort_spec(collection: Collection, value: str) -> list[tuple[Prop, bool]]:
    """``sortby=+nom,-date`` as (property, descending) pairs: declared properties only, each once, else a 400."""
    # A '+' in a URL query decodes to a space; strip() takes it.
    items = [v.strip() for v in value.split(",") if v.strip()]
    names = list(_once((item.lstrip("+-") for item in items), "sortby"))
    return [(collection.prop(name, "sortby"), item.startswith("-")) for name, item in zip(names, items, strict=True)]


def _order_by(collection: Collection, spec: Iterable[tuple[Prop, bool]]) -> list[ColumnElement]:
    # The feature id breaks ties so pages never overlap.
    order = [p.column.desc().nulls_last() if descending else p.column.asc().nulls_last() for p, descending in spec]
    return [*order, collection.fid.asc()]


def sort_order(collection: Collection, value: str) -> list[ColumnElement]:
    """``sortby=+nom,-date``: declared properties only; the feature id breaks ties so pages never overlap."""
    return _order_by(collection, sort_spec(collection, value))


def select_properties(collection: Collection, value: str | None) -> list[Prop]:
    if value is None:
        return list(collection.props.values())
    names = (name.strip() for name in value.split(",") if name.strip())
    return [collection.prop(name, "properties") for name in _once(names, "properties")]


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
def feature_json(collection: Collection, props: Iterable[Prop], crs: Crs, skip_geometry: bool) -> ColumnElement:
    """One feature as GeoJSON text, built by PostGIS (options 0: no ``crs`` member inside geometries)."""
    props = tuple(props)
    key = (collection.table, tuple((p.name, p.column) for p in props), crs, skip_geometry)
    cache = collection.caches.feature_json  # `properties=` makes many combinations: bounded
    built = cache.get(key)
    if built is None:
        geometry = null() if skip_geometry else cast(
            func.ST_AsGeoJSON(crs.from_storage(collection.geom), crs.decimals, 0), JSON)
        built = cast(func.json_build_object(
            literal("type"), literal("Feature"), literal("id"), collection.fid,
            literal("geometry"), geometry, literal("properties"), _properties_json(props)), JSON)
        cache.put(key, built)
    return built


def _page(collection: Collection, query: ItemsQuery) -> Select:
    # As text: the service passes PostGIS's JSON through without parsing it.
    feature = cast(feature_json(collection, query.properties, query.crs, query.skip_geometry), Text)
    return (select(feature)
            .where(and_(*query.conditions)).order_by(*query.order_by).limit(query.limit).offset(query.offset))


def _bad_input(error: Exception) -> bool:
    # Data exceptions (22xxx) and GEOS failures (XX000) come from the values a client sent.
    code = getattr(error, "sqlstate", None) or ""
    return code.startswith("22") or code == "XX000"


def _refused(error: Exception) -> InvalidParameter:
    return InvalidParameter(f"Requête refusée par la base : {str(error).splitlines()[0]}", parameter="filter")


def count_matched(conn: Connection, collection: Collection, query: ItemsQuery) -> int:
    """``numberMatched``; run before streaming, so a filter PostGIS rejects is still a clean 400."""
    try:
        return conn.execute(select(func.count()).select_from(collection.table)
                            .where(and_(*query.conditions))).scalar_one()
    except DBAPIError as exc:
        if _bad_input(exc.orig):
            raise _refused(exc.orig) from None
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
    """A GeoJSON FeatureCollection, streamed; ``numberReturned`` is counted on the way, then ``members``.

    The first batch is fetched before the first chunk is yielded (``api/streams.started``).
    """
    batches = feature_batches(conn, collection, query)
    first = next(batches, [])
    yield '{"type":"FeatureCollection","features":[' + ",".join(first)
    returned = len(first)
    for batch in batches:
        yield ("," if returned else "") + ",".join(batch)
        returned += len(batch)
    tail = json.dumps({"numberReturned": returned, **members}, ensure_ascii=False, default=str)
    yield "]," + tail[1:]


# -- one round trip per request, statements compiled once --------------------------------------------------
# Building a statement with a json_build_object of every property, and SQLAlchemy's cache key of it, cost
# more CPU per request than everything else the service did for a feature (as for tiles:
# services/publish/vector_tiles.py).
# Compiled statements are kept per shape, values bound (AppCaches.ogc_statements).
_LAYER_CHANGES = table(STATE_TABLE, column("layer_id"), column("version"), column("changed_at"))


def _compiled(collection: Collection, key: tuple, build: Callable[[], Select], dialect: Dialect
              ) -> tuple[Compiled, dict]:
    """The statement ``build`` makes, compiled once per ``key``, with the values of its own (constant) binds."""
    key = (*key, dialect.name)
    cache = collection.caches.ogc_statements
    entry = cache.get(key)
    if entry is None:
        compiled = build().compile(dialect=dialect)
        constants = {name: bind.value for bind, name in compiled.bind_names.items() if not bind.required}
        entry = cache.put(key, (compiled, constants))
    return entry


@dataclass(frozen=True)
class Page:
    """A page of features (GeoJSON texts joined by commas), how many matched, and the layer's state if read."""

    matched: int
    returned: int
    features: str
    state: LayerState | None = None


def _page_select(collection: Collection, query: ItemsQuery, conditions: Iterable[ColumnElement[bool]],
                 limit: object, offset: object, layer_id: object | None, counted: bool = True) -> Select:
    """``numberMatched`` (-1 unless ``counted``), the page and (when ``layer_id`` is given) the layer's state, as
    one row.

    One statement, so one snapshot and one round trip; the page is one text, joined by PostGIS, instead of a
    row per feature through the driver.
    """
    where = and_(*conditions)
    matched = (select(func.count()).select_from(collection.table).where(where).scalar_subquery() if counted
               else literal(-1, Integer))
    feature = cast(feature_json(collection, query.properties, query.crs, query.skip_geometry), Text)
    rows = select(feature).where(where).order_by(*query.order_by).limit(limit).offset(offset)
    # ARRAY(subquery) keeps the subquery's order; materialised, the page is built once for both uses below.
    page = select(func.array(rows.scalar_subquery()).label("a")).cte("page").prefix_with("MATERIALIZED")
    columns = [matched.label("matched"), func.cardinality(page.c.a).label("returned"),
               func.array_to_string(page.c.a, ",").label("features")]
    if layer_id is not None:
        columns += [select(_LAYER_CHANGES.c[name]).where(_LAYER_CHANGES.c.layer_id == layer_id)
                    .scalar_subquery().label(name) for name in ("version", "changed_at")]
    return select(*columns).select_from(page)


def _reusable_page(collection: Collection, query: ItemsQuery, with_state: bool) -> Select:
    """The page statement of a query's shape, with the box, the page and the layer as bind parameters."""
    conditions = [collection.visible_rows()]
    if query.bbox is not None:
        x0, y0, x1, y1, segment = (bindparam(f"bbox_{n}", type_=Float) for n in ("x0", "y0", "x1", "y1", "segment"))
        conditions.append(func.ST_Intersects(collection.geom, envelope(query.bbox.crs, x0, y0, x1, y1, segment)))
    return _page_select(collection, query, conditions, bindparam("page_limit", type_=Integer),
                        bindparam("page_offset", type_=Integer),
                        bindparam("layer_id", type_=Text) if with_state else None)


def page_statement(collection: Collection, query: ItemsQuery, with_state: bool, dialect: Dialect
                   ) -> tuple[str, dict]:
    """SQL text and values of the page of a reusable query (``query.reusable``: bbox, sort, page)."""
    key = ("page", collection.table, collection.reader.published_only,
           tuple(p.name for p in query.properties), query.crs, query.skip_geometry,
           query.bbox.crs if query.bbox else None, query.sort, with_state)
    compiled, constants = _compiled(collection, key, lambda: _reusable_page(collection, query, with_state),
                                    dialect)
    values = {**constants, "page_limit": query.limit, "page_offset": query.offset}
    if query.bbox is not None:
        values.update(zip(("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"), query.bbox.coords, strict=True))
        values["bbox_segment"] = query.bbox.segment
    if with_state:
        values["layer_id"] = collection.id
    return compiled.string, values


def read_page(conn: Connection, collection: Collection, query: ItemsQuery, *, with_state: bool) -> Page:
    """A page of at most one batch (``is_streamed`` false) with ``numberMatched``, and the layer's state when
    ``with_state`` (what ETag and Last-Modified are made of), in one statement.

    A filter PostGIS rejects is a clean 400 naming ``filter``, as in ``count_matched``.
    """
    if not query.reusable:
        return _filtered_page(conn, collection, query, with_state)
    sql, values = page_statement(collection, query, with_state, conn.dialect)
    try:
        # On the driver connection (SQLAlchemy's execution context and result cost more than this row),
        # never prepared: planned for each box, as SQLAlchemy's statements are (a generic plan cannot
        # know how much of the layer a box holds).
        row = conn.connection.driver_connection.execute(sql, values, prepare=False).fetchone()
    except psycopg.Error as exc:
        if _bad_input(exc):
            raise _refused(exc) from None
        raise
    state = None
    if with_state:
        state = LayerState() if row[3] is None else LayerState(int(row[3]), row[4])
    return Page(int(row[0]), int(row[1]), row[2], state)


def _filtered_page(conn: Connection, collection: Collection, query: ItemsQuery, with_state: bool) -> Page:
    """A page whose conditions hold the client's values (filters, dates, properties), compiled through
    SQLAlchemy's own cache, with ``numberMatched`` counted once per layer version, reader and filter.

    Counting tens of thousands of matches costs more than the page of 100 (``etat=cible``: 83,539 premises): a
    count is kept with the layer state it was made at (``AppCaches.matched``), and the next page of the same
    filter reads the state in its statement instead of counting; a state that moved meanwhile is counted again.
    """
    key = (collection.table.name, collection.reader, query.match_key)
    known = collection.caches.matched.peek(key)
    statement = filtered_statement(collection, query, conn.dialect, counted=known is None)
    try:
        if statement is None:
            row = conn.execute(_page_select(collection, query, query.conditions, query.limit, query.offset,
                                            literal(collection.id, Text), counted=known is None)).one()
        else:
            # Prepared once psycopg has seen it a few times (its default), as SQLAlchemy's statements are: one
            # text per filter shape, the filter's values bound, and planning the page costs more than running it.
            row = conn.connection.driver_connection.execute(*statement).fetchone()
    except (DBAPIError, psycopg.Error) as exc:
        driver_error = getattr(exc, "orig", exc)  # SQLAlchemy's wraps the driver's
        if _bad_input(driver_error):
            raise _refused(driver_error) from None
        raise
    state = LayerState() if row[3] is None else LayerState(int(row[3]), row[4])
    if known is not None and known[0] == state and state.version:
        matched = known[1]
    else:
        matched = int(row[0]) if known is None else count_matched(conn, collection, query)
        collection.caches.matched.put(key, state, matched)
    return Page(matched, int(row[1]), row[2], state if with_state else None)


def filtered_statement(collection: Collection, query: ItemsQuery, dialect: Dialect, *, counted: bool
                        ) -> tuple[str, dict] | None:
    """SQL text and values of a filtered page, compiled once per filter (the same conditions come from
    ``AppCaches.filters``), sort, fields and CRS, the page bound apart; ``None`` when the statement needs
    SQLAlchemy at execution (values it expands or converts), which then compiles it through its own cache.

    SQLAlchemy's cache key of a page statement (a json_build_object of every property, the filter) cost as
    much CPU as the rest of the request: the compiled text is kept instead, run on the driver connection.
    """
    key = (collection.table.name, collection.reader, query.match_key, tuple(p.name for p in query.properties),
           query.crs, query.skip_geometry, query.sort, counted, dialect.name)
    cache = collection.caches.filtered_statements
    entry = cache.get(key)
    if entry is None:
        compiled = _page_select(collection, query, query.conditions, bindparam("page_limit", type_=Integer),
                                bindparam("page_offset", type_=Integer), bindparam("layer_id", type_=Text),
                                counted=counted).compile(dialect=dialect)
        constants = {name: bind.value for bind, name in compiled.bind_names.items() if not bind.required}
        # No public name for either: values SQLAlchemy expands (IN lists) or converts at execution.
        plain = not compiled.post_compile_params and not compiled._bind_processors  # noqa: SLF001
        entry = cache.put(key, (compiled.string, constants) if plain else (None, None))
    sql, constants = entry
    if sql is None:
        return None
    return sql, {**constants, "page_limit": query.limit, "page_offset": query.offset, "layer_id": collection.id}


def feature_collection(page: Page, members: dict) -> str:
    """The GeoJSON FeatureCollection of a page, as ``stream_feature_collection`` writes it."""
    tail = json.dumps({"numberReturned": page.returned, **members}, ensure_ascii=False, default=str)
    return '{"type":"FeatureCollection","features":[' + page.features + "]," + tail[1:]


def _feature_select(collection: Collection, crs: Crs) -> Select:
    table = collection.table
    # The version of a published feature: what the ETag of Part 4 names (api/problems.version_etag).
    version = case((table.c.validation_state == "published", table.c.version)) if collection.layer.editable \
        else null()
    return (select(cast(feature_json(collection, collection.props.values(), crs, False), Text), version)
            .where(collection.visible_rows(), collection.fid == bindparam("fid", type_=collection.fid.type)))


def feature_statement(collection: Collection, fid: int, crs: Crs, dialect: Dialect) -> tuple[str, dict]:
    """SQL text and values of one feature by id (with its version)."""
    key = ("feature", collection.table, collection.reader.published_only, tuple(collection.props), crs)
    compiled, constants = _compiled(collection, key, lambda: _feature_select(collection, crs), dialect)
    return compiled.string, {**constants, "fid": fid}


def read_feature(conn: Connection, collection: Collection, feature_id: str, crs: Crs) -> tuple[dict, int | None]:
    """One visible feature by id, as a GeoJSON dict, with its version when it is a published feature of an
    editable layer (else ``None``), in one statement; an unknown, hidden or malformed id is a 404."""
    text, version = read_feature_text(conn, collection, feature_id, crs)
    return json.loads(text), version


def read_feature_text(conn: Connection, collection: Collection, feature_id: str, crs: Crs
                      ) -> tuple[str, int | None]:
    """``read_feature``, the feature as PostGIS wrote its GeoJSON (an object's text)."""
    if not feature_id.isdigit() or len(feature_id) > 18:
        raise NotFound(f"Aucune entité « {feature_id} » dans « {collection.id} »")
    sql, values = feature_statement(collection, int(feature_id), crs, conn.dialect)
    # On the driver connection (SQLAlchemy's execution context and result cost more than the lookup itself),
    # inside the caller's transaction if any. Out of a transaction (the read engine) it is prepared, planned
    # once per connection; in one, psycopg decides as for any statement (a rollback forgets what it prepared).
    raw = conn.connection.driver_connection
    row = raw.execute(sql, values, prepare=raw.autocommit or None).fetchone()
    if row is None:
        raise NotFound(f"Aucune entité « {feature_id} » dans « {collection.id} »")
    return row[0], None if row[1] is None else int(row[1])


def fetch_feature(conn: Connection, collection: Collection, feature_id: str, crs: Crs) -> dict:
    """One visible feature by id, as a GeoJSON dict; an unknown, hidden or malformed id is a 404."""
    return read_feature(conn, collection, feature_id, crs)[0]
