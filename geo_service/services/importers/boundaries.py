"""Base boundaries: load the territory's communes, EPCI and outline into PostGIS.

Two sources: a folder of GeoJSON files (the 2018 boundaries of ``../shared/data/lot``, see its SOURCES.md)
or the public API geo.api.gouv.fr (current communes). Everything is read and checked before the first
write, so bad input raises ``BoundaryError`` and leaves the database as it was. The caller owns the
transaction: nothing here commits or rolls back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import shapely
import shapely.geometry
from shapely.errors import ShapelyError
from sqlalchemy import Connection, text

from geo_service.services.resident import geocoder
from geo_service.settings import TerritorySettings

INSEE_CODE = re.compile(r"^[0-9][0-9AB][0-9]{3}$")
SIREN = re.compile(r"^[0-9]{9}$")
API_TIMEOUT_S = 60.0
MAX_LISTED_ERRORS = 10
# Input geometry → valid MultiPolygon in EPSG:4326 (repairs self-intersections, drops lines and points).
_GEOM_SQL = "ST_Multi(ST_CollectionExtract(ST_MakeValid({}), 3))"


class BoundaryError(Exception):
    """Boundary input that cannot be loaded (French message); raised before anything is written."""


@dataclass(frozen=True)
class BoundaryReport:
    """What a load wrote: counts of rows and where they came from."""

    communes: int
    current_communes: int
    epci: int
    source: str

    def summary(self) -> str:
        """One French sentence for the command line and the admin page."""
        return (f"{_plural(self.communes, 'commune')} ({_plural(self.current_communes, 'commune actuelle')})"
                f" et {self.epci} EPCI chargés depuis {self.source}")


@dataclass
class _Commune:
    code_insee: str
    nom: str
    code_insee_actuel: str
    nom_actuel: str
    population: int | None
    epci_siren: str | None
    epci_nom: str | None
    wkb: bytes


@dataclass
class _Epci:
    siren: str
    nom: str
    population: int | None
    communes_dans_le_territoire: int | None
    communes_total: int | None
    wkb: bytes | None  # None: the union of the territory's communes of this EPCI


def _plural(count: int, noun: str) -> str:
    words = noun.split(" ") if count > 1 else [noun]
    return f"{count} " + (" ".join(w + "s" for w in words) if count > 1 else noun)


class _Problems:
    """Collects the faults of an input so the user sees several at once, not one per run."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where} : {message}")

    def raise_if_any(self) -> None:
        if not self.items:
            return
        shown = self.items[:MAX_LISTED_ERRORS]
        lines = "\n".join(f"  - {item}" for item in shown)
        more = len(self.items) - len(shown)
        tail = f"\n  … et {more} autre(s) erreur(s)" if more else ""
        raise BoundaryError(f"limites invalides, base inchangée :\n{lines}{tail}")


# --- checks shared by both sources --------------------------------------------------------------
def _features(collection: Any, label: str) -> list[dict]:
    if (not isinstance(collection, dict) or collection.get("type") != "FeatureCollection"
            or not isinstance(collection.get("features"), list)):
        raise BoundaryError(f"{label} : une FeatureCollection GeoJSON est attendue")
    return collection["features"]


def _props(feature: Any) -> dict:
    props = feature.get("properties") if isinstance(feature, dict) else None
    return props if isinstance(props, dict) else {}


def _text(props: dict, key: str, where: str, problems: _Problems, required: bool = True) -> str | None:
    value = props.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.add(where, f"propriété « {key} » manquante")
        return None
    if not isinstance(value, str):
        problems.add(where, f"propriété « {key} » : texte attendu, reçu {value!r}")
        return None
    return value.strip()


def _count(props: dict, keys: tuple[str, ...], where: str, problems: _Problems) -> int | None:
    key = next((k for k in keys if k in props), keys[0])
    value = props.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        problems.add(where, f"propriété « {key} » : entier positif attendu, reçu {value!r}")
        return None
    return value


