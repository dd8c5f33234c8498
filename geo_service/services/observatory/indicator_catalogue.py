"""Every indicator of the observatory, declared once: what it measures, in what unit, from which layers.

A value is ``numerator / denominator × scale`` of two *measures* summed over the communes of an area
(``indicator_values.MEASURES``): a count has no denominator, a share has one. Summing measures before
dividing keeps shares and rates right at every level (an EPCI's share is not the mean of its communes').
``breakdown`` names the category a value is split by (FTTH state, quarter, operator, technology).
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("departement", "epci", "commune")
ALL_LEVELS = LEVELS
DISTANCE_THRESHOLDS_KM = (5, 10, 20)


@dataclass(frozen=True)
class Indicator:
    """One indicator: its values are ``numerator / denominator × scale`` per area (and category)."""

    id: str
    label: str
    unit: str
    sources: tuple[str, ...]
    numerator: str
    denominator: str | None = None
    scale: float = 1.0
    levels: tuple[str, ...] = ALL_LEVELS
    breakdown: str | None = None
    caveat: str = ""
    # Decimals of the published value: 0 makes it an integer (counts); rates keep 4.
    decimals: int | None = None

    @property
    def digits(self) -> int:
        """Decimals the value is rounded to: ``decimals`` when set, 0 for a count, 4 for a rate."""
        if self.decimals is not None:
            return self.decimals
        return 0 if self.denominator is None else 4

    @property
    def measures(self) -> frozenset[str]:
        """The stored measures its values are made of (a back-filled snapshot holds only a few)."""
        return frozenset({self.numerator, *([self.denominator] if self.denominator else [])})

    @property
    def additive(self) -> bool:
        """Whether the EPCI values add up to the département's (counts do, shares and rates do not)."""
        return self.denominator is None and self.id != "epci_avec_tiers_lieu"


def _distance_indicators(place: str, layer: str, label: str) -> list[Indicator]:
    found = [Indicator(f"distance_moyenne_{place}", f"Distance moyenne des locaux au {label} le plus proche", "km",
                       ("premises", layer), f"distance_sum_km_{place}", f"premises_located_{place}",
                       caveat="Distance à vol d'oiseau (géodésique) ; locaux publiés seulement.")]
    found += [Indicator(f"part_locaux_au_dela_{km}km_{place}",
                        f"Part des locaux à plus de {km} km du {label} le plus proche", "%",
                        ("premises", layer), f"beyond_{km}km_{place}", f"premises_located_{place}", 100.0,
                        caveat="Distance à vol d'oiseau (géodésique), pas le trajet par la route.")
              for km in DISTANCE_THRESHOLDS_KM]
    return found


