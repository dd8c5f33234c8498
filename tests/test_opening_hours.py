""""Ouvert maintenant / ouvre à …" from OSM opening_hours, in Europe/Paris time: the two daylight-saving
changes of 2026 (29 March, 25 October) and French public holidays with "PH off".

Instants are given in UTC, as the server's clock gives them; the wall-clock time in Paris is in comments.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from geo_service.services.resident import opening_hours as oh

WEEKDAYS_9_18 = "Mo-Fr 09:00-18:00; PH off"
NIGHT_SUNDAY = "Su 01:00-04:00"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- daylight-saving time -----------------------------------------------------------------------------------

def test_spring_forward_the_same_utc_time_is_before_opening_on_friday_and_after_on_monday():
    # 07:30 UTC is 08:30 in Paris on Friday 27 March (UTC+1), 09:30 on Monday 30 March (UTC+2).
    friday = oh.status(WEEKDAYS_9_18, utc("2026-03-27 07:30"))
    monday = oh.status(WEEKDAYS_9_18, utc("2026-03-30 07:30"))
    assert friday.state == "closed" and friday.label == "Fermé, ouvre à 9 h"
    assert friday.next_change == utc("2026-03-27 08:00")
    assert monday.state == "open" and monday.label == "Ouvert maintenant, ferme à 18 h"
    assert monday.next_change == utc("2026-03-30 16:00")


def test_spring_forward_night_the_missing_hour_is_skipped():
    # Sunday 29 March: 02:00 CET jumps to 03:00 CEST. 01:30 CET and 03:30 CEST are both open; closing at
    # 04:00 CEST is 02:00 UTC, only half an hour (real time) after 01:30 UTC.
    before = oh.status(NIGHT_SUNDAY, utc("2026-03-29 00:30"))  # 01:30 CET
    after = oh.status(NIGHT_SUNDAY, utc("2026-03-29 01:30"))   # 03:30 CEST
    assert before.open_now and after.open_now
    assert before.next_change == after.next_change == utc("2026-03-29 02:00")
    assert after.label == "Ouvert maintenant, ferme à 4 h"
    assert oh.status(NIGHT_SUNDAY, utc("2026-03-29 02:30")).state == "closed"  # 04:30 CEST


def test_fall_back_night_the_repeated_hour_is_open_twice():
    # Sunday 25 October: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice, both open.
    first = oh.status(NIGHT_SUNDAY, utc("2026-10-25 00:30"))   # 02:30 CEST
    second = oh.status(NIGHT_SUNDAY, utc("2026-10-25 01:30"))  # 02:30 CET
    assert first.open_now and second.open_now
    assert first.next_change == second.next_change == utc("2026-10-25 03:00")  # 04:00 CET
    assert oh.status(NIGHT_SUNDAY, utc("2026-10-25 03:30")).state == "closed"  # 04:30 CET


def test_after_fall_back_opening_time_moves_one_hour_later_in_utc():
    friday = oh.status(WEEKDAYS_9_18, utc("2026-10-23 07:30"))  # 09:30 CEST
    monday = oh.status(WEEKDAYS_9_18, utc("2026-10-26 07:30"))  # 08:30 CET
    assert friday.open_now is True
    assert monday.open_now is False and monday.next_change == utc("2026-10-26 08:00")


# -- French public holidays ---------------------------------------------------------------------------------

@pytest.mark.parametrize("holiday", ["2026-01-01", "2026-04-06", "2026-05-01", "2026-05-08", "2026-05-14",
                                     "2026-05-25", "2026-07-14", "2026-08-15", "2026-11-11", "2026-12-25"])
def test_ph_off_closes_french_public_holidays(holiday: str):
    at = datetime.fromisoformat(f"{holiday} 10:00").replace(tzinfo=oh.PARIS)
    every_day = "Mo-Su 09:00-18:00; PH off"
    assert oh.status(every_day, at).state == "closed", holiday
    assert oh.status("Mo-Su 09:00-18:00", at).state == "open", holiday


def test_bastille_day_reopens_the_next_morning():
    status = oh.status("Tu-Fr 09:00-12:00,14:00-17:30; Sa 09:00-12:00; PH off", utc("2026-07-14 08:00"))
    assert status.state == "closed"
    assert status.label == "Fermé, ouvre demain à 9 h"
    assert oh.status("Tu-Fr 09:00-12:00,14:00-17:30; Sa 09:00-12:00; PH off", utc("2026-07-15 08:00")).open_now


def test_may_day_on_a_friday_reopens_on_monday():
    status = oh.status(WEEKDAYS_9_18, utc("2026-05-01 10:00"))  # Friday 1 May, 12:00 in Paris
    assert status.state == "closed" and status.label == "Fermé, ouvre lundi à 9 h"
    assert status.next_change == utc("2026-05-04 07:00")


def test_a_holiday_can_push_the_next_opening_beyond_a_week():
    # Open on Mondays only; Easter Monday (6 April 2026) is off: from Tuesday 31 March the next opening is 13 April.
    status = oh.status("Mo 09:00-12:00; PH off", utc("2026-03-31 10:00"))
    assert status.label == "Fermé, ouvre le 13 avril à 9 h"


# -- wording and robustness ---------------------------------------------------------------------------------

def test_closing_at_half_past_and_reopening_after_lunch():
    hours = "Mo-Fr 08:30-12:30,13:30-17:00"
    assert oh.status(hours, utc("2026-06-10 09:00")).label == "Ouvert maintenant, ferme à 12 h 30"
    assert oh.status(hours, utc("2026-06-10 10:45")).label == "Fermé, ouvre à 13 h 30"


def test_aware_times_in_any_zone_agree_and_naive_ones_are_refused():
    at = utc("2026-06-10 09:00")
    assert oh.status(WEEKDAYS_9_18, at) == oh.status(WEEKDAYS_9_18, at.astimezone(oh.PARIS))
    assert oh.status(WEEKDAYS_9_18, at + timedelta(hours=10)).state == "closed"  # 21:00 in Paris
    with pytest.raises(ValueError):
        oh.status(WEEKDAYS_9_18, datetime(2026, 6, 10, 9, 0))  # which 9:00? the server's zone is not Paris


@pytest.mark.parametrize("expression,label", [(None, "Horaires non renseignés"), ("", "Horaires non renseignés"),
                                              ("n'importe quoi", "Horaires à vérifier auprès du lieu")])
def test_missing_or_invalid_hours_are_unknown(expression, label):
    status = oh.status(expression, utc("2026-06-10 09:00"))
    assert status.state == "unknown" and status.open_now is None and status.label == label
    assert not oh.is_valid("n'importe quoi") and oh.is_valid(WEEKDAYS_9_18)


def test_answers_kept_per_minute_never_cross_a_change():
    """Statuses are kept per minute: the seconds around an opening (12:00 in Paris) still read their own minute."""
    hours = "Mo-Fr 12:00-18:00"
    before = [oh.status(hours, utc("2026-06-10 09:59:59") + timedelta(microseconds=us)) for us in (0, 500_000, 1)]
    at_opening = oh.status(hours, utc("2026-06-10 10:00"))
    after = [oh.status(hours, utc("2026-06-10 10:00") + timedelta(seconds=s)) for s in (0.5, 30, 59.9)]
    assert {s.label for s in before} == {"Fermé, ouvre à 12 h"}
    assert {s.label for s in [at_opening, *after]} == {"Ouvert maintenant, ferme à 18 h"}
    assert oh.status(hours, utc("2026-06-10 10:00:30")) == oh.status(hours, utc("2026-06-10 10:00:45"))
