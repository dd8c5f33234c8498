"""FTTH roll-out: deployment zones (AMII / public network), cabinets (PM), optical nodes (NRO), premise states.

Premises are grouped into cabinets of about ``premises_per_cabinet`` by balanced spatial bisection in each
zone, cabinets into nodes the same way. The public network advances node by node from the largest
nodes outwards (9 in service and 75 cabinets in the first year, per FACTS); Orange's AMII zone from the
centre of Cahors outwards. A premise's state and dates follow its cabinet's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from geo_service.services.demo.addresses import Premises
from geo_service.services.demo.demo_error import DemoError
from geo_service.services.demo.geometry import balanced_groups, ewkb_hex, ewkb_hex_geoms, to_metric, to_storage
from geo_service.services.demo.params import DemoParams
from geo_service.services.demo.territory import Territory

AMII, RIP = "amii", "rip"
# Per cabinet: statut, date of service, planned date; per node: date of service (None: planned).
Schedule = tuple[list[str], list[date | None], list[date | None], list[date | None]]


@dataclass
class Rollout:
    """Rows ready for the writer, and what other parts of the demo need to know (the AMII zone)."""

    amii_currents: set[str]
    zones: list[dict]
    nodes: list[dict]
    cabinets: list[dict]
    premises: list[dict]


def amii_currents(territory: Territory, params: DemoParams) -> set[str]:
    """The current communes of Orange's AMII zone: the ``communes`` of the EPCI nearest to its centre."""
    amii = params.ftth.amii
    centre = territory.bourg_xy[territory.find(amii.centre)]
    members = [c for c in territory.current if territory.epci_siren[territory.chef_lieu(c)] == amii.epci_siren]
    if len(members) < amii.communes:
        raise DemoError(f"l'EPCI {amii.epci_siren} n'a que {len(members)} communes chargées, "
                        f"{amii.communes} attendues en zone AMII")
    dist = [float(np.hypot(*(territory.bourg_xy[territory.chef_lieu(c)] - centre))) for c in members]
    return {c for _, c in sorted(zip(dist, members, strict=True))[: amii.communes]}


def generate(territory: Territory, params: DemoParams, premises: Premises, rng: np.random.Generator) -> Rollout:
    """Zones, nodes, cabinets and premise rows of the whole roll-out."""
    amii = amii_currents(territory, params)
    commune_zone = np.array([AMII if c in amii else RIP for c in territory.code_actuel])
    zone_of = commune_zone[premises.commune]
    cabinet_of = np.full(len(premises), -1)
    cabinets: list[dict] = []
    nodes: list[dict] = []
    for zone in (AMII, RIP):
        members = np.flatnonzero(zone_of == zone)
        if members.size:
            _zone_network(territory, params, premises, members, zone, rng, cabinet_of, cabinets, nodes)
    zones = [{"code_insee": territory.code[i], "nom": territory.commune_label(i), "zone": str(commune_zone[i]),
              "operateur": _operator(params, commune_zone[i]), "geom": territory.geom[i]}
             for i in range(len(territory))]
    for row, hexa in zip(zones, ewkb_hex_geoms([z.pop("geom") for z in zones]), strict=True):
        row["geom"] = hexa
    _name_cabinets(territory, params, cabinets)
    rows = _premise_rows(territory, params, premises, zone_of, cabinet_of, cabinets, rng)
    for cabinet in cabinets:
        del cabinet["_planned"], cabinet["_x"]
    return Rollout(amii_currents=amii, zones=zones, nodes=nodes, cabinets=cabinets, premises=rows)


def _operator(params: DemoParams, zone: str) -> str:
    return params.ftth.amii.operateur if zone == AMII else params.ftth.rip.operateur


