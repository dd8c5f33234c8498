"""Every imported value checked against the layer declaration (types, code lists, required, pattern, bounds).

The declaration rules themselves are applied by ``services/editing/property_checks`` (``value_problems``, the
field by field part of ``check_properties``), the same check the editing API makes: an import and an editor
cannot disagree on what a valid feature is. This module only parses the raw text first, remembers each
field's verdict on each distinct value, and turns the errors into report lines (column, value, reason).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from geo_service.layers import FieldDecl, LayerDecl
from geo_service.services.editing.property_checks import value_problems
from geo_service.services.importers.framework.values import typed

# (field name, reason) of each faulty value.
Problem = tuple[str, str]


def table_decl(table: str, title: str, fields: Iterable[FieldDecl]) -> LayerDecl:
    """A declaration for a service table that is not a layer (BAN addresses, eligibility), to validate alike."""
    return LayerDecl.model_construct(id=table, title=title, fields=list(fields), natural_key=None)


# Distinct raw values remembered per field: code lists, dates, communes and size classes repeat on every row
# and fit well within it; a field of unique values (identifiers) fills it once and is then checked row by row.
MEMO_SIZE = 4096


class Validator:
    """Checks records for one layer (or for some of its fields: ``only``) and returns typed values.

    Each field's verdict on a raw text value (typed value, parse problem, declaration problems) is a pure
    function of that value: it is worked out once per distinct value and remembered (``MEMO_SIZE``), so a
    national file's repeated values are not parsed and checked again on every row.
    """

    def __init__(self, layer: LayerDecl, only: Iterable[str] | None = None, list_separator: str = "|"):
        fields = layer.fields if only is None else [layer.field(name) for name in only]
        self.layer = layer.model_copy(update={"fields": fields}) if only is not None else layer
        self._fields = {f.name: f for f in fields}
        self._separator = list_separator
        self._memo: dict[str, dict[str | None, _Verdict]] = {name: {} for name in self._fields}
        self._memos = [(name, field, self._memo[name]) for name, field in self._fields.items()]

    @property
    def field_names(self) -> list[str]:
        return list(self._fields)

    def check(self, record: Mapping[str, object], skip_required: frozenset[str] = frozenset()
              ) -> tuple[dict[str, object], list[Problem]]:
        """``record`` (raw text or typed values; absent fields are empty) → typed values and problems.

        Problems come in the order of ``check_properties``: values that cannot be read first, then the
        declaration's rules field by field, then the provenance columns.
        """
        if not record.keys() <= self._fields.keys():
            unknown = set(record) - set(self._fields)
            raise KeyError(f"champs non déclarés dans {self.layer.id} : {sorted(unknown)}")
        values: dict[str, object] = {}
        problems: list[Problem] = []
        declared: list[Problem] = []
        provenance: list[Problem] = []
        for name, field, memo in self._memos:
            raw = record.get(name)
            # The usual case inlined (a call per value costs as much as the lookup): a text seen before.
            verdict = memo.get(raw) if raw is None or type(raw) is str else None
            if verdict is None:
                verdict = self._verdict(field, raw)
            value = verdict.value
            values[name] = list(value) if isinstance(value, list) else value  # each row owns its list
            if verdict.unreadable is not None:
                problems.append((name, verdict.unreadable))
                continue
            # A field filled later (the commune found from the point) is not "missing" yet: left out of the check.
            if value is None and name in skip_required:
                continue
            if verdict.declared is not None:
                declared.append((name, verdict.declared))
            if verdict.provenance is not None:
                provenance.append((name, verdict.provenance))
        return values, problems + declared + provenance

    def _verdict(self, field: FieldDecl, raw: object) -> _Verdict:
        if raw is not None and not isinstance(raw, str):
            return _judge(field, raw, self._separator)  # already typed (not all hashable): judged each time
        memo = self._memo[field.name]
        verdict = memo.get(raw)
        if verdict is None:
            verdict = _judge(field, raw, self._separator)
            if len(memo) < MEMO_SIZE:
                memo[raw] = verdict
        return verdict


@dataclass(frozen=True, slots=True)
class _Verdict:
    """One field's reading of one raw value: its typed value and the French reasons it is refused, if any."""

    value: object
    unreadable: str | None = None  # the text is not of the field's type
    declared: str | None = None  # the declaration's rules (code list, required, pattern, bounds…)
    provenance: str | None = None  # the provenance column's rule, for a field named like one


def _judge(field: FieldDecl, raw: object, separator: str) -> _Verdict:
    try:
        value = typed(field, raw, separator)
    except ValueError as exc:
        return _Verdict(None, unreadable=str(exc))
    declared, provenance = value_problems(field, value)
    return _Verdict(value, declared=None if declared is None else _reason(declared),
                    provenance=None if provenance is None else _reason(provenance))


def _reason(message: str) -> str:
    """« Code INSEE » (code_insee) : reason → reason."""
    if message.startswith("«") and ") : " in message:
        return message.split(") : ", 1)[1]
    return message
