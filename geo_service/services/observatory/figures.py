"""The observatory's charts and static maps, drawn by matplotlib on the server as SVG (Agg, no pyplot state).

Each figure is an accessible image: ``role="img"`` and ``aria-labelledby`` pointing at its own ``<title>`` (what
it shows) and ``<desc>`` (the figures in words, the "as of" date and the sources), so a screen reader gets the
content and the page's table says the same. Text stays text (``svg.fonttype: none``, the page's fonts), ids are
salted per figure so that several figures can sit inline in one page, and the same SVG prints in the EPCI
sheet's PDF. Figures are pure functions of their arguments: the callers cache them per snapshot
(``AppCaches.observatory_figures``).
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Sequence
from datetime import date
from html import escape
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before any other matplotlib import: no display, no GUI toolkit

import geopandas  # noqa: E402
from matplotlib import dates as mdates  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from geo_service.services.observatory.class_breaks import (  # noqa: E402
    NO_VALUE_COLOUR,
    ColourClass,
    colour_of,
    number_fr,
)
from geo_service.services.resident.opening_hours import french_date  # noqa: E402

INK = "#1a1a1a"
ACCENT = "#2c7fb8"
PROJECTION = "#253494"
# rcParams are global to matplotlib: figures are drawn one at a time.
_DRAWING = threading.Lock()
_SAFE_ID = re.compile(r"[^a-z0-9-]")


def _style() -> dict[str, Any]:
    return {"svg.fonttype": "none", "font.family": "DejaVu Sans", "font.size": 9, "text.color": INK,
            "axes.edgecolor": "#555555", "axes.labelcolor": INK, "xtick.color": INK, "ytick.color": INK,
            "svg.hashsalt": None}


def credit(as_of: date, sources: Sequence[str]) -> str:
    return f"Données au {french_date(as_of)} — Sources : {' ; '.join(sources)}"


def to_svg(figure: Figure, figure_id: str, title: str, description: str) -> str:
    """The figure as an inline SVG element with its title and description for assistive technologies."""
    safe = _SAFE_ID.sub("-", figure_id.lower())
    out = io.StringIO()
    with matplotlib.rc_context({**_style(), "svg.hashsalt": safe}):
        figure.savefig(out, format="svg", metadata={"Date": None})
    svg = out.getvalue()
    svg = svg[svg.index("<svg"):]  # no XML declaration or DOCTYPE inside an HTML page
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.DOTALL)
    # matplotlib names its groups figure_1, axes_1…: prefixed, they stay unique among the page's figures.
    svg = svg.replace(' id="', f' id="{safe}-').replace("url(#", f"url(#{safe}-").replace('href="#', f'href="#{safe}-')
    head_end = svg.index(">") + 1
    head = svg[:head_end]
    head = re.sub(r'\s(width|height)="[^"]*"', "", head, count=2)
    head = head.replace("<svg", f'<svg role="img" aria-labelledby="{safe}-titre {safe}-desc" '
                               f'class="obs-figure__svg" focusable="false"', 1)
    return (head + f'<title id="{safe}-titre">{escape(title)}</title><desc id="{safe}-desc">{escape(description)}'
            f"</desc>" + svg[head_end:])


def bar_chart(figure_id: str, title: str, labels: Sequence[str], values: Sequence[float | None], unit: str,
              as_of: date, sources: Sequence[str], decimals: int = 0,
              colours: Sequence[str] | None = None) -> str:
    """Horizontal bars, one per label (an EPCI, a category), its value written at its end."""
    with _DRAWING, matplotlib.rc_context(_style()):
        height = 1.2 + 0.32 * max(len(labels), 1)
        figure = Figure(figsize=(7.2, height), layout="constrained")
        axes = figure.subplots()
        shown = [v or 0.0 for v in values]
        bars = axes.barh(range(len(labels)), shown, color=list(colours) if colours else ACCENT,
                         edgecolor="#333333", linewidth=0.4)
        axes.set_yticks(range(len(labels)), [_short(label) for label in labels])
        axes.invert_yaxis()
        axes.bar_label(bars, [number_fr(v, decimals) if v is not None else "—" for v in values], padding=3,
                       fontsize=8)
        axes.set_xlabel(unit)
        axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: number_fr(x, 0)))
        axes.spines[["top", "right"]].set_visible(False)
        axes.margins(x=0.15)
        figure.suptitle(title, fontsize=10, fontweight="bold", x=0.01, ha="left")
        figure.text(0.01, 0.005, credit(as_of, sources), fontsize=6.5, ha="left", va="bottom", wrap=True)
        figure.get_layout_engine().set(h_pad=0.12)
        words = " ; ".join(f"{label} : {number_fr(v, decimals)} {unit}" if v is not None else
                           f"{label} : sans valeur" for label, v in zip(labels, values, strict=True))
        return to_svg(figure, figure_id, title, f"{words}. {credit(as_of, sources)}.")


def progress_curve(figure_id: str, title: str, history: Sequence[tuple[date, float | None]],
                   projection: Sequence[tuple[date, float]], unit: str, as_of: date,
                   sources: Sequence[str]) -> str:
    """The share of eligible premises over time: what happened (stored snapshots), then what the planned
    dates promise (dashed)."""
    with _DRAWING, matplotlib.rc_context(_style()):
        figure = Figure(figsize=(7.2, 2.9), layout="constrained")
        axes = figure.subplots()
        past = [(d, v) for d, v in history if v is not None]
        if past:
            axes.plot([d for d, _ in past], [v for _, v in past], color=ACCENT, linewidth=2, marker="o",
                      markersize=3, label="constaté")
        if projection:
            axes.plot([d for d, _ in projection], [v for _, v in projection], color=PROJECTION, linewidth=1.6,
                      linestyle="--", marker="s", markersize=3, label="attendu (dates prévues)")
        if unit == "%":
            axes.set_ylim(0, 100)
        axes.set_ylabel(unit)
        axes.yaxis.set_major_formatter(FuncFormatter(lambda y, _: number_fr(y, 0)))
        axes.grid(axis="y", color="#dddddd", linewidth=0.6)
        axes.spines[["top", "right"]].set_visible(False)
        if past or projection:
            axes.legend(loc="lower right", frameon=False, fontsize=8)
        axes.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=7))
        days = [d for d, _ in [*past, *projection]]
        short_span = bool(days) and (max(days) - min(days)).days < 120
        axes.xaxis.set_major_formatter(FuncFormatter(_day_month_year if short_span else _month_year))
        figure.suptitle(title, fontsize=10, fontweight="bold", x=0.01, ha="left")
        figure.text(0.01, 0.005, credit(as_of, sources), fontsize=6.5, ha="left", va="bottom", wrap=True)
        said = [f"{french_date(d)} : {number_fr(v, 1)} {unit}" for d, v in past]
        planned = [f"{french_date(d)} : {number_fr(v, 1)} {unit}" for d, v in projection]
        description = (("Constaté : " + " ; ".join(said) + ". ") if said else "Pas encore d'historique. ") + \
            (("Attendu : " + " ; ".join(planned) + ". ") if planned else "") + credit(as_of, sources) + "."
        return to_svg(figure, figure_id, title, description)


def choropleth(figure_id: str, title: str, areas: dict[str, Any], values: dict[str, float | None],
               classes: Sequence[ColourClass], as_of: date, sources: Sequence[str], unit: str,
               decimals: int = 1) -> str:
    """A static map of ``areas`` (a GeoJSON FeatureCollection with ``code`` and ``name``) in the classes'
    colours, with its legend; the description lists each area's value."""
    with _DRAWING, matplotlib.rc_context(_style()):
        figure = Figure(figsize=(4.6, 4.4), layout="constrained")
        axes = figure.subplots()
        axes.set_axis_off()
        if areas["features"]:
            frame = geopandas.GeoDataFrame.from_features(areas["features"], crs="EPSG:4326").to_crs(2154)
            frame["colour"] = [colour_of(values.get(code), classes) for code in frame["code"]]
            frame.plot(ax=axes, color=frame["colour"], edgecolor="#ffffff", linewidth=0.5)
            frame.boundary.plot(ax=axes, color="#4d4d4d", linewidth=0.3)
        handles = [Patch(facecolor=c.colour, edgecolor="#4d4d4d", label=c.label) for c in classes]
        if any(values.get(f["properties"]["code"]) is None for f in areas["features"]):
            handles.append(Patch(facecolor=NO_VALUE_COLOUR, edgecolor="#4d4d4d", label="sans valeur"))
        axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=7,
                    title=unit, title_fontsize=7)
        figure.suptitle(title, fontsize=9, fontweight="bold", x=0.01, ha="left")
        figure.text(0.01, 0.005, credit(as_of, sources), fontsize=5.5, ha="left", va="bottom", wrap=True)
        names = {f["properties"]["code"]: f["properties"]["name"] for f in areas["features"]}
        words = " ; ".join(f"{names[c]} : {number_fr(values.get(c), decimals)}" if values.get(c) is not None
                           else f"{names[c]} : sans valeur" for c in sorted(names, key=lambda c: names[c]))
        return to_svg(figure, figure_id, title, f"{words}. {credit(as_of, sources)}.")


MONTHS_SHORT = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc.")


def _month_year(x: float, _position: object) -> str:
    day = mdates.num2date(x)
    return f"{MONTHS_SHORT[day.month - 1]} {day.year}"


def _day_month_year(x: float, _position: object) -> str:
    day = mdates.num2date(x)
    return f"{day.day} {MONTHS_SHORT[day.month - 1]} {day.year}"


def _short(label: str, width: int = 38) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"
