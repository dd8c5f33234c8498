"""Synthetic premises: how many per commune, where (streets around the bourg, roads, hamlets) and their address.

Counts follow population at the level of the current commune (the 2018 polygons of a merged commune share
its population by area). In each 2018 commune, premises line a few centre streets around the bourg, the
roads towards the neighbouring villages and a few hamlets; house numbers are sequential in the bourg and
metric (distance from the bourg, as in the rural Lot) along the roads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import shapely

from geo_service.services.demo.geometry import largest_remainder, to_metric, to_storage
from geo_service.services.demo.params import DemoParams
from geo_service.services.demo.territory import Territory

CENTRE, ROAD, HAMLET = 0, 1, 2
# Lateral distance (m) of a house from the axis of its street, by kind of street.
_SETBACK = {CENTRE: (5.0, 12.0), ROAD: (8.0, 35.0), HAMLET: (5.0, 40.0)}


@dataclass
class Premises:
    """One entry per premise, in the order of their identifiers."""

    commune: np.ndarray         # index of the 2018 commune
    lon: np.ndarray
    lat: np.ndarray
    x: np.ndarray               # Lambert-93
    y: np.ndarray
    numero: list[str]
    nom_voie: list[str]
    nb_logements: np.ndarray
    type_imb: np.ndarray

    def __len__(self) -> int:
        return self.commune.size


@dataclass
class _Streets:
    name: list[str]
    kind: np.ndarray
    x0: np.ndarray
    y0: np.ndarray
    ux: np.ndarray
    uy: np.ndarray
    length: np.ndarray


def contract(name: str) -> str:
    """French elision and contraction after "de": "route de Le Bastit" → "route du Bastit", "de Espère" → "d'Espère"."""
    name = re.sub(r"\bde Le ", "du ", name)
    name = re.sub(r"\bde Les ", "des ", name)
    return re.sub(r"\bde (?=[AEIOUYÂÉÈÊÎÔ])", "d'", name)


def allocate(territory: Territory, total: int) -> np.ndarray:
    """Premises per 2018 commune: ``total`` shared by current-commune population, then by area inside it."""
    currents = list(territory.current)
    per_current = largest_remainder(np.array([territory.current_population(c) for c in currents]), total)
    counts = np.zeros(len(territory), dtype=np.int64)
    for code, n in zip(currents, per_current, strict=True):
        members = territory.current[code]
        counts[members] = largest_remainder(territory.area_km2[members], int(n))
    return counts


def generate(territory: Territory, params: DemoParams, rng: np.random.Generator) -> Premises:
    """All premises of the territory (``params.premises.total``), commune by commune."""
    counts = allocate(territory, params.premises.total)
    gaps = np.linalg.norm(territory.bourg_xy[:, None, :] - territory.bourg_xy[None, :, :], axis=2)
    parts = [_commune_premises(territory, params, int(i), int(counts[i]), gaps[i], rng)
             for i in np.flatnonzero(counts)]
    return Premises(
        commune=np.concatenate([p.commune for p in parts]),
        lon=np.concatenate([p.lon for p in parts]), lat=np.concatenate([p.lat for p in parts]),
        x=np.concatenate([p.x for p in parts]), y=np.concatenate([p.y for p in parts]),
        numero=[s for p in parts for s in p.numero], nom_voie=[s for p in parts for s in p.nom_voie],
        nb_logements=np.concatenate([p.nb_logements for p in parts]),
        type_imb=np.concatenate([p.type_imb for p in parts]))


def _commune_premises(territory: Territory, params: DemoParams, i: int, n: int, gaps: np.ndarray,
                      rng: np.random.Generator) -> Premises:
    """Commune ``i``'s ``n`` premises, ordered by street and house number."""
    town = n >= params.streets.town_premises
    spread = max(80.0, 150.0 * np.sqrt(n / 100))  # metres: the size of the bourg grows with the premises
    streets = _layout(territory, params, i, n, gaps, spread, rng)
    sid = _assign(streets, n, spread, territory.bourg_xy[i], rng)
    lon, lat = _place(territory, streets, sid, rng, i)
    x, y = to_metric(lon, lat)
    dx, dy = x - streets.x0[sid], y - streets.y0[sid]
    along = dx * streets.ux[sid] + dy * streets.uy[sid]
    left = streets.ux[sid] * dy - streets.uy[sid] * dx > 0
    metric = (streets.kind[sid] == ROAD) & (not town)
    numbers = _house_numbers(sid, left, along, metric)
    order = np.lexsort((numbers, sid))
    kind = streets.kind[sid][order]
    share = params.premises.town_building_share if town else params.premises.building_share
    building = rng.random(n) < np.where(kind == CENTRE, share, params.premises.building_share / 2)
    flats = 1 + rng.geometric(0.2 if town else 0.35, n)
    dwellings = np.where(building, np.minimum(flats, 40), np.where(rng.random(n) < 0.03, 2, 1))
    return Premises(commune=np.full(n, i), lon=lon[order], lat=lat[order], x=x[order], y=y[order],
                    numero=[str(v) for v in numbers[order]], nom_voie=[streets.name[s] for s in sid[order]],
                    nb_logements=dwellings, type_imb=np.where(building, "IM", "PA"))


