"""What keeps a service process small (docs/benchmarks.md, "Mémoire d'un processus").

The heavy libraries a page needs are loaded by the first such page, not by every service process: Folium (with
pandas), matplotlib with geopandas and WeasyPrint weigh ≈ 190 MB of resident memory together, and a process that
serves the API, the tiles and the reports never needs them (checked in a fresh interpreter, since this test session
imports them all). ``geo-service serve`` runs on jemalloc when it is installed, unless told not to.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import CLI
from sqlalchemy import Engine

from geo_service.cli.app import JEMALLOC_PATHS
from geo_service.settings import Settings

HEAVY = ["folium", "pandas", "geopandas", "matplotlib", "weasyprint"]

# Serves the requests given in argv[1] (a JSON list of paths) through the whole application, then prints which of
# the heavy modules the process holds.
SCRIPT = """
import json, sys
from fastapi.testclient import TestClient
from geo_service.main import create_app
with TestClient(create_app()) as client:
    for path in json.loads(sys.argv[1]):
        assert client.get(path).status_code < 500, path
print(json.dumps(sorted(set(sys.argv[2].split(",")) & set(sys.modules))))
"""


def _loaded_after(settings: Settings, paths: list[str]) -> list[str]:
    env = {**os.environ, "GEO_SERVICE_DATABASE_URL": settings.database_url, "GEO_SERVICE_MODE": "test",
           "GEO_SERVICE_TRUSTED_HOSTS": json.dumps(settings.trusted_hosts)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(paths), ",".join(HEAVY)], env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_api_tiles_and_reports_load_no_heavy_library(settings: Settings, demo_territory: Engine) -> None:
    served = ["/healthz", "/api/layers", "/ogc/collections/premises/items?limit=5", "/tiles/premises/12/2070/1500.mvt",
              "/api/nearby?lon=1.44&lat=44.45", "/map/report?lon=1.44&lat=44.45", "/api/indicators?level=epci"]
    assert _loaded_after(settings, served) == []


def test_the_map_page_loads_folium_when_drawn(settings: Settings, engine: Engine) -> None:
    """The same check sees an import when it happens: the first map page brings Folium (and pandas) in."""
    assert set(_loaded_after(settings, ["/map"])) >= {"folium", "pandas"}


def _libraries_of_serve(settings: Settings, **env: str) -> str:
    """The shared libraries mapped by a ``geo-service serve`` process once it answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "GEO_SERVICE_DATABASE_URL": settings.database_url, "GEO_SERVICE_MODE": "test",
                   "GEO_SERVICE_LOG_LEVEL": "warning", **env}
    environment.pop("LD_PRELOAD", None)
    process = subprocess.Popen([CLI, "serve", "--host", "127.0.0.1", "--port", str(port)], env=environment)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "geo-service serve n'a pas démarré"
            time.sleep(0.1)
        return Path(f"/proc/{process.pid}/maps").read_text()  # exec keeps the process id
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.skipif(not any(Path(p).exists() for p in JEMALLOC_PATHS), reason="libjemalloc2 absent (.ci/system-deps)")
def test_serve_runs_on_jemalloc_unless_turned_off(settings: Settings, engine: Engine) -> None:
    assert "libjemalloc" in _libraries_of_serve(settings)
    assert "libjemalloc" not in _libraries_of_serve(settings, GEO_SERVICE_JEMALLOC="false")