def _zone_network(territory: Territory, params: DemoParams, premises: Premises, members: np.ndarray,
                  zone: str, rng: np.random.Generator, cabinet_of: np.ndarray, cabinets: list[dict],
                  nodes: list[dict]) -> None:
    """Cabinets and nodes of one zone, with their state at the reference date."""
    k = max(1, round(members.size / params.ftth.premises_per_cabinet))
    labels = balanced_groups(premises.x[members], premises.y[members], k, rng)
    cx = np.bincount(labels, premises.x[members], k) / np.bincount(labels, minlength=k)
    cy = np.bincount(labels, premises.y[members], k) / np.bincount(labels, minlength=k)
    where = _site(territory, premises, members, labels, cx, cy)
    n_nodes = min(k, params.ftth.amii.nodes if zone == AMII else params.ftth.rip.nodes)
    node_of = balanced_groups(cx, cy, n_nodes, rng)
    sizes = np.bincount(labels, minlength=k)
    node_sites = [_node_site(territory, node_of == n, where, sizes, rng) for n in range(n_nodes)]
    statut, built, planned, node_date = (_amii_schedule if zone == AMII else _rip_schedule)(
        params, territory, cx, cy, node_of, node_sites, rng)
    node_refs = _node_refs(territory, node_sites, nodes)
    for c in range(k):
        i, lon, lat = where[c]
        cabinet_of[members[labels == c]] = len(cabinets)
        cabinets.append({
            "code_insee": territory.code[i], "statut": statut[c], "nb_prises": int(sizes[c]),
            "date_mise_en_service": built[c], "nro_ref": node_refs[node_of[c]], "operateur": _operator(params, zone),
            "geom": ewkb_hex(np.array([lon]), np.array([lat]))[0], "_planned": planned[c], "_x": cx[c]})
    for n, (i, lon, lat) in enumerate(node_sites):
        suffix = node_refs[n].removeprefix(f"DEMO-NRO-{territory.code[i]}").replace("-", " ")
        nodes.append({
            "nro_ref": node_refs[n], "nom": params.named(f"NRO {territory.nom[i]}{suffix}"),
            "code_insee": territory.code[i],
            "statut": "en service" if node_date[n] else "prevu",
            "nb_pm": int(sum(1 for c in range(k) if node_of[c] == n)), "date_mise_en_service": node_date[n],
            "geom": ewkb_hex(np.array([lon]), np.array([lat]))[0]})


def _name_cabinets(territory: Territory, params: DemoParams, cabinets: list[dict]) -> None:
    """References DEMO-PM-<code INSEE>-<nn>, numbered from west to east within each commune."""
    per_commune: dict[str, int] = {}
    for cabinet in sorted(cabinets, key=lambda c: (c["code_insee"], c["_x"])):
        code = cabinet["code_insee"]
        per_commune[code] = nn = per_commune.get(code, 0) + 1
        cabinet["pm_ref"] = f"DEMO-PM-{code}-{nn:02d}"
        cabinet["nom"] = params.named(f"PM {territory.nom[territory.index(code)]} {nn:02d}")


def _node_refs(territory: Territory, node_sites: list, existing: list[dict]) -> list[str]:
    taken = {row["nro_ref"] for row in existing}
    refs = []
    for i, _, _ in node_sites:
        ref, n = f"DEMO-NRO-{territory.code[i]}", 1
        while ref in taken:
            n += 1
            ref = f"DEMO-NRO-{territory.code[i]}-{n}"
        taken.add(ref)
        refs.append(ref)
    return refs


def _site(territory: Territory, premises: Premises, members: np.ndarray, labels: np.ndarray,
          cx: np.ndarray, cy: np.ndarray) -> list[tuple[int, float, float]]:
    """Each cabinet at the centroid of its premises, or at its premise nearest to it when outside."""
    lon, lat = to_storage(cx, cy)
    found = territory.locate(lon, lat)
    sites = []
    for c, i in enumerate(found):
        if i < 0:
            own = members[labels == c]
            p = own[np.argmin(np.hypot(premises.x[own] - cx[c], premises.y[own] - cy[c]))]
            sites.append((int(premises.commune[p]), float(premises.lon[p]), float(premises.lat[p])))
        else:
            sites.append((int(i), float(lon[c]), float(lat[c])))
    return sites


