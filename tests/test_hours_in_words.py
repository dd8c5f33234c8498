"""Opening hours in French words for residents, and the coming week's table.

The expressions are those found on help places, third places and town halls in OpenStreetMap and in the
France Services file; each has the exact sentence a resident reads. The week tables are computed on fixed dates
(14 July and 25 December, both public holidays; the two daylight-saving Sundays of 2026) in Paris time.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from geo_service.services.resident.hours_in_words import NBSP, in_words
from geo_service.services.resident.hours_week import coming_week

WORDED = [
    # the issue's own example: commas after a range of days, none after one day
    ("Mo-Fr 08:30-19:00; Sa 09:00-12:00; PH off",
     "du lundi au vendredi, de 8 h 30 à 19 h ; le samedi de 9 h à 12 h ; fermé les jours fériés"),
    # two ranges a day: « et »; three: commas then « et »
    ("Mo-Fr 09:00-12:00,14:00-17:00",
     "du lundi au vendredi, de 9 h à 12 h et de 14 h à 17 h"),
    ("Sa-Su 10:00-12:00,14:00-16:00,18:00-20:00",
     "le samedi et le dimanche, de 10 h à 12 h, de 14 h à 16 h et de 18 h à 20 h"),
    ("Tu-Fr 09:00-12:00,13:30-17:30; Sa 09:00-12:00; Su,PH off",
     "du mardi au vendredi, de 9 h à 12 h et de 13 h 30 à 17 h 30 ; le samedi de 9 h à 12 h ; "
     "fermé le dimanche et les jours fériés"),
    ("Mo,We,Fr 9:00-12:00", "le lundi, le mercredi et le vendredi, de 9 h à 12 h"),
    # every day, all day
    ("24/7", "24 h/24, 7 j/7"),
    ("Mo-Su 00:00-24:00", "24 h/24, 7 j/7"),
    ("Mo-Su 10:00-18:00", "tous les jours, de 10 h à 18 h"),
    ("10:00-18:00", "tous les jours, de 10 h à 18 h"),
    ("Mo-Fr", "du lundi au vendredi, 24 h/24"),
    # across midnight, written either way
    ("Fr-Sa 22:00-02:00", "le vendredi et le samedi, de 22 h à 2 h"),
    ("Mo-Fr 22:00-26:00", "du lundi au vendredi, de 22 h à 2 h"),
    ("Mo 10:00-24:00", "le lundi de 10 h à minuit"),
    # off days, off alone, unknown
    ("Mo-Fr 09:00-12:00; We off", "du lundi au vendredi, de 9 h à 12 h ; fermé le mercredi"),
    ("off", "fermé"),
    ("Mo-Sa 10:00-19:00; Su closed", "du lundi au samedi, de 10 h à 19 h ; fermé le dimanche"),
    ("Mo 10:00-12:00 unknown", "horaires non précisés le lundi de 10 h à 12 h"),
    # a later rule overriding an earlier one, an additional rule: read once normalised by opening-hours-py
    ("Mo-Sa 09:00-18:00; Sa 09:00-12:00", "du lundi au vendredi, de 9 h à 18 h ; le samedi de 9 h à 12 h"),
    ("Mo-Fr 08:00-12:00, We 14:00-18:00",
     "le lundi, le mardi, le jeudi et le vendredi, de 8 h à 12 h ; le mercredi de 8 h à 12 h et de 14 h à 18 h"),
    # holidays and school holidays
    ("Mo-Fr 08:00-18:00; PH 10:00-12:00",
     "du lundi au vendredi, de 8 h à 18 h ; les jours fériés, de 10 h à 12 h"),
    ("Mo-Fr 09:00-12:00,14:00-17:00; SH off",
     "du lundi au vendredi, de 9 h à 12 h et de 14 h à 17 h ; fermé pendant les vacances scolaires"),
    ("Mo-Fr,PH 10:00-12:00", "du lundi au vendredi et les jours fériés, de 10 h à 12 h"),
    # seasonal rules: months, dates, a year, Easter
    ("Jul 01-Aug 31 Mo-Fr 10:00-18:00", "du 1er juillet au 31 août : du lundi au vendredi, de 10 h à 18 h"),
    ("10:00-18:00; Jul-Aug 10:00-22:00",
     "tous les jours, de 10 h à 18 h ; en juillet et en août : tous les jours, de 10 h à 22 h"),
    ("Apr-Sep Sa 14:00-18:00", "d'avril à septembre : le samedi de 14 h à 18 h"),
    ("Mo-Fr 09:00-18:00; Aug 01-Aug 15 off", "du lundi au vendredi, de 9 h à 18 h ; fermé du 1er au 15 août"),
    ("Mo-Fr 09:00-12:00; Dec 24-26 off", "du lundi au vendredi, de 9 h à 12 h ; fermé du 24 au 26 décembre"),
    ("Mo-Fr 09:00-12:00; Jul 14 off", "du lundi au vendredi, de 9 h à 12 h ; fermé le 14 juillet"),
    ("Jul-Aug Sa off", "fermé le samedi en juillet et en août"),
    ("2026 Dec 24-2027 Jan 02 off", "fermé du 24 décembre 2026 au 2 janvier 2027"),
    ("2026 Jan 01-2026 Mar 31 Mo 10:00-12:00", "du 1er janvier au 31 mars 2026 : le lundi de 10 h à 12 h"),
    ("easter off", "fermé le dimanche de Pâques"),
    # week numbers
    ("week 01-10 Mo 10:00-12:00", "les semaines 1 à 10 : le lundi de 10 h à 12 h"),
    ("week 01-53/2 Fr 14:00-16:00", "les semaines impaires : le vendredi de 14 h à 16 h"),
    ("week 33 off", "fermé la semaine 33"),
    # week of the month
    ("Mo[1] 14:00-17:00", "le premier lundi du mois, de 14 h à 17 h"),
    ("Mo[1,3] 09:00-12:00", "le premier et le troisième lundi du mois, de 9 h à 12 h"),
    ("Sa[-1] 10:00-12:00", "le dernier samedi du mois, de 10 h à 12 h"),
    # comments, fallback rules
    ('Tu-Sa 10:00-12:00 "sur rendez-vous"', "du mardi au samedi, de 10 h à 12 h (« sur rendez-vous »)"),
    ('"sur rendez-vous"', "« sur rendez-vous »"),
    ('Mo-Fr 09:00-12:00 || "sur rendez-vous"', "du lundi au vendredi, de 9 h à 12 h ; sinon « sur rendez-vous »"),
    ('Su,PH off "fermeture annuelle en août"',
     "fermé le dimanche et les jours fériés (« fermeture annuelle en août »)"),
    # sun events and open ends
    ("sunrise-sunset", "tous les jours, du lever du soleil au coucher du soleil"),
    ("Mo-Fr 07:00-sunset", "du lundi au vendredi, de 7 h au coucher du soleil"),
    ("dawn-dusk", "tous les jours, de l'aube à la tombée de la nuit"),
    ("Fr 18:00+", "le vendredi à partir de 18 h"),
]

NOT_WORDED = [
    # not OSM syntax: said so, with what the file holds
    ("Mo-Fr 8h-12h", "horaires dans un format non reconnu, à vérifier auprès du lieu (« Mo-Fr 8h-12h »)"),
    ("lundi au vendredi 9h-17h",
     "horaires dans un format non reconnu, à vérifier auprès du lieu (« lundi au vendredi 9h-17h »)"),
    ("Mo-Fr 25:99-26:00", "horaires dans un format non reconnu, à vérifier auprès du lieu (« Mo-Fr 25:99-26:00 »)"),
    # valid, but beyond the words: the table still tells the week
    ("(sunset-01:00)-sunset", "horaires particuliers, détaillés dans le tableau de la semaine "
                              "(au format OpenStreetMap : « (sunset-01:00)-sunset »)"),
    ("Mo 10:00-20:00/01:00", "horaires particuliers, détaillés dans le tableau de la semaine "
                             "(au format OpenStreetMap : « Mo 10:00-20:00/01:00 »)"),
]


def plain(words: str) -> str:
    """The words with their non-breaking spaces as plain ones, as the expected sentences above are written."""
    return words.replace(NBSP, " ")


@pytest.mark.parametrize(("expression", "words"), WORDED, ids=[e for e, _ in WORDED])
def test_real_world_hours_read_in_french(expression, words):
    found = in_words(expression)
    assert plain(found.text) == words
    assert found.worded


@pytest.mark.parametrize(("expression", "words"), NOT_WORDED, ids=[e for e, _ in NOT_WORDED])
def test_hours_beyond_words_fall_back_to_a_french_sentence_with_the_expression(expression, words):
    found = in_words(expression)
    assert plain(found.text) == words
    assert not found.worded


def test_times_never_break_across_lines():
    # Non-breaking spaces inside a time and in « 24 h/24, 7 j/7 »; ordinary ones between words.
    assert in_words("Mo 08:30-19:00").text == "le lundi de 8\u00a0h\u00a030 à 19\u00a0h"
    assert in_words("24/7").text == "24\u00a0h/24, 7\u00a0j/7"


def test_words_never_raise_on_odd_input():
    for odd in ["", ";", "||", '"', "Mo-", "24/7 24/7", "Mo[9] 10:00-12:00", "Feb 30 off", "é" * 300,
                "Mo-Fr 09:00-12:00; " * 50]:
        assert in_words(odd).text


# -- the coming week ----------------------------------------------------------------------------------------

def paris(text: str) -> datetime:
    """An instant given by Paris wall-clock time (summer: UTC+2; winter: UTC+1), as the server's UTC clock."""
    return datetime.fromisoformat(text).astimezone(UTC)


