"""ANFR « installations radioélectriques de plus de 5 watts » → ``mobile_masts`` enriched and completed.

The monthly zip holds ``SUP_*.txt`` tables (``;``, Windows-1252, DMS coordinates, decimal comma, dates
DD/MM/YYYY); the reference tables (``SUP_EXPLOITANT``, ``SUP_PROPRIETAIRE``) come in a second zip: put
both in one folder (or one zip) and import that (``SUP_EXPLOITANT`` is required: it names the operators).
Read in four streamed passes, keeping only the territory's supports and stations:

1. ``SUP_SUPPORT``: supports of the territory's communes, their position (DMS, sign applied to the whole
   value), height, owner, place name, and the stations on them;
2. ``SUP_STATION``: each station's operator and service date;
3. ``SUP_EMETTEUR``: each station's systems (``LTE 800``, ``5G NR 3500``…);
4. reference tables: operator and owner names.

A support carrying a mobile operator's station with a mobile system (GSM, UMTS, LTE, 5G NR) is a mast,
joined to the masts of ``arcep-sites`` by station number. On a known mast the import sets the height,
owner, systems, service date and stations; operators, technologies, position and name stay ARCEP's.
An unknown support becomes a new mast (technologies from its systems, « projeté » until in service).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from geo_service.errors import ImportFileError
from geo_service.services.importers.formats.mast_keys import (
    OPERATOR_NAMES,
    OPERATORS,
    STATIONS_MERGE,
    mast_name,
    resolve_keys,
)
from geo_service.services.importers.framework import coordinates
from geo_service.services.importers.framework.import_run import ImportContext, Kind
from geo_service.services.importers.framework.sources import Member
from geo_service.services.importers.framework.validation import Validator
from geo_service.services.importers.framework.values import (
    dms_to_decimal,
    parse_date,
    parse_float,
    plain,
    station_number,
)

SYSTEM_TECHNO = (("GSM", "2G"), ("UMTS", "3G"), ("LTE", "4G"), ("5G", "5G"))
FIELDS = ("id_station_anfr", "nom", "code_insee", "operateurs", *(f"technos_{op}" for op in OPERATORS),
          "dispositif", "proprietaire", "hauteur_m", "statut", "date_mise_en_service", "stations_anfr", "systemes")
# ARCEP's sites file is the reference for what runs on a mast; ANFR adds what ARCEP does not say.
ARCEP_OWNS = frozenset({"nom", "code_insee", "operateurs", *(f"technos_{op}" for op in OPERATORS), "dispositif",
                        "geom"})
STATUT_MERGE = "CASE WHEN {old}.statut = 'en service' THEN {old}.statut ELSE {new}.statut END"
COLUMNS = {"hauteur_m": "SUP_NM_HAUT", "code_insee": "COM_CD_INSEE", "id_station_anfr": "STA_NM_ANFR"}
SUPPORT_COLUMNS = ("sup_id", "sta_nm_anfr", "cor_nb_dg_lat", "cor_nb_mn_lat", "cor_nb_sc_lat", "cor_cd_ns_lat",
                   "cor_nb_dg_lon", "cor_nb_mn_lon", "cor_nb_sc_lon", "cor_cd_ew_lon", "com_cd_insee")


@dataclass
class _Support:
    line: int
    rows: int
    lon: float
    lat: float
    code: str
    height: float | None
    owner_id: str | None
    place: str | None
    stations: set[str] = field(default_factory=set)


@dataclass
class _Station:
    operator_id: str | None = None
    in_service: date | None = None
    systems: set[str] = field(default_factory=set)


def _member(ctx: ImportContext, name: str, required: bool = True) -> Member | None:
    member = ctx.source.find(name)
    if member is None and required:
        raise ImportFileError(f"{ctx.source.name} : {name} introuvable (archive ou dossier de l'export ANFR "
                              "« SUP_*.txt » attendu)")
    return member


def run(ctx: ImportContext) -> None:
    """The four passes, then one mast per support carrying mobile stations."""
    supports_member = _member(ctx, "SUP_SUPPORT.txt")
    stations_member, systems_member = _member(ctx, "SUP_STATION.txt"), _member(ctx, "SUP_EMETTEUR.txt")
    supports, station_support = _read_supports(ctx, supports_member)
    stations = {s: _Station() for s in station_support}
    with ctx.csv(stations_member) as table:
        table.require("sta_nm_anfr", "adm_id")
        for line, row in table.rows(ctx.bad_width(table.label, table.width)):
            rec = table.record(row, ("sta_nm_anfr", "adm_id", "dte_en_service"))
            station = stations.get(station_number(rec["sta_nm_anfr"]) or "")
            if station is not None:
                station.operator_id = rec["adm_id"] or None
                station.in_service = _date(ctx, table.label, line, "DTE_EN_SERVICE", rec.get("dte_en_service"))
    with ctx.csv(systems_member) as table:
        table.require("sta_nm_anfr", "emr_lb_systeme")
        for _line, row in table.rows(ctx.bad_width(table.label, table.width)):
            rec = table.record(row, ("sta_nm_anfr", "emr_lb_systeme"))
            station = stations.get(station_number(rec["sta_nm_anfr"]) or "")
            if station is not None and rec["emr_lb_systeme"]:
                station.systems.add(" ".join(rec["emr_lb_systeme"].split()))
    _member(ctx, "SUP_EXPLOITANT.txt")
    operators = _reference(ctx, "SUP_EXPLOITANT.txt", "adm_id", "adm_lb_nom")
    owners = _reference(ctx, "SUP_PROPRIETAIRE.txt", "tpo_id", "tpo_lb")
    _write(ctx, supports, stations, operators, owners, supports_member.basename)


def _read_supports(ctx: ImportContext, member: Member) -> tuple[dict[str, _Support], dict[str, str]]:
    """Supports of the territory (by commune code), their stations, and each station's support."""
    supports: dict[str, _Support] = {}
    station_support: dict[str, str] = {}
    with ctx.csv(member) as table:
        table.require(*SUPPORT_COLUMNS)
        file = table.label
        for line, code, rec in ctx.territory_rows(table, "com_cd_insee"):
            support_id, station = rec["sup_id"], station_number(rec["sta_nm_anfr"])
            if support_id not in supports:
                try:
                    lat = dms_to_decimal(*_dms(rec, "lat"), rec["cor_cd_ns_lat"])
                    lon = dms_to_decimal(*_dms(rec, "lon"), rec["cor_cd_ew_lon"])
                    coordinates.check_point(lon, lat, coordinates.WGS84)
                except ValueError as exc:
                    ctx.reject(file, line, "COR_NB_*_LAT/LON", _dms_text(rec), str(exc))
                    continue
                height = None
                if rec.get("sup_nm_haut"):
                    try:
                        height = parse_float(rec["sup_nm_haut"])
                    except ValueError as exc:
                        ctx.warn(file, line, "SUP_NM_HAUT", rec["sup_nm_haut"], f"{exc} : hauteur ignorée")
                place = " ".join(v for v in (rec.get("adr_lb_lieu"), rec.get("adr_lb_add1")) if v) or None
                supports[support_id] = _Support(line, 0, lon, lat, code or "", height, rec.get("tpo_id") or None,
                                                place)
            supports[support_id].rows += 1
            if station:
                supports[support_id].stations.add(station)
                station_support.setdefault(station, support_id)
    return supports, station_support


