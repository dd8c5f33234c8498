"""Every imported value checked against the layer declaration (types, code lists, required, pattern, bounds).

The declaration rules themselves are applied by ``services/properties.check_properties``, the same check
the editing API makes: an import and an editor cannot disagree on what a valid feature is. This module
only parses the raw text first and turns the errors into report lines (column, value, reason).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from geo_service.errors import InvalidFeature
from geo_service.layers import FieldDecl, LayerDecl
from geo_service.services.editing.property_checks import check_properties
from geo_service.services.importers.framework.values import typed

# (field name, reason) of each faulty value.
Problem = tuple[str, str]


def table_decl(table: str, title: str, fields: Iterable[FieldDecl]) -> LayerDecl:
    """A declaration for a service table that is not a layer (BAN addresses, eligibility), to validate alike."""
    return LayerDecl.model_construct(id=table, title=title, fields=list(fields), natural_key=None)


class Validator:
    """Checks records for one layer (or for some of its fields: ``only``) and returns typed values."""

    def __init__(self, layer: LayerDecl, only: Iterable[str] | None = None, list_separator: str = "|"):
        fields = layer.fields if only is None else [layer.field(name) for name in only]
        self.layer = layer.model_copy(update={"fields": fields}) if only is not None else layer
        self._fields = {f.name: f for f in fields}
        self._separator = list_separator

    @property
    def field_names(self) -> list[str]:
        return list(self._fields)

    def check(self, record: Mapping[str, object], skip_required: frozenset[str] = frozenset()
              ) -> tuple[dict[str, object], list[Problem]]:
        """``record`` (raw text or typed values; absent fields are empty) → typed values and problems."""
        values: dict[str, object] = {}
        problems: list[Problem] = []
        for name, field in self._fields.items():
            raw = record.get(name)
            try:
                values[name] = typed(field, raw, self._separator)
            except ValueError as exc:
                problems.append((name, str(exc)))
                values[name] = None
        unknown = set(record) - set(self._fields)
        if unknown:
            raise KeyError(f"champs non déclarés dans {self.layer.id} : {sorted(unknown)}")
        faulty = {name for name, _ in problems}
        # A field filled later (the commune found from the point) is not "missing" yet: left out of the check.
        checked = {k: v for k, v in values.items()
                   if k not in faulty and not (k in skip_required and v is None)}
        try:
            check_properties(self._partial_layer(checked), checked)
        except InvalidFeature as exc:
            for error in exc.extra.get("errors", []):
                problems.append((error["field"], _reason(error["message"])))
        return values, problems

    def _partial_layer(self, checked: Mapping[str, object]) -> LayerDecl:
        if len(checked) == len(self._fields):
            return self.layer
        return self.layer.model_copy(update={"fields": [f for f in self.layer.fields if f.name in checked]})


def _reason(message: str) -> str:
    """« Code INSEE » (code_insee) : reason → reason."""
    if message.startswith("«") and ") : " in message:
        return message.split(") : ", 1)[1]
    return message
