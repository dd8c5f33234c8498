"""Layer declarations: every file valid, broken ones rejected naming the file and the field."""

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from geo_service.layers import LayerDeclarationError, LayerRegistry, load_layer_file
from geo_service.settings import PROJECT_ROOT
from geo_service.tables import build_metadata, migration_filter

LAYERS_DIR = PROJECT_ROOT / "layers"
DESIGN_LAYERS = {"communes", "epci", "premises", "ftth_cabinets", "med_sites", "mobile_masts",
                 "white_zones", "wifi_hotspots", "third_places", "digital_help_places"}


def test_every_layer_file_is_valid():
    registry = LayerRegistry.from_dir(LAYERS_DIR)
    assert set(registry.ids) >= DESIGN_LAYERS
    for layer in registry:
        assert layer.title and layer.attribution and layer.licence
        assert layer.fields, layer.id


def test_editable_layers_carry_provenance_and_version():
    metadata = build_metadata(LayerRegistry.from_dir(LAYERS_DIR))
    for name in ("premises", "wifi_hotspots", "third_places"):
        columns = set(metadata.tables[name].c.keys())
        assert {"source", "licence", "source_date", "updated_by", "updated_at", "version",
                "validation_state", "demo"} <= columns
    assert "version" not in metadata.tables["communes"].c


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """
id: bornes
title: Bornes
description: test
geometry: Point
attribution: test
licence: test
fields:
  - {name: code_insee, type: string, label: Code}
  - name: statut
    type: string
    label: Statut
    codes: [{value: a, label: A}, {value: b, label: B}]
style: {color: "#112233", by: statut}
popup: [statut]
"""


def test_a_minimal_declaration_loads(tmp_path):
    layer = load_layer_file(_write(tmp_path, "bornes", GOOD))
    assert layer.field("statut").code_label("b") == "B"


@pytest.mark.parametrize(
    ("broken", "location"),
    [
        (GOOD.replace("type: string, label: Code", "type: texte, label: Code"), "fields[code_insee].type"),
        (GOOD.replace("{value: b, label: B}", "{value: a, label: B}"), "fields[statut]"),
        (GOOD.replace("popup: [statut]", "popup: [inconnu]"), "popup"),
        (GOOD.replace('color: "#112233"', 'color: "rouge"'), "style.color"),
        (GOOD.replace("name: code_insee", "name: version"), "fields[version].name"),
        (GOOD.replace("style: {", "style: {couleur: x, "), "style.couleur"),
    ],
)
def test_a_broken_declaration_names_file_and_field(tmp_path, broken, location):
    with pytest.raises(LayerDeclarationError) as info:
        load_layer_file(_write(tmp_path, "bornes", broken))
    message = str(info.value)
    assert message.startswith("bornes.yaml: ")
    assert location in message


def test_a_layer_split_by_a_code_list_has_one_toggle_per_code(tmp_path):
    split = GOOD.replace('by: statut}', 'by: statut, toggle_by: statut, visible: [b]}')
    layer = load_layer_file(_write(tmp_path, "bornes", split))
    assert [(t.id, t.label, t.title, t.visible) for t in layer.toggles()] == [
        ("bornes:a", "A", "Bornes — A", False), ("bornes:b", "B", "Bornes — B", True)]
    whole = load_layer_file(_write(tmp_path, "bornes", GOOD))
    assert [(t.id, t.visible) for t in whole.toggles()] == [("bornes", True)]


@pytest.mark.parametrize(("style", "message"), [
    ("by: statut, visible: [a]", "demande style.toggle_by"),
    ("by: statut, toggle_by: inconnu", "n'est pas un champ déclaré"),
    ("by: statut, toggle_by: code_insee", "liste de codes"),
    ("by: statut, toggle_by: statut, visible: [c]", "ne sont pas des codes"),
])
def test_a_wrong_split_names_the_style(tmp_path, style: str, message: str):
    with pytest.raises(LayerDeclarationError, match=message):
        load_layer_file(_write(tmp_path, "bornes", GOOD.replace("by: statut}", style + "}")))


def test_a_split_needs_codes_fit_for_an_address(tmp_path):
    spaced = GOOD.replace("{value: b, label: B}", "{value: b c, label: B}").replace("by: statut}",
                                                                                   "by: statut, toggle_by: statut}")
    with pytest.raises(LayerDeclarationError, match="inutilisables dans une adresse"):
        load_layer_file(_write(tmp_path, "bornes", spaced))


def test_file_name_must_match_id(tmp_path):
    with pytest.raises(LayerDeclarationError, match="nom du fichier"):
        load_layer_file(_write(tmp_path, "autre", GOOD))


def test_migrations_match_the_declarations(engine, registry):
    """The committed migrations create exactly the tables and columns the layer files declare."""
    inspector = inspect(engine)
    metadata = build_metadata(registry)
    for name, table in metadata.tables.items():
        assert inspector.has_table(name), name
        db_columns = {c["name"] for c in inspector.get_columns(name)}
        assert db_columns == set(table.c.keys()), name
        assert any(ix["name"] == f"idx_{name}_geom" for ix in inspector.get_indexes(name)) or "geom" not in table.c


def test_autogenerate_finds_nothing_to_migrate(engine, registry):
    """Every layer file change has its committed migration: autogenerate sees no difference."""
    metadata = build_metadata(registry)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": migration_filter(metadata), "compare_type": True})
        assert compare_metadata(context, metadata) == []
