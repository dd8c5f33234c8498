"""The French wording of the "près de chez vous" report, in one place for the JSON, the map panel and the page.

Residents know the roll-out through lot.fr's "Plus de débit : quand ?": a home is "éligible", "raccordable
prochainement", or its "déploiement est prévu en …". The premise states of the ``premises`` layer map to
those three answers here; a state this table does not know falls back to the declared label.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from geo_service.layers import FieldDecl, LayerDecl
from geo_service.services.resident.opening_hours import french_date, french_month

NBSP = "\u00a0"

# Premise state code → (status, headline). Status: eligible / soon / planned / not_planned / unknown.
FIBRE_STATES: dict[str, tuple[str, str]] = {
    "raccorde": ("eligible", "Raccordé à la fibre"),
    "deploye": ("eligible", "Éligible à la fibre"),
    "raccordable demande": ("eligible", "Éligible à la fibre, raccordement sur demande"),
    "en cours de deploiement": ("soon", "Raccordable prochainement"),
    "signe": ("soon", "Raccordable prochainement"),
    "cible": ("planned", "Déploiement prévu"),
    "abandonne": ("not_planned", "Pas de déploiement prévu à ce jour"),
}
ELIGIBLE_STATES = tuple(code for code, (status, _) in FIBRE_STATES.items() if status == "eligible")


def distance_label(metres: float) -> str:
    """``à 350 m``, ``à 1,2 km``, ``à 12 km`` (French decimal comma, non-breaking spaces).

    >>> distance_label(348.6), distance_label(1240), distance_label(12400)
    ('à 350\\xa0m', 'à 1,2\\xa0km', 'à 12\\xa0km')
    """
    if metres < 1000:
        value = f"{max(5, round(metres / 10) * 10) if metres >= 5 else round(metres)}{NBSP}m"
    elif metres < 10_000:
        value = f"{metres / 1000:.1f}".replace(".", ",") + f"{NBSP}km"
    else:
        value = f"{round(metres / 1000)}{NBSP}km"
    return f"à {value}"


def thousands(n: int) -> str:
    return f"{n:,}".replace(",", "\u202f")


def percent(share: float) -> str:
    return f"{round(share * 100)}{NBSP}%"


def parse_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def display_value(field: FieldDecl, value: Any) -> str | None:
    """A property as residents read it: code labels, French dates, units; None when empty."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, list):
        return ", ".join(field.code_label(v) or str(v) for v in value)
    if field.codes:
        return field.code_label(value) or str(value)
    if field.type == "boolean":
        return "Oui" if value else "Non"
    if field.type in ("date", "datetime"):
        return french_date(parse_date(value))
    if isinstance(value, float):
        value = f"{value:g}".replace(".", ",")
    return f"{value}{NBSP}{field.unit}" if field.unit else str(value)


def code_label(layer: LayerDecl, field: str, value: Any) -> str | None:
    """The declared label of a code (``"deploye"`` → ``"Déployé — raccordable"``)."""
    try:
        return layer.field(field).code_label(value) if value is not None else None
    except KeyError:
        return None


@dataclass(frozen=True)
class FibreWording:
    status: str
    headline: str
    message: str


