"""Test session: a real PostGIS database, migrated, with the territory's boundaries and the demo loaded once.

The database is ``geo_service_test`` in the private cluster (started if needed), or the one named by
``GEO_SERVICE_TEST_DATABASE_URL``. Each test that takes ``conn`` runs inside a transaction that is rolled
back, so tests never see each other's writes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Connection, Engine

from geo_service.cluster import PrivateCluster, create_database
from geo_service.db import make_engine, migrate
from geo_service.layers import LayerRegistry
from geo_service.services.app_caches import AppCaches
from geo_service.settings import PROJECT_ROOT, Settings

ARTEFACTS_DIR = PROJECT_ROOT / "test-output"
# Constants several test modules share.
PASSWORD = "un-mot-de-passe-solide"  # of the accounts the tests create
CLI = str(Path(sys.executable).with_name("geo-service"))  # the command line of this virtualenv
EPSG2154 = "http://www.opengis.net/def/crs/EPSG/0/2154"
EPSG4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
WIFI_ITEMS = "/ogc/collections/wifi_hotspots/items"
SHARED_LOT = PROJECT_ROOT.parent / "shared" / "data" / "lot"


# The Host names test clients use: Starlette's TestClient default, localhost, and a remote name (Secure cookies).
TEST_HOSTS = ["127.0.0.1", "localhost", "testserver", "geo.lot.fr"]


def _test_settings() -> Settings:
    url = os.environ.get("GEO_SERVICE_TEST_DATABASE_URL")
    if url:
        return Settings(database_url=url, mode="test", trusted_hosts=TEST_HOSTS)
    base = Settings(mode="test")
    name = os.environ.get("GEO_SERVICE_TEST_DATABASE", "geo_service_test")
    cluster = PrivateCluster(base.cluster)
    cluster.up()
    create_database(cluster.connect, name, drop_first=True)
    socket_dir = cluster.data_dir.resolve()
    return Settings(
        mode="test", trusted_hosts=TEST_HOSTS,
        database_url=f"postgresql://{cluster.owner}@/{name}?host={socket_dir}&port={cluster.port}",
    )


@pytest.fixture(scope="session")
def settings() -> Settings:
    return _test_settings()


@pytest.fixture(scope="session")
def registry(settings: Settings) -> LayerRegistry:
    return LayerRegistry.from_dir(settings.layers_dir)


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    migrate(settings)
    engine = make_engine(settings)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def boundaries_dir() -> Path:
    if not (SHARED_LOT / "communes-46.geojson").exists():
        pytest.fail(f"boundary files missing in {SHARED_LOT}")
    return SHARED_LOT


@pytest.fixture(scope="session")
def loaded_boundaries(engine: Engine, settings: Settings, boundaries_dir: Path) -> Engine:
    """The engine, once the territory's communes and EPCI are loaded (committed)."""
    from geo_service.services.importers import boundaries

    with engine.begin() as conn:
        boundaries.load_from_dir(conn, settings.territory, boundaries_dir)
    return engine


@pytest.fixture(scope="session")
def demo_territory(loaded_boundaries: Engine, registry: LayerRegistry, settings: Settings):
    """The engine, once the demo territory (seed 46) is generated (committed); returns the demo report."""
    from geo_service.services import demo

    with loaded_boundaries.begin() as conn:
        return demo.generate(conn, registry, settings.territory, seed=46)


@pytest.fixture(scope="session")
def observatory_snapshot(demo_territory, engine: Engine, registry: LayerRegistry, settings: Settings):
    """The demo territory's observatory: its quarterly history back-filled and today's snapshot (committed), as
    ``make run`` leaves it; returns the run of today's snapshot."""
    from geo_service.services.observatory import snapshots

    departement = (settings.territory.departement, settings.territory.name)
    with engine.begin() as conn:
        snapshots.backfill(conn, registry, departement)
        return snapshots.take(conn, registry, departement)


@pytest.fixture
def caches(registry: LayerRegistry) -> AppCaches:
    """Caches of their own for a test that calls the services directly (an application builds its own)."""
    return AppCaches(registry)


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction rolled back after the test."""
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()


@pytest.fixture(scope="session")
def artefacts_dir() -> Path:
    """Where tests leave what a person may want to look at afterwards (screenshots, summaries): test-output/."""
    ARTEFACTS_DIR.mkdir(exist_ok=True)
    return ARTEFACTS_DIR


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """A headless Chromium for the browser tests, one per module."""
    from browser_support import launch_browser

    with launch_browser() as chromium:
        yield chromium


@pytest.fixture
def visits(browser) -> Iterator[list]:
    """The pages a browser test opens (browser_support.open_visit); each closed afterwards, after checking that
    it asked nothing of another host and logged no script error."""
    opened: list = []
    yield opened
    for visit in opened:
        assert visit.foreign_requests() == [], visit.foreign_requests()
        assert visit.errors == [], visit.errors
        visit.close()


def raw_connection(settings: Settings) -> psycopg.Connection:
    """A plain psycopg connection to the test database (for checks that bypass SQLAlchemy)."""
    return psycopg.connect(settings.sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://"))


# -- the OGC API modules: their fixture features and an application on the test database --------------------------
@pytest.fixture(scope="module")
def ogc_fx(engine: Engine, registry: LayerRegistry) -> Iterator:
    """The OGC fixture features (factories.build_ogc_fixtures), committed for the module, removed after."""
    from factories import ogc_fixtures

    yield from ogc_fixtures(engine, registry)


@pytest.fixture(scope="module")
def ogc_client(settings: Settings, ogc_fx) -> Iterator:
    from fastapi.testclient import TestClient

    from geo_service.main import create_app

    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def demo_client(settings: Settings, demo_territory) -> Iterator:
    """An application on the test database once the demo territory is loaded (report, geocoder)."""
    from fastapi.testclient import TestClient

    from geo_service.main import create_app

    with TestClient(create_app(settings)) as client:
        yield client