def _geometry(feature: Any, where: str, problems: _Problems) -> bytes | None:
    """The feature's (Multi)Polygon as WKB, after checking it parses, has an area and is in degrees."""
    raw = feature.get("geometry") if isinstance(feature, dict) else None
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind not in ("Polygon", "MultiPolygon"):
        problems.add(where, f"géométrie Polygon ou MultiPolygon attendue, reçu {kind or 'aucune'}")
        return None
    try:
        geom = shapely.geometry.shape(raw)
        fixed = geom if geom.is_valid else shapely.make_valid(geom)
    except (ShapelyError, TypeError, ValueError, IndexError, KeyError, AttributeError):
        problems.add(where, "coordonnées de la géométrie illisibles")
        return None
    if geom.is_empty or fixed.area <= 0:
        problems.add(where, "géométrie vide ou sans surface")
        return None
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        problems.add(where, "coordonnées hors WGS84 (longitude, latitude en degrés, EPSG:4326 attendu)")
        return None
    return shapely.to_wkb(geom)


def _check_territory(communes: list[_Commune], epcis: list[_Epci], dep: str, label: str,
                     problems: _Problems) -> None:
    """Every commune belongs to the département, codes are unique, EPCI references resolve."""
    if not communes and not problems.items:
        problems.add(label, f"aucune commune du département {dep}")
    seen: set[str] = set()
    for c in communes:
        if not INSEE_CODE.match(c.code_insee) or not c.code_insee.startswith(dep):
            problems.add(f"{label}, commune {c.code_insee} ({c.nom})",
                         f"code INSEE hors du département {dep}")
        if not INSEE_CODE.match(c.code_insee_actuel):
            problems.add(f"{label}, commune {c.code_insee}", f"code actuel invalide {c.code_insee_actuel!r}")
        if c.code_insee in seen:
            problems.add(f"{label}, commune {c.code_insee}", "code INSEE en double")
        seen.add(c.code_insee)
    sirens = {e.siren for e in epcis}
    for siren in sorted({c.epci_siren for c in communes if c.epci_siren} - sirens):
        problems.add(label, f"EPCI {siren} cité par des communes mais absent de la liste des EPCI")
    if len(sirens) != len(epcis):
        problems.add(label, "SIREN d'EPCI en double")


