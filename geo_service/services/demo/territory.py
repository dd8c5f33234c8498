"""The territory as the demo sees it: the 2018 commune polygons, their current communes, bourgs and names.

Read once from the ``communes`` table; every generator draws its points through this object so each
point lands inside the polygon whose code it carries.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from sqlalchemy import Connection, text

from geo_service.services.demo.demo_error import DemoError
from geo_service.services.demo.geometry import MARGIN_DEG, Keep, project, scatter, to_metric

NOT_LOADED = "chargez d'abord les limites : geo-service load boundaries"


def normalise(name: str) -> str:
    """A commune name without case, accents, punctuation or leading article ("Le Boulvé" → "boulve")."""
    s = name.replace("œ", "oe").replace("Œ", "Oe").replace("æ", "ae").replace("Æ", "Ae")
    s = "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))
    s = re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()
    return re.sub(r"^(le|la|les|l) ", "", s)


@dataclass
class Territory:
    """Parallel arrays, one entry per 2018 commune (ordered by code), plus current-commune groups."""

    code: list[str]
    nom: list[str]
    code_actuel: list[str]
    nom_actuel: list[str]
    population: list[int | None]
    epci_siren: list[str | None]
    epci_nom: list[str | None]
    geom: np.ndarray            # shapely polygons as stored (EPSG:4326)
    inner: np.ndarray           # the same, shrunk by MARGIN_DEG and prepared
    area_km2: np.ndarray
    bounds_xy: np.ndarray       # (n, 4) Lambert-93 extents
    bourg: np.ndarray           # (n, 2) lon/lat of the bourg (a point on the surface)
    bourg_xy: np.ndarray        # (n, 2) the same in Lambert-93
    current: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def load(cls, conn: Connection) -> Territory:
        """Read the loaded communes; none loaded raises ``DemoError`` telling how to load them."""
        rows = conn.execute(text(
            "SELECT code_insee, nom, code_insee_actuel, nom_actuel, population, epci_siren, epci_nom,"
            " ST_AsBinary(geom) FROM communes ORDER BY code_insee")).all()
        if not rows:
            raise DemoError(NOT_LOADED)
        geom = shapely.from_wkb([bytes(r[7]) for r in rows])
        inner = shapely.buffer(geom, -MARGIN_DEG)
        shapely.prepare(inner)
        metric = np.array([project(g) for g in geom])
        # The bourg: a point on the surface of the shrunk polygon, hence strictly inside the commune.
        bourg = shapely.get_coordinates(shapely.point_on_surface(inner))
        bx, by = to_metric(bourg[:, 0], bourg[:, 1])
        territory = cls(
            code=[r[0] for r in rows], nom=[r[1] for r in rows], code_actuel=[r[2] for r in rows],
            nom_actuel=[r[3] for r in rows], population=[r[4] for r in rows],
            epci_siren=[r[5] for r in rows], epci_nom=[r[6] for r in rows], geom=geom, inner=inner,
            area_km2=shapely.area(metric) / 1e6, bounds_xy=shapely.bounds(metric), bourg=bourg,
            bourg_xy=np.column_stack([bx, by]))
        for i, current in enumerate(territory.code_actuel):
            territory.current.setdefault(current, []).append(i)
        territory.current = dict(sorted(territory.current.items()))
        return territory

    def __len__(self) -> int:
        return len(self.code)

    def chef_lieu(self, code_actuel: str) -> int:
        """The 2018 polygon that holds the current commune's seat (same code), else its first one."""
        members = self.current[code_actuel]
        return next((i for i in members if self.code[i] == code_actuel), members[0])

    def current_population(self, code_actuel: str) -> int:
        """Population of a current commune (sum over its 2018 polygons)."""
        # Merged-away 2018 communes have no population: the current commune's seat carries it all.
        return sum(self.population[i] or 0 for i in self.current[code_actuel])

    def index(self, code_insee: str) -> int:
        """Position of a 2018 commune in the arrays."""
        return self.code.index(code_insee)

    def lookup(self, names: Sequence[str]) -> tuple[int, int]:
        """The 2018 polygon named by the first of ``names`` that matches (index, position in ``names``).

        A 2018 name wins over a current one; a current name gives the seat's polygon. No match or
        an ambiguous one raises ``DemoError`` naming what was searched.
        """
        for position, name in enumerate(names):
            key = normalise(name)
            hits = [i for i, n in enumerate(self.nom) if normalise(n) == key]
            if not hits:
                currents = sorted({self.code_actuel[i] for i, n in enumerate(self.nom_actuel)
                                   if normalise(n) == key})
                hits = [self.chef_lieu(c) for c in currents]
            if len(hits) > 1:
                raise DemoError(f"commune « {name} » ambiguë dans les limites chargées : "
                                + ", ".join(self.code[i] for i in hits))
            if hits:
                return hits[0], position
        raise DemoError(f"commune introuvable dans les limites chargées : {' / '.join(names)}")

    def find(self, name: str) -> int:
        """The 2018 polygon of a commune named in the demo file (see ``lookup``)."""
        return self.lookup([name])[0]

    def locate(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Index of the (shrunk) commune polygon containing each point, -1 where none does."""
        tree = shapely.STRtree(self.inner)
        point_idx, commune_idx = tree.query(shapely.points(lon, lat), predicate="within")
        found = np.full(np.asarray(lon).size, -1, dtype=np.int64)
        found[point_idx] = commune_idx
        return found

    def near_bourg(self, i: int, n: int, rng: np.random.Generator, radius_m: float,
                   keep: Keep | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``n`` points within ``radius_m`` of commune ``i``'s bourg, inside the commune."""
        return scatter(self.inner[i], n, rng, centre=tuple(self.bourg_xy[i]), radius_m=radius_m,
                       fallback=tuple(self.bourg[i]), keep=keep)

    def anywhere(self, i: int, n: int, rng: np.random.Generator,
                 keep: Keep | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``n`` points drawn uniformly inside commune ``i``."""
        return scatter(self.inner[i], n, rng, centre=tuple(self.bourg_xy[i]), bounds=tuple(self.bounds_xy[i]),
                       fallback=tuple(self.bourg[i]), keep=keep)

    def postal_codes(self, bureaux: dict[str, str]) -> list[str]:
        """A plausible postal code per commune: that of the nearest listed town (by bourg distance)."""
        towns = [self.find(name) for name in bureaux]
        codes = list(bureaux.values())
        d = np.linalg.norm(self.bourg_xy[:, None, :] - self.bourg_xy[None, towns, :], axis=2)
        return [codes[j] for j in np.argmin(d, axis=1)]

    def commune_label(self, i: int) -> str:
        """The name people use for the place: the 2018 name, with the current one when it differs."""
        nom, actuel = self.nom[i], self.nom_actuel[i]
        return nom if normalise(nom) == normalise(actuel) else f"{nom} ({actuel})"