def _layout(territory: Territory, params: DemoParams, i: int, n: int, gaps: np.ndarray, spread: float,
            rng: np.random.Generator) -> _Streets:
    """The commune's streets: centre streets around the bourg, roads to the neighbours, hamlets."""
    names, kinds, starts, angles, lengths = [], [], [], [], []
    bx, by = territory.bourg_xy[i]
    # Centre streets: the usual names first, then "type + name" combinations in a random order.
    combos = [f"{t} {nm}" for t in params.streets.types for nm in params.streets.names]
    pool = list(dict.fromkeys(params.streets.centre + [combos[k] for k in rng.permutation(len(combos))]))
    n_centre = int(np.clip(round(n / 30), 1, len(pool)))
    sx, sy = to_metric(*territory.near_bourg(i, n_centre, rng, 1.5 * spread))
    fixed = min(len(params.streets.centre), n_centre)
    sx[:fixed], sy[:fixed] = bx + rng.normal(0, 20, fixed), by + rng.normal(0, 20, fixed)
    for k in range(n_centre):
        names.append(pool[k])
        kinds.append(CENTRE)
        starts.append((sx[k], sy[k]))
        angles.append(rng.uniform(0, 2 * np.pi))
        lengths.append(rng.uniform(100, 350) * (1 + spread / 1500))
    # Roads towards the nearest villages, at least 35° apart, named after them.
    template = params.streets.town_road if n >= params.streets.town_premises else params.streets.road
    for j in np.argsort(gaps, kind="stable")[1:8]:
        angle = np.arctan2(territory.bourg_xy[j, 1] - by, territory.bourg_xy[j, 0] - bx)
        diffs = np.abs((np.array([a for a, k in zip(angles, kinds, strict=True) if k == ROAD]) - angle
                        + np.pi) % (2 * np.pi) - np.pi)
        same = territory.code_actuel[j] == territory.code_actuel[i]
        name = contract(template.format(commune=territory.nom[j] if same else territory.nom_actuel[j]))
        if (diffs < np.radians(35)).any() or name in names:
            continue
        names.append(name)
        kinds.append(ROAD)
        starts.append((bx, by))
        angles.append(angle)
        lengths.append(min(0.55 * gaps[j], 7000.0))
        if kinds.count(ROAD) == 4:
            break
    # Hamlets (lieux-dits): a short lane through a point of the commune away from the bourg.
    n_hamlets = int(np.clip(round(territory.area_km2[i] / 3.5), 1, 8)) if n >= 25 else 1
    far = lambda x, y: np.hypot(x - bx, y - by) > 600  # noqa: E731 - a one-line condition for scatter
    hx, hy = to_metric(*territory.anywhere(i, n_hamlets, rng, keep=far))
    for k, name in enumerate(rng.choice(params.streets.hamlets, n_hamlets, replace=False)):
        names.append(str(name))
        kinds.append(HAMLET)
        starts.append((hx[k], hy[k]))
        angles.append(rng.uniform(0, 2 * np.pi))
        lengths.append(rng.uniform(100, 300))
    a = np.array(angles)
    start = np.array(starts)
    return _Streets(name=names, kind=np.array(kinds), x0=start[:, 0], y0=start[:, 1], ux=np.cos(a),
                    uy=np.sin(a), length=np.array(lengths))