def rows(week: list[dict]) -> list[tuple[str, str]]:
    return [(day["label"] + (" *" if day["today"] else "") + (" (férié)" if day["holiday"] else ""),
             plain(day["text"])) for day in week]


def test_week_from_monday_13_july_closes_on_the_national_holiday():
    week = coming_week("Mo-Fr 08:30-19:00; Sa 09:00-12:00; PH off", datetime.fromisoformat("2026-07-13T08:00:00+00:00"))
    assert rows(week) == [
        ("lundi 13 juillet *", "de 8 h 30 à 19 h"),
        ("mardi 14 juillet (férié)", "fermé"),
        ("mercredi 15 juillet", "de 8 h 30 à 19 h"),
        ("jeudi 16 juillet", "de 8 h 30 à 19 h"),
        ("vendredi 17 juillet", "de 8 h 30 à 19 h"),
        ("samedi 18 juillet", "de 9 h à 12 h"),
        ("dimanche 19 juillet", "fermé"),
    ]
    assert [d["state"] for d in week] == ["open", "closed", "open", "open", "open", "open", "closed"]
    assert week[1]["date"].isoformat() == "2026-07-14"


def test_week_of_christmas_a_holiday_open_with_its_own_hours():
    week = coming_week("Mo-Sa 10:00-19:00; PH 10:00-12:00", paris("2026-12-21T09:00:00+01:00"))
    assert rows(week)[3:6] == [
        ("jeudi 24 décembre", "de 10 h à 19 h"),
        ("vendredi 25 décembre (férié)", "de 10 h à 12 h"),
        ("samedi 26 décembre", "de 10 h à 19 h"),
    ]


