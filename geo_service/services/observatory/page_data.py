"""What the observatory's pages show: indicators grouped by theme, one indicator's map and table, an EPCI's sheet.

The pages read the same ``IndicatorTable`` as ``/api/indicators`` and the same ``indicator_values.values``, so
a figure on a page is the API's figure. Everything a page needs is decided here (classes, colours, order,
French wording of numbers); the router only checks the query and renders. A bad query parameter is an
``InvalidParameter`` (400), an unknown EPCI or commune a ``NotFound`` (404), both in French.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Connection

from geo_service.errors import InvalidParameter, NotFound
from geo_service.layers import LayerRegistry
from geo_service.services.app_caches import AppCaches
from geo_service.services.observatory import indicator_values, snapshots
from geo_service.services.observatory.class_breaks import ColourClass, breaks, classify, colour_of, number_fr
from geo_service.services.observatory.indicator_catalogue import BY_ID, INDICATORS, Indicator
from geo_service.services.observatory.indicator_values import IndicatorTable

# Themes of the page's navigation, in order; an indicator goes to the first theme whose pattern its id matches
# (an indicator added to the catalogue later lands in « Autres indicateurs » until a theme names it).
THEMES: tuple[tuple[str, str, str], ...] = (
    ("fibre", "Fibre (FTTH)", r"^(locaux|pm_|nro_)"),
    ("med", "Montée en débit", r"^(sites_med|lignes_med)"),
    ("mobile", "Mobile", r"^(pylones|zone|population_zone|surface_zone)"),
    ("wifi", "Wi-Fi public", r"wifi"),
    ("tiers-lieux", "Tiers-lieux", r"^(tiers_lieux|epci_avec_tiers_lieu)"),
    ("aide", "Aide au numérique", r"^lieux_mediation"),
    ("distances", "Distances", r"^(distance_|part_locaux_au_dela)"),
)
OTHER_THEME = ("autres", "Autres indicateurs")
DEFAULT_INDICATOR = "part_locaux_eligibles"
MAP_LEVELS = {"commune": "Communes", "epci": "EPCI"}
SORTS = {"nom": "nom", "code": "code", "valeur": "valeur"}
ORDERS = ("asc", "desc")
SIREN = re.compile(r"^[0-9]{9}$")
# The third-place target of the programme: at least one per EPCI (FACTS.md).
THIRD_PLACE_TARGET = 1


@dataclass(frozen=True)
class Theme:
    key: str
    label: str
    indicators: tuple[Indicator, ...]


def themes() -> list[Theme]:
    """The catalogue's indicators by theme, each theme in catalogue order; themes without indicators left out."""
    grouped: dict[tuple[str, str], list[Indicator]] = {(k, label): [] for k, label, _ in THEMES}
    grouped[OTHER_THEME] = []
    for indicator in INDICATORS:
        theme = next(((k, label) for k, label, pattern in THEMES if re.search(pattern, indicator.id)), OTHER_THEME)
        grouped[theme].append(indicator)
    return [Theme(k, label, tuple(found)) for (k, label), found in grouped.items() if found]


@dataclass(frozen=True)
class Snapshot:
    """The values the pages show, the day they stand for, and a key that names them (figures are cached by it)."""

    table: IndicatorTable
    day: date
    key: object


def current(conn: Connection, registry: LayerRegistry, caches: AppCaches, departement: str,
            day: date | None = None, indicator: Indicator | None = None) -> Snapshot:
    """The stored snapshot of ``day`` or the nearest earlier one holding ``indicator`` (the latest when ``day`` is
    None), loaded once and shared with ``/api/indicators`` (same cache, same key); a 404 in French when none."""
    ref = snapshots.chosen(conn, day, indicator.measures if indicator else ())
    key = (departement, ref.taken_on, ref.taken_at)
    table = caches.indicators.get_or_build(key, lambda: snapshots.load(conn, registry, ref))
    return Snapshot(table, ref.taken_on, key)


def day_asked(asked: str | None) -> date | None:
    """The ``date`` of the page's form (AAAA-MM-JJ), None when none; anything else is a 400 in French."""
    if asked is None or asked == "":
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", asked):
            raise ValueError(asked)
        return date.fromisoformat(asked)
    except ValueError:
        raise InvalidParameter(f"Date « {asked[:40]} » non reconnue : une date AAAA-MM-JJ est attendue, par "
                               "exemple 2026-12-04.", parameter="date") from None


