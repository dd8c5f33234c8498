"""What « Ma connexion internet » says is on offer at a building: per operator, technologies and speed classes.

Read from ``premise_eligibility`` (filled by ``geo-service import arcep-mci``), by building (``imb_id``) or by
BAN address key (``id_ban``), with the French labels ARCEP's site uses. The nearby report calls
``offers``; nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

# Commercial operators' ARCEP codes seen in the files; others are shown by their code.
OPERATORS = {"FRTE": "Orange", "SFR0": "SFR", "BOUY": "Bouygues Telecom", "FREE": "Free", "NORN": "Nordnet",
             "STAK": "Starlink", "MILK": "Milkyway", "NUAT": "Nuatel"}
TECHNOLOGIES = {"FO": "Fibre optique (FTTH)", "CU": "Cuivre (ADSL, VDSL2)", "COAX": "Câble", "4GF": "4G fixe",
                "5GF": "5G fixe", "SAT": "Satellite", "THDR": "Très haut débit radio", "HDR": "Haut débit radio",
                "WMX": "WiMAX"}
# Download speed classes (ARCEP's documentation; the bounds are as reusers read them).
SPEED_CLASSES = {"INEL": "moins de 0,5 Mbit/s", "HD05": "de 0,5 à 3 Mbit/s", "HD3": "de 3 à 8 Mbit/s",
                 "BHD8": "de 8 à 30 Mbit/s", "THD30": "de 30 à 100 Mbit/s", "THD100": "de 100 Mbit/s à 1 Gbit/s",
                 "THD1G": "1 Gbit/s et plus"}


@dataclass(frozen=True)
class Offer:
    """One operator's offer in one technology at a building."""

    operator: str
    operator_code: str
    technology: str
    technology_code: str
    download: str | None
    upload: str | None
    data_cap_gb: int | None
    saturated: bool | None
    source_date: object


def offers(conn: Connection, *, imb_id: str | None = None, id_ban: str | None = None) -> list[Offer]:
    """The offers at a building (by ``imb_id``) or at an address (by BAN key), best technology first."""
    if not imb_id and not id_ban:
        return []
    rows = conn.execute(text("""
        SELECT code_operateur, code_techno, classe_debit_descendant, classe_debit_montant, limitation_go, saturation,
               source_date
        FROM premise_eligibility WHERE (CAST(:imb AS text) IS NOT NULL AND imb_id = :imb)
                                    OR (CAST(:ban AS text) IS NOT NULL AND id_ban = :ban)
        ORDER BY code_techno, code_operateur"""), {"imb": imb_id, "ban": id_ban}).all()
    order = list(TECHNOLOGIES)
    found = [Offer(OPERATORS.get(op, op), op, TECHNOLOGIES.get(tech, tech), tech,
                   SPEED_CLASSES.get(down or "", down), SPEED_CLASSES.get(up or "", up), cap, saturated, when)
             for op, tech, down, up, cap, saturated, when in rows]
    return sorted(found, key=lambda o: (order.index(o.technology_code) if o.technology_code in order else len(order),
                                        o.operator))
