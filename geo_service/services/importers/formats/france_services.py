"""ANCT « Liste des structures France services » → ``digital_help_places`` (category « france services »).

``,``-separated UTF-8, WGS84 ``latitude``/``longitude`` (0 or empty: not placed, rejected). Opening hours
are one column per day (``h_lundi`` … ``h_samedi``) written ``09:00 - 12:00 / 14:00 - 17:15``: they are
converted to OSM opening_hours (``Mo-Fr 09:00-12:00,14:00-17:15; Sa 09:00-12:00``); overlapping slots
are merged, an empty day is closed, and both are reported; a slot that cannot be read drops the hours of
the place (reported) rather than publish wrong ones. Keyed ``france-services-<id_fs>``.
"""

from __future__ import annotations

import re

from geo_service.services.importers.formats.place_values import phone
from geo_service.services.importers.framework import coordinates
from geo_service.services.importers.framework.import_run import ImportContext, Kind
from geo_service.services.importers.framework.validation import Validator
from geo_service.services.importers.framework.values import postal_code
from geo_service.services.resident import opening_hours

DAYS = (("h_lundi", "Mo"), ("h_mardi", "Tu"), ("h_mercredi", "We"), ("h_jeudi", "Th"), ("h_vendredi", "Fr"),
        ("h_samedi", "Sa"), ("h_dimanche", "Su"))
FIELDS = ("lieu_id", "nom", "adresse", "code_postal", "code_insee", "commune", "categorie", "services", "horaires",
          "dispositifs", "modalites_acces", "telephone", "courriel")
SOURCE_COLUMN = {"lieu_id": "id_fs", "nom": "lib_fs", "code_insee": "insee_com", "commune": "lib_com",
                 "courriel": "mail"}
_TIME = r"(\d{1,2})\s*[:hH]\s*(\d{2})?"
_SLOT = re.compile(rf"^\s*{_TIME}\s*[-–à]\s*{_TIME}\s*$")


class HoursError(ValueError):
    """A slot that cannot be read; the message says which."""


def _minutes(hours: str, minutes: str | None) -> int:
    value = int(hours) * 60 + int(minutes or 0)
    if value > 24 * 60 or int(minutes or 0) >= 60:
        raise HoursError(f"heure impossible {hours}:{minutes or '00'}")
    return value


def day_slots(text: str) -> tuple[list[tuple[int, int]], bool]:
    """``09:00 - 12:00 / 14:00 - 17:15`` → sorted, merged slots in minutes, and whether some overlapped."""
    slots = []
    for part in text.split("/"):
        if not part.strip():
            continue
        match = _SLOT.match(part)
        if not match:
            raise HoursError(f"créneau illisible « {part.strip()} » (attendu HH:MM - HH:MM)")
        start, end = _minutes(match[1], match[2]), _minutes(match[3], match[4])
        if end <= start:
            raise HoursError(f"créneau « {part.strip()} » qui finit avant de commencer")
        slots.append((start, end))
    slots.sort()
    merged: list[tuple[int, int]] = []
    overlapped = False
    for start, end in slots:
        if merged and start <= merged[-1][1]:
            overlapped = overlapped or start < merged[-1][1]
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged, overlapped


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def to_opening_hours(days: dict[str, str]) -> tuple[str | None, list[str]]:
    """The OSM opening_hours of a place from its per-day columns, and the French notes on what was fixed.

    >>> to_opening_hours({"h_lundi": "09:00 - 12:00 / 14:00 - 17:00", "h_mardi": "09:00 - 12:00 / 14:00 - 17:00",
    ...                   "h_mercredi": "09:00 - 14:00 / 11:00 - 12:30", "h_jeudi": "", "h_vendredi": "",
    ...                   "h_samedi": ""})
    ('Mo-Tu 09:00-12:00,14:00-17:00; We 09:00-14:00', ['mercredi : créneaux qui se chevauchent fusionnés'])
    """
    notes: list[str] = []
    per_day = []
    for column, osm in DAYS:
        if column not in days:
            continue
        slots, overlapped = day_slots(days.get(column) or "")
        if overlapped:
            notes.append(f"{column[2:]} : créneaux qui se chevauchent fusionnés")
        per_day.append((osm, ",".join(f"{_hhmm(a)}-{_hhmm(b)}" for a, b in slots)))
    groups: list[list] = []
    for index, (osm, slots) in enumerate(per_day):
        if not slots:
            continue
        if groups and groups[-1][2] == slots and groups[-1][3] == index - 1:
            groups[-1][1], groups[-1][3] = osm, index
        else:
            groups.append([osm, osm, slots, index])
    if not groups:
        return None, ["aucun horaire renseigné"]
    text = "; ".join(f"{a}-{b} {slots}" if a != b else f"{a} {slots}" for a, b, slots, _ in groups)
    return text, notes


def run(ctx: ImportContext) -> None:
    """Every France Services place of the territory."""
    validator = Validator(ctx.layer("digital_help_places"), only=FIELDS)
    with ctx.csv() as table:
        table.require("id_fs", "lib_fs", "adresse", "insee_com", "latitude", "longitude")
        file = table.label
        stage = ctx.stage(ctx.target("digital_help_places", FIELDS), file)
        for line, code, rec in ctx.territory_rows(table, "insee_com"):
            hours = _hours(ctx, file, line, rec)
            values, problems = validator.check({
                "lieu_id": f"france-services-{rec['id_fs']}" if rec.get("id_fs") else None, "nom": rec.get("lib_fs"),
                "adresse": " ".join(v for v in (rec.get("adresse"), rec.get("complement_adresse")) if v) or None,
                "code_postal": postal_code(rec.get("code_postal")), "code_insee": code, "commune": rec.get("lib_com"),
                "categorie": "france services", "services": ["Aide aux démarches administratives"],
                "horaires": hours, "dispositifs": ["France Services"],
                "modalites_acces": ["Se présenter", "Prendre un RDV en ligne"] if rec.get("prise_rdv", "").lower()
                == "oui" else ["Se présenter"], "telephone": phone(rec.get("telephone")),
                "courriel": rec.get("mail") or None})
            ctx.reject_problems(file, line, problems, rec, values, SOURCE_COLUMN)
            position = ctx.point(file, line, rec, "longitude", "latitude")
            if position is not None and not problems:
                stage.add(line, values, coordinates.point_ewkb(*position))
    ctx.write(stage, "id_fs", "longitude, latitude")
    stage.drop()


def _hours(ctx: ImportContext, file: str, line: int, rec: dict[str, str]) -> str | None:
    days = {column: rec[column] for column, _ in DAYS if column in rec}
    try:
        hours, notes = to_opening_hours(days)
    except HoursError as exc:
        ctx.warn(file, line, "h_lundi … h_samedi", " | ".join(days.values()), f"{exc} : horaires ignorés")
        return None
    for note in notes:
        ctx.warn(file, line, "h_lundi … h_samedi", " | ".join(days.values()), note)
    if hours is not None and not opening_hours.is_valid(hours):
        ctx.warn(file, line, "h_lundi … h_samedi", hours, "conversion en opening_hours invalide : horaires ignorés")
        return None
    return hours


KIND = Kind(
    name="france-services",
    description="Liste des structures France services (ANCT) : adresses, contacts, horaires convertis au "
                "format OpenStreetMap",
    targets="digital_help_places",
    dataset="ANCT — Liste des structures France services",
    publisher="ANCT",
    licence="Licence Ouverte 2.0 (Etalab)",
    run=run,
)