def test_today_follows_the_territory_clock_not_utc():
    # 23:30 UTC on Sunday 12 July is already Monday 13 July in Paris.
    week = coming_week("Mo 10:00-12:00", datetime.fromisoformat("2026-07-12T23:30:00+00:00"))
    assert week[0]["label"] == "lundi 13 juillet" and week[0]["today"]
    assert [d["today"] for d in week].count(True) == 1


def test_week_across_the_spring_forward_keeps_wall_clock_hours():
    # Sunday 29 March 2026: 02:00 becomes 03:00. The hours read as posted, the day before and after alike.
    week = coming_week("Sa-Mo 09:00-12:00; Su 01:00-04:00", paris("2026-03-28T10:00:00+01:00"))
    assert rows(week)[:3] == [
        ("samedi 28 mars *", "de 9 h à 12 h"),
        ("dimanche 29 mars", "de 1 h à 4 h"),
        ("lundi 30 mars", "de 9 h à 12 h"),
    ]


def test_week_across_the_fall_back_night_shows_the_range_once_on_its_first_day():
    # Saturday 24 October 2026, 20:00 to Sunday 03:00, the night the clocks go back (03:00 is read twice).
    week = coming_week("Sa 20:00-03:00", paris("2026-10-24T10:00:00+02:00"))
    assert rows(week)[:2] == [("samedi 24 octobre *", "de 20 h à 3 h"), ("dimanche 25 octobre", "fermé")]


