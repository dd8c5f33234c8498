"""Geometry helpers of the demo: projections, sampling points inside a commune, balanced spatial groups.

Distances are drawn in Lambert-93 (EPSG:2154, metres); points are kept only when they fall inside the
commune polygon as stored (EPSG:4326), shrunk by a small margin so the database's own ``ST_Contains``
agrees with shapely even for points drawn close to a boundary.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

STORAGE_SRID = 4326
METRIC_SRID = 2154
# About 2 m: keeps demo points off the commune boundaries (see module docstring).
MARGIN_DEG = 2e-5
_TO_METRIC = Transformer.from_crs(STORAGE_SRID, METRIC_SRID, always_xy=True)
_TO_STORAGE = Transformer.from_crs(METRIC_SRID, STORAGE_SRID, always_xy=True)
# An extra condition on candidate points (Lambert-93 x, y arrays → boolean array).
Keep = Callable[[np.ndarray, np.ndarray], np.ndarray]


def rng_for(seed: int, part: str) -> np.random.Generator:
    """An independent generator per part of the demo, so tuning one part leaves the others unchanged."""
    return np.random.default_rng([seed, zlib.crc32(part.encode())])


def to_metric(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes/latitudes (EPSG:4326) to Lambert-93 metres."""
    x, y = _TO_METRIC.transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return np.asarray(x), np.asarray(y)


def to_storage(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lambert-93 metres to longitudes/latitudes (EPSG:4326)."""
    lon, lat = _TO_STORAGE.transform(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return np.asarray(lon), np.asarray(lat)


def project(geom: BaseGeometry) -> BaseGeometry:
    """A storage-SRID geometry in Lambert-93."""
    return shapely.transform(geom, lambda c: np.column_stack(to_metric(c[:, 0], c[:, 1])))


def ewkb_hex(lon: np.ndarray, lat: np.ndarray) -> list[str]:
    """Points as hex EWKB with their SRID: what PostGIS reads from COPY, without losing a digit."""
    points = shapely.set_srid(shapely.points(np.asarray(lon), np.asarray(lat)), STORAGE_SRID)
    return list(shapely.to_wkb(points, hex=True, include_srid=True))


def ewkb_hex_geoms(geoms) -> list[str]:
    """Storage-SRID geometries (e.g. commune polygons read from the database) as hex EWKB."""
    return list(shapely.to_wkb(shapely.set_srid(np.asarray(geoms), STORAGE_SRID), hex=True, include_srid=True))


def scatter(inner: BaseGeometry, n: int, rng: np.random.Generator, *, centre: tuple[float, float],
            radius_m: float | None = None, bounds: tuple[float, float, float, float] | None = None,
            fallback: tuple[float, float], keep: Keep | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points (lon, lat) inside ``inner``: uniform in a disc around ``centre`` (metres) or in ``bounds``.

    ``keep(x, y) -> bool array`` adds a condition (e.g. away from a zone); points that cannot be placed
    after many draws take the ``fallback`` position (lon, lat), which must be inside.
    """
    lon_out, lat_out = np.empty(n), np.empty(n)
    filled = 0
    for _ in range(60):
        if filled == n:
            break
        batch = max(16, 3 * (n - filled))
        if bounds is None:
            r = (radius_m or 100.0) * np.sqrt(rng.random(batch))
            a = rng.random(batch) * 2 * np.pi
            x, y = centre[0] + r * np.cos(a), centre[1] + r * np.sin(a)
        else:
            x = rng.uniform(bounds[0], bounds[2], batch)
            y = rng.uniform(bounds[1], bounds[3], batch)
        lon, lat = to_storage(x, y)
        ok = shapely.contains_xy(inner, lon, lat)
        if keep is not None:
            ok &= keep(x, y)
        take = np.flatnonzero(ok)[: n - filled]
        lon_out[filled:filled + take.size], lat_out[filled:filled + take.size] = lon[take], lat[take]
        filled += take.size
    lon_out[filled:], lat_out[filled:] = fallback
    return lon_out, lat_out


def balanced_groups(x: np.ndarray, y: np.ndarray, k: int, rng: np.random.Generator,
                    jitter: float = 0.12) -> np.ndarray:
    """Split points into ``k`` compact groups of about equal size (recursive bisection); returns labels.

    Each cut goes across the longer side of the group's extent at the count that keeps sizes in
    proportion, moved by up to ``jitter`` so that groups are not all exactly the same size.
    """
    labels = np.zeros(x.size, dtype=np.int64)
    stack = [(np.arange(x.size), max(1, k), 0)]
    while stack:
        idx, parts, first = stack.pop()
        if parts == 1 or idx.size < 2:
            labels[idx] = first
            continue
        left = parts // 2
        gx, gy = x[idx], y[idx]
        axis = gx if np.ptp(gx) >= np.ptp(gy) else gy
        order = idx[np.argsort(axis, kind="stable")]
        share = left / parts * (1 + jitter * (2 * rng.random() - 1))
        cut = int(np.clip(round(idx.size * share), 1, idx.size - 1))
        stack.append((order[cut:], parts - left, first + left))
        stack.append((order[:cut], left, first))
    return labels


def largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Integers in proportion to ``weights`` that add up to exactly ``total`` (Hamilton's method)."""
    weights = np.asarray(weights, dtype=float)
    if total <= 0 or weights.sum() <= 0:
        return np.zeros(weights.size, dtype=np.int64)
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(np.int64)
    # Ties are broken by position (stable sort), so the result never depends on the platform.
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts
