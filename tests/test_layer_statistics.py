"""Extended statistics declared by a layer file (``statistics:``): created after each migration, dropped when no
longer declared, and what they change — the planner's estimate of a state × commune combination."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text

from geo_service.layers import LayerDeclarationError, LayerRegistry, load_layer_file
from geo_service.tables import STATISTICS_TARGET, install_extended_statistics

DECLARED = "st_premises_etat_code_insee"


def _estimate(conn: Connection, etat: str, code: str) -> float:
    plan = conn.execute(text("EXPLAIN (FORMAT JSON) SELECT fid FROM premises "
                             "WHERE etat = :etat AND code_insee = :code"), {"etat": etat, "code": code}).scalar()
    plan = plan if isinstance(plan, list) else json.loads(plan)
    return plan[0]["Plan"]["Plan Rows"]


def test_the_premises_statistics_exist_after_migration(engine: Engine) -> None:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT stxstattarget, stxkind FROM pg_statistic_ext WHERE stxname = :n"),
                             {"n": DECLARED}).one()
    assert found[0] == STATISTICS_TARGET and set(found[1]) == {"d", "f", "m"}


def test_a_missing_combination_is_estimated_as_missing(demo_territory, engine: Engine, registry) -> None:
    """A commune whose premises are all in one state: asked for another state, the planner now expects almost no
    row (it used to multiply the two frequencies: thousands, and walked the whole table in id order)."""
    with engine.begin() as conn:
        conn.execute(text("ANALYZE premises"))
        code, etat, count = conn.execute(text("""
            SELECT c.code_insee, s.etat, (SELECT count(*) FROM premises WHERE code_insee = c.code_insee)
            FROM (SELECT code_insee FROM premises GROUP BY code_insee ORDER BY count(*) DESC LIMIT 1) c,
                 (VALUES ('cible'), ('deploye'), ('raccorde')) s(etat)
            WHERE NOT EXISTS (SELECT 1 FROM premises p WHERE p.code_insee = c.code_insee AND p.etat = s.etat)
            LIMIT 1""")).one()
        assert count > 1000
        assert _estimate(conn, etat, code) < 20
        undeclared = registry.get("premises").model_copy(update={"statistics": []})
        install_extended_statistics(conn, LayerRegistry([la for la in registry if la.id != "premises"] + [undeclared]))
        left = conn.execute(text("SELECT count(*) FROM pg_statistic_ext WHERE stxname = :n"), {"n": DECLARED})
        assert left.scalar() == 0
        conn.execute(text("ANALYZE premises"))
        assert _estimate(conn, etat, code) > 100  # without them: the product of the frequencies
        assert install_extended_statistics(conn, registry) == [DECLARED]
        assert _estimate(conn, etat, code) < 20


@pytest.mark.parametrize("group", ["[statut]", "[statut, inconnu]", "[statut, statut]"])
def test_a_wrong_group_is_refused_with_the_layer_file(tmp_path: Path, group: str) -> None:
    path = tmp_path / "bornes.yaml"
    path.write_text(f"""
id: bornes
title: Bornes
description: test
geometry: Point
attribution: test
licence: test
statistics: [{group}]
fields:
  - {{name: code_insee, type: string, label: Code}}
  - {{name: statut, type: string, label: Statut, codes: [{{value: a, label: A}}]}}
style: {{color: "#112233"}}
""", encoding="utf-8")
    with pytest.raises(LayerDeclarationError, match="statistics"):
        load_layer_file(path)