def test_week_of_a_place_open_day_and_night_and_one_closed_at_lunch_on_mondays():
    week = coming_week("24/7; Mo 12:00-14:00 off", paris("2026-07-12T10:00:00+02:00"))
    assert rows(week)[:3] == [
        ("dimanche 12 juillet *", "24 h/24"),
        ("lundi 13 juillet", "de minuit à 12 h et de 14 h à minuit"),
        ("mardi 14 juillet (férié)", "24 h/24"),
    ]


def test_week_comment_and_unknown_days():
    week = coming_week('Mo 10:00-12:00 "sur rendez-vous"; Tu unknown', paris("2026-07-13T08:00:00+02:00"))
    assert rows(week)[:3] == [
        ("lundi 13 juillet *", "de 10 h à 12 h (« sur rendez-vous »)"),
        ("mardi 14 juillet (férié)", "horaires non précisés"),
        ("mercredi 15 juillet", "fermé"),
    ]
    assert week[1]["state"] == "unknown"
    assert coming_week('"sur rendez-vous"', paris("2026-07-13T08:00:00+02:00"))[0]["text"] == "« sur rendez-vous »"


def test_sunset_follows_the_place_position():
    # Cahors on Sunday 20 December 2026: the sun rises at 8 h 26 and sets at 17 h 16 (the parser's own solar
    # computation); without a position the parser would have said 7 h and 19 h.
    week = coming_week("sunrise-sunset", paris("2026-12-20T10:00:00+01:00"), lon=1.44, lat=44.45)
    assert plain(week[0]["text"]) == "de 8 h 26 à 17 h 16"


def test_no_week_without_valid_hours():
    now = paris("2026-07-13T10:00:00+02:00")
    assert coming_week(None, now) is None
    assert coming_week("  ", now) is None
    assert coming_week("Mo-Fr 8h-12h", now) is None
    with pytest.raises(ValueError):
        coming_week("24/7", datetime(2026, 7, 13, 10))


# -- in the report, beside the expression kept for machines ------------------------------------------------

def test_nearby_places_carry_the_words_and_the_week_beside_the_osm_expression(demo_client):
    report = demo_client.get("/api/nearby", params={"lon": 1.4437, "lat": 44.4475}).json()
    places = [p for key in ("third_places", "digital_help") for p in report[key]["items"]]
    assert places and all(p["opening_hours"] for p in places)
    for place in places:
        assert place["hours_text"] == in_words(place["opening_hours"]).text
        assert len(place["week"]) == 7 and [d["today"] for d in place["week"]] == [True] + [False] * 6
        assert {d["state"] for d in place["week"]} <= {"open", "closed", "unknown"}
        # The OGC API keeps the OSM expression, for machines.
        key = {"third_places": "tl_id", "digital_help_places": "lieu_id"}[place["layer"]]
        found = demo_client.get(f"/ogc/collections/{place['layer']}/items",
                                params={"filter": f"{key} = '{place['id']}'"}).json()
        assert [f["properties"]["horaires"] for f in found["features"]] == [place["opening_hours"]]
    wifi = report["wifi"]["items"]
    assert all(p["hours_text"] is None and p["week"] is None for p in wifi)  # bornes declare no hours
