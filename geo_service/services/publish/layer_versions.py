"""The layers' change counters kept in process memory, refreshed by PostgreSQL's LISTEN/NOTIFY.

The change trigger of every layer table (``tables.CHANGE_FUNCTION_SQL``) bumps the layer's row of ``layer_changes``
and calls ``pg_notify('layer_changes', <table>)``; PostgreSQL delivers the notification when the writing transaction
commits, whoever wrote (the service, an import, QGIS, psql). One background thread per process holds one
connection that listens, and re-reads the whole ``layer_changes`` table (a row per layer) after each batch of
notifications. A request that needs the layers' states (a tile's ETag) then takes them from memory: a tile found in
``AppCaches.tiles`` costs no statement at all.

Correctness first: ``current()`` answers ``None`` — the caller reads the counters from the database, as without
the listener — whenever the listener is not connected, not yet synced, or the database's trigger does not notify
(a database not migrated since). A change is seen once its notification reaches the listener, a few milliseconds
after the commit; the table is also re-read every ``RESYNC_SECONDS`` in case a notification was lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

import psycopg

from geo_service.services.publish.layer_state import LayerState
from geo_service.tables import CHANGE_FUNCTION, LAYER_CHANGES

CHANNEL = LAYER_CHANGES
# How often the thread looks up from waiting (to stop, to resync): bounds how long stopping takes.
WAKE_SECONDS = 0.25
# A full re-read even without a notification: bounds the staleness if one were ever lost.
RESYNC_SECONDS = 30.0
# Between two connection attempts after a failure (the database restarting, the listener's session killed).
RETRY_SECONDS = 1.0

log = logging.getLogger("geo_service.layer_versions")


class LayerVersions:
    """The state of every layer as last heard from PostgreSQL, or ``None`` while that cannot be trusted."""

    def __init__(self, conninfo: str):
        self._conninfo = conninfo
        self._states: dict[str, LayerState] | None = None  # None: not live, read the database
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.syncs = 0  # full reads of layer_changes, for tests and diagnostics
        self.backend_pid: int | None = None  # the listening session, for tests and diagnostics
        self._warned = False

    def current(self, layer_ids: Iterable[str]) -> dict[str, LayerState] | None:
        """The states of ``layer_ids`` from memory, or ``None``: the caller reads them from the database."""
        states = self._states  # one read of the reference: a resync swaps the whole dict
        if states is None:
            return None
        return {layer_id: states.get(layer_id, LayerState()) for layer_id in layer_ids}

    @property
    def live(self) -> bool:
        return self._states is not None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="layer-versions", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5 * WAKE_SECONDS)
        self._states = None

    # -- the listening thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True,
                                     application_name="geo-service layer versions") as conn:
                    self._listen(conn)
            except psycopg.Error as exc:
                log.info("écoute des changements de couches interrompue : %s", exc)
            finally:
                self._states = None
                self.backend_pid = None
            self._stop.wait(RETRY_SECONDS)

    def _listen(self, conn: psycopg.Connection) -> None:
        conn.execute(f"LISTEN {CHANNEL}")
        if not _trigger_notifies(conn):
            if not self._warned:  # said once, then looked at again every RESYNC_SECONDS (a migration may come)
                log.warning("le déclencheur %s ne notifie pas (base à migrer) : états des couches lus à chaque "
                            "requête", CHANGE_FUNCTION)
                self._warned = True
            self._stop.wait(RESYNC_SECONDS)
            return
        self.backend_pid = conn.info.backend_pid
        # Read after LISTEN: a change committed between the two is in the read or notified after it.
        self._sync(conn)
        synced_at = time.monotonic()
        while not self._stop.is_set():
            heard = any(True for _ in conn.notifies(timeout=WAKE_SECONDS))
            if heard or time.monotonic() - synced_at > RESYNC_SECONDS:
                self._sync(conn)
                synced_at = time.monotonic()

    def _sync(self, conn: psycopg.Connection) -> None:
        # Notifications that arrived meanwhile are drained by the next notifies() and cause one more read.
        rows = conn.execute(f"SELECT layer_id, version, changed_at FROM {LAYER_CHANGES}").fetchall()
        self._states = {layer_id: LayerState(int(version), changed_at) for layer_id, version, changed_at in rows}
        self.syncs += 1


def _trigger_notifies(conn: psycopg.Connection) -> bool:
    source = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", (CHANGE_FUNCTION,)).fetchone()
    return source is not None and f"pg_notify('{CHANNEL}'" in source[0]
