"""The observatory's stored snapshots on a small hand-made world (rolled back): taken once a day, idempotent,
replaced when a layer changed, read back equal to the computation, and the quarterly history rebuilt from the
premises' dates — checked against counts made here in Python."""

from __future__ import annotations

from datetime import date

import pytest
from factories import Factory
from sqlalchemy import Connection, text

from geo_service.services.observatory import indicator_values, snapshots
from geo_service.services.observatory.indicator_catalogue import BY_ID

CURRENT, FORMER, EPCI = "46033", "46099", "200039519"
TODAY = date(2026, 12, 4)
# (lon, lat, commune code as written, FTTH state, effective date)
PREMISES = [
    (1.19, 44.40, FORMER, "raccorde", date(2024, 2, 10)),
    (1.25, 44.38, FORMER, "deploye", date(2024, 5, 2)),
    (1.26, 44.38, CURRENT, "raccordable demande", date(2025, 9, 30)),
    (1.10, 44.35, CURRENT, "cible", None),
    (0.95, 44.20, FORMER, "abandonne", None),
]
DEPARTEMENT = ("46", "Lot")


@pytest.fixture
def world(conn: Connection, loaded_boundaries, registry) -> Connection:
    for table in ("premises", "indicator_snapshots"):
        conn.execute(text(f"DELETE FROM {table}"))
    make = Factory(registry)
    for lon, lat, code, etat, effective in PREMISES:
        make.feature(conn, "premises", (lon, lat), code_insee=code, etat=etat, date_raccordable=effective)
    return conn


def _value(table, indicator: str, level: str, code: str):
    return table.value(BY_ID[indicator], level, code)


def test_a_snapshot_is_stored_once_a_day_and_read_back_as_computed(world: Connection, registry) -> None:
    run = snapshots.take(world, registry, DEPARTEMENT, on=TODAY)
    assert run.written and run.kind == "computed" and run.measures > 0
    stored = snapshots.load(world, registry, snapshots.latest(world))
    computed = indicator_values.compute(world, registry, DEPARTEMENT)
    assert stored.measures == computed.measures
    assert [v.value for v in indicator_values.values(stored)] == [v.value for v in indicator_values.values(computed)]
    assert _value(stored, "locaux_eligibles", "commune", CURRENT) == 3
    written_at = snapshots.latest(world).taken_at
    again = snapshots.take(world, registry, DEPARTEMENT, on=TODAY)
    assert not again.written and "déjà à jour" in again.summary()
    assert snapshots.latest(world).taken_at == written_at
    assert world.execute(text("SELECT count(*) FROM indicator_snapshots")).scalar() == 1


def test_a_layer_changed_the_same_day_replaces_that_days_snapshot(world: Connection, registry) -> None:
    snapshots.take(world, registry, DEPARTEMENT, on=TODAY)
    world.execute(text("UPDATE premises SET etat = 'raccorde', date_raccordable = :d WHERE etat = 'cible'"),
                  {"d": TODAY})
    run = snapshots.take(world, registry, DEPARTEMENT, on=TODAY)
    assert run.written
    stored = snapshots.load(world, registry, snapshots.latest(world))
    assert _value(stored, "locaux_eligibles", "departement", "46") == 4
    assert world.execute(text("SELECT count(*) FROM indicator_snapshots")).scalar() == 1


def test_history_is_rebuilt_per_quarter_from_the_effective_dates(world: Connection, registry) -> None:
    snapshots.take(world, registry, DEPARTEMENT, on=TODAY)
    runs = snapshots.backfill(world, registry, DEPARTEMENT, until=TODAY)
    days = [r.taken_on for r in runs]
    assert days[0] == date(2024, 3, 31) and days[-1] == date(2026, 9, 30) and len(days) == 11
    assert all(r.kind == "backfilled" for r in runs)
    eligible = [effective for _, _, _, etat, effective in PREMISES if etat in ("raccorde", "deploye",
                                                                             "raccordable demande")]
    history = snapshots.history(world, registry, [BY_ID["locaux_eligibles"], BY_ID["part_locaux_eligibles"]],
                                "commune", CURRENT)
    counts = {d: v.value for d, v in history if v.indicator == "locaux_eligibles"}
    assert counts == {**{d: sum(1 for e in eligible if e <= d) for d in days}, TODAY: 3}
    shares = {d: v.value for d, v in history if v.indicator == "part_locaux_eligibles"}
    assert shares[date(2024, 6, 30)] == pytest.approx(2 / 5 * 100)
    # A second back-fill finds every day taken: nothing written, and the computed snapshot is never replaced.
    assert snapshots.backfill(world, registry, DEPARTEMENT, until=TODAY) == []
    assert snapshots.on_or_before(world, TODAY).kind == "computed"


def test_the_snapshot_served_for_a_date_is_the_nearest_earlier(world: Connection, registry) -> None:
    snapshots.backfill(world, registry, DEPARTEMENT, until=TODAY)
    assert snapshots.on_or_before(world, date(2025, 2, 14)).taken_on == date(2024, 12, 31)
    assert snapshots.on_or_before(world, date(2024, 12, 31)).taken_on == date(2024, 12, 31)
    with pytest.raises(Exception, match="ni avant"):
        snapshots.chosen(world, date(2024, 1, 1))
    world.execute(text("DELETE FROM indicator_snapshots"))
    with pytest.raises(Exception, match="geo-service snapshot"):
        snapshots.chosen(world, None)
