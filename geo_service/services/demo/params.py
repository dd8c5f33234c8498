"""The demo's parameters (``data/demo.yaml``), validated so a typo stops the run with the key's name."""

from __future__ import annotations

import datetime as dt
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from geo_service.settings import PROJECT_ROOT

DEMO_FILE = PROJECT_ROOT / "data" / "demo.yaml"
Operator = Literal["orange", "sfr", "bouygues", "free"]
Techno = Literal["2G", "3G", "4G", "5G"]
Level = Literal["TBC", "BC", "CL"]
OPERATORS: tuple[Operator, ...] = ("orange", "sfr", "bouygues", "free")
TECHNOS: tuple[Techno, ...] = ("2G", "3G", "4G", "5G")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Provenance(_Strict):
    source: str
    licence: str
    updated_by: str


class Hosts(_Strict):
    reservation: str
    web: str
    mail: str


class Streets(_Strict):
    centre: list[str] = Field(min_length=1)
    types: list[str] = Field(min_length=1)
    names: list[str] = Field(min_length=1)
    road: str
    town_road: str
    town_premises: int
    hamlets: list[str] = Field(min_length=1)


class PremisesParams(_Strict):
    total: int = Field(gt=0)
    imb_id: str
    building_share: float = Field(ge=0, le=1)
    town_building_share: float = Field(ge=0, le=1)
    abandoned_share: float = Field(ge=0, le=1)


class AmiiParams(_Strict):
    epci_siren: str
    centre: str
    communes: int = Field(ge=0)
    operateur: str
    code_l331: str = Field(max_length=8)
    nodes: int = Field(ge=1)
    deployed_share: float = Field(ge=0, le=1)
    in_progress_share: float = Field(ge=0, le=1)
    deployed_between: tuple[date, date]
    planned_years: list[int] = Field(min_length=1)
    connected_share: float = Field(ge=0, le=1)


class RipParams(_Strict):
    operateur: str
    code_l331: str = Field(max_length=8)
    nodes: int = Field(ge=1)
    nodes_in_service: int = Field(ge=0)
    year1_cabinets: int = Field(ge=0)
    deployed_cabinets: int = Field(ge=0)
    deployed_between: tuple[date, date]
    in_progress_until: date
    waves: dict[int, int]
    last_year: int
    connected_share: float = Field(ge=0, le=1)


class FtthParams(_Strict):
    premises_per_cabinet: int = Field(gt=0)
    amii: AmiiParams
    rip: RipParams
    on_demand_share: float = Field(ge=0, le=1)
    signed_share: dict[Literal["planned", "in_progress"], float]


class MedParams(_Strict):
    sites: int = Field(ge=0)
    households: int = Field(ge=0)
    installed: int
    accepted: int
    opened: int
    opened_between: tuple[date, date]
    max_population: int
    debit_max_mbps: list[float] = Field(min_length=1)
    rayon_m: tuple[int, int]

    @model_validator(mode="after")
    def _cumulative(self) -> MedParams:
        if not self.sites >= self.installed >= self.accepted >= self.opened >= 0:
            raise ValueError("il faut sites ≥ installed ≥ accepted ≥ opened ≥ 0")
        return self


class Departemental(_Strict):
    count: int = Field(ge=0)
    proprietaire: str
    built_between: tuple[date, date]
    operators: list[Operator]
    max_population: int


class ProgrammeCommune(_Strict):
    """A white-zone commune: its names (FACTS' first), lead operator and mast state."""

    names: list[str] = Field(min_length=1)
    leader: Operator
    statut: Literal["en service", "en construction", "projete"]
    date: dt.date | None = None


class Programme(_Strict):
    agreement: date
    proprietaire: str
    communes: list[ProgrammeCommune]


class Targeted(_Strict):
    study_zones: int = Field(ge=0)
    sites: int = Field(ge=0)
    max_population: int


class Coverage(_Strict):
    date_reference: date
    radius_km: dict[Techno, dict[Level, float]]
    usage: dict[Techno, Literal["voix", "data"]]
    shadow_km: float = Field(gt=0)
    study_shadow_km: float = Field(gt=0)


class WhiteZones(_Strict):
    technologies: list[Techno] = Field(min_length=1)
    min_part_m2: float = Field(ge=0)


class MobileParams(_Strict):
    id_prefix: str = Field(pattern=r"^[0-9]{2}$")
    commercial_sites: int = Field(ge=0)
    presence: dict[Operator, float]
    technologies: dict[Operator, dict[Techno, float]]
    owners: dict[Operator, str]
    tower_company: str
    tower_company_share: float = Field(ge=0, le=1)
    commercial_since: int
    under_construction_share: float = Field(ge=0, le=1)
    departemental: Departemental
    white_zone_programme: Programme
    targeted: Targeted
    heights_m: dict[Literal["commercial", "departemental", "programme"], tuple[float, float]]
    coverage: Coverage
    white_zones: WhiteZones


class WifiParams(_Strict):
    ssid: str
    lieu: str
    exploitant: str
    installed: int = Field(ge=0)
    installed_between: tuple[date, date]
    indoor_share: float = Field(ge=0, le=1)
    rayon_m: dict[Literal["exterieur", "interieur"], tuple[int, int]]


class NamedPlace(_Strict):
    """A place named in the demo file; unset fields are drawn by the generator."""

    commune: str
    nom: str | None = None
    services: list[str] | None = None
    label: str | None = None


class DigitalHelpParams(_Strict):
    epm: int = Field(ge=0)
    library_share: float = Field(ge=0, le=1)
    france_services: int = Field(ge=0)
    france_services_min_population: int
    visio_points: int = Field(ge=0)
    cyber_bases: list[NamedPlace]
    associations: list[NamedPlace]


class OpeningHoursParams(_Strict):
    third_place: list[str] = Field(min_length=1)
    library: list[str] = Field(min_length=1)
    epm: list[str] = Field(min_length=1)
    service: list[str] = Field(min_length=1)

    def all(self) -> list[str]:
        """Every opening-hours string of the file."""
        return [*self.third_place, *self.library, *self.epm, *self.service]


class DemoParams(_Strict):
    """The whole of ``data/demo.yaml`` (see the comments there for the meaning and source of each value)."""

    departement: str
    reference_date: date
    provenance: Provenance
    name_suffix: str
    phone_prefix: str
    hosts: Hosts
    postal_codes: dict[str, str]
    streets: Streets
    premises: PremisesParams
    ftth: FtthParams
    med: MedParams
    mobile: MobileParams
    wifi: WifiParams
    third_places: list[NamedPlace] = Field(min_length=1)
    digital_help: DigitalHelpParams
    opening_hours: OpeningHoursParams

    def named(self, name: str) -> str:
        """A name people read, marked as demo data."""
        return f"{name}{self.name_suffix}"


def load_params(path: Path = DEMO_FILE) -> DemoParams:
    """Read and validate the demo file; errors name the faulty key (``ValueError``)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return DemoParams.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path.name} illisible : {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{path.name} : {where} : {first['msg']}") from exc
