"""Opening hours in OpenStreetMap syntax → "ouvert maintenant, ferme à 18 h" / "ouvre demain à 9 h".

Evaluated by opening-hours-py (the Rust ``opening-hours`` crate) in Europe/Paris time with the French
public-holiday calendar (``country="FR"``: 1 May, 14 July, Easter and Whit Mondays, Ascension… so "PH off"
closes them). Instants are handled as aware datetimes converted to Paris time, so the two daylight-saving
changes (last Sunday of March and of October) need nothing special: a wall-clock time that does not exist
(02:30 on the March Sunday) can never be asked for, and an hour that exists twice is told apart by its offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

from opening_hours import OpeningHours, ParserError, State

from geo_service.settings import LOCAL_TIME

PARIS = LOCAL_TIME  # the territory's clock, named after the city whose zone it is
COUNTRY = "FR"
# Beyond this, "next change" is not worth computing (a place closed for months reads "fermé").
HORIZON_DAYS = 14

WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre")


@dataclass(frozen=True)
class OpeningStatus:
    """Whether a place is open at an instant, the next change, and the sentence residents read."""

    state: str  # "open", "closed" or "unknown"
    label: str
    next_change: datetime | None

    @property
    def open_now(self) -> bool | None:
        return None if self.state == "unknown" else self.state == "open"


@lru_cache(maxsize=1024)
def _parse(expression: str) -> OpeningHours | None:
    """Parsed once per distinct expression (a few dozen across the territory); None if not valid OSM syntax."""
    try:
        # No auto-detection from coordinates: timezone and holidays are those of the territory.
        return OpeningHours(expression, timezone=PARIS, country=COUNTRY, auto_country=False, auto_timezone=False,
                            max_interval_days=HORIZON_DAYS + 1)
    except (ParserError, ValueError):
        return None


def is_valid(expression: str) -> bool:
    """Whether ``expression`` is valid OSM opening_hours syntax."""
    return _parse(expression.strip()) is not None


def now_in_paris() -> datetime:
    return datetime.now(PARIS)


def french_time(moment: datetime) -> str:
    """``9 h``, ``14 h 30`` — the way French public signs write times.

    >>> french_time(datetime(2026, 7, 15, 9, 0))
    '9 h'
    >>> french_time(datetime(2026, 7, 15, 14, 30))
    '14 h 30'
    """
    return f"{moment.hour} h" if moment.minute == 0 else f"{moment.hour} h {moment.minute:02d}"


def french_date(day: date, with_year: bool = True) -> str:
    """``1er janvier 2019``, ``15 juillet``.

    >>> french_date(date(2019, 1, 1))
    '1er janvier 2019'
    """
    first = "1er" if day.day == 1 else str(day.day)
    text = f"{first} {MONTHS[day.month - 1]}"
    return f"{text} {day.year}" if with_year else text


def french_month(day: date) -> str:
    """``novembre 2022`` ("déploiement prévu en novembre 2022")."""
    return f"{MONTHS[day.month - 1]} {day.year}"


def _when(change: datetime, now: datetime) -> str:
    """``à 14 h``, ``demain à 9 h``, ``mercredi à 10 h``, ``le 15 juillet à 9 h`` relative to ``now``."""
    days = (change.date() - now.date()).days
    at = f"à {french_time(change)}"
    if days == 0:
        return at
    if days == 1:
        return f"demain {at}"
    if days < 7:
        return f"{WEEKDAYS[change.weekday()]} {at}"
    return f"le {french_date(change.date(), with_year=False)} {at}"


# OSM opening hours change on whole minutes only, so every instant strictly inside one minute has the same status,
# next change and wording; and a report asks for six of them at the same instant. Statuses are kept per expression
# and minute (evaluating one is most of a place's cost in a report). An instant exactly on a minute may be the very
# instant of a change: it is computed and not shared.
_STATUS: dict[tuple[str, int], OpeningStatus] = {}
_STATUS_MAX = 4096


def status(expression: str | None, at: datetime | None = None) -> OpeningStatus:
    """The opening status of ``expression`` at ``at`` (aware; default now), worded in French."""
    if at is not None and at.tzinfo is None:
        raise ValueError("status() needs an aware datetime: a naive one would be read in the server's zone")
    now = (at or now_in_paris()).astimezone(PARIS)
    if not expression or not expression.strip():
        return OpeningStatus("unknown", "Horaires non renseignés", None)
    expression = expression.strip()
    minute, within = divmod(now.timestamp(), 60)
    key = (expression, int(minute))
    found = _STATUS.get(key)
    if found is not None and within:
        return found
    found = _status(expression, now)
    if within:
        if len(_STATUS) >= _STATUS_MAX:
            _STATUS.clear()
        _STATUS[key] = found
    return found


def _status(expression: str, now: datetime) -> OpeningStatus:
    hours = _parse(expression)
    if hours is None:
        return OpeningStatus("unknown", "Horaires à vérifier auprès du lieu", None)
    state = {State.OPEN: "open", State.CLOSED: "closed"}.get(hours.state(now)[0], "unknown")
    change = hours.next_change(now)
    if change is not None:
        change = change.astimezone(PARIS)
        if change - now > timedelta(days=HORIZON_DAYS):
            change = None
    if state == "open":
        label = f"Ouvert maintenant, ferme {_when(change, now)}" if change else "Ouvert maintenant"
    elif state == "closed":
        label = f"Fermé, ouvre {_when(change, now)}" if change else "Fermé"
    else:
        return OpeningStatus("unknown", "Horaires à vérifier auprès du lieu", change)
    return OpeningStatus(state, label, change)