# --- folder of GeoJSON files --------------------------------------------------------------------
def _read_collection(path: Path) -> list[dict]:
    try:
        collection = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise BoundaryError(f"{path.name} : fichier non encodé en UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise BoundaryError(f"{path.name} : JSON invalide (ligne {exc.lineno}, colonne {exc.colno})") from exc
    except OSError as exc:
        raise BoundaryError(f"{path.name} : lecture impossible ({exc.strerror})") from exc
    return _features(collection, path.name)


def _communes_from_file(features: list[dict], label: str, problems: _Problems) -> list[_Commune]:
    communes = []
    for i, feature in enumerate(features, start=1):
        props = _props(feature)
        where = f"{label}, entité {i}" + (f" ({props['code_insee']})" if props.get("code_insee") else "")
        code, nom, actuel, nom_actuel = (_text(props, key, where, problems)
                                         for key in ("code_insee", "nom", "code_insee_actuel", "nom_actuel"))
        population = _count(props, ("population",), where, problems)
        siren = _text(props, "epci_siren", where, problems, required=False)
        epci_nom = _text(props, "epci_nom", where, problems, required=False)
        wkb = _geometry(feature, where, problems)
        if siren and not SIREN.match(siren):
            problems.add(where, f"SIREN d'EPCI invalide {siren!r}")
        if code and nom and actuel and nom_actuel and wkb is not None:
            communes.append(_Commune(code, nom, actuel, nom_actuel, population, siren, epci_nom, wkb))
    return communes


def _epcis_from_file(features: list[dict], label: str, problems: _Problems) -> list[_Epci]:
    epcis = []
    for i, feature in enumerate(features, start=1):
        props = _props(feature)
        where = f"{label}, entité {i}" + (f" ({props['siren']})" if props.get("siren") else "")
        siren, nom = _text(props, "siren", where, problems), _text(props, "nom", where, problems)
        population = _count(props, ("population", "population_lot"), where, problems)
        in_territory = _count(props, ("communes_dans_le_territoire", "communes_dans_le_lot"), where, problems)
        total = _count(props, ("communes_total",), where, problems)
        wkb = _geometry(feature, where, problems)
        if siren and not SIREN.match(siren):
            problems.add(where, f"SIREN invalide {siren!r} (9 chiffres attendus)")
        elif siren and nom and wkb is not None:
            epcis.append(_Epci(siren, nom, population, in_territory, total, wkb))
    return epcis


def load_from_dir(conn: Connection, territory: TerritorySettings, directory: Path) -> BoundaryReport:
    """Replace communes, EPCI and outline with ``communes-{dep}.geojson`` and ``epci-{dep}.geojson``."""
    dep = territory.departement
    directory = Path(directory)
    if not directory.exists():
        raise BoundaryError(f"dossier de limites introuvable : {directory}")
    if not directory.is_dir():
        raise BoundaryError(f"{directory} n'est pas un dossier")
    names = (f"communes-{dep}.geojson", f"epci-{dep}.geojson")
    missing = [name for name in names if not (directory / name).is_file()]
    if missing:
        raise BoundaryError(f"fichier(s) manquant(s) dans {directory} : {', '.join(missing)}")
    problems = _Problems()
    communes = _communes_from_file(_read_collection(directory / names[0]), names[0], problems)
    epcis = _epcis_from_file(_read_collection(directory / names[1]), names[1], problems)
    _check_territory(communes, epcis, dep, names[0], problems)
    problems.raise_if_any()
    return _write(conn, territory, communes, epcis, str(directory.resolve()), origin="dossier")


# --- geo.api.gouv.fr ----------------------------------------------------------------------------
def _api_get(client: httpx.Client, path: str, params: dict[str, str]) -> Any:
    """GET one API resource as JSON; every network or HTTP failure becomes a French BoundaryError."""
    url = str(client.base_url).rstrip("/") + path
    try:
        response = client.get(path, params=params)
        response.raise_for_status()
        return response.json()
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        raise BoundaryError(f"{url} a répondu « {status} {exc.response.reason_phrase} »") from exc
    except httpx.TimeoutException as exc:
        raise BoundaryError(f"délai dépassé ({API_TIMEOUT_S:.0f} s) en interrogeant {url}") from exc
    except (httpx.RequestError, httpx.InvalidURL) as exc:
        raise BoundaryError(f"impossible de joindre {url} : {exc}") from exc
    except ValueError as exc:
        raise BoundaryError(f"réponse illisible de {url} (JSON attendu)") from exc


def _epci_names(listing: Any, label: str) -> dict[str, str]:
    if not isinstance(listing, list):
        raise BoundaryError(f"{label} : liste d'EPCI attendue")
    return {e["code"]: e["nom"] for e in listing
            if isinstance(e, dict) and isinstance(e.get("code"), str) and isinstance(e.get("nom"), str)}


def load_from_api(conn: Connection, territory: TerritorySettings, base_url: str) -> BoundaryReport:
    """Replace communes, EPCI and outline with the current ones from geo.api.gouv.fr.

    The API has no 2018 code: ``code_insee`` is the current code. EPCI polygons are the union of the
    territory's communes, so only the part inside the territory is kept.
    """
    dep = territory.departement
    base = base_url.rstrip("/")
    communes_path = f"/departements/{dep}/communes"
    problems = _Problems()
    with httpx.Client(base_url=base, timeout=API_TIMEOUT_S, follow_redirects=True,
                      headers={"User-Agent": "geo-service (limites administratives)"}) as client:
        collection = _api_get(client, communes_path, {"format": "geojson", "geometry": "contour",
                                                      "fields": "nom,code,population,codeEpci"})
        communes = []
        for feature in _features(collection, communes_path):
            props = _props(feature)
            where = f"{communes_path}, commune {props.get('code', '?')}"
            code, nom = _text(props, "code", where, problems), _text(props, "nom", where, problems)
            population = _count(props, ("population",), where, problems)
            siren = _text(props, "codeEpci", where, problems, required=False)
            wkb = _geometry(feature, where, problems)
            if code and nom and wkb is not None:
                communes.append(_Commune(code, nom, code, nom, population, siren, None, wkb))
        sirens = sorted({c.epci_siren for c in communes if c.epci_siren})
        names = _epci_names(_api_get(client, "/epcis", {"codeDepartement": dep, "fields": "nom,code"}),
                            "/epcis")
        members = {s: _api_get(client, f"/epcis/{s}/communes", {"fields": "code"}) for s in sirens}
    epcis = []
    for siren in sirens:
        mine = [c for c in communes if c.epci_siren == siren]
        for c in mine:
            c.epci_nom = names.get(siren)
        population = None if any(c.population is None for c in mine) else sum(c.population or 0 for c in mine)
        total = len(members[siren]) if isinstance(members[siren], list) else None
        if siren in names:
            epcis.append(_Epci(siren, names[siren], population, len(mine), total, None))
    _check_territory(communes, epcis, dep, communes_path, problems)
    problems.raise_if_any()
    return _write(conn, territory, communes, epcis, base, origin="api")


# --- writing ------------------------------------------------------------------------------------
def commune_count(conn: Connection) -> int:
    """How many communes are loaded (``load boundaries --if-empty`` skips when not zero)."""
    return int(conn.execute(text("SELECT count(*) FROM communes")).scalar_one())


def _write(conn: Connection, territory: TerritorySettings, communes: list[_Commune], epcis: list[_Epci],
           source: str, origin: str) -> BoundaryReport:
    """Replace the three boundary tables and log the load; input is already validated."""
    for table in ("epci", "communes", "territory"):
        conn.execute(text(f"DELETE FROM {table}"))
    conn.execute(text(
        "INSERT INTO communes (code_insee, nom, code_insee_actuel, nom_actuel, population, epci_siren,"
        " epci_nom, geom) VALUES (:code_insee, :nom, :code_insee_actuel, :nom_actuel, :population,"
        " :epci_siren, :epci_nom, " + _GEOM_SQL.format("ST_GeomFromWKB(:wkb, 4326)") + ")"),
        [vars(c) for c in communes])
    columns = "siren, nom, population, communes_dans_le_territoire, communes_total, geom"
    values = ":siren, :nom, :population, :communes_dans_le_territoire, :communes_total"
    from_file = [vars(e) for e in epcis if e.wkb is not None]
    from_union = [vars(e) for e in epcis if e.wkb is None]
    if from_file:
        conn.execute(text(f"INSERT INTO epci ({columns}) VALUES ({values}, "
                          + _GEOM_SQL.format("ST_GeomFromWKB(:wkb, 4326)") + ")"), from_file)
    if from_union:
        conn.execute(text(f"INSERT INTO epci ({columns}) SELECT {values}, "
                          + _GEOM_SQL.format("ST_Union(geom)") + " FROM communes WHERE epci_siren = :siren"),
                     from_union)
    conn.execute(text("INSERT INTO territory (code, nom, geom) SELECT :code, :nom, "
                      + _GEOM_SQL.format("ST_Union(geom)") + " FROM communes"),
                 {"code": territory.departement, "nom": territory.name})
    report = BoundaryReport(len(communes), len({c.code_insee_actuel for c in communes}), len(epcis), source)
    details = {"origine": origin, "departement": territory.departement, "communes": report.communes,
               "communes_actuelles": report.current_communes, "epci": report.epci,
               "population": sum(c.population or 0 for c in communes)}
    conn.execute(text("INSERT INTO dataset_loads (kind, source, details)"
                      " VALUES ('boundaries', :source, CAST(:details AS jsonb))"),
                 {"source": source, "details": json.dumps(details, ensure_ascii=False)})
    # Commune names are searchable: the geocoder's derived index follows the new boundaries.
    geocoder.refresh_search_index(conn)
    return report