@dataclass(frozen=True)
class SnapshotDay:
    """A day the page can show, as its date list offers it."""

    day: date
    backfilled: bool


def snapshot_days(conn: Connection, indicator: Indicator) -> list[SnapshotDay]:
    """The stored days that hold ``indicator``, latest first (back-filled days hold the premises' only)."""
    return [SnapshotDay(day, kind == "backfilled") for day, kind in reversed(snapshots.dates(conn, indicator.measures))]


def share_history(conn: Connection, registry: LayerRegistry, caches: AppCaches, snapshot: Snapshot, level: str,
                  code: str) -> list[tuple[date, float | None]]:
    """The share of eligible premises of one area in every stored snapshot (the sheet's curve), read once per
    latest snapshot."""
    def read() -> list[tuple[date, float | None]]:
        found = snapshots.history(conn, registry, [BY_ID["part_locaux_eligibles"]], level, code)
        return [(day, value.value) for day, value in found if value.level == level and value.code == code]

    return caches.observatory_figures.get_or_build((snapshot.key, "history", level, code), read)


def decimals_of(indicator: Indicator) -> int:
    return 1 if indicator.denominator is not None or indicator.unit in ("%", "km") else 0


def value_text(indicator: Indicator, value: float | None) -> str:
    """``12 345 locaux``, ``87,3 %``, ``—`` without a value (no premises, no population)."""
    if value is None:
        return "—"
    unit = indicator.unit
    number = number_fr(value, decimals_of(indicator))
    return f"{number}\u00a0%" if unit == "%" else f"{number}\u00a0{unit}"


# -- one indicator: map, legend, table ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    code: str
    name: str
    epci_code: str | None
    epci_name: str | None
    value: float | None
    text: str
    colour: str
    class_label: str
    categories: tuple[str, ...] = ()


@dataclass
class IndicatorView:
    indicator: Indicator
    level: str
    epci: indicator_values.Area | None
    rows: list[Row]
    classes: list[ColourClass]
    departement: str
    as_of: date
    sources: tuple[str, ...]
    sort: str
    order: str
    mappable: bool
    categories: list[str] = field(default_factory=list)
    category_totals: list[tuple[str, float | None]] = field(default_factory=list)

    def map_data(self) -> dict[str, list[str]]:
        """What the map needs per area code: its colour and its value in words (joined with the outlines)."""
        return {row.code: [row.colour, row.text] for row in self.rows}

    def category_labels(self) -> list[str]:
        return [quarter_label(c) or "sans catégorie" for c in self.categories]


def chosen_indicator(asked: str | None) -> Indicator:
    if asked is None or asked == "":
        return BY_ID[DEFAULT_INDICATOR]
    if asked not in BY_ID:
        raise InvalidParameter(f"Indicateur inconnu : « {asked[:80]} ». Choisissez un indicateur dans la liste.",
                               parameter="indicateur")
    return BY_ID[asked]


def chosen(asked: str | None, allowed: dict[str, str] | tuple[str, ...], default: str, name: str) -> str:
    if asked is None or asked == "":
        return default
    if asked not in allowed:
        raise InvalidParameter(f"Valeur « {asked[:40]} » non reconnue pour {name} : valeurs possibles "
                               f"{', '.join(allowed)}.", parameter=name)
    return asked


def epci_area(table: IndicatorTable, siren: str | None, parameter: str = "epci") -> indicator_values.Area | None:
    """The EPCI named (9 digits), ``None`` when none is; a malformed SIREN is a 400, an unknown one a 404."""
    if siren is None or siren == "":
        return None
    if not SIREN.match(siren):
        raise InvalidParameter(f"« {siren[:20]} » n'est pas un SIREN d'EPCI (9 chiffres).", parameter=parameter)
    area = table.areas.get(("epci", siren))
    if area is None:
        raise NotFound(f"Aucun EPCI de SIREN « {siren} » dans l'observatoire.", parameter=parameter)
    return area


def level_classes(table: IndicatorTable, indicator: Indicator, level: str) -> list[ColourClass]:
    """The classes of ``indicator`` over every area of ``level`` of the département (the same on every map)."""
    return breaks([v.value for v in indicator_values.values(table, [indicator], level)], indicator.unit)


