"""The coming seven days of a place's OSM opening hours, day by day, in French: the panel's small table.

The intervals come from opening-hours-py, evaluated in the territory's clock (``settings.LOCAL_TIME``) with the
French public holidays, so a 14 July or a 25 December reads « fermé » under « PH off », and the two
daylight-saving Sundays keep their wall-clock hours. Instants are compared in UTC (two aware datetimes of the same
zone compare by wall clock in Python, which the repeated hour of October would fool) and shown in local time.
A range across midnight (« Fr 22:00-02:00 ») is shown on the day it starts (« de 22 h à 2 h ») and not again on
the next day.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from opening_hours import OpeningHours, ParserError, State

from geo_service.services.resident.hours_in_words import ALL_DAY, EVENTS, clock, join_fr
from geo_service.services.resident.opening_hours import COUNTRY, french_date
from geo_service.settings import LOCAL_TIME

WEEKDAY_NAMES = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
DAYS_SHOWN = 7
# A range that goes on past midnight is shown whole on its first day when it ends this soon after midnight
# (« de 22 h à 2 h »); a longer one is cut at midnight and the next day shows its own part.
OVERNIGHT = timedelta(hours=12)


@dataclass(frozen=True)
class DayHours:
    """One row of the table: the day, whether it is today or a public holiday, and its hours in words."""

    date: date
    label: str      # « lundi 13 juillet »
    today: bool
    holiday: bool   # a French public holiday (the calendar ``PH`` follows)
    state: str      # "open", "closed" or "unknown"
    text: str       # « de 9 h à 12 h et de 14 h à 17 h », « 24 h/24 », « fermé »


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=LOCAL_TIME).astimezone(UTC)


def _hours(expression: str, coords: tuple[float, float] | None) -> OpeningHours:
    if coords is None:
        return OpeningHours(expression, timezone=LOCAL_TIME, country=COUNTRY, auto_country=False,
                            auto_timezone=False, max_interval_days=DAYS_SHOWN + 2)
    # With coordinates, ``auto_timezone=False`` would also leave sunrise and sunset at their 7 h / 19 h defaults
    # (opening-hours-py 2.1); the zone it finds from a place of the territory is the territory's own.
    return OpeningHours(expression, timezone=LOCAL_TIME, country=COUNTRY, coords=coords, auto_country=False,
                        max_interval_days=DAYS_SHOWN + 2)


@lru_cache(maxsize=1)
def _public_holidays() -> OpeningHours:
    return _hours("PH", None)


def _is_holiday(day: date) -> bool:
    noon = datetime.combine(day, time(12), tzinfo=LOCAL_TIME)
    return _public_holidays().is_open(noon)


def _clock_at(moment: datetime) -> str:
    local = moment.astimezone(LOCAL_TIME)
    return clock(f"{local.hour:02d}:{local.minute:02d}")


def _piece(start: datetime, end: datetime, day_start: datetime, day_end: datetime, comment: str) -> str:
    if start <= day_start and end >= day_end:
        if comment:  # a rule that is only a comment (« "sur rendez-vous" ») is the whole day's words
            return f"« {comment} »"
        words = ALL_DAY
    elif day_end < end <= day_end + OVERNIGHT:
        words = f"de {_clock_at(start)} à {_clock_at(end)}"
    else:
        words = f"de {_clock_at(max(start, day_start))} à {'minuit' if end >= day_end else _clock_at(end)}"
    return f"{words} (« {comment} »)" if comment else words


def _day(day: date, today: date, spans: list[tuple[datetime, datetime, State, str]]) -> DayHours:
    day_start, day_end = _local_midnight(day), _local_midnight(day + timedelta(days=1))
    previous_start = _local_midnight(day - timedelta(days=1))
    open_words, unknown_words = [], []
    for start, end, state, comment in spans:
        if end <= day_start or start >= day_end:
            continue
        # Begun the evening before and shown there whole (« de 22 h à 2 h »), but for the first row.
        if day != today and previous_start <= start < day_start and end - day_start <= OVERNIGHT \
                and end < day_end:
            continue
        words = _piece(start, end, day_start, day_end, comment)
        (open_words if state == State.OPEN else unknown_words).append(words)
    if open_words:
        state, text = "open", join_fr(open_words)
    elif unknown_words:
        detail = "" if unknown_words == [ALL_DAY] else f" ({join_fr(unknown_words)})"
        state, text = "unknown", "horaires non précisés" + detail
    else:
        state, text = "closed", "fermé"
    label = f"{WEEKDAY_NAMES[day.weekday()]} {french_date(day, with_year=False)}"
    return DayHours(day, label, day == today, _is_holiday(day), state, text)


# Kept per expression and day: the rows are built once and shared by every report of the day (read-only).
@lru_cache(maxsize=2048)
def _week(expression: str, today: date, coords: tuple[float, float] | None) -> tuple[dict[str, Any], ...] | None:
    try:
        hours = _hours(expression, coords)
    except (ParserError, ValueError):
        return None
    start, end = _local_midnight(today - timedelta(days=1)), _local_midnight(today + timedelta(days=DAYS_SHOWN + 1))
    spans = [(s.astimezone(UTC), e.astimezone(UTC), state, comment or "")
             for s, e, state, comment in hours.intervals(start.astimezone(LOCAL_TIME), end.astimezone(LOCAL_TIME))
             if state != State.CLOSED]
    return tuple(asdict(_day(today + timedelta(days=i), today, spans)) for i in range(DAYS_SHOWN))


def coming_week(expression: str | None, now: datetime, lon: float | None = None, lat: float | None = None
                ) -> list[dict[str, Any]] | None:
    """The seven days from ``now``'s day (aware; read in the territory's clock), as rows for the report; None when
    there are no hours or they are not valid OSM syntax. The place's position makes sunrise and sunset exact."""
    if now.tzinfo is None:
        raise ValueError("coming_week() needs an aware datetime: a naive one would be read in the server's zone")
    if not expression or not expression.strip():
        return None
    expression = expression.strip()
    sun = any(event in expression for event in EVENTS)
    coords = (round(lat, 3), round(lon, 3)) if sun and lon is not None and lat is not None else None
    week = _week(expression, now.astimezone(LOCAL_TIME).date(), coords)
    return None if week is None else list(week)