INDICATORS: tuple[Indicator, ...] = (
    Indicator("locaux_par_etat_ftth", "Locaux par état de déploiement FTTH", "locaux", ("premises",),
              "premises_by_state", breakdown="etat",
              caveat="Un local est une ligne de la couche des locaux (immeuble ou adresse), pas un logement."),
    Indicator("locaux", "Locaux recensés", "locaux", ("premises",), "premises"),
    Indicator("locaux_eligibles", "Locaux éligibles à la fibre", "locaux", ("premises",), "premises_eligible",
              caveat="Éligible : raccordé, déployé (raccordable) ou raccordable sur demande, comme le rapport "
                     "« près de chez vous »."),
    Indicator("part_locaux_eligibles", "Part des locaux éligibles à la fibre", "%", ("premises",),
              "premises_eligible", "premises", 100.0),
    Indicator("locaux_eligibles_prevus_par_trimestre", "Locaux attendus éligibles par trimestre (date prévue)",
              "locaux", ("premises",), "premises_expected", breakdown="trimestre",
              caveat="Locaux pas encore éligibles dont la date de raccordabilité prévue est renseignée ; un "
                     "trimestre passé compte les retards."),
    Indicator("pm_deployes", "Points de mutualisation déployés", "PM", ("ftth_cabinets",), "cabinets_deployed"),
    Indicator("nro_en_service", "Nœuds de raccordement optique en service", "NRO", ("ftth_nodes",),
              "nodes_in_service"),
    Indicator("sites_med_ouverts", "Sites de montée en débit ouverts à la commercialisation", "sites",
              ("med_sites",), "med_open"),
    Indicator("lignes_med_desservies", "Lignes desservies par les sites de montée en débit ouverts", "lignes",
              ("med_sites",), "med_lines", caveat="Somme du champ « lignes » des sites ouverts (vide compté 0)."),
    Indicator("pylones_par_operateur", "Sites mobiles en service par opérateur", "sites", ("mobile_masts",),
              "masts_by_operator", breakdown="operateur",
              caveat="Un site partagé compte une fois pour chaque opérateur présent."),
    Indicator("pylones_par_technologie", "Sites mobiles en service par opérateur et technologie", "sites",
              ("mobile_masts",), "masts_by_technology", breakdown="operateur_technologie"),
    Indicator("pylones_par_dispositif", "Sites mobiles en service par dispositif de financement", "sites",
              ("mobile_masts",), "masts_by_scheme", breakdown="dispositif",
              caveat="Champ « dispositif » : commercial, pylône du Département, zones blanches centres-bourgs, "
                     "couverture ciblée (New Deal)."),
    Indicator("pylones_a_venir_par_dispositif", "Sites mobiles en construction ou projetés par dispositif",
              "sites", ("mobile_masts",), "masts_coming_by_scheme", breakdown="dispositif"),
    Indicator("pylones_programmes_arcep", "Sites mobiles en service par programme ARCEP", "sites",
              ("mobile_masts",), "masts_by_arcep_programme", breakdown="programme",
              caveat="Drapeaux ARCEP de Mon réseau mobile : site_zb (zones blanches centres-bourgs), site_dcc "
                     "(dispositif de couverture ciblée), site_strategique ; un site peut en porter plusieurs."),
    Indicator("zones_blanches_surface", "Surface en zone blanche par opérateur et technologie", "km²",
              ("white_zones", "communes"), "white_zone_km2", breakdown="operateur_technologie", decimals=2,
              caveat="Zones blanches d'un même opérateur et d'une même technologie réunies (une zone déclarée "
                     "qui recouvre une zone calculée compte une fois), découpées par les limites communales, "
                     "surface sur l'ellipsoïde ; arrondie à 0,01 km² par commune avant les sommes ; « tous » : "
                     "aucun opérateur."),
    Indicator("zones_blanches_locaux", "Locaux en zone blanche par opérateur et technologie", "locaux",
              ("white_zones", "premises"), "white_zone_premises", breakdown="operateur_technologie",
              caveat="Locaux (lignes de la couche) situés dans la zone, comptés dans la commune de leur code "
                     "INSEE."),
    Indicator("zones_blanches_population", "Population estimée en zone blanche par opérateur et technologie",
              "habitants", ("white_zones", "premises", "communes"), "white_zone_population",
              breakdown="operateur_technologie",
              caveat="Estimation : population de la commune × part de ses logements et locaux (nb_logements) "
                     "situés dans la zone ; arrondie à l'habitant par commune avant les sommes ; une commune "
                     "sans local compte 0."),
    Indicator("communes_couvertes_wifi", "Communes couvertes par le programme Wi-Fi", "communes",
              ("communes", "premises"), "communes_covered",
              caveat="Le programme finance une borne par commune hors zone d'initiative privée (AMII) qui la "
                     "demande ; les délibérations ne sont pas dans les données : est comptée toute commune "
                     "actuelle sans local en zone AMII."),
    Indicator("communes_avec_borne_wifi_installee", "Communes couvertes avec une borne Wi-Fi installée",
              "communes", ("communes", "premises", "wifi_hotspots"), "communes_wifi_installed"),
    Indicator("communes_avec_borne_wifi_programmee", "Communes couvertes avec une borne Wi-Fi programmée "
              "(aucune installée)", "communes", ("communes", "premises", "wifi_hotspots"), "communes_wifi_planned"),
    Indicator("part_communes_avec_borne_wifi", "Part des communes couvertes équipées d'une borne Wi-Fi", "%",
              ("communes", "premises", "wifi_hotspots"), "communes_wifi_installed", "communes_covered", 100.0),
    Indicator("tiers_lieux", "Tiers-lieux", "lieux", ("third_places",), "third_places"),
    Indicator("epci_avec_tiers_lieu", "EPCI ayant au moins un tiers-lieu (objectif : tous)", "EPCI",
              ("third_places", "epci"), "epci_with_third_place", levels=("departement", "epci"),
              caveat="Objectif du schéma des usages : au moins un tiers-lieu par EPCI ; 1 ou 0 pour un EPCI."),
    Indicator("lieux_mediation", "Lieux d'aide au numérique", "lieux", ("digital_help_places",), "help_places"),
    Indicator("lieux_mediation_pour_10000_habitants", "Lieux d'aide au numérique pour 10 000 habitants",
              "lieux / 10 000 hab.", ("digital_help_places", "communes"), "help_places", "population", 10000.0,
              caveat="Population municipale des communes de 2018 (couche des communes), sommée par commune "
                     "actuelle."),
    *_distance_indicators("mediation", "digital_help_places", "lieu d'aide au numérique"),
    *_distance_indicators("tiers_lieu", "third_places", "tiers-lieu"),
)

BY_ID: dict[str, Indicator] = {indicator.id: indicator for indicator in INDICATORS}
