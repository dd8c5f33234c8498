"""Turning the report query's row into the report's sections, with labels, wording, sources and dates.

Kept apart from ``nearby`` (which owns the SQL) so that each reads in one sitting. Field names read here are
those of the layer declarations; code values become their declared French labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from geo_service.layers import LayerDecl, LayerRegistry
from geo_service.services.app_caches import AppCaches, BoundedCache
from geo_service.services.resident import opening_hours
from geo_service.services.resident import report_wording as say
from geo_service.services.resident.geocoder import AddressMatch
from geo_service.services.resident.hours_in_words import in_words
from geo_service.services.resident.hours_week import coming_week

FIBRE_MATCH_M = 100  # a premise farther than this is not "your" premise: commune figures answer instead
EXACT_MATCH_M = 5    # closer than this, the premise is the one at the address
MAST_RADIUS_M = 5000
IN_SERVICE = "en service"  # mobile_masts.statut code of a working site
ALL_OPERATORS = "tous"     # white_zones.operateur code of a zone no operator covers

# The source of the offers (``premise_eligibility`` is filled by ``geo-service import arcep-mci``).
OFFERS_SOURCE = {"layer": "premise_eligibility", "title": "Éligibilité par immeuble (Ma connexion internet)",
                 "attribution": "Offres à l'adresse : ARCEP, « Ma connexion internet »",
                 "licence": "Licence Ouverte 2.0 (Etalab)"}

TITLES = {
    "commune": "Votre commune",
    "fibre": "Fibre optique — Plus de débit : quand ?",
    "med": "Montée en débit",
    "mobile": "Téléphonie mobile",
    "wifi": "Wi-Fi public",
    "third_places": "Tiers-lieux",
    "digital_help": "Lieux d'aide au numérique",
}


def _round(metres: float | None) -> float | None:
    return None if metres is None else round(float(metres), 1)


def source(layer: LayerDecl, provs: list[dict], fallback: date | None = None) -> dict[str, Any]:
    """Where a section's facts come from: the layer's attribution and licence, the rows' date and origin."""
    provs = [p for p in provs if p]
    dates = [say.parse_date(p["source_date"]) for p in provs if p.get("source_date")]
    origins = sorted({p["source"] for p in provs if p.get("source")})
    return {"layer": layer.id, "title": layer.title, "attribution": layer.attribution, "licence": layer.licence,
            "date": max(dates) if dates else fallback, "origin": "; ".join(origins) or None,
            "demo": any(p.get("demo") for p in provs)}


def _details(layer: LayerDecl, props: dict, skip: set[str]) -> list[dict[str, Any]]:
    """The layer's popup fields not already shown, as label/value text (a link only for http(s) values)."""
    out = []
    public = {f.name for f in layer.public_fields()}
    for name in layer.popup:
        if name in skip or name not in public:
            continue
        value = say.display_value(layer.field(name), props.get(name))
        if value is not None:
            link = value.startswith(("https://", "http://")) and " " not in value
            out.append({"label": layer.field(name).label, "value": value, "link": link})
    return out


@dataclass(frozen=True)
class PlaceFields:
    """Which conventional fields a place layer declares (read once per layer declaration)."""

    hours: bool
    address: bool
    commune: bool
    services: bool
    shown: frozenset[str]


def place_fields(layer: LayerDecl) -> PlaceFields:
    names = {f.name for f in layer.fields}
    return PlaceFields("horaires" in names, "adresse" in names, "commune" in names, "services" in names,
                       frozenset({layer.label_field, "adresse", "commune", "services", "horaires", layer.style.by}))


# Rendering a place or a mast, but for its distance and opening status, depends on its row only. Their rows come
# from the in-memory small layers (services/resident/nearby_report.py), the same dicts from one report to the next
# until the layer changes: each is rendered once (AppCaches.rendered_rows, keyed by the identity of its fields
# dict, which the entry keeps alive and checks).
def _rendered(rendered: BoundedCache, layer: LayerDecl, props: dict, build: Callable[[], dict[str, Any]]
              ) -> dict[str, Any]:
    key = (layer.id, id(props))
    hit = rendered.get(key)
    if hit is not None and hit[0] is props:
        return hit[1]
    return rendered.put(key, (props, build()))[1]


