"""The three servers under test: this service, tipg and pygeoapi, each under uvicorn with the same workers.

tipg and pygeoapi come from PyPI into their own virtualenvs under ``bench/.venvs/`` (git-ignored), so
their dependencies never meet ours. Every server listens on 127.0.0.1 only, has its access log off, and
is stopped (its whole process group) when the bench ends, whatever happens.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml
from workload import Server

from geo_service.cli.app import JEMALLOC_CONF, JEMALLOC_PATHS

BENCH_DIR = Path(__file__).resolve().parent
VENVS = BENCH_DIR / ".venvs"
PROJECT = BENCH_DIR.parent
WORKERS = 2
PORTS = {"geo-service": 18081, "tipg": 18082, "pygeoapi": 18083, "geo-service sans cache": 18084}
UNCACHED = "geo-service sans cache"
REQUIREMENTS = {
    "tipg": ["tipg", "uvicorn[standard]"],
    # pygeoapi's PostgreSQL providers need psycopg2 and GeoAlchemy2; its ASGI app needs Starlette.
    "pygeoapi": ["pygeoapi", "uvicorn[standard]", "starlette", "psycopg2-binary", "GeoAlchemy2"],
}


def ensure_venv(name: str, log) -> Path:
    """``bench/.venvs/<name>`` with the packages installed (pip, from PyPI); returns its python."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    stamp = venv / ".bench-installed"
    if not stamp.exists():
        log(f"virtualenv {venv} : pip install {' '.join(REQUIREMENTS[name])}")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS[name]], check=True)
        stamp.write_text("ok\n")
    return python


def version(python: Path, package: str) -> str:
    out = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version('{package}'))"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


@dataclass
class Running:
    server: Server
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _uvicorn(python: Path, app: list[str], port: int, env: dict[str, str], log_file: Path) -> subprocess.Popen:
    # Another program on the port would answer the readiness probe in our server's place.
    if not _port_free(port):
        raise RuntimeError(f"le port {port} de 127.0.0.1 est déjà pris : arrêtez ce qui l'écoute")
    uvicorn = python.parent / "uvicorn"
    command = [str(uvicorn), *app, "--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS),
               "--no-access-log", "--log-level", "warning"]
    # A process group of its own, so stopping it stops its workers too.
    return subprocess.Popen(command, env={**os.environ, **env}, stdout=log_file.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=log_file.parent)


def _wait_ready(running: Running, probe: str, timeout: float = 120) -> None:
    """Return once ``probe`` answers 200; otherwise stop the server and raise."""
    try:
        _poll(running, probe, timeout)
    except BaseException:
        running.stop()
        raise


def _poll(running: Running, probe: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"{running.server.name} s'est arrêté au démarrage (voir son journal)")
        try:
            with urllib.request.urlopen(running.url + probe, timeout=10) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{running.server.name} ne répond pas sur {running.url}{probe}")


def ours(database_url: str, workdir: Path, *, tile_cache: bool = True) -> Running:
    """This service; without its tile cache (``tile_cache=False``) it only runs the random tile cases, where
    every tile is then rendered, as it would be if no two requests asked for the same tile."""
    name = "geo-service" if tile_cache else UNCACHED
    server = Server(name, PORTS[name], "/ogc/collections/premises/items",
                    lambda z, x, y: f"/tiles/premises/{z}/{x}/{y}.mvt", {}, () if tile_cache else ("tile_z",))
    env = {"GEO_SERVICE_DATABASE_URL": database_url, "GEO_SERVICE_MODE": "development"}
    if not tile_cache:
        env["GEO_SERVICE_TILES__CACHE_MB"] = "0"
    # As `geo-service serve` runs it: on jemalloc when Debian's is installed (cli/app.py). HTTP stays uvicorn's
    # httptools, as for tipg and pygeoapi (the cost of h11, the default for QGIS, is measured apart).
    library = next((path for path in JEMALLOC_PATHS if Path(path).exists()), None)
    if library:
        env |= {"LD_PRELOAD": library, "MALLOC_CONF": JEMALLOC_CONF}
    process = _uvicorn(PROJECT / ".venv" / "bin" / "python",
                       ["geo_service.main:app_from_environment", "--factory"], server.port, env,
                       workdir / f"{name}.log".replace(" ", "-"))
    running = Running(server, process)
    _wait_ready(running, "/ogc/collections/premises")
    return running