def _dms(rec: dict[str, str], axis: str) -> tuple[float, float, float]:
    up = axis.upper()
    try:
        return tuple(parse_float(rec[f"cor_nb_{unit}_{axis}"] or "0") for unit in ("dg", "mn", "sc"))  # type: ignore[return-value]
    except ValueError as exc:
        raise ValueError(f"coordonnée {up} illisible ({exc})") from None


def _dms_text(rec: dict[str, str]) -> str:
    return (f"{rec['cor_nb_dg_lat']}°{rec['cor_nb_mn_lat']}'{rec['cor_nb_sc_lat']}\"{rec['cor_cd_ns_lat']} "
            f"{rec['cor_nb_dg_lon']}°{rec['cor_nb_mn_lon']}'{rec['cor_nb_sc_lon']}\"{rec['cor_cd_ew_lon']}")


def _date(ctx: ImportContext, file: str, line: int, column: str, raw: str | None) -> date | None:
    if not raw:
        return None
    try:
        return parse_date(raw)
    except ValueError as exc:
        ctx.warn(file, line, column, raw, f"{exc} : date ignorée")
        return None


def _reference(ctx: ImportContext, name: str, key: str, label: str) -> dict[str, str]:
    member = _member(ctx, name, required=False)
    if member is None:
        ctx.report.notes.append(f"{name} absent : joignez la table de référence de l'ANFR pour "
                                f"{'les opérateurs' if key == 'adm_id' else 'les propriétaires'}")
        return {}
    with ctx.csv(member) as table:
        table.require(key, label)
        return {r[key]: r[label] for _, row in table.rows() if (r := table.record(row, (key, label)))[key]}


