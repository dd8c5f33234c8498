"""Layer declarations: the pydantic model of a ``layers/*.yaml`` file and the registry that loads them.

A layer file is the single source of a layer's fields, code lists, style, popup and rights. The registry
validates every file at start-up (a bad file stops the service, naming the file and the field) and
derives from them the database tables (see ``geo_service.tables``), the API and the map.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

IDENTIFIER = r"^[a-z][a-z0-9_]{0,62}$"
COLOUR = r"^#[0-9a-fA-F]{6}$"
# Columns the service adds to every editable layer; a declared field may not reuse these names.
RESERVED_COLUMNS = frozenset(
    {"fid", "geom", "source", "licence", "source_date", "import_id", "updated_by", "updated_at",
     "version", "validation_state", "demo", "deleted_at"}
)

FieldType = Literal["string", "integer", "number", "boolean", "date", "datetime", "string_list"]
GeometryType = Literal["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"]
Role = Literal["admin", "editor", "epci_contributor", "epci_reader"]
VALIDATION_STATES = ("published", "proposed", "rejected")


class LayerDeclarationError(ValueError):
    """A layer file that cannot be used; the message names the file and the faulty field."""

    def __init__(self, path: Path, location: str, message: str):
        self.path, self.location = path, location
        super().__init__(f"{path.name}: {location}: {message}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Code(_Strict):
    """One value of a code list, with its French label and optional map colour."""

    value: str | int
    label: str
    color: str | None = Field(default=None, pattern=COLOUR)
    description: str | None = None


class FieldDecl(_Strict):
    name: str = Field(pattern=IDENTIFIER)
    type: FieldType
    label: str
    description: str | None = None
    unit: str | None = None
    required: bool = False
    codes: list[Code] | None = None
    max_length: int | None = Field(default=None, ge=1)
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    # A restricted field is hidden from anonymous readers (e.g. an operator contact).
    restricted: bool = False
    index: bool = False

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_COLUMNS:
            raise ValueError(f"« {name} » est une colonne réservée du service")
        return name

    @field_validator("pattern")
    @classmethod
    def _valid_regex(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            re.compile(pattern)
        return pattern

    @model_validator(mode="after")
    def _codes_fit_type(self) -> FieldDecl:
        if self.codes is None:
            return self
        if self.type not in ("string", "integer", "string_list"):
            raise ValueError(f"une liste de codes n'a pas de sens pour le type {self.type}")
        values = [c.value for c in self.codes]
        if len(set(values)) != len(values):
            raise ValueError("valeurs en double dans la liste de codes")
        expected = int if self.type == "integer" else str
        wrong = [v for v in values if not isinstance(v, expected)]
        if wrong:
            raise ValueError(f"valeurs de code de mauvais type : {wrong}")
        return self

    @property
    def code_values(self) -> list[str | int] | None:
        return None if self.codes is None else [c.value for c in self.codes]

    def code_label(self, value: object) -> str | None:
        for code in self.codes or ():
            if code.value == value:
                return code.label
        return None


class StyleDecl(_Strict):
    """How the map draws the layer: one colour, or a colour per code of ``by``."""

    color: str = Field(pattern=COLOUR)
    fill_opacity: float = Field(default=0.6, ge=0, le=1)
    radius: int = Field(default=6, ge=1, le=30)
    icon: str | None = None
    by: str | None = None
    cluster: bool = False
    # Point layers: below this zoom, vector tiles keep one feature per grid cell (per colour), with the
    # number of features it stands for, so a tile of 130,000 premises stays a few kilobytes.
    thin_below_zoom: int | None = Field(default=None, ge=1, le=24)
    # Drawn at the map's first view? Residents first want their search, public Wi-Fi, third places and help places:
    # dense or secondary layers stay off until ticked. With ``toggle_by``, the list of its codes drawn at start
    # (white zones: the one where no operator covers, not each operator's).
    visible: bool | list[str] = True
    # One toggle per code of this field (one per mobile operator…), grouped under the layer's title in the panel.
    toggle_by: str | None = None


@dataclass(frozen=True)
class Toggle:
    """One switch of the map's layer control: a whole layer, or the features of one code of ``style.toggle_by``.
    Its id is what ``layers=`` names in a map's URL: ``wifi_hotspots``, ``white_zones:tous``."""

    id: str
    layer_id: str
    code: str | None
    label: str  # the code's label ("Orange"), or the layer's title
    title: str  # the label with the layer's title ("Zones blanches — Orange")
    color: str
    visible: bool


TOGGLE_CODE = r"^[a-z0-9_-]{1,40}$"


class AccessDecl(_Strict):
    """Who may read and edit. ``public`` layers are open to anonymous readers."""

    read: Literal["public", "restricted"] = "public"
    edit: list[Role] = ["admin", "editor"]


