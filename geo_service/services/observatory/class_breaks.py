"""Class breaks and colours of the observatory's choropleth maps, computed once on the server.

The same classes colour the interactive map (``/observatory``), the legend, the table's class column and the
static maps of the EPCI sheets: a value is placed by ``classify`` everywhere, never again in the browser.
Breaks are quantiles of the values shown (``statistics.quantiles``, "inclusive" method), rounded to the
indicator's unit and deduplicated, so that a territory where most communes have the same value gets fewer
classes rather than empty ones.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# ColorBrewer "YlGnBu", five classes: sequential, safe for the common colour-vision deficiencies and in grey;
# light to dark = low to high. The legend writes each class's range in words beside its swatch.
PALETTE = ("#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494")
NO_VALUE_COLOUR = "#d9d9d9"
CLASSES = len(PALETTE)


@dataclass(frozen=True)
class ColourClass:
    """One class of the legend: values in ``[low, high]`` (``high`` included), drawn in ``colour``."""

    low: float
    high: float
    colour: str
    label: str


def _decimals(unit: str, values: Sequence[float]) -> int:
    if unit in ("%", "km") or (values and max(values) - min(values) < 10):
        return 1
    return 0


def number_fr(value: float | None, decimals: int = 0) -> str:
    """A number written the French way: narrow no-break space between thousands, decimal comma."""
    if value is None:
        return "—"
    text = f"{value:,.{decimals}f}".replace(",", "\u202f").replace(".", ",")
    return text


def breaks(values: Sequence[float | None], unit: str = "") -> list[ColourClass]:
    """At most five classes covering ``values`` (``None`` left out): the quantile breaks, then the colours."""
    present = sorted(v for v in values if v is not None)
    if not present:
        return []
    distinct = sorted(set(present))
    integral = all(float(v).is_integer() for v in present)
    decimals = 0 if integral else _decimals(unit, present)
    if len(distinct) <= CLASSES and (integral or len(distinct) < 3):
        # Few values (0 or 1 third place, a handful of counts): one class each, named by its value.
        chosen = _spread(len(distinct))
        return [ColourClass(v, v, chosen[i], f"{number_fr(v, decimals)} {unit}".strip())
                for i, v in enumerate(distinct)]
    low, high = present[0], present[-1]
    edges = _edges(present, decimals)
    if len(edges) - 1 < min(3, len(distinct) - 1):
        # Most areas share one value (no premises eligible yet, no place): quantiles of the distinct values, so
        # that the others are still told apart instead of falling into one class with the crowd.
        edges = _edges(distinct, decimals)
    if len(edges) == 1 or edges[0] == edges[-1]:
        edges = [low, high]
    count = len(edges) - 1
    chosen = _spread(count)
    found = []
    for i in range(count):
        first, last = edges[i], edges[i + 1]
        if count == 1 or first == last:
            label = f"{number_fr(first, decimals)}" if first == last else \
                f"de {number_fr(first, decimals)} à {number_fr(last, decimals)}"
        elif i == 0:
            label = f"de {number_fr(first, decimals)} à {number_fr(last, decimals)}"
        else:
            label = f"plus de {number_fr(first, decimals)} à {number_fr(last, decimals)}"
        found.append(ColourClass(first, last, chosen[i], f"{label} {unit}".strip()))
    return found


def _spread(count: int) -> list[str]:
    """``count`` colours over the whole palette (three classes: light, middle, dark), for contrast between them."""
    if count <= 1:
        return [PALETTE[2]]
    return [PALETTE[round(i * (CLASSES - 1) / (count - 1))] for i in range(count)]


def _edges(present: Sequence[float], decimals: int) -> list[float]:
    low, high = present[0], present[-1]
    cuts: list[float] = []
    if len(present) > 1 and high > low:
        cuts = [round(c, decimals) for c in statistics.quantiles(present, n=CLASSES, method="inclusive")]
    return [round(low, decimals)] + [c for c in dict.fromkeys(cuts) if round(low, decimals) < c < high] + [high]


def classify(value: float | None, classes: Sequence[ColourClass]) -> int | None:
    """The index of the class of ``value`` (the first whose upper bound holds it), ``None`` without a value."""
    if value is None or not classes:
        return None
    for index, found in enumerate(classes):
        if value <= found.high:
            return index
    return len(classes) - 1


def colour_of(value: float | None, classes: Sequence[ColourClass]) -> str:
    index = classify(value, classes)
    return NO_VALUE_COLOUR if index is None else classes[index].colour
