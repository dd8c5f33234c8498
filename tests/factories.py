"""Small, known fixture features for tests, written straight into the layer tables.

Tests build the few rows they reason about here rather than rely on the demo generator: a value that a
test asserts on is visible in the test's own file. ``Factory`` fills the required fields a test does not
care about from the declaration (first code of a code list, a numbered identifier…).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta

from shapely.geometry import MultiPolygon, Point, box
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, Table, delete, func, insert, text

from geo_service.layers import FieldDecl, LayerRegistry
from geo_service.tables import build_metadata

# Marks every editable row a factory writes, so a test session can remove exactly its own rows.
SOURCE = "tests-factory"
_sequence = itertools.count(1)


def square(lon: float, lat: float, half_side: float = 0.01) -> MultiPolygon:
    """A small square around (lon, lat), as the MultiPolygon that polygon layers store."""
    return MultiPolygon([box(lon - half_side, lat - half_side, lon + half_side, lat + half_side)])


def _filler(field: FieldDecl, n: int) -> object:
    if field.codes:
        first = field.codes[0].value
        return [first] if field.type == "string_list" else first
    if field.pattern and "0-9AB" in field.pattern:
        return "46999"  # a valid, unused INSEE code
    if field.pattern == "^[0-9]{9}$":
        return f"{900000000 + n}"
    return {"integer": 1, "number": 1.0, "boolean": False, "date": date(2020, 1, 1),
            "datetime": None, "string_list": []}.get(field.type, f"test-{field.name}-{n}")


@dataclass
class Factory:
    """Inserts features into the tables of ``registry`` and remembers them for ``cleanup``."""

    registry: LayerRegistry
    created: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tables = build_metadata(self.registry).tables

    def table(self, layer_id: str) -> Table:
        return self.tables[layer_id]

    def feature(self, conn: Connection, layer_id: str, geometry: BaseGeometry | tuple[float, float],
                **values: object) -> int:
        """Insert one feature (geometry in lon/lat) and return its ``fid``; unspecified required fields are filled."""
        layer = self.registry.get(layer_id)
        n = next(_sequence)
        row = {f.name: _filler(f, n) for f in layer.fields if f.required and f.name not in values}
        if layer.natural_key and layer.natural_key not in values:
            row[layer.natural_key] = f"test-{layer_id}-{n}" if layer.field(layer.natural_key).type == "string" \
                else row.get(layer.natural_key)
        row.update(values)
        if layer.editable:
            row.setdefault("source", SOURCE)
        shape = Point(geometry) if isinstance(geometry, tuple) else geometry
        row["geom"] = func.ST_GeomFromText(shape.wkt, 4326)
        table = self.table(layer_id)
        fid = conn.execute(insert(table).values(**row).returning(table.c.fid)).scalar_one()
        self.created.setdefault(layer_id, []).append(fid)
        return fid

    def cleanup(self, conn: Connection) -> None:
        """Delete every row this factory inserted."""
        for layer_id, fids in self.created.items():
            table = self.table(layer_id)
            conn.execute(delete(table).where(table.c.fid.in_(fids)))
        self.created.clear()


@dataclass
class OgcFixtures:
    """The handful of features the OGC API tests reason about, with their ids."""

    factory: Factory
    ids: dict[str, int] = field(default_factory=dict)
    layers: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, layer_id: str, fid: int) -> None:
        self.ids[key], self.layers[key] = fid, layer_id

    def keys(self, layer_id: str, fids: set[int]) -> set[str]:
        """The fixture keys of some ``fid`` of a layer (ids are per table), ignoring rows that are not fixtures."""
        return {k for k, fid in self.ids.items() if self.layers[k] == layer_id and fid in fids}


# Around Cahors, Figeac and Gourdon (lon, lat).
CAHORS, FIGEAC, GOURDON = (1.4417, 44.4475), (2.0317, 44.6086), (1.3836, 44.7372)


def build_ogc_fixtures(conn: Connection, registry: LayerRegistry) -> OgcFixtures:
    """Wi-Fi bornes, third places, premises and two communes with distinctive values (committed by the caller)."""
    fx = OgcFixtures(Factory(registry))
    f = fx.factory
    wifi = [
        ("cahors_mairie", CAHORS, dict(lieu="Mairie de Cahors", statut="installee", rayon_m=100,
                                       date_mise_en_service=date(2019, 6, 1), code_insee="46042")),
        ("cahors_eglise", (1.4430, 44.4490), dict(lieu="Place de l'église", statut="installee", rayon_m=50,
                                                  date_mise_en_service=date(2021, 3, 15), code_insee="46042")),
        ("figeac", FIGEAC, dict(lieu="Mairie de Figeac", statut="programmee", rayon_m=200,
                                date_mise_en_service=date(2023, 9, 1), code_insee="46102")),
        ("gourdon", GOURDON, dict(lieu="Halle de Gourdon", statut="hors service", rayon_m=None,
                                  date_mise_en_service=None, code_insee="46127")),
        ("hidden", (1.45, 44.45), dict(lieu="Borne proposée", statut="installee", validation_state="proposed",
                                       date_mise_en_service=date(2022, 1, 1), code_insee="46042")),
    ]
    for key, point, values in wifi:
        fx.add(f"wifi_{key}", "wifi_hotspots", f.feature(conn, "wifi_hotspots", point, ssid="WIFI public lotois",
                                                          **values))
    fx.add("tl_cahors", "third_places", f.feature(conn, "third_places", CAHORS, nom="Tiers-lieu de Cahors",
                                                  services=["coworking", "visio"], telephone="05 65 00 00 00"))
    fx.add("tl_figeac", "third_places", f.feature(conn, "third_places", FIGEAC, nom="Fablab de Figeac",
                                                  services=["fablab"]))
    for i, etat in enumerate(["deploye", "deploye", "cible"]):
        fx.add(f"premise_{i}", "premises", f.feature(
            conn, "premises", (1.44 + i * 0.001, 44.45), etat=etat, nb_logements=i + 1, code_insee="46042",
            adresse=f"{i + 1} rue du Test, Cahors",
            date_raccordable=date(2022, 1, 1 + i) if etat == "deploye" else None))
    for key, centre, code, nom, population in (("commune_a", CAHORS, "46901", "Testville", 1200),
                                               ("commune_b", FIGEAC, "46902", "Essai-sur-Lot", 300)):
        fx.add(key, "communes", f.feature(conn, "communes", square(*centre, 0.05), code_insee=code, nom=nom,
                                          code_insee_actuel=code, nom_actuel=nom, population=population))
    return fx


def ogc_fixtures(engine, registry: LayerRegistry) -> Iterator[OgcFixtures]:
    """Generator for a pytest fixture: commit the OGC fixtures, yield them, then delete exactly those rows."""
    with engine.begin() as conn:
        fx = build_ogc_fixtures(conn, registry)
    try:
        yield fx
    finally:
        with engine.begin() as conn:
            fx.factory.cleanup(conn)


# -- editing (tests/test_edit_*.py): accounts, conventions, EPCI points -----------------------------------------
EDIT_SOURCE = "tests-edit"
EDIT_TABLES = ("change_requests", "feature_history", "conventions", "login_attempts", "account_sessions",
               "account_tokens", "accounts")


def account(conn: Connection, username: str, role: str, *, epci: str | None = None,
            password: str | None = None) -> str:
    """Create an account and return a fresh personal access token for it (the API tests authenticate so)."""
    from geo_service.services.editing import accounts

    accounts.create_account(conn, username, role, password=password, epci_siren=epci)
    return accounts.create_token(conn, username, "tests")


def convention(conn: Connection, registry: LayerRegistry, epci: str, direction: str, layers: list[str], *,
               starts_on: date, ends_on: date | None = None, reference: str = "CONV-TEST") -> int:
    from geo_service.services.editing import conventions

    return conventions.add_convention(conn, registry, epci_siren=epci, direction=direction, layers=layers,
                                      starts_on=starts_on, ends_on=ends_on, reference=reference)


@dataclass(frozen=True)
class EpciPoints:
    """Two EPCI of the loaded boundaries and a point well inside each (``ST_PointOnSurface``), as (lon, lat)."""

    mine: str
    other: str
    inside: tuple[float, float]
    outside: tuple[float, float]


def epci_points(conn: Connection) -> EpciPoints:
    rows = conn.execute(text(
        "SELECT siren, ST_X(p), ST_Y(p) FROM (SELECT siren, ST_PointOnSurface(geom) AS p FROM epci "
        "WHERE siren IN ('200023737', '200067361')) s ORDER BY siren")).all()
    assert len(rows) == 2, "the Grand Cahors and Grand-Figeac EPCI must be loaded (loaded_boundaries)"
    (mine, x0, y0), (other, x1, y1) = rows
    return EpciPoints(mine, other, (x0, y0), (x1, y1))


def wipe_editing(conn: Connection, registry: LayerRegistry) -> None:
    """Remove what the editing tests wrote: their features (source tests-edit) and the editing tables' rows."""
    tables = build_metadata(registry).tables
    for layer in registry:
        if layer.editable:
            table = tables[layer.id]
            conn.execute(delete(table).where(table.c.source == EDIT_SOURCE))
    for name in EDIT_TABLES:
        conn.execute(text(f"DELETE FROM {name}"))


@contextmanager
def epci_world(engine, registry: LayerRegistry, prefix: str, *, contributor: bool = True,
               reference: str = "CONV-TEST") -> Iterator[EpciPoints]:
    """For a test module: ``<prefix>-admin`` and (``contributor``) ``<prefix>-contrib`` of Grand Cahors, under a
    Wi-Fi ascendante convention in force since yesterday, password ``conftest.PASSWORD``; the editing tables
    wiped before and after. Yields the two EPCI and a point inside each."""
    from conftest import PASSWORD

    from geo_service.services.editing import accounts, conventions

    with engine.begin() as conn:
        wipe_editing(conn, registry)
        found = epci_points(conn)
        accounts.create_account(conn, f"{prefix}-admin", "admin", password=PASSWORD)
        if contributor:
            accounts.create_account(conn, f"{prefix}-contrib", "epci_contributor", password=PASSWORD,
                                    epci_siren=found.mine)
            convention(conn, registry, found.mine, "ascendante", ["wifi_hotspots"],
                       starts_on=conventions.local_day() - timedelta(days=1), reference=reference)
    try:
        yield found
    finally:
        with engine.begin() as conn:
            wipe_editing(conn, registry)
