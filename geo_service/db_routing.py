"""Reads spread over PostgreSQL hot standbys (streaming replication): the replicas, their health, the rotation.

Each replica gets the same two engines as the primary (``db.make_engine(web=True)`` and ``db.make_read_engine``).
A background thread checks every replica each ``db.replica_check_interval_s``: reachable, still a standby, and
how far its replay is behind the primary (WAL bytes between the primary's ``pg_current_wal_lsn()`` and the
replica's ``pg_last_wal_replay_lsn()``, and the age of the last transaction it replayed while it is behind).
A replica beyond ``db.replica_max_lag_s`` / ``db.replica_max_lag_bytes``, unreachable or promoted leaves the
rotation, and comes back at the first check that finds it well. A connection to a replica that fails during a
request takes it out at once (the ``handle_error`` event), without waiting for the next check.

Which request may read from a replica is decided over HTTP (``api/read_routing.py``); this module knows no HTTP.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import SQLAlchemyError

from geo_service.db import make_engine, make_read_engine
from geo_service.errors import database_unavailable
from geo_service.settings import Settings

log = logging.getLogger("geo_service.replicas")

# Seconds a connection attempt to a replica may take: a replica whose host stopped answering must not hold a
# request (nor the checker) for libpq's default of forever.
CONNECT_TIMEOUT_S = 3

# "canceling statement due to conflict with recovery": the standby replays a change that removes rows a read
# still needs (hot_standby_feedback = on on the replicas makes it rare).
RECOVERY_CONFLICT = "40001"

_REPLICA_STATE = text(
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
    "extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8")


def lsn_bytes(lsn: str) -> int:
    """A WAL position (``16/B374D848``) as a byte offset, so that two can be subtracted."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass(frozen=True)
class ReplicaHealth:
    """What the last check found: ``state`` is ``ok``, ``lagging``, ``unreachable``, ``not_standby``,
    ``conflict`` (a read cancelled by replay) or ``unchecked`` (before the first check); lags None when unknown."""

    state: str = "unchecked"
    lag_bytes: int | None = None
    lag_s: float | None = None

    @property
    def in_rotation(self) -> bool:
        return self.state == "ok"


class Replica:
    """One hot standby: its engines, its last known health, and how many reads were sent to it."""

    def __init__(self, name: str, settings: Settings, url: str):
        self.name = name
        url = _with_connect_timeout(url)
        self.engine = make_engine(settings, web=True, url=url)
        self.read_engine = make_read_engine(settings, url=url)
        self.health = ReplicaHealth()
        self.reads = 0
        for engine in (self.engine, self.read_engine):
            event.listen(engine, "handle_error", self._on_error)

    @property
    def in_rotation(self) -> bool:
        return self.health.in_rotation

    def _on_error(self, context: ExceptionContext) -> None:
        # A request found the replica away (refused, shut down, connection lost), or had its read cancelled by a
        # conflict with replay (SQLSTATE 40001, a standby's own failure): out of the rotation now, the request is
        # answered from elsewhere (api/read_routing.py) and the next good check brings the replica back.
        self.failed(context.sqlalchemy_exception or context.original_exception)

    def failed(self, error: BaseException) -> None:
        """Take the replica out of the rotation when ``error`` (raw psycopg or wrapped by SQLAlchemy) says it is
        away or cancelled a read for replay; any other error is the request's own."""
        raw = getattr(error, "orig", None) or error
        if getattr(raw, "sqlstate", None) == RECOVERY_CONFLICT:
            self.set_health(ReplicaHealth("conflict", self.health.lag_bytes, self.health.lag_s))
        elif database_unavailable(error):
            self.set_health(ReplicaHealth("unreachable", self.health.lag_bytes, self.health.lag_s))

    def set_health(self, health: ReplicaHealth) -> None:
        if health.in_rotation != self.health.in_rotation:
            if health.in_rotation:
                log.info("réplique %s remise en service", self.name)
            else:
                log.warning("réplique %s retirée du service : %s (retard %s octets, %s s)", self.name, health.state,
                            health.lag_bytes, health.lag_s)
        self.health = health

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()


