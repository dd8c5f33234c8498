"""Rendered vector tiles kept by their ETag, so a tile asked again costs no rendering while its layers are unchanged.

A tile's ETag (``api/tile_routes.py``) is made of its layers' change counters, the reader, the address and the tile
settings: the same ETag means the same bytes, and any change to one of its layers (edit, import, QGIS, psql: the
``layer_changes`` trigger) gives every tile of that layer a new ETag. So entries never go stale; they are only
left behind, and dropped as the least recently used once the cache holds ``max_bytes``.

Two levels: memory (per process, least recently used first out) and, optionally, a folder shared by the processes of
one machine (``TILES__CACHE_DIR``), pruned of its oldest files when it grows past its own bound. Empty tiles are kept
too (an empty answer is most of a map's tiles at high zoom).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

# A tile found in the folder is also kept in memory; a folder over its bound is pruned down to this share of it.
PRUNED_TO = 0.8


class TileCache:
    """Tiles by ETag: least recently used out of memory past ``max_bytes``; optionally in ``directory`` too."""

    def __init__(self, max_bytes: int, directory: Path | None = None, directory_max_bytes: int = 0):
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self._lock = threading.Lock()
        self._directory = directory
        self._directory_max = directory_max_bytes
        self._directory_bytes: int | None = None  # measured on the first write
        self.hits = self.misses = 0

    def in_memory(self, etag: str) -> bytes | None:
        """The tile if it is in memory (a hit), else ``None`` without counting a miss: the caller then asks
        ``get``, which also looks in the folder and counts."""
        with self._lock:
            found = self._entries.get(etag)
            if found is not None:
                self._entries.move_to_end(etag)
                self.hits += 1
            return found

    def get(self, etag: str) -> bytes | None:
        found = self.in_memory(etag)
        if found is not None:
            return found
        found = self._read_file(etag)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._keep(etag, found)
        return found

    def put(self, etag: str, data: bytes) -> None:
        self._keep(etag, data)
        self._write_file(etag, data)

    def _keep(self, etag: str, data: bytes) -> None:
        if len(data) > self._max:
            return
        with self._lock:
            previous = self._entries.pop(etag, None)
            self._bytes -= len(previous) if previous is not None else 0
            self._entries[etag] = data
            self._bytes += len(data)
            while self._bytes > self._max:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def memory_bytes(self) -> int:
        return self._bytes

    # -- the shared folder ------------------------------------------------------------------------------------
    def _path(self, etag: str) -> Path:
        name = etag.strip('"')
        return self._directory / name[:2] / f"{name}.mvt"  # type: ignore[operator]

    def _read_file(self, etag: str) -> bytes | None:
        if self._directory is None:
            return None
        try:
            return self._path(etag).read_bytes()
        except OSError:
            return None

    def _write_file(self, etag: str, data: bytes) -> None:
        if self._directory is None:
            return
        path = self._path(etag)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written aside then renamed: another process never reads half a tile.
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, prefix=".tmp-") as out:
                out.write(data)
            os.replace(out.name, path)
        except OSError:
            return  # a full or read-only disk costs the cache, never the tile
        with self._lock:
            if self._directory_bytes is None:
                self._directory_bytes = self._folder_size()
            self._directory_bytes += len(data)
            over = self._directory_max and self._directory_bytes > self._directory_max
        if over:
            self._prune()

    def _files(self) -> list[os.DirEntry]:
        found = []
        for sub in os.scandir(self._directory):
            if sub.is_dir():
                found += [f for f in os.scandir(sub.path) if f.name.endswith(".mvt")]
        return found

    def _folder_size(self) -> int:
        return sum(f.stat().st_size for f in self._files())

    def _prune(self) -> None:
        """The least recently written files out until the folder holds ``PRUNED_TO`` of its bound."""
        files = sorted(self._files(), key=lambda f: f.stat().st_mtime)
        total = sum(f.stat().st_size for f in files)
        for entry in files:
            if total <= self._directory_max * PRUNED_TO:
                break
            try:
                size = entry.stat().st_size
                os.unlink(entry.path)
                total -= size
            except OSError:
                continue
        with self._lock:
            self._directory_bytes = total
