"""Every cache the service keeps between requests, owned by one application.

``AppCaches`` is built in the application's lifespan (``main.create_app``) from its layer registry and kept on
``app.state.caches``; routers hand it to the services (``deps.caches_of``), collections carry it to the OGC and
tile statements, the command line and the tests build their own. One application reads one database, so no
cache key names a database, and ``clear()`` empties everything (tests).

Two kinds, each with its rule:

- ``BoundedCache``: values that are pure functions of their key (compiled statements, expressions, collections,
  rendered rows): never stale; emptied when full, since the keys are few (layers × readers × shapes of query).
- ``VersionedCache``: values computed from a layer's rows (extents, counts, the report's whole-layer facts):
  reused while the layer's change counter (``publish/layer_state.py``) is the one they were computed at, so
  never stale, only recomputed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from geo_service.layers import LayerRegistry
from geo_service.services.tile_cache import TileCache

T = TypeVar("T")


class BoundedCache:
    """A dict of values that never go stale, emptied when it reaches ``max_entries``."""

    def __init__(self, max_entries: int):
        self._entries: dict[Any, Any] = {}
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any | None:
        return self._entries.get(key)

    def put(self, key: Any, value: T) -> T:
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = value
        return value

    def get_or_build(self, key: Any, build: Callable[[], T]) -> T:
        found = self._entries.get(key)
        return found if found is not None else self.put(key, build())

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class VersionedCache:
    """Values computed from a layer's rows, reused while the layer's state (change counter) is unchanged."""

    def __init__(self, max_entries: int = 512):
        self._entries: dict[object, tuple[object, object]] = {}
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, key: object, current: Any, compute: Callable[[], T]) -> T:
        """The value of ``key`` at the layer state ``current`` (a ``LayerState``; version 0: never cached)."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] == current and current.version:
            return entry[1]  # type: ignore[return-value]
        return self.put(key, current, compute())

    def peek(self, key: object) -> tuple[Any, Any] | None:
        """``(state, value)`` as last put, for a caller that learns the current state later (in its statement)."""
        return self._entries.get(key)  # type: ignore[return-value]

    def put(self, key: object, current: Any, value: T) -> T:
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = (current, value)
        return value

    def clear(self) -> None:
        self._entries.clear()


class AppCaches:
    """The caches of one application (one registry, one database); each line says when an entry is reused."""

    def __init__(self, registry: LayerRegistry, tiles: TileCache | None = None):
        self.registry = registry
        # Rendered vector tiles by ETag (layer versions, reader, address): never stale, least recently used out.
        self.tiles = tiles if tiles is not None else TileCache(0)  # an empty cache is falsy (__len__)
        # Collections by (layer, reader): pure of the declarations and the reader.
        self.collections = BoundedCache(1024)
        # The GeoJSON expression of a feature by (table, properties, CRS, geometry or not): pure of its key.
        self.feature_json = BoundedCache(512)
        # Compiled OGC page and feature statements by their shape (values bound apart): pure of the shape.
        self.ogc_statements = BoundedCache(512)
        # Compiled vector-tile statements by (layers, reader, thinning, tile settings): pure of the key.
        self.tile_statements = BoundedCache(256)
        # The report's statement: pure of the registry, built on the first report.
        self.report_statement = BoundedCache(1)
        # CQL2 filters as SQL conditions by (table, reader, language, text, CRS, limits): pure of the key.
        self.filters = BoundedCache(1024)
        # Filtered pages' SQL text and constant values (a few kB, not the compiled object) by (table, reader,
        # filter parameters, fields, CRS, sort, counted or not): pure of the key.
        self.filtered_statements = BoundedCache(2048)
        # numberMatched of a filtered page by (table, reader, filter parameters): while its layer is unchanged.
        self.matched = VersionedCache(4096)
        # Spatial and temporal extents of a collection: reused while its layer is unchanged.
        self.extents = VersionedCache(512)
        # A stored observatory snapshot by (département, day, written at): pure of its key (a snapshot taken
        # again the same day is written at another time).
        self.indicators = BoundedCache(16)
        # The observatory maps' simplified outlines (communes, EPCI): while the boundary layers are unchanged.
        self.observatory_areas = VersionedCache(8)
        # The observatory's SVG figures by (values' key, figure): pure of their key, whose values never change.
        self.observatory_figures = BoundedCache(512)
        # The report's whole-layer facts (figures, dates, small layers' rows, zones): while their layer is unchanged.
        self.report_facts = VersionedCache(4096)
        # The map page's counts and the territory's bounds: while their layers are unchanged.
        self.map_facts = VersionedCache(1024)
        # What a place's layer shows in a report, by layer id: pure of the declaration.
        self.place_fields = BoundedCache(64)
        # A place or mast rendered for the report, by (layer, row identity): valid while report_facts holds that
        # row (the entry keeps it, and checks it is still the same object).
        self.rendered_rows = BoundedCache(20_000)

    def clear(self) -> None:
        """Empty every cache (tests that change the database behind the application's back)."""
        for value in vars(self).values():
            if isinstance(value, BoundedCache | VersionedCache | TileCache):
                value.clear()