def _sorted(rows: list[Row], sort: str, order: str) -> list[Row]:
    def key(row: Row) -> tuple:
        if sort == "valeur":
            return (row.value is None, row.value if row.value is not None else 0.0, row.name)
        return (row.code,) if sort == "code" else (row.name.casefold(), row.code)
    found = sorted(rows, key=key, reverse=order == "desc")
    if sort == "valeur" and order == "desc":
        # Areas without a value stay at the end, whichever the order.
        found = [r for r in found if r.value is not None] + [r for r in found if r.value is None]
    return found


def indicator_view(table: IndicatorTable, indicator: Indicator, level: str, epci: indicator_values.Area | None,
                   sort: str, order: str) -> IndicatorView:
    """One indicator for the communes (of one EPCI, when given) or the EPCI: rows, classes and their colours."""
    if level not in indicator.levels:
        raise InvalidParameter(f"L'indicateur « {indicator.label} » n'existe pas à l'échelon {level}.",
                               parameter="echelon")
    found = indicator_values.values(table, [indicator], level)
    epci_names = {a.code: a.name for a in table.areas.values() if a.level == "epci"}
    commune_epci = {a.code: a.epci_siren for a in table.areas.values() if a.level == "commune"}

    def epci_of(code: str) -> str | None:
        return commune_epci.get(code) if level == "commune" else code

    if epci is not None:
        found = [v for v in found if epci_of(v.code) == epci.code]
    dep = indicator_values.values(table, [indicator], "departement")
    as_of = dep[0].as_of if dep else (found[0].as_of if found else table.computed_on)
    sources = dep[0].sources if dep else tuple(indicator.sources)
    if indicator.breakdown is None:
        classes = level_classes(table, indicator, level)
        rows = [Row(v.code, v.name, epci_of(v.code), epci_names.get(epci_of(v.code) or ""), v.value,
                    value_text(indicator, v.value), colour_of(v.value, classes),
                    _class_label(v.value, classes)) for v in found]
        return IndicatorView(indicator, level, epci, _sorted(rows, sort, order), classes,
                             value_text(indicator, dep[0].value) if dep else "—", as_of, sources, sort, order, True)
    categories = sorted({v.category or "" for v in found} | {v.category or "" for v in dep})
    by_area: dict[str, dict[str, float | None]] = {}
    names: dict[str, str] = {}
    for v in found:
        by_area.setdefault(v.code, {})[v.category or ""] = v.value
        names[v.code] = v.name
    areas = [a for a in table.areas.values() if a.level == level and (epci is None or epci_of(a.code) == epci.code)]
    rows = []
    for area in areas:
        cells = by_area.get(area.code, {})
        total = sum(x or 0 for x in cells.values())
        rows.append(Row(area.code, area.name, epci_of(area.code), epci_names.get(epci_of(area.code) or ""), total,
                        value_text(indicator, total), "", "",
                        tuple(value_text(indicator, cells.get(c, 0.0)) for c in categories)))
    totals = [(c, next((v.value for v in dep if (v.category or "") == c), None)) for c in categories]
    return IndicatorView(indicator, level, epci, _sorted(rows, sort, order), [],
                         value_text(indicator, sum(x or 0 for _, x in totals)), as_of, sources, sort, order, False,
                         categories, totals)


def _class_label(value: float | None, classes: list[ColourClass]) -> str:
    if value is None or not classes:
        return "sans valeur"
    index = classify(value, classes)
    return f"classe {index + 1} sur {len(classes)}" if index is not None else "sans valeur"


# -- one EPCI's sheet ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyFigure:
    indicator: str
    label: str
    value: float | None
    text: str
    note: str = ""


@dataclass(frozen=True)
class CommuneLine:
    code: str
    name: str
    premises: str
    eligible_share: str
    eligible_share_value: float | None
    wifi: str
    help_places: str


@dataclass
class Sheet:
    epci: indicator_values.Area
    day: date
    as_of: date
    key_figures: list[KeyFigure]
    expected: list[tuple[str, str]]
    communes: list[CommuneLine]
    sources: tuple[str, ...]
    departement_share: str


