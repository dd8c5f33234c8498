"""What a resident can report: the categories (code, French label, Open311 service code) and their sub-fields."""

from __future__ import annotations

from dataclasses import dataclass

from geo_service.errors import InvalidParameter


@dataclass(frozen=True)
class SubField:
    name: str
    label: str
    choices: tuple[tuple[str, str], ...]  # (value, French label)


@dataclass(frozen=True)
class Category:
    code: str
    label: str
    description: str
    layers: tuple[str, ...]  # the layers whose features this category is usually about
    sub_fields: tuple[SubField, ...] = ()


OPERATORS = SubField("operator", "Opérateur", (("orange", "Orange"), ("sfr", "SFR"), ("bouygues", "Bouygues Telecom"),
                                               ("free", "Free Mobile"), ("inconnu", "Je ne sais pas")))
TECHNOLOGIES = SubField("technology", "Technologie", (("2G", "2G (appels)"), ("3G", "3G"), ("4G", "4G"), ("5G", "5G")))

CATEGORIES: tuple[Category, ...] = (
    Category("fibre", "État ou date de la fibre erroné à cette adresse",
             "La carte indique un état ou une date de raccordement à la fibre qui ne correspond pas à la réalité.",
             ("premises", "ftth_cabinets", "ftth_zones")),
    Category("mobile", "Pas ou peu de couverture mobile ici",
             "La couverture mobile est absente ou mauvaise à cet endroit.",
             ("mobile_masts", "mobile_coverage", "white_zones"), (OPERATORS, TECHNOLOGIES)),
    Category("wifi", "Borne Wi-Fi en panne",
             "La borne « WIFI public lotois » ne fonctionne pas.", ("wifi_hotspots",)),
    Category("place", "Information d'un lieu erronée ou lieu fermé",
             "Un tiers-lieu ou un lieu d'aide au numérique a changé d'horaires, d'adresse, ou a fermé.",
             ("third_places", "digital_help_places")),
    Category("other", "Autre problème", "Un autre problème avec les informations de la carte.", ()),
)
BY_CODE = {c.code: c for c in CATEGORIES}


def category(code: str | None) -> Category:
    if not code or code not in BY_CODE:
        raise InvalidParameter("Catégorie inconnue : choisissez " + ", ".join(f"« {c.code} » ({c.label})"
                                                                           for c in CATEGORIES), parameter="category")
    return BY_CODE[code]


def checked_details(cat: Category, values: dict[str, object]) -> dict[str, str]:
    """The sub-fields of ``cat`` from ``values`` (optional each), refusing a value outside its list."""
    details = {}
    for sub in cat.sub_fields:
        value = values.get(sub.name)
        if value in (None, ""):
            continue
        allowed = dict(sub.choices)
        if not isinstance(value, str) or value not in allowed:
            raise InvalidParameter(f"{sub.label} inconnue « {str(value)[:40]} » : " + ", ".join(allowed),
                                   parameter=sub.name)
        details[sub.name] = value
    return details


def details_label(cat: Category, details: dict) -> str:
    """The sub-fields in words: « Opérateur : SFR ; Technologie : 4G »."""
    parts = []
    for sub in cat.sub_fields:
        if details.get(sub.name):
            parts.append(f"{sub.label} : {dict(sub.choices).get(details[sub.name], details[sub.name])}")
    return " ; ".join(parts)


STATUS_LABELS = {
    "new": "Nouveau",
    "acknowledged": "Pris en compte",
    "in_progress": "En cours de traitement",
    "resolved": "Résolu",
    "not_reproducible": "Non constaté",
    "duplicate": "Doublon",
}
# Statuses after which a report is closed (a new report of the same problem is not its duplicate any more).
CLOSED = ("resolved", "not_reproducible", "duplicate")