def _place_fixed(layer: LayerDecl, raw: dict) -> dict[str, Any]:
    """A place as the report shows it, distance and opening status left empty (filled by ``place``)."""
    p = raw["p"]
    has = place_fields(layer)
    category_field = layer.style.by
    name = p.get(layer.label_field) if layer.label_field else None
    services = [layer.field("services").code_label(v) or v for v in p.get("services") or []] if has.services else []
    return {
        "layer": layer.id, "id": raw["k"], "name": name or layer.title,
        "category": p.get(category_field) if category_field else None,
        "category_label": say.code_label(layer, category_field, p.get(category_field)) if category_field else None,
        "distance_m": None, "distance_label": None,
        "lon": raw["lon"], "lat": raw["lat"], "address": p.get("adresse") if has.address else None,
        "commune": p.get("commune") if has.commune else None, "services": services,
        "opening_hours": p.get("horaires") if has.hours else None, "opening": None,
        "hours_text": in_words(p["horaires"]).text if has.hours and p.get("horaires") else None, "week": None,
        "details": _details(layer, p, has.shown), "demo": bool(raw["prov"].get("demo")),
    }


def place(layer: LayerDecl, raw: dict, now: datetime, rendered: BoundedCache) -> dict[str, Any]:
    """One nearby place (Wi-Fi borne, third place, help place) as the report shows it."""
    out = dict(_rendered(rendered, layer, raw["p"], lambda: _place_fixed(layer, raw)))
    out["distance_m"], out["distance_label"] = _round(raw["d"]), say.distance_label(raw["d"])
    if place_fields(layer).hours:
        status = opening_hours.status(out["opening_hours"], now)
        out["opening"] = {"state": status.state, "open_now": status.open_now, "label": status.label,
                          "next_change": status.next_change}
        out["week"] = coming_week(out["opening_hours"], now, out["lon"], out["lat"])
    return out


def places_section(key: str, layer: LayerDecl, items: list[dict], now: datetime, dates: dict,
                   rendered: BoundedCache, extra: dict | None = None) -> dict[str, Any]:
    out = [place(layer, raw, now, rendered) for raw in items]
    section = {"title": TITLES[key], "headline": say.places_headline(TITLES[key], out), "items": out,
               "sources": [source(layer, [i["prov"] for i in items], dates.get(layer.id))]}
    return {**section, **(extra or {})}


def commune_section(row: dict, registry: LayerRegistry) -> dict[str, Any] | None:
    c = row["commune"]
    if c is None:
        return None
    epci = {"siren": c["epci_siren"], "nom": c["epci_nom"]} if c.get("epci_siren") else None
    fallback = say.parse_date(row["boundaries_date"])
    return {"title": TITLES["commune"], "code_insee": c["code_insee"], "nom": c["nom"],
            "code_insee_actuel": c["code_insee_actuel"], "nom_actuel": c["nom_actuel"],
            "population": c["population"], "epci": epci,
            "sources": [source(registry.get("communes"), [], fallback)]}


def _offers(offers: list) -> list[dict[str, Any]]:
    return [{"operateur": o.operator, "code_operateur": o.operator_code, "technologie": o.technology,
             "code_technologie": o.technology_code, "debit_descendant": o.download, "debit_montant": o.upload,
             "limitation_go": o.data_cap_gb, "sature": o.saturated} for o in offers]


