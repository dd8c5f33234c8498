"""Benchmark databases in the dev cluster: the demo territory, and synthetic premises for the scaling run.

``geo_service_bench`` holds the boundaries and the demo (seed 46), like a fresh ``make run``;
``geo_service_bench_scale`` holds only generated premises (10^5…10^7). Both live in the private cluster
of ``geo-service db up``; the service's own databases are never touched. The three servers and the
raw-SQL floor all connect the same way: TCP on 127.0.0.1 as a read-only role whose password is made up
for each run and never written to disk outside the bench's temporary folder.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy import Engine, text

from geo_service.cluster import PrivateCluster, create_database
from geo_service.db import make_engine, migrate
from geo_service.layers import LayerRegistry
from geo_service.settings import PROJECT_ROOT, Settings

MAIN_DB = "geo_service_bench"
SCALE_DB = "geo_service_bench_scale"
ROLE = "geo_bench"
SEED = 46
BOUNDARIES = PROJECT_ROOT.parent / "shared" / "data" / "lot"
# The département's premises spread over this box (lon/lat); synthetic rows fall inside it.
LOT_BOX = (1.00, 44.25, 2.20, 45.05)
# The number of synthetic premises spread over LOT_BOX; more are spread over a box as many times larger,
# centred on the Lot, so the density stays the same (10^7 then cover about metropolitan France).
LOT_BOX_PREMISES = 100_000


@dataclass(frozen=True)
class BenchDatabase:
    name: str
    owner_settings: Settings  # socket, cluster owner: loading data
    host: str
    port: int
    password: str

    def url(self, driver: str = "postgresql") -> str:
        """The read-only role's URL, over TCP like any server would use."""
        return f"{driver}://{ROLE}:{quote(self.password)}@{self.host}:{self.port}/{self.name}"

    def engine(self) -> Engine:
        return make_engine(self.owner_settings, pool_size=2)


def _owner_settings(cluster: PrivateCluster, name: str) -> Settings:
    socket_dir = cluster.data_dir.resolve()
    return Settings(database_url=f"postgresql://{cluster.owner}@/{name}?host={socket_dir}&port={cluster.port}")


def _grant_reader(cluster: PrivateCluster, name: str, password: str) -> None:
    with cluster.connect("postgres") as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        # A literal is required here (no bind parameters in utility statements); the password is ours.
        conn.execute(f"{verb} ROLE {ROLE} LOGIN PASSWORD '{password}'")
    with cluster.connect(name) as conn:
        conn.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{name}" TO {ROLE}')
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {ROLE}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {ROLE}")


def prepare(name: str, password: str, log) -> BenchDatabase:
    """Start the cluster if needed, create and migrate ``name``, and let the bench role read it."""
    base = Settings()
    cluster = PrivateCluster(base.cluster)
    cluster.up()
    create_database(cluster.connect, name)
    settings = _owner_settings(cluster, name)
    log(f"base {name} : migrations")
    migrate(settings)
    _grant_reader(cluster, name, password)
    return BenchDatabase(name, settings, "127.0.0.1", cluster.port, password)


def load_demo(db: BenchDatabase, log) -> None:
    """Boundaries from ../shared/data/lot and the demo (seed 46), unless already there."""
    from geo_service.services import demo
    from geo_service.services.importers import boundaries

    settings = db.owner_settings
    engine = db.engine()
    try:
        with engine.begin() as conn:
            if boundaries.commune_count(conn) == 0:
                log(f"limites depuis {BOUNDARIES}")
                log(boundaries.load_from_dir(conn, settings.territory, BOUNDARIES).summary())
        with engine.begin() as conn:
            if not demo.demo_present(conn):
                log(f"démo (graine {SEED}) : quelques minutes…")
                registry = LayerRegistry.from_dir(settings.layers_dir)
                log(demo.generate(conn, registry, settings.territory, seed=SEED).summary())
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    finally:
        engine.dispose()


def synthetic_box(count: int) -> tuple[float, float, float, float]:
    """The box ``count`` synthetic premises are spread over: the Lot's at the same density (never smaller)."""
    west, south, east, north = LOT_BOX
    scale = max(count / LOT_BOX_PREMISES, 1.0) ** 0.5
    lon, lat = (west + east) / 2, (south + north) / 2
    half_w, half_h = (east - west) / 2 * scale, (north - south) / 2 * scale
    return (round(lon - half_w, 4), round(lat - half_h, 4), round(lon + half_w, 4), round(lat + half_h, 4))


def fill_synthetic_premises(db: BenchDatabase, count: int, log) -> None:
    """Replace the premises of the scale database by ``count`` generated rows, uniform over ``synthetic_box``:
    a national table is that many times larger than a département's, not that many times denser."""
    west, south, east, north = synthetic_box(count)
    started = time.monotonic()
    engine = db.engine()
    try:
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE premises"))
            conn.execute(text("SELECT setseed(0.46)"))
            conn.execute(text(
                "INSERT INTO premises (imb_id, adresse, code_insee, nb_logements, etat, geom, source, demo) "
                "SELECT 'BENCH-' || g, g || ' rue du Banc d''essai', "
                "       (ARRAY['46042','46102','46127','46309','46001'])[1 + g % 5], 1 + g % 4, "
                "       (ARRAY['cible','signe','en cours de deploiement','raccordable demande','deploye',"
                "              'raccorde','abandonne'])[1 + g % 7], "
                "       ST_SetSRID(ST_MakePoint(:w + random() * (:e - :w), :s + random() * (:n - :s)), 4326), "
                "       'bench', true "
                "FROM generate_series(1, :count) g"),
                {"w": west, "e": east, "s": south, "n": north, "count": count})
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE premises"))
    finally:
        engine.dispose()
    log(f"{count:,} locaux synthétiques en {time.monotonic() - started:.0f} s".replace(",", " "))


def new_password() -> str:
    return secrets.token_urlsafe(18)