def _with_connect_timeout(url: str) -> str:
    parsed = make_url(url)
    if "connect_timeout" in parsed.query:
        return url
    return parsed.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_S)}).render_as_string(
        hide_password=False)


class ReplicaSet:
    """The read replicas of the settings (none: every read stays on the primary, as without this module)."""

    def __init__(self, settings: Settings, primary: Engine):
        self.primary = primary
        self.max_lag_s = settings.db.replica_max_lag_s
        self.max_lag_bytes = settings.db.replica_max_lag_bytes
        self.interval_s = settings.db.replica_check_interval_s
        self.replicas = [Replica(f"replica-{n}", settings, url)
                         for n, url in enumerate(settings.replica_sqlalchemy_urls, start=1)]
        self._turn = itertools.count()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self.replicas)

    def pick(self, excluded: tuple[Replica, ...] = ()) -> Replica | None:
        """The next replica in rotation (round robin), None when none is: the read goes to the primary."""
        candidates = [r for r in self.replicas if r.in_rotation and r not in excluded]
        if not candidates:
            return None
        chosen = candidates[next(self._turn) % len(candidates)]
        chosen.reads += 1
        return chosen

    # -- health ---------------------------------------------------------------------------------------------------
    def check(self) -> None:
        """One round of checks: each replica's state measured against the primary's current WAL position."""
        try:
            with self.primary.connect() as conn:
                primary_lsn = lsn_bytes(conn.execute(text("SELECT pg_current_wal_lsn()::text")).scalar_one())
        except SQLAlchemyError:
            # The primary away: writes fail anyway; replicas still answer reads, judged on what they say alone.
            primary_lsn = None
        for replica in self.replicas:
            replica.set_health(self._measure(replica, primary_lsn))

    def _measure(self, replica: Replica, primary_lsn: int | None) -> ReplicaHealth:
        try:
            with replica.read_engine.connect() as conn:
                standby, replay_lsn, replay_age_s = conn.execute(_REPLICA_STATE).one()
        except SQLAlchemyError as exc:
            log.debug("réplique %s injoignable : %s", replica.name, exc)
            # Its pooled connections died with it (the read engine pings none): new ones when it comes back.
            replica.dispose()
            return ReplicaHealth("unreachable")
        if not standby or replay_lsn is None:
            return ReplicaHealth("not_standby")  # promoted, or a primary named by mistake: it would diverge
        if primary_lsn is None:
            return ReplicaHealth("ok" if replica.health.state in ("ok", "unchecked") else replica.health.state)
        lag_bytes = max(0, primary_lsn - lsn_bytes(replay_lsn))
        # Behind: the time since the last transaction replayed (an upper bound of how old its data are). Caught
        # up: no lag, however long ago the primary last wrote.
        lag_s = round(max(0.0, replay_age_s or 0.0), 3) if lag_bytes else 0.0
        behind = lag_bytes > self.max_lag_bytes or lag_s > self.max_lag_s
        return ReplicaHealth("lagging" if behind else "ok", lag_bytes, lag_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # noqa: BLE001 — the checker must outlive any surprise; the next round retries
                log.exception("contrôle des répliques en échec")
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        """Start the background checks (the application's lifespan); the first round runs at once."""
        if self.replicas and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="geo-service-replicas", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the checks and close every replica connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=CONNECT_TIMEOUT_S + 5)
            self._thread = None
        for replica in self.replicas:
            replica.dispose()

    def status(self) -> list[dict]:
        """Each replica's state for ``/healthz``: its name (never its address), whether it takes reads, its lag."""
        return [{"name": r.name, "in_rotation": r.in_rotation, "state": r.health.state,
                 "lag_bytes": r.health.lag_bytes, "lag_s": r.health.lag_s, "reads": r.reads}
                for r in self.replicas]

