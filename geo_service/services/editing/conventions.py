"""Conventions between the syndicat and the EPCI: stored here, turned into rights by ``services/editing/rights.py``.

A convention is *in force* on a day when its status is ``active`` and the day lies between its start and
end dates (both included). Rights are derived at each request from the conventions in force that day
(Europe/Paris calendar), so ending a convention stops its writes at once: nothing is cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, text

from geo_service.errors import InvalidParameter, NotFound
from geo_service.layers import LayerRegistry
from geo_service.settings import LOCAL_TIME

DIRECTIONS = ("ascendante", "descendante")
STATUSES = ("active", "suspendue", "terminee")
# Conventions are signed in French local time: "until 31 December" means until midnight in Paris.
_COLUMNS = "id, epci_siren, direction, layers, starts_on, ends_on, reference, status"


@dataclass(frozen=True)
class Convention:
    id: int
    epci_siren: str
    direction: str
    layers: tuple[str, ...]
    starts_on: date
    ends_on: date | None
    reference: str
    status: str

    def in_force(self, day: date) -> bool:
        return (self.status == "active" and self.starts_on <= day
                and (self.ends_on is None or day <= self.ends_on))

    def why_not_in_force(self, day: date) -> str:
        """In French, why this convention does not apply on ``day`` (empty if it does)."""
        if self.status != "active":
            return f"la convention {self.reference} est {'suspendue' if self.status == 'suspendue' else 'terminée'}"
        if day < self.starts_on:
            return f"la convention {self.reference} ne prend effet que le {self.starts_on:%d/%m/%Y}"
        if self.ends_on is not None and day > self.ends_on:
            return f"la convention {self.reference} a pris fin le {self.ends_on:%d/%m/%Y}"
        return ""


def local_day(at: datetime | None = None) -> date:
    """The calendar day in Paris at ``at`` (now by default): the day conventions are read for."""
    return (at or datetime.now(LOCAL_TIME)).astimezone(LOCAL_TIME).date()


def _row(row: Sequence) -> Convention:
    return Convention(row[0], row[1], row[2], tuple(row[3]), row[4], row[5], row[6], row[7])


def add_convention(conn: Connection, registry: LayerRegistry, *, epci_siren: str, direction: str,
                   layers: Sequence[str], starts_on: date, ends_on: date | None, reference: str) -> int:
    """Record a signed convention, checking the EPCI, the direction and that each layer fits it."""
    if direction not in DIRECTIONS:
        raise InvalidParameter(f"Sens inconnu « {direction} » : ascendante ou descendante", parameter="direction")
    if not reference.strip():
        raise InvalidParameter("La référence du document signé est obligatoire", parameter="reference")
    if ends_on is not None and ends_on < starts_on:
        raise InvalidParameter("La date de fin précède la date de début", parameter="ends_on")
    if not conn.execute(text("SELECT EXISTS (SELECT 1 FROM epci WHERE siren = :s)"), {"s": epci_siren}).scalar_one():
        raise InvalidParameter(f"Aucun EPCI de SIREN {epci_siren} dans le territoire", parameter="epci")
    if not layers:
        raise InvalidParameter("Une convention porte sur au moins une couche", parameter="layers")
    for layer_id in layers:
        if layer_id not in registry:
            raise InvalidParameter(f"Couche inconnue « {layer_id} »", parameter="layers")
        layer = registry.get(layer_id)
        if direction == "ascendante" and "epci_contributor" not in layer.access.edit:
            raise InvalidParameter(
                f"La couche « {layer.title} » n'est pas ouverte aux contributions des EPCI "
                "(access.edit de sa déclaration)", parameter="layers")
    return conn.execute(text(
        "INSERT INTO conventions (epci_siren, direction, layers, starts_on, ends_on, reference) "
        "VALUES (:s, :d, :l, :b, :e, :r) RETURNING id"),
        {"s": epci_siren, "d": direction, "l": list(dict.fromkeys(layers)), "b": starts_on, "e": ends_on,
         "r": reference.strip()}).scalar_one()


def get_convention(conn: Connection, convention_id: int) -> Convention:
    row = conn.execute(text(f"SELECT {_COLUMNS} FROM conventions WHERE id = :i"), {"i": convention_id}).first()
    if row is None:
        raise NotFound(f"Aucune convention n° {convention_id}")
    return _row(row)


def list_conventions(conn: Connection, epci_siren: str | None = None) -> list[Convention]:
    rows = conn.execute(text(f"SELECT {_COLUMNS} FROM conventions WHERE CAST(:s AS text) IS NULL "
                             "OR epci_siren = :s ORDER BY epci_siren, starts_on, id"), {"s": epci_siren})
    return [_row(row) for row in rows]


def conventions_for(conn: Connection, epci_siren: str) -> list[Convention]:
    """Every convention of an EPCI, newest first (rights pick those in force and explain the others)."""
    return list(reversed(list_conventions(conn, epci_siren)))


def end_convention(conn: Connection, convention_id: int, on: date | None = None,
                   at: datetime | None = None) -> Convention:
    """End a convention: today (at once, status ``terminee``) or on a later day (writes stop after it)."""
    convention = get_convention(conn, convention_id)
    today = local_day(at)
    end = on or today
    if end < convention.starts_on:
        raise InvalidParameter("La date de fin précède le début de la convention", parameter="date")
    if convention.ends_on is not None and convention.ends_on < end:
        end = convention.ends_on
    status = "terminee" if end <= today else convention.status
    conn.execute(text("UPDATE conventions SET ends_on = :e, status = :st WHERE id = :i"),
                 {"e": end, "st": status, "i": convention_id})
    return get_convention(conn, convention_id)


def set_status(conn: Connection, convention_id: int, status: str) -> Convention:
    if status not in STATUSES:
        raise InvalidParameter(f"Statut inconnu « {status} » ; statuts : {', '.join(STATUSES)}", parameter="status")
    get_convention(conn, convention_id)
    conn.execute(text("UPDATE conventions SET status = :st WHERE id = :i"), {"st": status, "i": convention_id})
    return get_convention(conn, convention_id)


def epci_choices(conn: Connection) -> list[tuple[str, str]]:
    """The EPCI of the territory as (SIREN, name), by name: what the accounts, conventions and editor forms offer."""
    return [(row[0], row[1]) for row in conn.execute(text("SELECT siren, nom FROM epci ORDER BY nom"))]