def tipg(python: Path, database_url: str, workdir: Path) -> Running:
    server = Server("tipg", PORTS["tipg"], "/collections/public.premises/items",
                    lambda z, x, y: f"/collections/public.premises/tiles/WebMercatorQuad/{z}/{x}/{y}", {})
    env = {"DATABASE_URL": database_url, "TIPG_DB_SCHEMAS": '["public"]', "TIPG_DB_TABLES": '["public.premises"]',
           "TIPG_MAX_FEATURES_PER_QUERY": "10000"}
    running = Running(server, _uvicorn(python, ["tipg.main:app"], server.port, env, workdir / "tipg.log"))
    _wait_ready(running, "/collections/public.premises")
    return running


def pygeoapi(python: Path, db, workdir: Path) -> Running:
    # No tiles: pygeoapi 0.21's MVT-postgresql provider needs `options.schemes`, a list, which its cached
    # engine factory then refuses (TypeError: unhashable type: 'list'); as a string it reaches psycopg2 as a
    # connection option and fails too. Its items and features are measured.
    server = Server("pygeoapi", PORTS["pygeoapi"], "/collections/premises/items", None, {"f": "json"})
    data = {"host": db.host, "port": db.port, "dbname": db.name, "user": "geo_bench", "password": db.password}
    config = {
        "server": {"bind": {"host": "127.0.0.1", "port": server.port}, "url": f"http://127.0.0.1:{server.port}",
                   "mimetype": "application/json; charset=UTF-8", "encoding": "utf-8", "language": "fr-FR",
                   "limits": {"default_items": 10, "max_items": 10000}, "map": {"url": "", "attribution": ""},
                   "gzip": True, "pretty_print": False},  # clients ask for gzip: every server answers in it
        "logging": {"level": "ERROR"},
        "metadata": {"identification": {"title": "bench", "description": "bench", "keywords": ["bench"],
                                        "terms_of_service": "", "url": "http://127.0.0.1"},
                     "license": {"name": "bench", "url": "http://127.0.0.1"},
                     "provider": {"name": "bench", "url": "http://127.0.0.1"},
                     "contact": {key: "bench" for key in (
                         "name", "position", "address", "city", "stateorprovince", "postalCode", "country",
                         "phone", "fax", "email", "url", "hours", "instructions", "role")}},
        "resources": {"premises": {
            "type": "collection", "title": "premises", "description": "premises", "keywords": ["premises"],
            "extents": {"spatial": {"bbox": [-180, -90, 180, 90],
                                    "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
            "links": [],
            "providers": [
                {"type": "feature", "name": "PostgreSQL", "data": data, "id_field": "fid", "table": "premises",
                 "geom_field": "geom"},
            ],
        }},
    }
    config_file = workdir / "pygeoapi.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    openapi_file = workdir / "pygeoapi-openapi.yml"
    pygeoapi_cli = python.parent / "pygeoapi"
    subprocess.run([str(pygeoapi_cli), "openapi", "generate", str(config_file), "--output-file", str(openapi_file)],
                   check=True, capture_output=True, env={**os.environ, "PYGEOAPI_CONFIG": str(config_file)})
    env = {"PYGEOAPI_CONFIG": str(config_file), "PYGEOAPI_OPENAPI": str(openapi_file)}
    running = Running(server, _uvicorn(python, ["pygeoapi.starlette_app:APP"], server.port, env,
                                       workdir / "pygeoapi.log"))
    _wait_ready(running, "/collections/premises?f=json")
    return running
