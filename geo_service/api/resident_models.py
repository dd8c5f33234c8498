"""Response models of ``/api/nearby`` and ``/api/geocode``: the schema the OpenAPI documents.

They describe the dicts ``services.nearby`` and ``services.geocoder`` build; the tests validate real answers
against them. Texts (``headline``, ``message``, ``label``) are French and ready to show.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GeocodeResult(_Model):
    id: str = Field(description="« source:identifiant » (premises:IMB/…, addresses:clé BAN), voie:… ou commune:…")
    type: Literal["adresse", "voie", "commune"]
    label: str = Field(description="Libellé complet, ex. « 12 rue de la Mairie, 46000 Cahors »")
    name: str
    numero: str | None
    nom_voie: str | None
    code_postal: str | None
    code_insee: str
    commune: str
    lon: float
    lat: float
    score: float = Field(ge=0, le=1, description="Pertinence (1 : tous les mots trouvés, sans faute)")
    source: str


class GeocodeResponse(_Model):
    query: str
    results: list[GeocodeResult]


class Source(_Model):
    layer: str
    title: str
    attribution: str
    licence: str
    date: dt.date | None = Field(description="Date de la source des données affichées")
    origin: str | None = Field(description="Provenance déclarée des lignes (import, saisie, démonstration)")
    demo: bool = Field(description="Données de démonstration (fictives)")


class Epci(_Model):
    siren: str
    nom: str | None


class Commune(_Model):
    title: str
    code_insee: str = Field(description="Code INSEE de la commune de 2018")
    nom: str
    code_insee_actuel: str
    nom_actuel: str
    population: int | None
    epci: Epci | None
    sources: list[Source]


class Cabinet(_Model):
    pm_ref: str
    nom: str
    statut: str
    statut_label: str | None
    date_mise_en_service: dt.date | None
    distance_m: float | None


class Offer(_Model):
    """What one operator sells at the building in one technology (ARCEP « Ma connexion internet »)."""

    operateur: str
    code_operateur: str
    technologie: str
    code_technologie: str
    debit_descendant: str | None = Field(description="Classe de débit, ex. « de 100 Mbit/s à 1 Gbit/s »")
    debit_montant: str | None
    limitation_go: int | None
    sature: bool | None


class Premise(_Model):
    imb_id: str
    adresse: str | None
    code_postal: str | None
    commune: str | None
    etat: str
    etat_label: str | None
    distance_m: float
    exact: bool = Field(description="Le local est celui de l'adresse (et non le plus proche)")
    nb_logements: int | None
    zone: str | None
    zone_label: str | None
    date_prevue: dt.date | None
    date_raccordable: dt.date | None
    pm_ref: str | None
    lon: float
    lat: float
    offers: list[Offer] = Field(description="Offres des opérateurs à cet immeuble, meilleure technologie d'abord")
    cabinet: Cabinet | None


class FibreState(_Model):
    etat: str
    label: str
    locaux: int


class CommuneFibre(_Model):
    commune: str | None
    code_insee: str | None
    locaux: int
    logements: int
    eligibles: int
    part_eligible: float | None
    etats: list[FibreState]


class Fibre(_Model):
    title: str
    status: Literal["eligible", "soon", "planned", "not_planned", "unknown"] = Field(
        description="eligible : éligible ; soon : raccordable prochainement ; planned : déploiement prévu")
    headline: str
    message: str
    match_radius_m: int = Field(description="Distance maximale du local retenu")
    premise: Premise | None
    commune_figures: CommuneFibre | None
    sources: list[Source]


class MedSite(_Model):
    med_id: str
    nom: str
    statut: str
    statut_label: str | None
    debit_max_mbps: float | None
    rayon_m: int | None
    lignes: int | None
    date_mise_en_service: dt.date | None
    distance_m: float


class Med(_Model):
    title: str
    headline: str
    message: str
    serving: MedSite | None
    sources: list[Source]


class MastOperator(_Model):
    operateur: str
    label: str
    technologies: list[str]


class Mast(_Model):
    id_station_anfr: str
    nom: str
    distance_m: float
    distance_label: str
    statut: str
    statut_label: str | None
    dispositif: str | None
    dispositif_label: str | None
    hauteur_m: float | None
    operateurs: list[MastOperator]


class OperatorSummary(_Model):
    operateur: str
    label: str
    nearest_mast_m: float | None
    technologies: list[str] = Field(description="Technologies des sites en service dans le rayon")
    white_zone: dict[str, bool | None] = Field(description="Par technologie : en zone blanche (null : pas de donnée)")
    summary: str


class WhiteZoneTechnology(_Model):
    kind: str
    technologie: str
    label: str
    tous: bool | None = Field(description="Zone blanche pour tous les opérateurs")
    operateurs: dict[str, bool | None]
    date: dt.date | None


class WhiteZones(_Model):
    in_white_zone: bool
    headline: str
    technologies: list[WhiteZoneTechnology]


class Mobile(_Model):
    title: str
    headline: str
    message: str
    radius_m: int
    masts: list[Mast]
    operators: list[OperatorSummary]
    white_zones: WhiteZones
    sources: list[Source]


class Opening(_Model):
    state: Literal["open", "closed", "unknown"]
    open_now: bool | None
    label: str = Field(description="« Ouvert maintenant, ferme à 18 h », « Fermé, ouvre demain à 9 h »…")
    next_change: dt.datetime | None


class DayHours(_Model):
    date: dt.date
    label: str = Field(description="« lundi 13 juillet »")
    today: bool
    holiday: bool = Field(description="Jour férié en France")
    state: Literal["open", "closed", "unknown"]
    text: str = Field(description="« de 9 h à 12 h et de 14 h à 17 h », « 24 h/24 », « fermé »")


class Detail(_Model):
    label: str
    value: str
    link: bool


class Place(_Model):
    layer: str
    id: str
    name: str
    category: str | None
    category_label: str | None
    distance_m: float
    distance_label: str
    lon: float
    lat: float
    address: str | None
    commune: str | None
    services: list[str]
    opening_hours: str | None = Field(description="Horaires au format OpenStreetMap")
    opening: Opening | None
    hours_text: str | None = Field(description="Les horaires en toutes lettres : « du lundi au vendredi, de 8 h 30 "
                                               "à 19 h ; fermé les jours fériés »")
    week: list[DayHours] | None = Field(description="Les sept jours à venir, à l'heure locale du territoire")
    details: list[Detail]
    demo: bool


class Places(_Model):
    title: str
    headline: str
    items: list[Place]
    sources: list[Source]


class Wifi(Places):
    planned: Place | None = Field(description="Borne programmée plus proche que la plus proche en service")


class AddressMatch(_Model):
    query: str
    label: str
    type: str
    score: float
    ambiguous: bool = Field(description="Plusieurs adresses répondent presque aussi bien")
    alternatives: list[GeocodeResult]


class Query(_Model):
    lon: float
    lat: float
    address: AddressMatch | None


class NearbyReport(_Model):
    """Le rapport « près de chez vous » pour un point ou une adresse du territoire."""

    query: Query
    territory: str
    generated_at: dt.datetime = Field(description="Heure du calcul (Europe/Paris) : « ouvert maintenant » s'y réfère")
    demo: bool
    commune: Commune | None
    fibre: Fibre
    med: Med
    mobile: Mobile
    wifi: Wifi
    third_places: Places
    digital_help: Places
