"""Database access: the SQLAlchemy engine and Alembic migrations, both built from the settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from geo_service.settings import Settings

if TYPE_CHECKING:  # Alembic is imported by the commands that migrate, not by every web process (≈37 MB)
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _timeouts(statement_ms: int, lock_ms: int = 0, idle_in_transaction_ms: int = 0) -> str:
    """Session options bounding a web request's statements (0: no limit, PostgreSQL's default)."""
    limits = {"statement_timeout": statement_ms, "lock_timeout": lock_ms,
              "idle_in_transaction_session_timeout": idle_in_transaction_ms}
    return "".join(f" -c {name}={ms}" for name, ms in limits.items() if ms)


def make_engine(settings: Settings, *, web: bool = False, url: str | None = None, **kwargs) -> Engine:
    """One engine per process; connections are pooled and checked before use.

    ``web``: the service's engine, whose statements are bounded in time (``settings.db``) so that no request
    holds a connection and a core for long; the command line, migrations and tests get no limit.
    ``url``: another server than the settings' database (a read replica, db_routing.py).
    """
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    # PostgreSQL's JIT compiles every costly PostGIS query (≈0.7 s each here) and never pays it back
    # on the service's short, index-driven queries. Parallel plans likewise: the planner picks a parallel
    # seq scan for costly PostGIS expressions (a 3 ms vector tile became 40 ms), and starting workers for
    # each of many concurrent small requests costs more than it saves on a few cores.
    options = "-c jit=off -c max_parallel_workers_per_gather=0"
    if web:
        db = settings.db
        options += _timeouts(db.statement_timeout_ms, db.lock_timeout_ms, db.idle_in_transaction_timeout_ms)
    if url:
        # A read replica: a hot standby refuses writes anyway; this says so if one is named by mistake.
        options += " -c default_transaction_read_only=on"
    kwargs.setdefault("connect_args", {"options": options})
    return create_engine(url or settings.sqlalchemy_url, pool_pre_ping=True, **kwargs)


def postgis_version(engine: Engine) -> str | None:
    """The PostGIS version of the database after a real round trip, or None when it cannot be reached."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT postgis_lib_version()")).scalar_one()
    except SQLAlchemyError:
        return None


def unbounded(conn: Connection) -> None:
    """Lift the web engine's statement limit for the rest of ``conn``'s transaction: an open-data import sent
    through ``/admin/import`` upserts national files in statements that may run longer, as on the command line."""
    conn.execute(text("SET LOCAL statement_timeout = 0"))


def make_read_engine(settings: Settings, url: str | None = None) -> Engine:
    """The resident map's hot path (``/api/nearby``, ``/api/geocode``): read-only, one round trip per request.

    Autocommit and no reset on return (nothing to roll back), no ping before use (a dropped connection is
    retried once by the caller), and generic plans for the prepared report statement, whose planning would
    otherwise cost as much as running it. Its statements are short: ``settings.db.read_statement_timeout_ms``
    bounds them (autocommit, so no session ever waits inside a transaction). ``url``: a read replica's.
    """
    options = "-c jit=off -c plan_cache_mode=force_generic_plan -c default_transaction_read_only=on"
    options += _timeouts(settings.db.read_statement_timeout_ms)
    return create_engine(url or settings.sqlalchemy_url, isolation_level="AUTOCOMMIT", pool_size=10, max_overflow=10,
                         pool_pre_ping=False, pool_reset_on_return=None, pool_recycle=1800,
                         connect_args={"options": options})


def alembic_config(settings: Settings) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", settings.sqlalchemy_url.replace("%", "%%"))
    # env.py reads the layer folder from here so that migrations and service see the same layers.
    config.attributes["settings"] = settings
    return config


def migrate(settings: Settings, revision: str = "head") -> None:
    """Upgrade the schema, then put the change trigger on every layer table (new layers included) and the
    extended statistics the layers declare."""
    from alembic import command

    command.upgrade(alembic_config(settings), revision)
    if revision == "head":
        from geo_service.layers import LayerRegistry
        from geo_service.tables import install_change_triggers, install_extended_statistics

        engine = make_engine(settings, pool_size=1)
        try:
            with engine.begin() as conn:
                registry = LayerRegistry.from_dir(settings.layers_dir)
                install_change_triggers(conn, registry)
                install_extended_statistics(conn, registry)
        finally:
            engine.dispose()


def new_revision(settings: Settings, message: str) -> None:
    """Write a migration for what changed in ``layers/`` since the last one (Alembic autogenerate)."""
    from alembic import command

    command.revision(alembic_config(settings), message=message, autogenerate=True)


def current_revision(settings: Settings) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with make_engine(settings, pool_size=1).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