def _value(table: IndicatorTable, indicator_id: str, level: str, code: str, category: str = "") -> float | None:
    return table.value(BY_ID[indicator_id], level, code, category)


def quarter_label(category: str) -> str:
    """``2026-T3`` → ``3e trimestre 2026`` (``1er`` for the first)."""
    match = re.match(r"^(\d{4})-T([1-4])$", category)
    if not match:
        return category
    n = int(match.group(2))
    return f"{'1er' if n == 1 else f'{n}e'} trimestre {match.group(1)}"


def sheet(table: IndicatorTable, siren: str, day: date) -> Sheet:
    """What an EPCI brings to its council: key figures, what is expected per quarter, its communes' state."""
    epci = epci_area(table, siren, "siren")
    assert epci is not None
    code = epci.code

    def figure(indicator_id: str, note: str = "", label: str | None = None) -> KeyFigure:
        indicator = BY_ID[indicator_id]
        value = _value(table, indicator_id, "epci", code)
        return KeyFigure(indicator_id, label or indicator.label, value, value_text(indicator, value), note)

    covered = _value(table, "communes_couvertes_wifi", "epci", code)
    third = _value(table, "tiers_lieux", "epci", code) or 0
    figures = [
        figure("locaux"),
        figure("locaux_eligibles"),
        figure("part_locaux_eligibles"),
        figure("communes_avec_borne_wifi_installee",
               f"sur {number_fr(covered)} communes couvertes par le programme" if covered is not None else ""),
        figure("communes_avec_borne_wifi_programmee"),
        figure("tiers_lieux", "objectif atteint (au moins 1)" if third >= THIRD_PLACE_TARGET
               else "objectif non atteint : au moins 1 tiers-lieu par EPCI"),
        figure("lieux_mediation"),
        figure("lieux_mediation_pour_10000_habitants"),
        figure("distance_moyenne_mediation"),
        figure("part_locaux_au_dela_10km_mediation"),
        figure("distance_moyenne_tiers_lieu"),
        figure("part_locaux_au_dela_10km_tiers_lieu"),
    ]
    expected_indicator = BY_ID["locaux_eligibles_prevus_par_trimestre"]
    now = f"{day.year}-T{(day.month - 1) // 3 + 1}"
    quarters = {c: table.value(expected_indicator, "epci", code, c) or 0.0
                for c in table.categories(expected_indicator, "epci", code)}
    late = sum(v for c, v in quarters.items() if c < now)
    expected = ([("Date prévue passée (en retard)", value_text(expected_indicator, late))] if late else []) + [
        (quarter_label(c), value_text(expected_indicator, v)) for c, v in sorted(quarters.items()) if c >= now]
    communes = []
    for area in sorted((a for a in table.areas.values() if a.level == "commune" and a.epci_siren == code),
                       key=lambda a: (a.name.casefold(), a.code)):
        share = _value(table, "part_locaux_eligibles", "commune", area.code)
        covered_here = _value(table, "communes_couvertes_wifi", "commune", area.code)
        installed = _value(table, "communes_avec_borne_wifi_installee", "commune", area.code)
        planned = _value(table, "communes_avec_borne_wifi_programmee", "commune", area.code)
        wifi = ("hors programme" if not covered_here else "installée" if installed else
                "programmée" if planned else "aucune")
        communes.append(CommuneLine(
            area.code, area.name, number_fr(_value(table, "locaux", "commune", area.code)),
            value_text(BY_ID["part_locaux_eligibles"], share), share, wifi,
            number_fr(_value(table, "lieux_mediation", "commune", area.code))))
    chosen_values = indicator_values.values(table, [BY_ID[f.indicator] for f in figures], "epci", code)
    as_of = max((v.as_of for v in chosen_values), default=day)
    sources = tuple(dict.fromkeys(s for v in chosen_values for s in v.sources))
    dep_share = _value(table, "part_locaux_eligibles", "departement", next(
        a.code for a in table.areas.values() if a.level == "departement"))
    return Sheet(epci, day, as_of, figures, expected, communes, sources,
                 value_text(BY_ID["part_locaux_eligibles"], dep_share))


def epcis(table: IndicatorTable) -> list[indicator_values.Area]:
    return sorted((a for a in table.areas.values() if a.level == "epci"), key=lambda a: a.name.casefold())