def fibre_section(row: dict, registry: LayerRegistry, ref_matched: bool) -> dict[str, Any]:
    premises, cabinets = registry.get("premises"), registry.get("ftth_cabinets")
    commune = row["commune"] or {}
    states = row["fibre_states"] or []
    etat = premises.field("etat")
    order = {code: i for i, code in enumerate(etat.code_values or [])}
    total = sum(s["n"] for s in states)
    eligible = sum(s["n"] for s in states if s["etat"] in say.ELIGIBLE_STATES)
    figures = {
        "commune": commune.get("nom_actuel"), "code_insee": commune.get("code_insee_actuel"),
        "locaux": total, "logements": sum(s["logements"] or 0 for s in states), "eligibles": eligible,
        "part_eligible": round(eligible / total, 4) if total else None,
        "etats": [{"etat": s["etat"], "label": etat.code_label(s["etat"]) or s["etat"], "locaux": s["n"]}
                  for s in sorted(states, key=lambda s: order.get(s["etat"], 99))],
    } if commune else None
    raw = row["premise"]
    provs = [{"source_date": s["source_date"], "demo": s["demo"]} for s in states]
    sources = [source(premises, [raw["prov"]] if raw else provs)]
    premise = None
    if raw:
        p, d = raw["p"], raw["d"]
        exact = ref_matched or d <= EXACT_MATCH_M
        wording = say.fibre_wording(p["etat"], etat.code_label(p["etat"]), say.parse_date(p.get("date_prevue")),
                                    say.parse_date(p.get("date_raccordable")), d, exact)
        cab = raw.get("cabinet")
        premise = {
            "imb_id": p["imb_id"], "adresse": p.get("adresse"), "code_postal": p.get("code_postal"),
            "commune": p.get("nom_commune"), "etat": p["etat"], "etat_label": etat.code_label(p["etat"]),
            "distance_m": _round(d), "exact": exact, "nb_logements": p.get("nb_logements"),
            "zone": p.get("zone"), "zone_label": say.code_label(premises, "zone", p.get("zone")),
            "date_prevue": p.get("date_prevue"), "date_raccordable": p.get("date_raccordable"),
            "pm_ref": p.get("pm_ref"), "lon": raw["lon"], "lat": raw["lat"], "offers": _offers(row["offers"]),
            "cabinet": None if cab is None else {
                "pm_ref": cab["p"]["pm_ref"], "nom": cab["p"]["nom"], "statut": cab["p"]["statut"],
                "statut_label": say.code_label(cabinets, "statut", cab["p"]["statut"]),
                "date_mise_en_service": cab["p"].get("date_mise_en_service"), "distance_m": _round(cab["d"])},
        }
        if cab is not None:
            sources.append(source(cabinets, [cab["prov"]]))
        if row["offers"]:
            dates = [o.source_date for o in row["offers"] if o.source_date]
            sources.append({**OFFERS_SOURCE, "date": max(dates) if dates else None, "origin": None, "demo": False})
    else:
        wording = say.no_premise_wording(FIBRE_MATCH_M, commune.get("nom_actuel"), total, eligible)
    return {"title": TITLES["fibre"], "status": wording.status, "headline": wording.headline,
            "message": wording.message, "match_radius_m": FIBRE_MATCH_M, "premise": premise,
            "commune_figures": figures, "sources": sources}


def med_section(row: dict, registry: LayerRegistry, dates: dict) -> dict[str, Any]:
    layer = registry.get("med_sites")
    raw = row["med"]
    site = None
    if raw:
        p = raw["p"]
        site = {"med_id": p["med_id"], "nom": p["nom"], "statut": p["statut"],
                "statut_label": say.code_label(layer, "statut", p["statut"]),
                "debit_max_mbps": p.get("debit_max_mbps"), "rayon_m": p.get("rayon_m"), "lignes": p.get("lignes"),
                "date_mise_en_service": p.get("date_mise_en_service"), "distance_m": _round(raw["d"])}
    headline, message = say.med_wording(site)
    return {"title": TITLES["med"], "headline": headline, "message": message, "serving": site,
            "sources": [source(layer, [raw["prov"]] if raw else [], dates.get(layer.id))]}


def _white_zones(row: dict, zones: LayerDecl, operators: list[tuple[str, str]]) -> dict[str, Any]:
    covering = row["white_zones"] or []
    technologies = []
    for kind in row["white_zone_kinds"] or []:
        here = {z["operateur"] for z in covering
                if (z["kind"], z["technologie"]) == (kind["kind"], kind["technologie"])}
        known = set(kind["operateurs"])
        technologies.append({
            "kind": kind["kind"], "technologie": kind["technologie"],
            "label": say.code_label(zones, "technologie", kind["technologie"]) or kind["technologie"],
            "tous": ALL_OPERATORS in here if ALL_OPERATORS in known else None,
            "operateurs": {op: (op in here or ALL_OPERATORS in here) if op in known else None
                           for op, _ in operators},
            "date": say.parse_date(kind["date"])})
    mobile = [t for t in technologies if t["kind"] == "mobile"]
    in_white = any(t["tous"] for t in mobile)
    labels = dict(operators)
    partial = [f"{labels[op]} ({t['label']})" for t in mobile if not t["tous"]
               for op, flag in t["operateurs"].items() if flag]
    return {"in_white_zone": in_white, "headline": say.white_zone_headline(in_white, partial),
            "technologies": technologies}


def _mast_fixed(masts: LayerDecl, p: dict, operators: list[tuple[str, str]]) -> dict[str, Any]:
    """A mast as the report lists it, distance left empty (filled by ``mobile_section``)."""
    return {
        "id_station_anfr": p["id_station_anfr"], "nom": p["nom"], "distance_m": None, "distance_label": None,
        "statut": p["statut"], "statut_label": say.code_label(masts, "statut", p["statut"]),
        "dispositif": p.get("dispositif"), "dispositif_label": say.code_label(masts, "dispositif", p.get("dispositif")),
        "hauteur_m": p.get("hauteur_m"),
        "operateurs": [{"operateur": op, "label": label, "technologies": p.get(f"technos_{op}") or []}
                       for op, label in operators if op in (p.get("operateurs") or [])]}


