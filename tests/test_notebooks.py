"""The notebooks in notebooks/ run against a service on the demo territory and find the API's figures.

Each notebook is executed by nbclient in a real Jupyter kernel, reading a service started by the test
(``GEO_SERVICE_URL``) with the demo territory's snapshots; a cell added at the end prints, as JSON, the figures
the notebook computed, which must equal the département's figures read from the API by the test itself.
Committed notebooks carry no outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import nbformat
import pytest
from browser_support import serve_app
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.fixture(scope="module")
def service_url(observatory_snapshot, settings):
    from geo_service.main import create_app

    with serve_app(create_app(settings)) as url:
        yield url


def _departement(url: str, *indicators: str) -> dict[tuple[str, str | None], object]:
    response = httpx.get(f"{url}/api/indicators", params={"level": "departement", "indicator": ",".join(indicators)},
                         timeout=600)
    response.raise_for_status()
    return {(v["indicator"], v["category"]): v["value"] for v in response.json()["values"]}


def _run(name: str, url: str, names: list[str], monkeypatch, tmp_path: Path) -> dict:
    """Executes the notebook, then prints ``names`` (the notebook's variables) as JSON and reads them back."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(
        "import json as _json\nprint(_json.dumps({" + ", ".join(f"{n!r}: {n}" for n in names) + "}, default=str))"))
    monkeypatch.setenv("GEO_SERVICE_URL", url)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    printed = "".join(o.text for o in notebook.cells[-1].outputs if o.output_type == "stream")
    return json.loads(printed)


def test_notebooks_are_committed_without_outputs() -> None:
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert {"ftth_progress.ipynb", "access_to_help.ipynb"} <= set(names)
    for name in names:
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(notebook)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert code and all(c.outputs == [] and c.execution_count is None for c in code), name
        assert "GEO_SERVICE_URL" in "".join(c.source for c in code), name


def test_ftth_progress_finds_the_apis_figures(service_url, monkeypatch, tmp_path) -> None:
    found = _run("ftth_progress.ipynb", service_url, ["locaux_departement", "eligibles_departement",
                                                       "part_eligibles_departement", "attendus_departement",
                                                       "nombre_de_releves"],
                 monkeypatch, tmp_path)
    api = _departement(service_url, "locaux", "locaux_eligibles", "part_locaux_eligibles",
                       "locaux_eligibles_prevus_par_trimestre")
    assert found["locaux_departement"] == api[("locaux", None)] > 100_000
    assert found["eligibles_departement"] == api[("locaux_eligibles", None)]
    assert found["part_eligibles_departement"] == api[("part_locaux_eligibles", None)]
    expected = sum(v for (i, _), v in api.items() if i == "locaux_eligibles_prevus_par_trimestre")
    assert found["attendus_departement"] == expected > 0
    history = httpx.get(f"{service_url}/api/indicators/history", timeout=600,
                        params={"indicator": "part_locaux_eligibles", "level": "departement"}).json()["values"]
    assert found["nombre_de_releves"] == len(history) > 1  # the back-filled quarters and today's snapshot


def test_access_to_help_finds_the_apis_figures(service_url, monkeypatch, tmp_path) -> None:
    found = _run("access_to_help.ipynb", service_url, ["lieux_departement", "taux_departement",
                                                        "distance_moyenne_departement", "au_dela_departement",
                                                        "epci_sans_tiers_lieu"], monkeypatch, tmp_path)
    api = _departement(service_url, "lieux_mediation", "lieux_mediation_pour_10000_habitants",
                       "distance_moyenne_mediation", "part_locaux_au_dela_10km_mediation", "epci_avec_tiers_lieu")
    assert found["lieux_departement"] == api[("lieux_mediation", None)] > 0
    assert found["taux_departement"] == api[("lieux_mediation_pour_10000_habitants", None)]
    assert found["distance_moyenne_departement"] == api[("distance_moyenne_mediation", None)] > 0
    assert found["au_dela_departement"]["10"] == api[("part_locaux_au_dela_10km_mediation", None)]
    epcis = httpx.get(f"{service_url}/api/indicators", params={"level": "epci", "indicator": "epci_avec_tiers_lieu"},
                      timeout=600).json()["values"]
    assert found["epci_sans_tiers_lieu"] == sorted(v["name"] for v in epcis if v["value"] == 0)
