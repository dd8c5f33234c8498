"""Which figures the observatory's pages draw, from which values, cached per snapshot.

``figures`` knows how to draw; this module chooses what: the EPCI comparison (or the categories of a split
indicator) on ``/observatory``, the static choropleth map and the progress curve of an EPCI sheet. The key of
every cached figure names the snapshot, so a new snapshot (or a change of a source layer) draws anew, and
never a figure per page view otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from types import ModuleType
from typing import Any

from geo_service.services.app_caches import AppCaches
from geo_service.services.observatory import indicator_values
from geo_service.services.observatory.indicator_catalogue import BY_ID
from geo_service.services.observatory.page_data import (
    IndicatorView,
    Sheet,
    Snapshot,
    decimals_of,
    level_classes,
    quarter_label,
)


def _figures() -> ModuleType:
    """``figures``, imported on the first figure drawn: matplotlib and geopandas weigh ≈ 90 MB in every process
    that imports them, and most processes never draw (a figure is drawn once per snapshot, then cached)."""
    from geo_service.services.observatory import figures

    return figures


def indicator_chart(caches: AppCaches, snapshot: Snapshot, view: IndicatorView) -> str | None:
    """The EPCI side by side for a single-valued indicator; the categories of the area shown for a split one."""
    indicator = view.indicator
    key = (snapshot.key, "chart", indicator.id, view.epci.code if view.epci else None)

    def draw() -> str | None:
        if indicator.breakdown is None:
            if "epci" not in indicator.levels:
                return None
            found = indicator_values.values(snapshot.table, [indicator], "epci")
            found.sort(key=lambda v: v.name.casefold())
            return _figures().bar_chart(f"graphique-{indicator.id}", f"{indicator.label} par EPCI",
                                     [v.name for v in found], [v.value for v in found], indicator.unit,
                                     view.as_of, view.sources, decimals_of(indicator))
        where = view.epci.name if view.epci else None
        if view.epci is not None:
            cells = {v.category or "": v.value for v in indicator_values.values(
                snapshot.table, [indicator], "epci", view.epci.code)}
            totals = [(c, cells.get(c)) for c in view.categories]
        else:
            totals = view.category_totals
        labels = [quarter_label(c) for c, _ in totals]
        title = f"{indicator.label} — {where or 'département'}"
        return _figures().bar_chart(f"graphique-{indicator.id}", title, labels, [v for _, v in totals],
                                 indicator.unit, view.as_of, view.sources, decimals_of(indicator))

    return caches.observatory_figures.get_or_build(key, draw)


def quarter_end(category: str) -> date | None:
    """``2026-T3`` → 30 September 2026."""
    try:
        year, quarter = int(category[:4]), int(category[-1])
    except ValueError:
        return None
    return date(year + (quarter == 4), (quarter * 3) % 12 + 1, 1) - timedelta(days=1)


def projection(snapshot: Snapshot, level: str, code: str) -> list[tuple[date, float]]:
    """The share of eligible premises reached at the end of each coming quarter if the planned dates hold; late
    premises (a planned quarter already past) are counted in the current quarter."""
    table = snapshot.table
    premises = table.value(BY_ID["locaux"], level, code) or 0.0
    eligible = table.value(BY_ID["locaux_eligibles"], level, code) or 0.0
    if not premises:
        return []
    expected = BY_ID["locaux_eligibles_prevus_par_trimestre"]
    now = quarter_end(f"{snapshot.day.year}-T{(snapshot.day.month - 1) // 3 + 1}")
    assert now is not None
    by_end: dict[date, float] = {}
    for category in table.categories(expected, level, code):
        end = quarter_end(category)
        if end is None:
            continue
        end = max(end, now)
        by_end[end] = by_end.get(end, 0.0) + (table.value(expected, level, code, category) or 0.0)
    points = [(snapshot.day, round(eligible / premises * 100, 1))]
    running = eligible
    for end in sorted(by_end):
        running += by_end[end]
        points.append((end, round(min(running, premises) / premises * 100, 1)))
    return points


def sheet_figures(caches: AppCaches, snapshot: Snapshot, sheet: Sheet, outlines: dict[str, Any],
                  history: Sequence[tuple[date, float | None]] = ()) -> dict[str, str]:
    """The EPCI's map (share of eligible premises by commune, the classes of /observatory) and its curve."""
    code = sheet.epci.code
    share = BY_ID["part_locaux_eligibles"]

    def draw_map() -> str:
        mine = {"type": "FeatureCollection",
                "features": [f for f in outlines["features"] if f["properties"]["epci"] == code]}
        values = {v.code: v.value for v in indicator_values.values(snapshot.table, [share], "commune")}
        classes = level_classes(snapshot.table, share, "commune")
        return _figures().choropleth(f"carte-{code}", f"{share.label} par commune", mine, values, classes,
                                  sheet.as_of, sheet.sources[:1], share.unit)

    def draw_curve() -> str:
        past = list(history) or [(snapshot.day, snapshot.table.value(share, "epci", code))]
        return _figures().progress_curve(f"courbe-{code}", "Part des locaux éligibles à la fibre : constatée et "
                                      "attendue", past, projection(snapshot, "epci", code), "%", sheet.as_of,
                                      sheet.sources[:1])

    return {"map": caches.observatory_figures.get_or_build((snapshot.key, "map", code), draw_map),
            "curve": caches.observatory_figures.get_or_build((snapshot.key, "curve", code, tuple(history)),
                                                             draw_curve)}