def _assign(streets: _Streets, n: int, spread: float, bourg: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """The street of each premise: most in the bourg, a share along the roads and in the hamlets."""
    hamlet_share = 0.30 if n < 300 else 0.20 if n < 1500 else 0.08
    road_share = 0.25 if n < 1500 else 0.15
    has = {k: np.flatnonzero(streets.kind == k) for k in (CENTRE, ROAD, HAMLET)}
    n_hamlet = int(round(n * hamlet_share)) if has[HAMLET].size else 0
    n_road = int(round(n * road_share)) if has[ROAD].size else 0
    n_centre = n - n_hamlet - n_road
    # Centre streets near the bourg get more houses; the first (historic) ones the most.
    dist = np.hypot(streets.x0[has[CENTRE]] - bourg[0], streets.y0[has[CENTRE]] - bourg[1])
    centre_w = rng.gamma(2.0, 1.0, has[CENTRE].size) * np.exp(-dist / spread)
    centre_w[: min(3, centre_w.size)] *= 3
    sid = []
    for ids, count, weights in ((has[CENTRE], n_centre, centre_w),
                                (has[ROAD], n_road, rng.gamma(2.0, 1.0, has[ROAD].size)),
                                (has[HAMLET], n_hamlet, rng.gamma(2.0, 1.0, has[HAMLET].size))):
        if count:
            sid.append(np.repeat(ids, rng.multinomial(count, weights / weights.sum())))
    return np.concatenate(sid)


def _place(territory: Territory, streets: _Streets, sid: np.ndarray, rng: np.random.Generator,
           i: int) -> tuple[np.ndarray, np.ndarray]:
    """A position along its street for each premise, redrawn until it falls inside the commune."""
    lon, lat = np.empty(sid.size), np.empty(sid.size)
    todo = np.arange(sid.size)
    for attempt in range(12):
        if not todo.size:
            break
        s = sid[todo]
        kind, length = streets.kind[s], streets.length[s]
        u = rng.random(todo.size)
        along = np.select([kind == ROAD, kind == HAMLET],
                          [np.minimum(80 + rng.exponential(length / 3), length), (u - 0.5) * length],
                          u * length)
        low = np.select([kind == ROAD, kind == HAMLET], [_SETBACK[ROAD][0], _SETBACK[HAMLET][0]],
                        _SETBACK[CENTRE][0])
        high = np.select([kind == ROAD, kind == HAMLET], [_SETBACK[ROAD][1], _SETBACK[HAMLET][1]],
                         _SETBACK[CENTRE][1])
        side = rng.choice([-1.0, 1.0], todo.size) * rng.uniform(low, high)
        x = streets.x0[s] + along * streets.ux[s] - side * streets.uy[s]
        y = streets.y0[s] + along * streets.uy[s] + side * streets.ux[s]
        if attempt >= 8:
            # A street that mostly leaves the commune: put the rest of its houses near the bourg.
            x = territory.bourg_xy[i, 0] + rng.normal(0, 60, todo.size)
            y = territory.bourg_xy[i, 1] + rng.normal(0, 60, todo.size)
        plon, plat = to_storage(x, y)
        ok = shapely.contains_xy(territory.inner[i], plon, plat)
        lon[todo[ok]], lat[todo[ok]] = plon[ok], plat[ok]
        todo = todo[~ok]
    lon[todo], lat[todo] = territory.bourg[i]
    return lon, lat


def _house_numbers(sid: np.ndarray, left: np.ndarray, along: np.ndarray, metric: np.ndarray) -> np.ndarray:
    """Odd numbers on the left, even on the right, growing along the street and unique on each side.

    Metric numbers (distance in metres from the start of the road) are raised where needed so that
    each is at least 2 above the previous one on the same side.
    """
    group = sid * 2 + left
    order = np.lexsort((along, group))
    g = group[order]
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    rank = np.arange(g.size) - np.repeat(starts, np.diff(np.r_[starts, g.size]))
    odd = left[order]
    sequential = 2 * rank + np.where(odd, 1, 2)
    base = np.maximum(np.floor(along[order]).astype(np.int64), 1)
    wanted = np.where(odd, 2 * (base // 2) + 1, 2 * ((base + 1) // 2))
    # Running maximum of (wanted - 2·rank) within each group, via an offset per group.
    big = 10**9
    raised = np.maximum.accumulate(wanted - 2 * rank + g * big) - g * big + 2 * rank
    numbers = np.empty(sid.size, dtype=np.int64)
    numbers[order] = np.where(metric[order], raised, sequential)
    return numbers
