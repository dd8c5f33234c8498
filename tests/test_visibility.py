"""The one visibility rule, in its two spellings (an expression for built statements, SQL text for hand-written
ones), and the geocoder's copy of it: what a reader sees of a layer is decided in one place."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql

from geo_service.layers import LayerRegistry
from geo_service.services.publish import visibility
from geo_service.services.resident import geocoder
from geo_service.tables import metadata_for


def _conjuncts(sql: str) -> set[str]:
    return {part.strip() for part in sql.replace("(", "").replace(")", "").split(" AND ")}


def test_both_spellings_say_the_same_for_every_layer(registry: LayerRegistry):
    tables = metadata_for(registry).tables
    for layer in registry:
        text_form = visibility.visible_rows_sql(layer, layer.id)
        expression = visibility.visible_rows(tables[layer.id], layer.editable)
        compiled = str(expression.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
        if layer.editable:
            assert _conjuncts(compiled) == _conjuncts(text_form), layer.id
        else:
            assert (compiled, text_form) == ("true", "TRUE"), layer.id


def test_the_geocoder_indexes_only_what_the_public_sees(registry: LayerRegistry):
    statements = " ".join(geocoder._REFRESH_SQL)
    assert f"FROM premises WHERE {visibility.PUBLISHED_ROWS_SQL}" in statements
    assert visibility.visible_rows_sql(registry.get("premises")) == visibility.PUBLISHED_ROWS_SQL


def test_a_row_read_is_judged_by_the_same_rule():
    assert visibility.is_published("published", None)
    assert not visibility.is_published("proposed", None)
    assert not visibility.is_published("published", "2026-01-01")
