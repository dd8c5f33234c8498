"""Places people visit: "WIFI public lotois" bornes, third places and digital-help places.

Names, counts and opening hours come from ``data/demo.yaml``; services and other coded values from the
layers' own code lists, so every row passes the database's CHECK constraints.
"""

from __future__ import annotations

from datetime import timedelta
from typing import NamedTuple

import numpy as np

from geo_service.layers import LayerRegistry
from geo_service.services.demo.addresses import contract
from geo_service.services.demo.geometry import ewkb_hex
from geo_service.services.demo.params import DemoParams
from geo_service.services.demo.territory import Territory

_ACCESS = "Accès internet et matériel informatique"
_EVERYDAY = "Maîtrise des outils numériques du quotidien"
_PAPERS = "Aide aux démarches administratives"
_SAFE = "Utilisation sécurisée du numérique"
_CULTURE = "Compréhension du monde numérique"


class _Profile(NamedTuple):
    """What a kind of digital-help place offers (values of the layer's code lists)."""

    services: list[str]             # always
    optional: list[str]             # each one time in two
    dispositifs: list[str]          # each one time in 2.5
    access: list[str]
    fee: str
    publics: list[str]              # each one time in two
    hours: str                      # pool of opening hours in the demo file


_PROFILES = {
    "mediatheque": _Profile([_ACCESS, _EVERYDAY], ["Loisirs et créations numériques", _CULTURE],
                            ["Bibliothèques numérique de référence"], ["Se présenter"], "Gratuit",
                            ["Familles et/ou enfants", "Seniors"], "library"),
    "epm": _Profile([_ACCESS, _EVERYDAY], [_SAFE, _CULTURE], ["Certification PIX", "Promeneurs du net"],
                    ["Se présenter", "Téléphoner"], "Gratuit sous condition", ["Seniors", "Jeunes"], "epm"),
    "france services": _Profile([_PAPERS, _ACCESS], [_EVERYDAY, _SAFE],
                                ["Aidants Connect", "Point d'accès numérique CAF"],
                                ["Se présenter", "Téléphoner", "Prendre un RDV en ligne"], "Gratuit", [], "service"),
    "point visio": _Profile([_PAPERS, _ACCESS], [], [], ["Prendre un RDV en ligne", "Téléphoner"], "Gratuit", [],
                            "service"),
    "cyber-base": _Profile([_ACCESS, _EVERYDAY], ["Insertion professionnelle via le numérique", _SAFE],
                           ["Certification PIX", "Grande école du numérique"], ["Se présenter", "Contacter par mail"],
                           "Gratuit sous condition", ["Jeunes"], "epm"),
    "association": _Profile(["Loisirs et créations numériques", "Parentalité et éducation avec le numérique"],
                            [_EVERYDAY], ["Promeneurs du net"], ["Se présenter", "Téléphoner"],
                            "Gratuit sous condition", ["Jeunes", "Familles et/ou enfants"], "epm"),
}
_TITLES = {"mediatheque": "Médiathèque de {}", "epm": "Espace public multimédia de {}",
           "france services": "France Services de {}", "point visio": "Point visio-public de {}",
           "cyber-base": "Cyber-base de {}", "association": "Espace numérique associatif de {}"}


class Contacts:
    """Fictitious phone numbers (a reserved-looking prefix, never twice the same) and placeholder links."""

    def __init__(self, params: DemoParams, rng: np.random.Generator):
        self._prefix, self._hosts = params.phone_prefix, params.hosts
        self._free = iter(rng.permutation(10_000))

    def phone(self) -> str:
        n = int(next(self._free))
        return f"{self._prefix} {n // 100:02d} {n % 100:02d}"

    def mail(self, slug: str) -> str:
        return f"{slug}@{self._hosts.mail}"

    def web(self, path: str) -> str:
        return f"https://{self._hosts.web}/{path}"

    def booking(self, path: str) -> str:
        return f"https://{self._hosts.reservation}/{path}"


def _address(params: DemoParams, rng: np.random.Generator) -> str:
    return f"{int(rng.integers(1, 25))} {params.streets.centre[int(rng.integers(len(params.streets.centre)))]}"


def wifi(territory: Territory, params: DemoParams, amii: set[str], rng: np.random.Generator) -> list[dict]:
    """One borne on the town-hall square of every current commune outside the AMII zone."""
    w = params.wifi
    currents = [c for c in territory.current if c not in amii]
    installed = set(rng.choice(len(currents), min(w.installed, len(currents)), replace=False).tolist())
    span = (w.installed_between[1] - w.installed_between[0]).days
    rows = []
    for k, code in enumerate(currents):
        i = territory.chef_lieu(code)
        place = "interieur" if rng.random() < w.indoor_share else "exterieur"
        rows.append({
            "borne_id": f"DEMO-WIFI-{code}", "code_insee": territory.code[i], "commune": territory.nom_actuel[i],
            "lieu": w.lieu, "ssid": w.ssid, "exploitant": w.exploitant,
            "statut": "installee" if k in installed else "programmee", "emplacement": place,
            "rayon_m": int(round(rng.uniform(*w.rayon_m[place]), -1)),
            "date_mise_en_service": w.installed_between[0] + timedelta(days=int(rng.integers(0, span + 1)))
            if k in installed else None,
            # The bourg is the main square: the borne stands on it.
            "geom": ewkb_hex(territory.bourg[i, :1], territory.bourg[i, 1:])[0]})
    return rows


