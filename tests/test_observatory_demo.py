"""The observatory's indicators on the demo territory: EPCI sums, levels, and the computation's cost."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from geo_service.services.observatory import indicator_values
from geo_service.services.observatory.indicator_catalogue import INDICATORS


@pytest.fixture(scope="module")
def table(demo_territory, engine: Engine, registry, settings):
    with engine.connect() as conn:
        return indicator_values.compute(conn, registry, (settings.territory.departement, settings.territory.name))


def test_demo_figures_are_there(table) -> None:
    values = {(v.indicator, v.category): v.value for v in indicator_values.values(table, level="departement")}
    print("computed in", table.computed_in_s, "s;", sorted(values.items())[:80])
    assert values[("locaux", None)] > 100_000
    assert 0 < values[("part_locaux_eligibles", None)] < 100
    assert values[("lieux_mediation", None)] > 0


def test_additive_indicators_add_up_over_epcis(table) -> None:
    all_values = indicator_values.values(table)
    for indicator in (i for i in INDICATORS if i.additive):
        dep = {v.category: v.value for v in all_values if v.indicator == indicator.id and v.level == "departement"}
        sums: dict = {}
        for v in all_values:
            if v.indicator == indicator.id and v.level == "epci":
                sums[v.category] = sums.get(v.category, 0) + v.value
        assert sums == pytest.approx(dep), indicator.id
