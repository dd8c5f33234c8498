"""ARCEP « Mon réseau mobile » sites → ``mobile_masts``, one mast per physical site.

The file has one row per operator and site (``;``, ``x``/``y`` Lambert-93 and ``latitude``/``longitude``
WGS84, decimal point or comma). Rows at the same position (to the metre, Lambert-93) are one physical
site: its mast lists the operators, each operator's technologies, its stations (each once, also when
operators share one), and the programme flags ``site_ZB``, ``site_DCC``, ``site_strategique``. The
``dispositif`` follows the flags, except that a mast the Département recorded as its own (``departemental``)
stays so when the flags say nothing.
Names are placeholders set on creation only (ARCEP gives none): a name people entered is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from geo_service.services.importers.formats.mast_keys import MCC_MNC, OPERATORS, STATIONS_MERGE, mast_name, resolve_keys
from geo_service.services.importers.framework import coordinates
from geo_service.services.importers.framework.import_run import ImportContext, Kind
from geo_service.services.importers.framework.validation import Validator
from geo_service.services.importers.framework.values import insee_code, parse_bool, station_number

TECHNOS = ("2g", "3g", "4g", "5g")
FLAGS = {"site_zb": "site_zb", "site_dcc": "site_dcc", "site_strategique": "site_strategique"}
FIELDS = ("id_station_anfr", "nom", "code_insee", "operateurs", *(f"technos_{op}" for op in OPERATORS),
          "dispositif", "site_zb", "site_dcc", "site_strategique", "statut", "stations_anfr")
DISPOSITIF_MERGE = ("CASE WHEN {new}.dispositif = 'commercial' AND {old}.dispositif = 'departemental' "
                    "THEN {old}.dispositif ELSE {new}.dispositif END")


@dataclass
class _Site:
    line: int
    rows: int
    lon: float
    lat: float
    code: str
    commune: str | None
    stations: set[str] = field(default_factory=set)  # operators sharing one station list it once each
    technos: dict[str, set[str]] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(FLAGS, False))


def _flag(rec: dict[str, str], column: str) -> bool:
    """A 0/1 column; anything else raises ``ValueError`` naming the column."""
    value = rec.get(column)
    try:
        return bool(value) and parse_bool(value or "")
    except ValueError:
        raise ValueError(column, f"0 ou 1 attendu, lu « {value} »") from None


def run(ctx: ImportContext) -> None:
    """Group the territory's rows by position, then write one mast per group."""
    layer = ctx.layer("mobile_masts")
    row_check = Validator(layer, only=("id_station_anfr", "code_insee"))
    sites: dict[tuple[int, int], _Site] = {}
    with ctx.csv() as table:
        table.require("code_op", "id_station_anfr", ("insee_com", "insee_dep"), "site_2g", "site_3g", "site_4g",
                      ("longitude", "x"), ("latitude", "y"))
        file = table.label
        code_at, dep_at = table.index("insee_com"), table.index("insee_dep")
        for line, row in table.rows(ctx.bad_width(file, table.width)):
            ctx.report.read += 1
            code = insee_code(row[code_at]) if code_at is not None else None
            if not ctx.in_territory(code or (row[dep_at].strip().zfill(2) if dep_at is not None else "")):
                ctx.report.outside += 1
                continue
            rec = table.record(row)
            _read_row(ctx, file, line, rec, code, row_check, sites)
    keys = resolve_keys(ctx.conn, (s.stations for s in sites.values()))
    validator = Validator(layer, only=FIELDS)
    target = ctx.target("mobile_masts", FIELDS, insert_only=frozenset({"nom"}),
                        merge={"stations_anfr": STATIONS_MERGE, "dispositif": DISPOSITIF_MERGE})
    stage = ctx.stage(target, file)
    for site, key in zip(sites.values(), keys, strict=True):
        flags = site.flags
        dispositif = ("zone blanche centre-bourg" if flags["site_zb"] else
                      "couverture ciblee" if flags["site_dcc"] else "commercial")
        values, problems = validator.check({
            "id_station_anfr": key, "nom": mast_name(None, site.commune, key), "code_insee": site.code,
            "operateurs": sorted(site.technos, key=OPERATORS.index),
            **{f"technos_{op}": sorted(site.technos.get(op, ())) or None for op in OPERATORS},
            "dispositif": dispositif, **flags, "statut": "en service", "stations_anfr": sorted(site.stations)})
        for name, reason in problems:
            ctx.reject(file, site.line, name, values.get(name), reason)
        if not problems:
            stage.add(site.line, values, coordinates.point_ewkb(site.lon, site.lat))
    ctx.write(stage, "id_station_anfr", "longitude, latitude", rows=False)
    kept = stage.lines()
    ctx.report.kept += sum(site.rows for site in sites.values() if site.line in kept)
    stage.drop()


def _read_row(ctx: ImportContext, file: str, line: int, rec: dict[str, str], code: str | None,
              row_check: Validator, sites: dict[tuple[int, int], _Site]) -> None:
    """Check one operator's row and add it to the site at its position."""
    operator = MCC_MNC.get(rec.get("code_op", "").split(".")[0])
    if operator is None:
        ctx.reject(file, line, "code_op", rec.get("code_op"), "code opérateur (MCC-MNC) inconnu : 20801, 20810, "
                                                              "20815 ou 20820 attendu")
        return
    station = station_number(rec.get("id_station_anfr"))
    values, problems = row_check.check({"id_station_anfr": station, "code_insee": code})
    technos, flags = set(), {}
    try:
        technos = {t.upper() for t in TECHNOS if _flag(rec, f"site_{t}")}
        flags = {name: _flag(rec, column) for name, column in FLAGS.items()}
    except ValueError as exc:
        problems.append(exc.args)
    for name, reason in problems:
        ctx.reject(file, line, name, rec.get(name, values.get(name)), reason)
    try:
        lon, lat = _position(rec)
    except ValueError as exc:
        ctx.reject(file, line, "longitude, latitude", f"{rec.get('longitude')}, {rec.get('latitude')}", str(exc))
        return
    if problems or station is None:
        return
    x, y = coordinates.from_wgs84(coordinates.LAMBERT93).transform(lon, lat)
    site = sites.setdefault((round(x), round(y)), _Site(line, 0, lon, lat, code or "", rec.get("nom_com") or None))
    site.rows += 1
    site.stations.add(station)
    site.technos.setdefault(operator, set()).update(technos)
    for name, value in flags.items():
        site.flags[name] = site.flags[name] or value


def _position(rec: dict[str, str]) -> tuple[float, float]:
    """WGS84 from latitude/longitude, or from Lambert-93 x/y when those are missing or unreadable."""
    try:
        return coordinates.point(rec.get("longitude"), rec.get("latitude"), coordinates.WGS84)
    except ValueError:
        if not rec.get("x"):
            raise
        return coordinates.point(rec.get("x"), rec.get("y"), coordinates.LAMBERT93)


KIND = Kind(
    name="arcep-sites",
    description="Sites mobiles de l'ARCEP (Mon réseau mobile) : opérateurs, technologies 2G à 5G, programmes "
                "zones blanches et couverture ciblée",
    targets="mobile_masts",
    dataset="ARCEP — Mon réseau mobile, sites",
    publisher="ARCEP",
    licence="Licence Ouverte (Etalab)",
    run=run,
)