def third_places(territory: Territory, params: DemoParams, registry: LayerRegistry, contacts: Contacts,
                 rng: np.random.Generator) -> list[dict]:
    """The departmental network of third places listed in the demo file."""
    services = registry.get("third_places").field("services").code_values or []
    hours = params.opening_hours.third_place
    postal = territory.postal_codes(params.postal_codes)
    rows = []
    for k, entry in enumerate(params.third_places, 1):
        i = territory.find(entry.commune)
        tl_id = f"DEMO-TL-{k:02d}"
        offer = entry.services or sorted(rng.choice(services, int(rng.integers(2, 5)), replace=False).tolist(),
                                         key=services.index)
        lon, lat = territory.near_bourg(i, 1, rng, 400.0)
        rows.append({
            "tl_id": tl_id, "nom": params.named(entry.nom or contract(f"Tiers-lieu de {territory.nom_actuel[i]}")),
            "adresse": _address(params, rng), "code_postal": postal[i], "code_insee": territory.code[i],
            "commune": territory.nom_actuel[i], "services": list(offer),
            "label": entry.label or "reseau departemental", "horaires": hours[int(rng.integers(len(hours)))],
            "url_reservation": contacts.booking(f"tiers-lieux/{tl_id.lower()}"), "telephone": contacts.phone(),
            "courriel": contacts.mail(tl_id.lower()), "site_web": contacts.web(f"tiers-lieux/{tl_id.lower()}"),
            "geom": ewkb_hex(lon, lat)[0]})
    return rows


def digital_help(territory: Territory, params: DemoParams, contacts: Contacts,
                 rng: np.random.Generator) -> list[dict]:
    """EPM and libraries, France Services, cyber-bases with their visio points, associations."""
    dh = params.digital_help
    currents = list(territory.current)
    population = np.array([territory.current_population(c) for c in currents], dtype=float)
    # Libraries and EPM: the larger the commune, the likelier it has one.
    epm = rng.choice(len(currents), dh.epm, replace=False, p=population**0.8 / (population**0.8).sum())
    library = rng.random(dh.epm) < dh.library_share
    sites: list[tuple[str, int, str | None]] = [
        ("mediatheque" if lib else "epm", territory.chef_lieu(currents[c]), None)
        for c, lib in zip(epm, library, strict=True)]
    towns = np.flatnonzero(population >= dh.france_services_min_population)
    fs = rng.choice(towns, min(dh.france_services, towns.size), replace=False,
                    p=population[towns] / population[towns].sum())
    sites += [("france services", territory.chef_lieu(currents[c]), None) for c in np.sort(fs)]
    cyber = [("cyber-base", territory.find(e.commune), e.nom) for e in dh.cyber_bases]
    sites += cyber
    # FACTS: of the 8 visio points, 6 are in cyber-bases; the others in France Services.
    hosts = [s[1] for s in cyber] + [territory.chef_lieu(currents[c]) for c in fs]
    sites += [("point visio", i, None) for i in hosts[: dh.visio_points]]
    sites += [("association", territory.find(e.commune), e.nom) for e in dh.associations]
    postal = territory.postal_codes(params.postal_codes)
    return [_help_row(territory, params, contacts, rng, k, *site, postal=postal[site[1]])
            for k, site in enumerate(sites, 1)]


def _help_row(territory: Territory, params: DemoParams, contacts: Contacts, rng: np.random.Generator,
              k: int, kind: str, i: int, nom: str | None, postal: str) -> dict:
    """One digital-help place of kind ``kind`` near the bourg of commune ``i``."""
    profile = _PROFILES[kind]
    hours = getattr(params.opening_hours, profile.hours)
    lieu_id = f"DEMO-LMN-{k:03d}"
    lon, lat = territory.near_bourg(i, 1, rng, 300.0)
    extra = [s for s in profile.optional if rng.random() < 0.5]
    dispositifs = (["France Services"] if kind == "france services" else []) + [
        s for s in profile.dispositifs if rng.random() < 0.4]
    return {
        "lieu_id": lieu_id, "nom": params.named(nom or contract(_TITLES[kind].format(territory.nom_actuel[i]))),
        "adresse": _address(params, rng), "code_postal": postal, "code_insee": territory.code[i],
        "commune": territory.nom_actuel[i], "categorie": kind, "services": profile.services + extra,
        "publics": [p for p in profile.publics if rng.random() < 0.5],
        "horaires": hours[int(rng.integers(len(hours)))], "dispositifs": dispositifs,
        "modalites_acces": profile.access, "frais": profile.fee, "telephone": contacts.phone(),
        "courriel": contacts.mail(lieu_id.lower()), "site_web": contacts.web(f"lieux/{lieu_id.lower()}"),
        "date_maj": params.reference_date,
        "geom": ewkb_hex(lon, lat)[0]}
