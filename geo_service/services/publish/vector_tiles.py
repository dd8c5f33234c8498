"""Mapbox Vector Tiles of the collections, built by PostGIS (``ST_AsMVT`` / ``ST_AsMVTGeom``).

A tile holds one MVT layer per collection, named by its id, with the table's ``fid`` as feature id and a
small set of properties (those the map draws and shows: popup fields, ``style.by``, ``label_field``,
``demo``), so tiles stay small. Point layers that declare ``style.thin_below_zoom`` are thinned below
that zoom: one feature per grid cell of ``tiles.thin_cell_px`` pixels and per colour class, carrying
``point_count``, the number of features it stands for (a z8 tile of 100,000 premises is then ≈20 kB
instead of 5 MB, computed in ≈0.1 s). Identifiers come from the layer registry; numbers are bound parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    BindParameter,
    Connection,
    Float,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    column,
    func,
    literal,
    or_,
    select,
    table,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.sql.elements import ColumnElement

from geo_service.errors import InvalidParameter, NotFound
from geo_service.services.publish import layer_state
from geo_service.services.publish.feature_reader import Collection, Prop
from geo_service.settings import TileSettings

TMS_ID = "WebMercatorQuad"
MVT = "application/vnd.mapbox-vector-tile"
# Web Mercator (EPSG:3857): sphere radius and half the world's width, in metres.
EARTH_RADIUS = 6378137.0
HALF_WORLD = math.pi * EARTH_RADIUS
# Raise when the content of tiles changes for the same data (properties, thinning): it is part of the ETag.
TILE_FORMAT = 1
COUNT_PROPERTY = "point_count"
POINTS = ("Point", "MultiPoint")


@dataclass(frozen=True)
class TileAddress:
    """One tile of WebMercatorQuad: zoom (tile matrix), column (x) and row (y, from the top)."""

    z: int
    x: int
    y: int

    def mercator_bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in EPSG:3857 metres."""
        size = 2 * HALF_WORLD / (1 << self.z)
        left, top = -HALF_WORLD + self.x * size, HALF_WORLD - self.y * size
        return left, top - size, left + size, top

    def lonlat_bounds(self, margin: float = 0.0) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees, widened by ``margin`` (a fraction of the tile's side)."""
        left, bottom, right, top = self.mercator_bounds()
        pad = (right - left) * margin
        west, south = mercator_to_lonlat(left - pad, bottom - pad)
        east, north = mercator_to_lonlat(right + pad, top + pad)
        return max(west, -180.0), max(south, -90.0), min(east, 180.0), min(north, 90.0)


def mercator_to_lonlat(x: float, y: float) -> tuple[float, float]:
    """EPSG:3857 metres to degrees (spherical formulas, exact for this projection).

    >>> [round(v, 6) for v in mercator_to_lonlat(0.0, 0.0)]
    [0.0, 0.0]
    """
    return math.degrees(x / EARTH_RADIUS), math.degrees(math.atan(math.sinh(y / EARTH_RADIUS)))


def _tile_number(value: str, parameter: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise InvalidParameter(f"{parameter} doit être un entier positif ou nul, reçu « {value} »",
                               parameter=parameter)
    return int(value)


def parse_tile(tms_id: str, z: str, y: str, x: str, settings: TileSettings,
               names: tuple[str, str, str] = ("tileMatrix", "tileRow", "tileCol")) -> TileAddress:
    """Check a tile address from the URL: malformed numbers are a 400, tiles outside the tileset a 404.

    ``names`` are the URL's names for zoom, row and column, which error messages quote.
    """
    check_tms(tms_id)
    zoom = _tile_number(z, names[0])
    row, col = _tile_number(y, names[1]), _tile_number(x, names[2])
    if not settings.min_zoom <= zoom <= settings.max_zoom:
        raise NotFound(f"Niveau de zoom {zoom} hors du jeu de tuiles ({settings.min_zoom} à {settings.max_zoom})")
    if row >= 1 << zoom or col >= 1 << zoom:
        last = (1 << zoom) - 1
        raise NotFound(f"Tuile {zoom}/{row}/{col} hors de la grille : ligne et colonne vont de 0 à {last}")
    return TileAddress(zoom, col, row)


def check_tms(tms_id: str) -> None:
    if tms_id != TMS_ID:
        raise NotFound(f"Grille de tuilage « {tms_id} » inconnue ; grille proposée : {TMS_ID}")


def tile_props(collection: Collection) -> list[Prop]:
    """Properties carried by tiles: what the map draws and its popups show, restricted fields excluded."""
    layer = collection.layer
    wanted = [*layer.popup, layer.style.by, layer.label_field, "demo"]
    names = list(dict.fromkeys(n for n in wanted if n and n in collection.props))
    return [collection.props[n] for n in names]


def _value(prop: Prop) -> ColumnElement:
    """A property as MVT can hold it: lists as JSON text (as tippecanoe does), dates as ISO 8601 text."""
    column = prop.column
    if prop.type == "string_list":
        return cast(func.array_to_json(column), Text)
    if prop.type == "date":
        return func.to_char(column, "YYYY-MM-DD")
    if prop.type == "datetime":
        return func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    return column


def _int(value: int) -> ColumnElement:
    # An explicit int4: PostGIS's MVT functions take integers, and psycopg may bind a Python int as int8.
    return cast(literal(value), Integer)


def thinned(collection: Collection, address: TileAddress) -> bool:
    zoom = collection.layer.style.thin_below_zoom
    return zoom is not None and address.z < zoom


class _Params:
    """The bound parameters of one collection's part of a tile statement (names prefixed by the collection)."""

    def __init__(self, collection: Collection):
        self.prefix = f"{collection.id}_"

    def __call__(self, name: str) -> BindParameter:
        return bindparam(self.prefix + name, type_=Float)


def layer_tile(collection: Collection, thin: bool, settings: TileSettings) -> Select:
    """The SELECT of one collection's MVT layer (bytea, ``b""`` when nothing is there), for any tile.

    The tile itself comes as bound parameters (``tile_params``), so the statement is built once per
    collection and reader, not per request: building it cost more CPU than the rest of the request.
    """
    table, geom, param = collection.table, collection.geom, _Params(collection)
    envelope = func.ST_MakeEnvelope(param("left"), param("bottom"), param("right"), param("top"), 3857)
    # Rows are found in storage coordinates (GiST index), with the buffer so edge symbols are whole.
    area = func.ST_MakeEnvelope(param("west"), param("south"), param("east"), param("north"), 4326)
    inside = and_(collection.visible_rows(), geom.op("&&")(area))
    drawn = geom
    if collection.layer.geometry not in POINTS:
        # Drop vertices closer than half a tile unit before projecting them: at low zoom a commune's
        # outline keeps a few dozen of its thousands of points, and ST_Transform is the costly part.
        drawn = func.ST_Simplify(geom, param("tolerance"), True)
    shape = func.ST_AsMVTGeom(func.ST_Transform(drawn, 3857), envelope, _int(settings.extent),
                              _int(settings.buffer), True).label("geom")
    props = [_value(p).label(p.name) for p in tile_props(collection)]
    if thin:
        cells = _cells(collection, inside, param)
        # LATERAL with LIMIT (never flattened): one primary-key lookup per kept point. A plain join
        # hashes the whole table, the planner having no idea how few cells there are.
        kept = select(shape, *props).where(table.c.fid == cells.c.fid).limit(1).lateral(f"kept_{collection.id}")
        rows = (select(cells.c.fid, *kept.c, cells.c[COUNT_PROPERTY])
                .select_from(cells.join(kept, true())))
    else:
        rows = select(table.c.fid, shape, *props).where(inside)
    # ST_AsMVT skips the rows whose geometry ST_AsMVTGeom dropped (NULL) and gives b"" for no rows.
    features = rows.subquery(f"tile_{collection.id}")
    return select(func.ST_AsMVT(features.table_valued(), collection.id, _int(settings.extent), "geom", "fid"))


def _cells(collection: Collection, inside: ColumnElement, param: _Params):
    """One representative (lowest fid) and a count per grid cell and colour class, from plain arithmetic.

    The cell is computed from longitude and latitude with the Web Mercator formulas rather than by
    transforming every point: the cells are the same and the query is several times faster.
    """
    geom = collection.geom
    point = geom if collection.layer.geometry == "Point" else func.ST_GeometryN(geom, 1)
    x = func.ST_X(point) * param("cell_x")
    y = func.ln(func.tan(func.radians(45.0 + func.ST_Y(point) * 0.5))) * param("cell_y")
    keys: list[ColumnElement] = [func.floor(x), func.floor(y)]
    if collection.layer.style.by and collection.layer.style.by in collection.props:
        keys.append(collection.props[collection.layer.style.by].column)
    # Materialised: otherwise PostgreSQL may recompute the grouping in each parallel worker.
    return (select(func.min(collection.fid).label("fid"), func.count().label(COUNT_PROPERTY))
            .where(inside).group_by(*keys).cte(f"cells_{collection.id}").prefix_with("MATERIALIZED"))


def tile_params(collection: Collection, address: TileAddress, settings: TileSettings) -> dict[str, float]:
    """The values of one collection's bound parameters for a tile."""
    prefix = f"{collection.id}_"
    left, bottom, right, top = address.mercator_bounds()
    west, south, east, north = address.lonlat_bounds(settings.buffer / settings.extent)
    cell = 2 * HALF_WORLD / (1 << address.z) / 256 * settings.thin_cell_px  # metres
    values = {"left": left, "bottom": bottom, "right": right, "top": top,
              "west": west, "south": south, "east": east, "north": north,
              "tolerance": 180.0 / (1 << address.z) / settings.extent,
              "cell_x": EARTH_RADIUS * math.pi / 180 / cell, "cell_y": EARTH_RADIUS / cell}
    return {prefix + name: value for name, value in values.items()}


def _compiled(collections: Sequence[Collection], thin: tuple[bool, ...], settings: TileSettings,
              dialect: Dialect, with_states: bool = False) -> Compiled:
    key = (tuple((c.table, repr(c.reader), tuple(c.props)) for c in collections), thin,
           settings.extent, settings.buffer, dialect.name, with_states)
    # Built and compiled once (see layer_tile), kept in the application's caches.
    cache = collections[0].caches.tile_statements
    compiled = cache.get(key)
    if compiled is None:
        parts = [layer_tile(c, t, settings).scalar_subquery() for c, t in zip(collections, thin, strict=True)]
        tile = parts[0]
        for part in parts[1:]:
            tile = tile.op("||")(part)
        columns = [tile, *_states_columns([c.id for c in collections])] if with_states else [tile]
        compiled = cache.put(key, select(*columns).compile(dialect=dialect))
    return compiled


def _states_columns(layer_ids: list[str]) -> list[ColumnElement]:
    """The layers' ids, versions and change times from ``layer_changes`` (three arrays in one order), read in the
    tile's own statement: the same snapshot as the tile, and no round trip of its own."""
    changes = table(layer_state.TABLE, column("layer_id"), column("version"), column("changed_at"))
    named = or_(*(changes.c.layer_id == literal(layer_id, Text) for layer_id in layer_ids))
    return [func.array(select(changes.c[name]).where(named).order_by(changes.c.layer_id).scalar_subquery())
            for name in ("layer_id", "version", "changed_at")]


def tile_query(collections: Sequence[Collection], address: TileAddress, settings: TileSettings,
               dialect: Dialect, with_states: bool = False) -> tuple[str, dict]:
    """The SQL text and parameters of a tile: one statement, whatever the number of collections (and, when
    ``with_states``, the layers' states as three more columns).

    PostGIS concatenates the collections' layers (an MVT is a list of layers).
    """
    compiled = _compiled(collections, tuple(thinned(c, address) for c in collections), settings, dialect,
                         with_states)
    values: dict[str, float] = {}
    for collection in collections:
        values.update(tile_params(collection, address, settings))
    return compiled.string, compiled.construct_params(values)


def render(conn: Connection, collections: Sequence[Collection], address: TileAddress,
           settings: TileSettings) -> bytes:
    """The tile as MVT bytes, one layer per collection that has something there (``b""`` when empty).

    Run on the driver connection, inside the caller's transaction, asking for a binary result: through
    SQLAlchemy the bytea comes as hex text, twice its size, and costs 2–3 times more time per tile.
    """
    if not collections:
        return b""
    sql, params = tile_query(collections, address, settings, conn.dialect)
    row = conn.connection.driver_connection.execute(sql, params, binary=True).fetchone()
    return bytes(row[0] or b"") if row else b""


def render_with_states(conn: Connection, collections: Sequence[Collection], address: TileAddress,
                       settings: TileSettings) -> tuple[bytes, dict[str, layer_state.LayerState]]:
    """``render``, and the state of each collection's layer read in the same statement (one snapshot): what the
    tile's ETag is made of when the tile has to be drawn anyway."""
    sql, params = tile_query(collections, address, settings, conn.dialect, with_states=True)
    data, ids, versions, changed = conn.connection.driver_connection.execute(sql, params, binary=True).fetchone()
    found = {i: layer_state.LayerState(int(v), c) for i, v, c in zip(ids, versions, changed, strict=True)}
    return bytes(data or b""), {c.id: found.get(c.id, layer_state.LayerState()) for c in collections}