def _technos(systems: set[str]) -> list[str]:
    return sorted({techno for system in systems for prefix, techno in SYSTEM_TECHNO if system.startswith(prefix)})


def _write(ctx: ImportContext, supports: dict[str, _Support], stations: dict[str, _Station],
           operators: dict[str, str], owners: dict[str, str], file: str) -> None:
    """One mast per support with at least one mobile station."""
    masts = []
    for support in supports.values():
        mobile = {}
        for number in sorted(support.stations):
            station = stations[number]
            operator = OPERATOR_NAMES.get(plain(operators.get(station.operator_id or "", "")))
            if operator and _technos(station.systems):
                mobile[number] = (operator, station)
        if mobile:
            masts.append((support, mobile))
    other = len(supports) - len(masts)
    if other:
        ctx.report.notes.append(f"{other} support(s) sans station mobile (GSM, UMTS, LTE, 5G NR des quatre "
                                "opérateurs) ignoré(s)")
    keys = resolve_keys(ctx.conn, (list(mobile) for _, mobile in masts))
    validator = Validator(ctx.layer("mobile_masts"), only=FIELDS)
    target = ctx.target("mobile_masts", FIELDS, insert_only=ARCEP_OWNS,
                        merge={"stations_anfr": STATIONS_MERGE, "statut": STATUT_MERGE})
    stage = ctx.stage(target, file)
    today = date.today()
    for (support, mobile), key in zip(masts, keys, strict=True):
        technos: dict[str, set[str]] = {}
        for operator, station in mobile.values():
            technos.setdefault(operator, set()).update(_technos(station.systems))
        started = sorted(s.in_service for _, s in mobile.values() if s.in_service)
        values, problems = validator.check({
            "id_station_anfr": key, "nom": mast_name(support.place, None, key), "code_insee": support.code,
            "operateurs": sorted(technos, key=OPERATORS.index),
            **{f"technos_{op}": sorted(technos.get(op, ())) or None for op in OPERATORS},
            "dispositif": "commercial", "proprietaire": owners.get(support.owner_id or "") or None,
            "hauteur_m": support.height,
            "statut": "en service" if started and started[0] <= today else "projete",
            "date_mise_en_service": started[0] if started else None, "stations_anfr": sorted(mobile),
            "systemes": sorted({s for _, st in mobile.values() for s in st.systems})})
        for name, reason in problems:
            ctx.reject(file, support.line, COLUMNS.get(name, name), values.get(name), reason)
        if not problems:
            stage.add(support.line, values, coordinates.point_ewkb(support.lon, support.lat))
    ctx.write(stage, "STA_NM_ANFR", "COR_NB_*_LAT/LON", rows=False)
    kept = stage.lines()
    ctx.report.kept += sum(support.rows for support, _ in masts if support.line in kept)
    stage.drop()


KIND = Kind(
    name="anfr",
    description="Export de l'ANFR (installations radioélectriques > 5 W) : hauteur, propriétaire, systèmes "
                "(LTE 800, 5G NR 3500…) et dates des sites mobiles",
    targets="mobile_masts",
    dataset="ANFR — installations radioélectriques de plus de 5 watts",
    publisher="ANFR",
    licence="Licence Ouverte (Etalab)",
    run=run,
)
