"""Mid-span upgrade sites (montée en débit): street cabinets in rural bourgs of the public-network zone."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from geo_service.services.demo.addresses import Premises
from geo_service.services.demo.geometry import ewkb_hex, largest_remainder
from geo_service.services.demo.params import DemoParams
from geo_service.services.demo.territory import Territory

# Sites need a village to serve: fewer premises than this is a hamlet, not a bourg.
MIN_PREMISES = 40


def generate(territory: Territory, params: DemoParams, premises: Premises, amii: set[str],
             rng: np.random.Generator) -> list[dict]:
    """``med.sites`` sites, the most populous rural bourgs being likelier, sharing ``med.households`` lines."""
    med = params.med
    counts = np.bincount(premises.commune, minlength=len(territory))
    candidates = np.array([i for i in range(len(territory))
                           if territory.code_actuel[i] not in amii and counts[i] >= MIN_PREMISES
                           and territory.current_population(territory.code_actuel[i]) <= med.max_population])
    weights = counts[candidates] / counts[candidates].sum()
    chosen = np.sort(rng.choice(candidates, min(med.sites, candidates.size), replace=False, p=weights))
    lines = largest_remainder(counts[chosen] * rng.uniform(0.4, 1.0, chosen.size), med.households)
    # Cumulative state (FACTS): opened ⊂ accepted ⊂ installed ⊂ all sites.
    states = np.array(["ouvert"] * med.opened + ["receptionne"] * (med.accepted - med.opened)
                      + ["installe"] * (med.installed - med.accepted)
                      + ["en travaux"] * (chosen.size - med.installed))[rng.permutation(chosen.size)]
    span = (med.opened_between[1] - med.opened_between[0]).days
    rows = []
    for k, i in enumerate(chosen):
        lon, lat = territory.near_bourg(int(i), 1, rng, 400.0)
        opened = med.opened_between[0] + timedelta(days=int(rng.integers(0, span + 1)))
        rows.append({
            "med_id": f"DEMO-MED-{k + 1:03d}",
            "nom": params.named(f"Montée en débit {territory.commune_label(int(i))}"),
            "code_insee": territory.code[i], "statut": str(states[k]),
            "date_mise_en_service": opened if states[k] == "ouvert" else None,
            "debit_max_mbps": float(rng.choice(med.debit_max_mbps)), "lignes": int(lines[k]),
            "rayon_m": int(round(rng.uniform(*med.rayon_m), -1)),
            "geom": ewkb_hex(lon, lat)[0]})
    return rows
