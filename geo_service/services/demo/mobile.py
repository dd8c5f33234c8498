"""Mobile sites: operators' commercial sites, the Département's 17 masts, the white-zone programme, New Deal.

White-zone centres-bourgs and the "zones à étudier" sit in relief shadows (valleys) that commercial and
departmental sites do not reach (see ``coverage``); they are kept out of those shadows, while the
programme's masts stand in them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from geo_service.services.demo.geometry import Keep, ewkb_hex, to_metric
from geo_service.services.demo.params import OPERATORS, TECHNOS, DemoParams
from geo_service.services.demo.territory import Territory

PROGRAMME = "zone blanche centre-bourg"
# A programme mast whose commune was found under a later name stands this far from that commune's bourg
# (metres): the old village (e.g. Belmontet in Montcuq-en-Quercy-Blanc), not the new seat.
_OLD_VILLAGE_M = 2000.0


@dataclass
class Mobile:
    """The mast rows and the relief shadows the coverage must respect."""

    masts: list[dict]
    shadows: np.ndarray         # (n, 4): x, y (Lambert-93), radius (m) and group of the relief-shadow discs
    shadow_of: dict[str, int]   # the shadow group of each programme mast (its own valley)


class _Builder:
    """Accumulates mast rows with sequential demo station numbers."""

    def __init__(self, territory: Territory, params: DemoParams, rng: np.random.Generator):
        self.t, self.p, self.rng = territory, params, rng
        self.rows: list[dict] = []
        self.per_commune: dict[str, int] = {}

    def add(self, i: int, lon: float, lat: float, nom: str, dispositif: str, operators: list[str],
            technos: dict[str, list[str]], statut: str, when: date | None, height: tuple[float, float],
            proprietaire: str, leader: str | None = None) -> None:
        """One mast row; the technology arrays of absent operators stay empty (NULL)."""
        station = f"{self.p.mobile.id_prefix}{len(self.rows) + 1:08d}"
        row = {"id_station_anfr": station, "nom": self.p.named(nom), "code_insee": self.t.code[i],
               "operateurs": operators, "dispositif": dispositif, "operateur_leader": leader,
               "proprietaire": proprietaire, "hauteur_m": float(round(self.rng.uniform(*height))),
               "statut": statut, "date_mise_en_service": when if statut == "en service" else None,
               # ARCEP's programme flags, as Mon réseau mobile publishes them for these schemes' sites.
               "site_zb": dispositif == PROGRAMME, "site_dcc": dispositif == "couverture ciblee",
               "geom": ewkb_hex(np.array([lon]), np.array([lat]))[0]}
        for op in OPERATORS:
            row[f"technos_{op}"] = technos.get(op) if op in operators else None
        self.rows.append(row)

    def date_between(self, start: date, end: date) -> date:
        """A day drawn uniformly in [start, end]."""
        return start + timedelta(days=int(self.rng.integers(0, (end - start).days + 1)))

    def technos(self, op: str) -> list[str]:
        """Technologies of ``op`` on a site, drawn from its probabilities (at least its most likely one)."""
        probs = self.p.mobile.technologies[op]
        chosen = [t for t in TECHNOS if self.rng.random() < probs.get(t, 0.0)]
        return chosen or [max(TECHNOS, key=lambda t: probs.get(t, 0.0))]

    def capable(self, op: str) -> list[str]:
        """Every technology the operator runs at the reference date (programme sites carry them all)."""
        return [t for t in TECHNOS if self.p.mobile.technologies[op].get(t, 0.0) > 0]


def generate(territory: Territory, params: DemoParams, rng: np.random.Generator) -> Mobile:
    """All demo masts and the relief shadows the coverage must respect."""
    mob = params.mobile
    b = _Builder(territory, params, rng)
    shadows, shadow_of = _programme(b)
    study = _study_zones(territory, params, shadows, rng)
    for j, (_, x, y, radius) in enumerate(study):
        shadows = np.vstack([shadows, _blob(x, y, radius, len(shadow_of) + j, rng)])
    for k, row in enumerate(study[: mob.targeted.sites]):
        i = int(row[0])
        leader = OPERATORS[k % len(OPERATORS)]
        lon, lat = territory.near_bourg(i, 1, rng, 800.0)
        b.add(i, lon[0], lat[0], f"Couverture ciblée {territory.commune_label(i)}", "couverture ciblee", [leader],
              {leader: ["4G"]}, "projete", None, mob.heights_m["programme"], mob.owners[leader], leader)
    outside = _outside(shadows)
    _departemental(b, outside)
    _commercial(b, outside)
    return Mobile(masts=b.rows, shadows=shadows, shadow_of=shadow_of)


def _programme(b: _Builder) -> tuple[np.ndarray, dict[str, int]]:
    """One mast per white-zone commune, all four operators, led by the operator FACTS names."""
    prog, mob = b.p.mobile.white_zone_programme, b.p.mobile
    shadows: list[tuple[float, float, float, int]] = []
    shadow_of: dict[str, int] = {}
    for k, entry in enumerate(prog.communes):
        i, position = b.t.lookup(entry.names)
        if position == 0:
            lon, lat = b.t.near_bourg(i, 1, b.rng, 300.0)
        else:
            bx, by = b.t.bourg_xy[i]
            lon, lat = b.t.anywhere(i, 1, b.rng, keep=lambda x, y, bx=bx, by=by: np.hypot(x - bx, y - by)
                                    > _OLD_VILLAGE_M)
        when = entry.date or b.date_between(prog.agreement, b.p.reference_date)
        b.add(i, lon[0], lat[0], f"Zone blanche centre-bourg {entry.names[0]}", PROGRAMME, list(OPERATORS),
              {op: b.capable(op) for op in OPERATORS}, entry.statut, when, mob.heights_m["programme"],
              prog.proprietaire, entry.leader)
        x, y = to_metric(lon, lat)
        shadows += _blob(x[0], y[0], mob.coverage.shadow_km * 1000, k, b.rng)
        shadow_of[b.rows[-1]["id_station_anfr"]] = k
    return np.array(shadows).reshape(-1, 4), shadow_of


def _blob(x: float, y: float, radius: float, group: int,
          rng: np.random.Generator) -> list[tuple[float, float, float, int]]:
    """A relief shadow of irregular shape: a disc on the site and three smaller ones around it."""
    angles = rng.uniform(0, 2 * np.pi, 3)
    gaps = rng.uniform(0.3, 0.6, 3) * radius
    return [(x, y, 0.75 * radius, group)] + [
        (x + d * np.cos(a), y + d * np.sin(a), r, group)
        for a, d, r in zip(angles, gaps, rng.uniform(0.45, 0.7, 3) * radius, strict=True)]


def _study_zones(territory: Territory, params: DemoParams, shadows: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """The "zones à étudier": small rural communes away from the white zones; rows (commune, x, y, radius)."""
    mob = params.mobile
    far = _outside(shadows, margin_m=mob.coverage.shadow_km * 1000)
    candidates = [i for i in range(len(territory))
                  if territory.current_population(territory.code_actuel[i]) <= mob.targeted.max_population
                  and far(territory.bourg_xy[i:i + 1, 0], territory.bourg_xy[i:i + 1, 1])[0]]
    chosen = rng.choice(candidates, min(mob.targeted.study_zones, len(candidates)), replace=False)
    radius = mob.coverage.study_shadow_km * 1000
    return np.array([(i, *territory.bourg_xy[i], radius) for i in chosen]).reshape(-1, 4)


def _outside(shadows: np.ndarray, margin_m: float = 1000.0) -> Keep:
    """A ``keep(x, y)`` condition: farther than ``margin_m`` from every shadow disc."""
    def keep(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if not shadows.size:
            return np.ones(np.asarray(x).size, dtype=bool)
        d = np.hypot(np.asarray(x)[:, None] - shadows[None, :, 0], np.asarray(y)[:, None] - shadows[None, :, 1])
        return (d > shadows[None, :, 2] + margin_m).all(axis=1)
    return keep


def _departemental(b: _Builder, outside: Keep) -> None:
    """The Département's masts (2005–2006), spread over small rural communes (farthest-point choice)."""
    dep, mob = b.p.mobile.departemental, b.p.mobile
    t = b.t
    rural = np.array([i for i in range(len(t)) if t.current_population(t.code_actuel[i]) <= dep.max_population
                      and outside(t.bourg_xy[i:i + 1, 0], t.bourg_xy[i:i + 1, 1])[0]])
    chosen = [int(b.rng.choice(rural))]
    while len(chosen) < min(dep.count, rural.size):
        gap = np.min(np.linalg.norm(t.bourg_xy[rural][:, None] - t.bourg_xy[chosen][None], axis=2), axis=1)
        chosen.append(int(rural[np.argmax(gap)]))
    for i in chosen:
        lon, lat = t.near_bourg(i, 1, b.rng, 1500.0, keep=outside)
        # Free, the newcomer, has since joined about a third of them.
        operators = list(dep.operators) + (["free"] if b.rng.random() < 0.3 else [])
        technos = {op: b.technos(op) for op in operators}
        b.add(i, lon[0], lat[0], f"Pylône départemental {t.commune_label(i)}", "departemental", operators,
              technos, "en service", b.date_between(*dep.built_between), mob.heights_m["departemental"],
              dep.proprietaire)