def _node_site(territory: Territory, mine: np.ndarray, where: list, sizes: np.ndarray,
               rng: np.random.Generator) -> tuple[int, float, float]:
    """A node near the bourg of the commune that holds most of its cabinets' premises (a bourg-centre)."""
    weight: dict[int, int] = {}
    for c in np.flatnonzero(mine):
        weight[where[c][0]] = weight.get(where[c][0], 0) + int(sizes[c])
    i = max(sorted(weight), key=lambda j: weight[j])
    lon, lat = territory.near_bourg(i, 1, rng, 300.0)
    return i, float(lon[0]), float(lat[0])


def _dates(rng: np.random.Generator, start: date, end: date, n: int) -> list[date]:
    """``n`` sorted dates drawn uniformly in [start, end]."""
    days = np.sort(rng.integers(0, max(1, (end - start).days + 1), n))
    return [start + timedelta(days=int(d)) for d in days]


def _rip_schedule(params: DemoParams, territory: Territory, cx: np.ndarray, cy: np.ndarray, node_of: np.ndarray,
                  node_sites: list[tuple[int, float, float]], rng: np.random.Generator) -> Schedule:
    """Public network: nodes of the largest towns first, then the cabinets nearest to their node."""
    rip = params.ftth.rip
    k, n_nodes = cx.size, len(node_sites)
    town = np.array([territory.current_population(territory.code_actuel[s[0]]) for s in node_sites])
    node_rank = np.empty(n_nodes, dtype=np.int64)
    node_rank[np.lexsort((np.arange(n_nodes), -town))] = np.arange(n_nodes)
    nx, ny = to_metric(np.array([s[1] for s in node_sites]), np.array([s[2] for s in node_sites]))
    dist = np.hypot(cx - nx[node_of], cy - ny[node_of])
    near_rank = np.empty(k, dtype=np.int64)
    for n in range(n_nodes):
        ids = np.flatnonzero(node_of == n)
        near_rank[ids[np.argsort(dist[ids], kind="stable")]] = np.arange(ids.size)
    later = node_rank[node_of] >= rip.nodes_in_service
    sequence = np.lexsort((node_rank[node_of], near_rank, later))
    statut: list[str] = [""] * k
    built: list[date | None] = [None] * k
    planned: list[date | None] = [None] * k
    deployed = _dates(rng, *rip.deployed_between, min(rip.deployed_cabinets, k))
    in_progress_from = params.reference_date + timedelta(days=1)
    first_free = max(rip.waves, default=params.reference_date.year) + 1
    waves = _waves(rip.waves, rip.last_year, k - rip.year1_cabinets, first_free)
    for pos, c in enumerate(sequence):
        if pos < len(deployed):
            statut[c], built[c] = "deploye", deployed[pos]
            planned[c] = deployed[pos].replace(day=1)
        elif pos < rip.year1_cabinets:
            statut[c] = "en cours de deploiement"
            planned[c] = _dates(rng, in_progress_from, rip.in_progress_until, 1)[0]
        else:
            year = waves[pos - rip.year1_cabinets]
            start = max(date(year, 1, 1), rip.in_progress_until + timedelta(days=1))
            statut[c], planned[c] = "prevu", _dates(rng, start, date(year, 12, 31), 1)[0]
    node_date: list[date | None] = [None] * n_nodes
    for n in range(n_nodes):
        if node_rank[n] < rip.nodes_in_service:
            mine = [built[c] for c in np.flatnonzero(node_of == n) if built[c]]
            first = min(mine) if mine else _dates(rng, *rip.deployed_between, 1)[0]
            node_date[n] = first - timedelta(days=int(rng.integers(30, 90)))
    return statut, built, planned, node_date