class LayerDecl(_Strict):
    id: str = Field(pattern=IDENTIFIER)
    title: str
    description: str
    geometry: GeometryType
    kind: Literal["base", "editable"] = "editable"
    group: str = "Autres"
    natural_key: str | None = None
    date_field: str | None = None
    label_field: str | None = None
    attribution: str
    licence: str
    fields: list[FieldDecl]
    style: StyleDecl
    popup: list[str] = []
    access: AccessDecl = AccessDecl()
    order: int = 100
    # Fields filtered together whose values depend on each other (PostgreSQL extended statistics, e.g. the FTTH
    # state per commune): the planner then knows which combinations exist instead of multiplying frequencies.
    statistics: list[list[str]] = []

    @model_validator(mode="after")
    def _references_exist(self) -> LayerDecl:
        names = [f.name for f in self.fields]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"champs en double : {sorted(dupes)}")
        for attr in ("natural_key", "date_field", "label_field"):
            ref = getattr(self, attr)
            if ref is not None and ref not in names:
                raise ValueError(f"{attr} « {ref} » n'est pas un champ déclaré")
        if self.date_field and self.field(self.date_field).type not in ("date", "datetime"):
            raise ValueError(f"date_field « {self.date_field} » doit être de type date ou datetime")
        for name in self.popup:
            if name not in names:
                raise ValueError(f"popup: « {name} » n'est pas un champ déclaré")
        if self.style.by is not None:
            if self.style.by not in names:
                raise ValueError(f"style.by « {self.style.by} » n'est pas un champ déclaré")
            if self.field(self.style.by).codes is None:
                raise ValueError(f"style.by « {self.style.by} » doit avoir une liste de codes")
        self._check_toggles(names)
        for group in self.statistics:
            if not 2 <= len(set(group)) == len(group) <= 8 or any(name not in names for name in group):
                raise ValueError(f"statistics: {group} doit nommer de 2 à 8 champs déclarés, distincts")
        if self.style.thin_below_zoom is not None and self.geometry not in ("Point", "MultiPoint"):
            raise ValueError("style.thin_below_zoom ne s'applique qu'aux couches de points")
        if self.kind == "base" and self.access.edit:
            raise ValueError("une couche de base n'est pas modifiable : access.edit doit être vide")
        return self

    def _check_toggles(self, names: list[str]) -> None:
        by, visible = self.style.toggle_by, self.style.visible
        if by is None:
            if isinstance(visible, list):
                raise ValueError("style.visible : une liste de codes demande style.toggle_by")
            return
        if by not in names:
            raise ValueError(f"style.toggle_by « {by} » n'est pas un champ déclaré")
        field = self.field(by)
        if field.type != "string" or field.codes is None:
            raise ValueError(f"style.toggle_by « {by} » doit être un champ texte avec une liste de codes")
        wrong = [c.value for c in field.codes if not re.match(TOGGLE_CODE, str(c.value))]
        if wrong:
            raise ValueError(f"style.toggle_by « {by} » : codes inutilisables dans une adresse ({wrong}) ; "
                             "minuscules, chiffres, - et _ seulement")
        if isinstance(visible, list):
            unknown = [v for v in visible if v not in field.code_values]
            if unknown:
                raise ValueError(f"style.visible : {unknown} ne sont pas des codes de « {by} »")

    def toggles(self) -> list[Toggle]:
        """The switches of this layer on the map: the layer itself, or one per code of ``style.toggle_by``."""
        style = self.style
        if style.toggle_by is None:
            return [Toggle(self.id, self.id, None, self.title, self.title, style.color, bool(style.visible))]
        shown = style.visible if isinstance(style.visible, list) else None
        return [Toggle(f"{self.id}:{code.value}", self.id, str(code.value), code.label,
                       f"{self.title} — {code.label}", code.color or style.color,
                       code.value in shown if shown is not None else bool(style.visible))
                for code in self.field(style.toggle_by).codes or ()]

    def field(self, name: str) -> FieldDecl:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def editable(self) -> bool:
        return self.kind == "editable"

    @property
    def is_public(self) -> bool:
        return self.access.read == "public"

    def public_fields(self) -> list[FieldDecl]:
        return [f for f in self.fields if not f.restricted]

    def colour_of(self, properties: dict) -> str:
        """The map colour of a feature: its code's colour when the style depends on a field."""
        if self.style.by:
            for code in self.field(self.style.by).codes or ():
                if code.value == properties.get(self.style.by) and code.color:
                    return code.color
        return self.style.color


def _location(error: dict) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(fichier)"


def load_layer_file(path: Path) -> LayerDecl:
    """Read and validate one layer file; any problem raises ``LayerDeclarationError``."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LayerDeclarationError(path, "(yaml)", str(exc)) from exc
    if not isinstance(raw, dict):
        raise LayerDeclarationError(path, "(fichier)", "le fichier doit décrire un objet YAML")
    try:
        layer = LayerDecl.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = _location(first)
        # Point at the field by name rather than by list index: "fields[statut].codes" reads better.
        fields = raw.get("fields")
        loc = first["loc"]
        if len(loc) >= 2 and loc[0] == "fields" and isinstance(loc[1], int) and isinstance(fields, list):
            entry = fields[loc[1]] if loc[1] < len(fields) else {}
            name = entry.get("name", loc[1]) if isinstance(entry, dict) else loc[1]
            location = ".".join([f"fields[{name}]", *map(str, loc[2:])])
        raise LayerDeclarationError(path, location, first["msg"]) from exc
    if layer.id != path.stem:
        raise LayerDeclarationError(path, "id", f"l'identifiant « {layer.id} » doit être le nom du fichier")
    return layer


class LayerRegistry:
    """All layer declarations of a folder, in map order."""

    def __init__(self, layers: list[LayerDecl]):
        self._layers = {layer.id: layer for layer in sorted(layers, key=lambda la: (la.order, la.id))}

    @classmethod
    def from_dir(cls, directory: Path) -> LayerRegistry:
        files = sorted(directory.glob("*.yaml"))
        if not files:
            raise LayerDeclarationError(directory, "(dossier)", "aucun fichier de couche *.yaml")
        return cls([load_layer_file(path) for path in files])

    def __iter__(self) -> Iterator[LayerDecl]:
        return iter(self._layers.values())

    def __len__(self) -> int:
        return len(self._layers)

    def __contains__(self, layer_id: object) -> bool:
        return layer_id in self._layers

    def get(self, layer_id: str) -> LayerDecl:
        return self._layers[layer_id]

    @property
    def ids(self) -> list[str]:
        return list(self._layers)
