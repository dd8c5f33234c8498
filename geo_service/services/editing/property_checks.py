"""Feature properties checked against the layer declaration: types, code lists, required fields, patterns, bounds.

``check_properties`` takes the complete intended state of a feature's properties (JSON values, or values
already typed when they come from the database) and returns them typed for the table, or raises one
``InvalidFeature`` (422) that names the first faulty field and lists every problem in ``errors`` — what
the web form shows next to each input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime

from geo_service.errors import InvalidFeature
from geo_service.layers import FieldDecl, LayerDecl

# Provenance columns an editor may set, with their types; the other service columns are the service's own.
# Built without validation: their names are reserved for the service, which is the point.
PROVENANCE = {name: FieldDecl.model_construct(name=name, type=kind, label=label) for name, kind, label in (
    ("source", "string", "Source"), ("licence", "string", "Licence"), ("source_date", "date", "Date de la source"))}
# Properties a client may send back as it read them (GET then PUT): silently ignored, never written.
READ_ONLY = frozenset({"updated_at", "updated_by", "version", "validation_state", "demo", "import_id",
                       "deleted_at", "fid", "id"})
_INT4 = (-(2**31), 2**31 - 1)


def _coerce(field: FieldDecl, value: object) -> object:
    """One value in the declared type, or ``ValueError`` with the French reason."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if field.required:
            raise ValueError("champ obligatoire manquant")
        return None
    kind = field.type
    if kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"texte attendu, reçu {_json_kind(value)}")
        _check_text(field, value)
    elif kind == "integer":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"nombre entier attendu, reçu {_json_kind(value)}")
        if not _INT4[0] <= value <= _INT4[1]:
            raise ValueError("entier hors des bornes (±2 147 483 647)")
        _check_bounds(field, value)
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"nombre attendu, reçu {_json_kind(value)}")
        value = float(value)
        _check_bounds(field, value)
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"true ou false attendu, reçu {_json_kind(value)}")
    elif kind == "date":
        value = _date(value)
    elif kind == "datetime":
        value = _datetime(value)
    elif kind == "string_list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"liste de textes attendue, reçu {_json_kind(value)}")
        if field.required and not value:
            raise ValueError("champ obligatoire : au moins une valeur")
        for item in value:
            _check_text(field, item)
        return list(value)
    if field.codes is not None and value not in (field.code_values or ()):
        raise ValueError(_not_a_code(field, value))
    return value


def _check_text(field: FieldDecl, value: str) -> None:
    if "\x00" in value:
        raise ValueError("caractère nul interdit")
    if field.max_length is not None and len(value) > field.max_length:
        raise ValueError(f"{len(value)} caractères, {field.max_length} au plus")
    if field.pattern is not None and not re.search(field.pattern, value):
        raise ValueError(f"« {value} » ne respecte pas le format attendu ({field.pattern})")
    if field.type == "string_list" and field.codes is not None and value not in (field.code_values or ()):
        raise ValueError(_not_a_code(field, value))


def _not_a_code(field: FieldDecl, value: object) -> str:
    allowed = ", ".join(str(v) for v in field.code_values or ())
    return f"valeur « {value} » hors de la liste ({allowed})"


def _check_bounds(field: FieldDecl, value: float) -> None:
    if field.minimum is not None and value < field.minimum:
        raise ValueError(f"{value:g} est inférieur au minimum {field.minimum:g}{_unit(field)}")
    if field.maximum is not None and value > field.maximum:
        raise ValueError(f"{value:g} dépasse le maximum {field.maximum:g}{_unit(field)}")


def _unit(field: FieldDecl) -> str:
    return f" {field.unit}" if field.unit else ""


def _date(value: object) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"date attendue au format AAAA-MM-JJ, reçu « {value} »")


def _datetime(value: object) -> datetime:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment
    raise ValueError(f"date et heure ISO 8601 avec fuseau attendues (ex. 2024-05-02T10:00:00+02:00), reçu « {value} »")


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "un booléen"
    if isinstance(value, int | float):
        return f"le nombre {value}"
    if isinstance(value, str):
        return f"le texte « {value} »"
    if isinstance(value, list):
        return "une liste"
    if isinstance(value, dict):
        return "un objet"
    return repr(value)


def field_message(field: FieldDecl, problem: object) -> str:
    """How ``check_properties`` names a faulty declared field: « Label » (name) : reason."""
    return f"« {field.label} » ({field.name}) : {problem}"


def provenance_message(name: str, problem: object) -> str:
    return f"{name} : {problem}"


def value_problems(field: FieldDecl, value: object) -> tuple[str | None, str | None]:
    """What ``check_properties`` says of one declared field holding ``value``: its message (or None), and its
    provenance message (or None) when the field is also a provenance column. A pure function of the value,
    which lets an import check each distinct value once (services/importers/framework/validation.py)."""
    message = provenance = None
    try:
        _coerce(field, value)
    except ValueError as exc:
        message = field_message(field, exc)
    if field.name in PROVENANCE:
        try:
            _coerce(PROVENANCE[field.name], value)
        except ValueError as exc:
            provenance = provenance_message(field.name, exc)
    return message, provenance


def check_properties(layer: LayerDecl, values: Mapping[str, object]) -> dict[str, object]:
    """The complete properties of a feature, typed; any problem raises ``InvalidFeature`` naming the field.

    Declared fields absent from ``values`` are empty (a required one is then missing). Provenance columns
    (``source``, ``licence``, ``source_date``) are kept when given; read-only service properties are dropped.
    """
    declared = {f.name for f in layer.fields}
    errors: list[dict[str, str]] = []
    for name in values:
        if name not in declared and name not in PROVENANCE and name not in READ_ONLY:
            known = ", ".join(sorted(declared))
            errors.append({"field": name, "message": f"Propriété inconnue « {name} » pour « {layer.title} » ; "
                                                     f"propriétés : {known}"})
    typed: dict[str, object] = {}
    for field in layer.fields:
        try:
            typed[field.name] = _coerce(field, values.get(field.name))
        except ValueError as exc:
            errors.append({"field": field.name, "message": field_message(field, exc)})
    for name, pseudo in PROVENANCE.items():
        if name not in values:
            continue
        try:
            typed[name] = _coerce(pseudo, values[name])
        except ValueError as exc:
            errors.append({"field": name, "message": provenance_message(name, exc)})
    if errors:
        detail = errors[0]["message"] if len(errors) == 1 else \
            f"{len(errors)} propriétés invalides : " + " ; ".join(e["message"] for e in errors)
        raise InvalidFeature(detail, field=errors[0]["field"], errors=errors)
    return typed