def fibre_wording(etat: str, etat_label: str | None, date_prevue: date | None,
                  date_raccordable: date | None, distance_m: float, exact: bool) -> FibreWording:
    """What a resident reads about the premise found at (or near) their address."""
    status, headline = FIBRE_STATES.get(etat, ("unknown", etat_label or etat))
    where = "À cette adresse" if exact else f"Au local le plus proche ({distance_label(distance_m)})"
    if status == "eligible":
        since = f" depuis le {french_date(date_raccordable)}" if date_raccordable else ""
        tail = ("le raccordement se fait sur demande auprès d'un fournisseur d'accès."
                if etat == "raccordable demande" else
                "vous pouvez vous abonner auprès du fournisseur d'accès de votre choix."
                if etat == "deploye" else "le local est déjà raccordé à la fibre.")
        message = f"{where}, la fibre est disponible{since} : {tail}"
    elif status == "soon":
        when = f", prévu en {french_month(date_prevue)}" if date_prevue else ""
        step = "la convention d'immeuble est signée" if etat == "signe" else "le déploiement est en cours"
        message = f"{where}, {step} : raccordable prochainement{when}."
    elif status == "planned":
        if date_prevue:
            headline = f"Déploiement prévu en {french_month(date_prevue)}"
            message = f"{where}, le déploiement de la fibre est prévu en {french_month(date_prevue)}."
        else:
            message = f"{where}, le déploiement de la fibre est prévu ; la date n'est pas encore connue."
    elif status == "not_planned":
        message = f"{where}, aucun déploiement de la fibre n'est prévu à ce jour."
    else:
        message = f"{where}, état du déploiement : {headline}."
    return FibreWording(status, headline, message)


def no_premise_wording(radius_m: int, commune: str | None, total: int, eligible: int) -> FibreWording:
    """No premise near the point: the commune-level figures answer instead."""
    head = f"Aucun local recensé à moins de {radius_m}{NBSP}m"
    if not commune or total == 0:
        return FibreWording("unknown", head, f"{head} ; aucune donnée de déploiement pour cette commune.")
    share = eligible / total if total else 0.0
    message = (f"{head}. À {commune}, {thousands(eligible)} locaux sur {thousands(total)} "
               f"({percent(share)}) sont éligibles à la fibre.")
    return FibreWording("unknown", head, message)


def med_wording(site: dict | None) -> tuple[str, str]:
    """Headline and sentence for the mid-span upgrade (montée en débit) section."""
    if site is None:
        return ("Pas de montée en débit ici",
                "Aucun site de montée en débit ne dessert ce point.")
    speed = f" jusqu'à {site['debit_max_mbps']:g}{NBSP}Mbit/s".replace(".", ",") if site.get("debit_max_mbps") else ""
    if site.get("statut") == "ouvert":
        opened = f" depuis le {french_date(parse_date(site['date_mise_en_service']))}" \
            if site.get("date_mise_en_service") else ""
        return (f"Montée en débit{speed}",
                f"Le site « {site['nom']} » ({distance_label(site['distance_m'])}) est ouvert à la "
                f"commercialisation{opened} : débit{speed} sur la ligne téléphonique (ADSL/VDSL).")
    state = site.get("statut_label") or site.get("statut") or "en cours"
    return (f"Montée en débit en préparation{speed}",
            f"Le site « {site['nom']} » ({distance_label(site['distance_m'])}) dessert ce point : {state.lower()}.")


def white_zone_headline(in_white_zone: bool, partial: list[str]) -> str:
    """``Zone blanche : aucun opérateur…`` / ``Pas de zone blanche…``; ``partial`` lists 'Free Mobile (4G)'…"""
    if in_white_zone:
        return "Zone blanche : aucun opérateur ne couvre ce point pour au moins une technologie"
    if partial:
        return "Zone blanche pour " + ", ".join(partial)
    return "Pas de zone blanche mobile recensée ici"


def places_headline(title: str, items: list[dict]) -> str:
    if not items:
        return f"{title} : aucun lieu recensé"
    first = items[0]
    return f"Le plus proche : {first['name']}, {distance_label(first['distance_m'])}"


def source_lines(sources: list[dict]) -> list[str]:
    """``Source : … — données du 1er janvier 2019 (démonstration)``, once per distinct text."""
    lines: list[str] = []
    for s in sources:
        line = f"Source : {s['attribution']}"
        if s.get("date"):
            line += f" — données du {french_date(parse_date(s['date']))}"
        if s.get("demo"):
            line += " (démonstration)"
        if line not in lines:
            lines.append(line)
    return lines