def _commercial(b: _Builder, outside: Keep) -> None:
    """Operators' own sites, more of them where more people live, some shared by several operators."""
    mob, t = b.p.mobile, b.t
    people = np.array([t.current_population(t.code_actuel[i]) * t.area_km2[i]
                       / sum(t.area_km2[j] for j in t.current[t.code_actuel[i]]) for i in range(len(t))])
    weights = np.sqrt(people + 10)
    communes = b.rng.choice(len(t), mob.commercial_sites, p=weights / weights.sum())
    first_day = date(mob.commercial_since, 1, 1)
    for i in map(int, np.sort(communes)):
        lon, lat = t.anywhere(i, 1, b.rng, keep=outside)
        operators = [op for op in OPERATORS if b.rng.random() < mob.presence[op]]
        operators = operators or [max(OPERATORS, key=lambda op: mob.presence[op])]
        owner = (mob.tower_company if b.rng.random() < mob.tower_company_share
                 else mob.owners[operators[int(b.rng.integers(len(operators)))]])
        building = b.rng.random() < mob.under_construction_share
        b.per_commune[t.code[i]] = b.per_commune.get(t.code[i], 0) + 1
        b.add(i, lon[0], lat[0], f"Site mobile {t.commune_label(i)} {b.per_commune[t.code[i]]}", "commercial",
              operators, {op: b.technos(op) for op in operators}, "en construction" if building else "en service",
              b.date_between(first_day, b.p.reference_date - timedelta(days=1)), mob.heights_m["commercial"], owner)