def _waves(waves: dict[int, int], last_year: int, count: int, first_free_year: int) -> list[int]:
    """The planned year of each later cabinet: the listed waves, then the rest spread evenly."""
    years = [y for y, n in sorted(waves.items()) for _ in range(n)][:count]
    rest_years = list(range(first_free_year, last_year + 1)) or [last_year]
    rest = count - len(years)
    years += [rest_years[min(len(rest_years) - 1, j * len(rest_years) // max(rest, 1))] for j in range(rest)]
    return years


def _amii_schedule(params: DemoParams, territory: Territory, cx: np.ndarray, cy: np.ndarray, node_of: np.ndarray,
                   node_sites: list[tuple[int, float, float]], rng: np.random.Generator) -> Schedule:
    """Orange's zone: deployed from the centre of Cahors outwards, its nodes all in service."""
    amii = params.ftth.amii
    k = cx.size
    centre = territory.bourg_xy[territory.find(amii.centre)]
    sequence = np.argsort(np.hypot(cx - centre[0], cy - centre[1]), kind="stable")
    n_deployed = round(k * amii.deployed_share)
    n_progress = round(k * amii.in_progress_share)
    deployed = _dates(rng, *amii.deployed_between, n_deployed)
    statut: list[str] = [""] * k
    built: list[date | None] = [None] * k
    planned: list[date | None] = [None] * k
    for pos, c in enumerate(sequence):
        if pos < n_deployed:
            statut[c], built[c], planned[c] = "deploye", deployed[pos], deployed[pos].replace(day=1)
        elif pos < n_deployed + n_progress:
            end = date(amii.planned_years[0], 12, 31)
            statut[c] = "en cours de deploiement"
            planned[c] = _dates(rng, params.reference_date + timedelta(days=1), end, 1)[0]
        else:
            year = amii.planned_years[-1]
            statut[c], planned[c] = "prevu", _dates(rng, date(year, 1, 1), date(year, 12, 31), 1)[0]
    start = amii.deployed_between[0] - timedelta(days=180)
    node_date: list[date | None] = list(_dates(rng, start, amii.deployed_between[0], len(node_sites)))
    return statut, built, planned, node_date


def _premise_rows(territory: Territory, params: DemoParams, premises: Premises, zone_of: np.ndarray,
                  cabinet_of: np.ndarray, cabinets: list[dict], rng: np.random.Generator) -> list[dict]:
    """One row per premise: address, cabinet, zone and a state consistent with its cabinet's."""
    ftth = params.ftth
    n = len(premises)
    cab_statut = np.array([c["statut"] for c in cabinets])[cabinet_of]
    building = premises.type_imb == "IM"
    u = rng.random(n)
    connected = np.where(zone_of == AMII, ftth.amii.connected_share, ftth.rip.connected_share)
    etat = np.select(
        [cab_statut == "deploye", cab_statut == "en cours de deploiement"],
        [np.where(u < connected, "raccorde",
                  np.where(u < connected + ftth.on_demand_share, "raccordable demande", "deploye")),
         np.where(building & (u < ftth.signed_share["in_progress"]), "signe", "en cours de deploiement")],
        np.where(building & (u < ftth.signed_share["planned"]), "signe", "cible")).astype(object)
    etat[(rng.random(n) < params.premises.abandoned_share) & (etat != "raccorde")] = "abandonne"
    lag = rng.integers(0, 21, n)
    postal = territory.postal_codes(params.postal_codes)
    counters: dict[str, int] = {}
    rows = []
    last_day = params.reference_date - timedelta(days=1)
    for p in range(n):
        i = premises.commune[p]
        code = territory.code[i]
        counters[code] = counters.get(code, 0) + 1
        cabinet = cabinets[cabinet_of[p]]
        state = etat[p]
        reachable = state in ("deploye", "raccorde", "raccordable demande")
        rows.append({
            "imb_id": params.premises.imb_id.format(code_insee=code, n=counters[code]),
            "numero": premises.numero[p], "nom_voie": premises.nom_voie[p],
            "adresse": f"{premises.numero[p]} {premises.nom_voie[p]}", "code_postal": postal[i],
            "code_insee": code, "nom_commune": territory.nom_actuel[i],
            "nb_logements": int(premises.nb_logements[p]), "type_imb": str(premises.type_imb[p]), "etat": state,
            "pm_ref": cabinet["pm_ref"],
            "code_l331": ftth.amii.code_l331 if zone_of[p] == AMII else ftth.rip.code_l331,
            "zone": str(zone_of[p]),
            "date_prevue": None if state == "abandonne" else cabinet["_planned"],
            "date_raccordable": min(cabinet["date_mise_en_service"] + timedelta(days=int(lag[p])), last_day)
            if reachable else None})
    for row, hexa in zip(rows, ewkb_hex(premises.lon, premises.lat), strict=True):
        row["geom"] = hexa
    return rows