def mobile_section(row: dict, registry: LayerRegistry, dates: dict, rendered: BoundedCache) -> dict[str, Any]:
    masts, zones = registry.get("mobile_masts"), registry.get("white_zones")
    operators = [(str(c.value), c.label) for c in masts.field("operateurs").codes or []]
    items = []
    for raw in row["masts"] or []:
        item = dict(_rendered(rendered, masts, raw["p"], lambda p=raw["p"]: _mast_fixed(masts, p, operators)))
        item["distance_m"], item["distance_label"] = _round(raw["d"]), say.distance_label(raw["d"])
        items.append(item)
    white = _white_zones(row, zones, operators)
    summaries = []
    for op, label in operators:
        serving = [m for m in items
                   if m["statut"] == IN_SERVICE and any(o["operateur"] == op for o in m["operateurs"])]
        technos = sorted({t for m in serving for o in m["operateurs"] if o["operateur"] == op
                          for t in o["technologies"]})
        nearest = serving[0]["distance_m"] if serving else None
        summary = (f"site le plus proche {say.distance_label(nearest)} ({', '.join(technos) or 'technologie inconnue'})"
                   if serving else f"aucun site en service à moins de {MAST_RADIUS_M // 1000} km")
        summaries.append({"operateur": op, "label": label, "nearest_mast_m": nearest, "technologies": technos,
                          "white_zone": {t["technologie"]: t["operateurs"][op] for t in white["technologies"]
                                         if t["kind"] == "mobile"},
                          "summary": summary})
    in_service = sum(1 for m in items if m["statut"] == IN_SERVICE)
    message = (f"{in_service} site{'s' if in_service > 1 else ''} mobile{'s' if in_service > 1 else ''} en service "
               f"à moins de {MAST_RADIUS_M // 1000} km." if in_service else
               f"Aucun site mobile en service à moins de {MAST_RADIUS_M // 1000} km.")
    zone_provs = [z["prov"] for z in row["white_zones"] or []] or \
        [{"demo": k["demo"], "source_date": k["date"]} for k in row["white_zone_kinds"] or []]
    return {"title": TITLES["mobile"], "headline": white["headline"], "message": message,
            "radius_m": MAST_RADIUS_M, "masts": items, "operators": summaries, "white_zones": white,
            "sources": [source(masts, [r["prov"] for r in row["masts"] or []], dates.get(masts.id)),
                        source(zones, zone_provs, dates.get(zones.id))]}


def build_report(row: Any, caches: AppCaches, *, lon: float, lat: float, now: datetime,
                 address: AddressMatch | None, territory: str) -> dict[str, Any]:
    """The report dict from the query row (a mapping of JSON columns)."""
    registry, rendered = caches.registry, caches.rendered_rows
    dates = row["layer_dates"]
    ref_matched = bool(address and address.best and address.best.source == "premises" and row["premise"]
                       and address.best.id.endswith(":" + row["premise"]["p"]["imb_id"]))
    sections: dict[str, Any] = {
        "commune": commune_section(row, registry),
        "fibre": fibre_section(row, registry, ref_matched),
        "med": med_section(row, registry, dates),
        "mobile": mobile_section(row, registry, dates, rendered),
    }
    wifi = registry.get("wifi_hotspots")
    planned = row["wifi_planned"] or []
    in_service = row["wifi"] or []
    # A programmed borne is worth a mention only when nearer than the nearest one in service.
    nearer = [place(wifi, planned[0], now, rendered)] \
        if planned and (not in_service or planned[0]["d"] < in_service[0]["d"]) else []
    sections["wifi"] = places_section("wifi", wifi, in_service, now, dates, rendered,
                                      {"planned": nearer[0] if nearer else None})
    sections["third_places"] = places_section("third_places", registry.get("third_places"), row["third_places"] or [],
                                              now, dates, rendered)
    sections["digital_help"] = places_section("digital_help", registry.get("digital_help_places"),
                                              row["digital_help"] or [], now, dates, rendered)
    demo = any(s.get("demo") for section in sections.values() if section for s in section["sources"])
    match = None
    if address is not None and address.best is not None:
        match = {"query": address.query, "label": address.best.label, "type": address.best.type,
                 "score": address.best.score, "ambiguous": address.ambiguous,
                 "alternatives": [a.as_dict() for a in address.alternatives]}
    return {"query": {"lon": lon, "lat": lat, "address": match}, "territory": territory,
            "generated_at": now, "demo": demo, **sections}
