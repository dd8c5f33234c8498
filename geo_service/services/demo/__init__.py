"""The demo territory: deterministic synthetic data for every editable layer, sized from the Lot's figures.

``generate`` replaces the rows flagged ``demo`` (and only those) with new ones drawn from a seed: the
same seed gives the same rows. Parameters (counts, names, dates) are in ``data/demo.yaml``; each part of
the territory has its own module (addresses, fibre, med, mobile, coverage, places).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Connection, text

from geo_service.layers import LayerRegistry
from geo_service.services.demo import addresses, coverage, fibre, med, mobile, place_rows
from geo_service.services.demo.demo_error import DemoError
from geo_service.services.demo.geometry import rng_for
from geo_service.services.demo.params import DEMO_FILE, DemoParams, load_params
from geo_service.services.demo.row_writer import Stamp, copy_rows, delete_demo_rows, demo_tables, record_load
from geo_service.services.demo.territory import NOT_LOADED, Territory
from geo_service.services.resident import geocoder
from geo_service.settings import TerritorySettings

__all__ = ["DemoError", "DemoReport", "demo_present", "generate", "load_params"]

# Layers the demo fills, in the order of the report.
LAYERS = ("premises", "ftth_cabinets", "ftth_nodes", "ftth_zones", "med_sites", "mobile_masts",
          "mobile_coverage", "white_zones", "wifi_hotspots", "third_places", "digital_help_places")


@dataclass(frozen=True)
class DemoReport:
    """What a demo run wrote: rows per layer, the seed, the state date and how long it took."""

    seed: int
    counts: dict[str, int]
    duration_s: float
    reference_date: date
    deleted: int = 0
    titles: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Rows written, all layers together."""
        return sum(self.counts.values())

    def summary(self) -> str:
        """A few French lines for the command line."""
        seconds = f"{self.duration_s:.1f}".replace(".", ",")
        lines = [f"Territoire de démonstration généré en {seconds} s (graine {self.seed}, "
                 f"état au {self.reference_date:%d/%m/%Y}) :"]
        lines += [f"  {self.titles.get(layer, layer)} : {_thousands(n)}" for layer, n in self.counts.items()]
        replaced = (f"{_thousands(self.deleted)} lignes de démonstration précédentes remplacées"
                    if self.deleted else "Aucune ligne de démonstration précédente")
        lines.append(f"{replaced} ; les données saisies ou importées n'ont pas été modifiées.")
        return "\n".join(lines)


def _thousands(n: int) -> str:
    return f"{n:,}".replace(",", "\u202f")


def demo_present(conn: Connection) -> bool:
    """Whether any editable table holds a demo row (``geo-service demo --if-empty`` then does nothing)."""
    for table in demo_tables(conn):
        # Table names come from the catalogue (layer ids), not from user input.
        if conn.execute(text(f'SELECT EXISTS (SELECT 1 FROM "{table}" WHERE demo)')).scalar():
            return True
    return False


@contextmanager
def _without_jit(conn: Connection) -> Iterator[None]:
    """Turn PostgreSQL's JIT off for the run: PostGIS's high function costs make it compile each geometry
    query, which takes longer than the query itself (about 0.7 s each). The setting is transaction-local:
    restored here after a success, by the caller's rollback after an error."""
    previous = conn.execute(text("SELECT current_setting('jit')")).scalar()
    conn.execute(text("SELECT set_config('jit', 'off', true)"))
    yield
    # Not in a `finally`: after an SQL error the transaction accepts no statement until rolled back.
    conn.execute(text("SELECT set_config('jit', :value, true)"), {"value": previous})


