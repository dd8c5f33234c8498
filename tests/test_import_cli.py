"""``geo-service import`` as people run it: listing, refusals, reports, and a kill that leaves nothing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import CLI
from import_helpers import CARTEFIBRE, FIXTURES, delete_imported, run
from sqlalchemy import text

HEADER = ("x,y,imb_id,num_voie,cp_no_voie,type_voie,nom_voie,batiment,code_insee,code_poste,nom_com,catg_loc_imb,"
          "imb_etat,pm_ref,pm_etat,pm_date_mad,code_l331,type_imb,date_completude,date_completude_manquante")
APP = "geo-service-import-kill-test"


@pytest.fixture(autouse=True)
def _territory(loaded_boundaries):
    return loaded_boundaries


def cli(settings, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "GEO_SERVICE_DATABASE_URL": settings.database_url}
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=300, **kwargs)


def test_list_names_every_kind_and_its_target(settings):
    result = cli(settings, "import", "--list")
    assert result.returncode == 0
    assert "arcep-immeubles   → premises, ftth_cabinets" in result.stdout
    assert "generic" in result.stdout and "Base Adresse Nationale" in result.stdout


def test_a_bad_file_exits_non_zero_with_a_french_message(settings):
    result = cli(settings, "import", "arcep-immeubles", str(FIXTURES / "carte_fibre_sans_imb_etat.csv"))
    assert result.returncode == 1
    assert "Erreur : carte_fibre_sans_imb_etat.csv : colonne(s) manquante(s) : imb_etat" in result.stderr
    assert "rien n'a été importé" in result.stderr and "Traceback" not in result.stderr
    assert cli(settings, "import", "inconnu", str(CARTEFIBRE)).returncode == 1
    assert cli(settings, "import", "ban").returncode == 1


def test_rejects_are_printed_and_written_to_the_report(settings, tmp_path):
    report = tmp_path / "rejets.csv"
    result = cli(settings, "import", "arcep-immeubles", str(CARTEFIBRE), "--dry-run", "--show", "2",
                 "--report", str(report))
    assert result.returncode == 0, result.stderr
    assert "Simulation (--dry-run, rien n'a été écrit)" in result.stdout
    assert "premises : 4 ajoutées, 0 modifiées, 0 inchangées" in result.stdout
    assert result.stdout.count("⚠") == 2 and "ligne 6 : imb_etat" in result.stdout
    lines = report.read_text(encoding="utf-8-sig").splitlines()
    assert len(lines) == 6 and lines[0].startswith("fichier;ligne;colonne")


def test_white_zones_compute_from_the_command_line(settings, engine):
    try:
        result = cli(settings, "white-zones", "compute", "--technologie", "5G", "--niveau", "CL")
        assert result.returncode == 0, result.stderr
        assert "Zones blanches 5G (niveau exigé CL) : 1 calculées" in result.stdout
    finally:
        delete_imported(engine, ("white_zones",))


def _big_cartefibre(path: Path, conn, rows: int) -> None:
    """A Cartefibre file of ``rows`` buildings spread over the territory's communes."""
    communes = conn.execute(text("SELECT code_insee, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
                                 "FROM communes ORDER BY code_insee")).all()
    rng = random.Random(46)
    with open(path, "w", encoding="utf-8") as out:
        out.write(HEADER + "\n")
        for i in range(rows):
            code, lon, lat = communes[i % len(communes)]
            out.write(f"{lon + rng.uniform(-4e-4, 4e-4):.6f},{lat + rng.uniform(-4e-4, 4e-4):.6f},"
                      f"IMB/{code}/KILL/{i:07d},{i % 90 + 1},,RUE,DU TEST,,{code},46000,COMMUNE,individuel,deploye,"
                      f"KILL_PM_{code}_{i % 3},deploye,2024-01-01,TEST,PA,,t\n")


def _checksums(conn) -> dict[str, tuple]:
    sums = {}
    for table in ("premises", "ftth_cabinets", "dataset_loads", "layer_changes", "geocode_numbers"):
        sums[table] = tuple(conn.execute(text(
            f"SELECT count(*), md5(coalesce(string_agg(md5(t::text), ',' ORDER BY md5(t::text)), '')) "
            f"FROM {table} t")).one())
    return sums


def _active_queries(conn) -> list[str]:
    return list(conn.execute(text("SELECT query FROM pg_stat_activity WHERE application_name = :app "
                                  "AND state = 'active'"), {"app": APP}).scalars())


def test_a_killed_import_leaves_the_database_exactly_as_before(settings, engine, registry, tmp_path):
    big = tmp_path / "carte_fibre_immeubles_national.csv"
    try:
        with engine.begin() as conn:
            run(conn, registry, settings, "arcep-immeubles", CARTEFIBRE)  # something to protect
        with engine.connect() as conn:
            _big_cartefibre(big, conn, 150_000)
            before = _checksums(conn)
        env = {**os.environ, "GEO_SERVICE_DATABASE_URL": settings.database_url, "PGAPPNAME": APP}
        process = subprocess.Popen([CLI, "import", "arcep-immeubles", str(big)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        writing = None
        deadline = time.monotonic() + 240
        with engine.connect() as watch:
            while writing is None and process.poll() is None and time.monotonic() < deadline:
                writing = next((q for q in _active_queries(watch) if "INSERT INTO premises AS t" in q), None)
                watch.rollback()
                time.sleep(0.02)
            assert writing is not None, "the import ended before it was seen writing premises"
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            while _active_queries(watch) or watch.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app"), {"app": APP}).scalar():
                watch.rollback()
                time.sleep(0.05)
        assert process.returncode == -signal.SIGKILL
        with engine.connect() as conn:
            assert _checksums(conn) == before
            assert conn.execute(text("SELECT count(*) FROM premises WHERE imb_id LIKE 'IMB/%/KILL/%'")).scalar() == 0
    finally:
        delete_imported(engine, ("premises", "ftth_cabinets"))