def _prepare(conn: Connection, registry: LayerRegistry, territory: TerritorySettings) -> DemoParams:
    """The demo parameters, after checking they fit the configured territory, layers and loaded boundaries."""
    try:
        params = load_params()
    except ValueError as exc:
        raise DemoError(f"paramètres de démonstration invalides ({DEMO_FILE}) : {exc}") from exc
    if params.departement != territory.departement:
        raise DemoError(f"{DEMO_FILE.name} décrit le département {params.departement}, le territoire configuré "
                        f"est le {territory.departement} : pas de jeu de démonstration pour ce territoire")
    missing = [layer for layer in LAYERS if layer not in registry]
    if missing:
        raise DemoError(f"couches absentes de layers/ : {', '.join(missing)}")
    if not conn.execute(text("SELECT EXISTS (SELECT 1 FROM territory)")).scalar():
        raise DemoError(NOT_LOADED)
    return params


def generate(conn: Connection, registry: LayerRegistry, territory: TerritorySettings, seed: int = 46,
             progress: Callable[[str], None] | None = None) -> DemoReport:
    """Replace the demo rows of every layer by the territory drawn from ``seed``, in the caller's transaction."""
    started = time.perf_counter()
    params = _prepare(conn, registry, territory)
    land = Territory.load(conn)
    say = progress or (lambda _message: None)
    with _without_jit(conn):
        counts, deleted = _write_all(conn, registry, params, land, seed, say)
        # The geocoder searches the premises' addresses: its index is rebuilt from the new rows.
        say("Index de recherche d'adresses…")
        geocoder.refresh_search_index(conn)
    duration = time.perf_counter() - started
    record_load(conn, params.provenance.source, {
        "seed": seed, "reference_date": params.reference_date.isoformat(), "counts": counts, "deleted": deleted,
        "duration_s": round(duration, 1)})
    return DemoReport(seed=seed, counts=counts, duration_s=duration, reference_date=params.reference_date,
                      deleted=deleted, titles={layer: registry.get(layer).title for layer in LAYERS})


def _write_all(conn: Connection, registry: LayerRegistry, params: DemoParams, land: Territory, seed: int,
               say: Callable[[str], None]) -> tuple[dict[str, int], int]:
    """Delete the old demo rows and write the new ones, layer by layer; returns (counts, deleted)."""
    prov = params.provenance
    stamp = Stamp(source=prov.source, licence=prov.licence, source_date=params.reference_date,
                  updated_by=prov.updated_by, import_id=f"demo-seed-{seed}")
    deleted = delete_demo_rows(conn, registry)
    counts: dict[str, int] = {}

    def write(layer: str, rows: list[dict]) -> None:
        counts[layer] = copy_rows(conn, registry.get(layer), rows, stamp)

    say(f"Locaux : {_thousands(params.premises.total)} adresses réparties selon la population…")
    premises = addresses.generate(land, params, rng_for(seed, "premises"))
    rollout = fibre.generate(land, params, premises, rng_for(seed, "fibre"))
    write("premises", rollout.premises)
    write("ftth_cabinets", rollout.cabinets)
    write("ftth_nodes", rollout.nodes)
    write("ftth_zones", rollout.zones)
    # Fresh statistics so that the white-zone population query uses the spatial index.
    conn.execute(text("ANALYZE premises"))
    say(f"Fibre : {len(rollout.cabinets)} points de mutualisation, {len(rollout.nodes)} NRO ; montée en débit…")
    write("med_sites", med.generate(land, params, premises, rollout.amii_currents, rng_for(seed, "med")))
    say("Téléphonie mobile : sites, couverture et zones blanches (PostGIS)…")
    sites = mobile.generate(land, params, rng_for(seed, "mobile"))
    write("mobile_masts", sites.masts)
    counts["mobile_coverage"] = coverage.coverage(conn, params, sites, stamp)
    counts["white_zones"] = coverage.white_zones(conn, params, stamp)
    say("Wi-Fi public, tiers-lieux et lieux d'aide au numérique…")
    contacts = place_rows.Contacts(params, rng_for(seed, "contacts"))
    write("wifi_hotspots", place_rows.wifi(land, params, rollout.amii_currents, rng_for(seed, "wifi")))
    write("third_places", place_rows.third_places(land, params, registry, contacts, rng_for(seed, "third_places")))
    write("digital_help_places", place_rows.digital_help(land, params, contacts, rng_for(seed, "digital_help")))
    return {layer: counts[layer] for layer in LAYERS}, deleted
