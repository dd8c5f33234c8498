"""Which database answers a request when read replicas are configured (``db.replica_urls``, db_routing.py).

- Public reads (GET/HEAD without token, session cookie or a recent write, outside ``/admin``) go to a replica in
  rotation, in turn: OGC API, tiles, ``/api/nearby``, ``/api/geocode``, reports' pages and statistics, the
  observatory, the embed. The choice is left in ``request.state`` where ``api/deps.py`` finds it, so no router
  knows of replicas.
- Writes, and every request of an editor or contributor (token or session), go to the primary: they must see
  the data as they are, and their reads are few.
- Read-your-writes: a successful write (any method other than GET/HEAD/OPTIONS answered below 400) sets a
  signed cookie holding a deadline ``db.read_your_writes_s`` ahead, and the client's reads carrying it go to the
  primary until then. Why a cookie rather than waiting for the replica to replay the write's LSN: it costs no
  database round trip on any read, it works across every process behind a load balancer (they share
  ``GEO_SERVICE_SECRET_KEY``), and the window is safe by construction — a replica in rotation was at most
  ``replica_max_lag_s`` behind one ``replica_check_interval_s`` ago, and the settings refuse a window shorter
  than both together. A client that keeps no cookies (a script) and must read its own write at once should
  read with its token, as editors do.
- A replica that fails during a request (refused, shut down, connection lost) is taken out of the rotation by
  db_routing.py; if the answer has not started yet, the request is run again on another replica or the
  primary, so the client never sees that failure. A streamed answer cut after its start cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from http.cookies import SimpleCookie

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo_service.api.deps import READ_REPLICA
from geo_service.api.router_helpers import secure_cookies
from geo_service.db_routing import Replica, ReplicaSet

# The read-your-writes cookie: "<deadline>.<signature>" (no personal data; it only sends reads to the primary).
RECENT_WRITE_COOKIE = "gs_ecriture"
_READ_METHODS = ("GET", "HEAD")


def _signature(secret: str, deadline: str) -> str:
    return hmac.new(secret.encode(), f"ecriture:{deadline}".encode(), hashlib.sha256).hexdigest()[:32]


def recent_write_cookie(secret: str, window_s: float) -> str:
    deadline = str(int(time.time() + window_s) + 1)
    return f"{deadline}.{_signature(secret, deadline)}"


def wrote_recently(secret: str, value: str) -> bool:
    """Whether a read-your-writes cookie is genuine and its deadline not past (wall clock: shared by processes)."""
    deadline, _, signature = value.partition(".")
    if not deadline.isdigit() or not hmac.compare_digest(signature.encode(), _signature(secret, deadline).encode()):
        return False
    return int(deadline) >= time.time()


def _cookies(headers: dict[bytes, bytes]) -> SimpleCookie:
    cookies = SimpleCookie()
    try:
        cookies.load(headers.get(b"cookie", b"").decode("latin-1"))
    except Exception:  # noqa: BLE001 — a malformed Cookie header only means: no cookie of ours
        return SimpleCookie()
    return cookies


class ReadRouting:
    """ASGI middleware: each request to the primary or to a replica (module docstring)."""

    def __init__(self, app: ASGIApp, session_cookie: str) -> None:
        self.app = app
        self.session_cookie = session_cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        replicas: ReplicaSet | None = getattr(scope["app"].state, "replicas", None) if scope["type"] == "http" \
            else None
        if not replicas:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in _READ_METHODS:
            await self.app(scope, receive, self._marking_writes(scope, send) if scope["method"] != "OPTIONS" else send)
            return
        if not self._public(scope):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        tried: tuple[Replica, ...] = ()
        while True:
            replica = replicas.pick(tried)
            state[READ_REPLICA] = replica
            if replica is None:  # none in rotation (or all tried): the primary
                await self.app(scope, receive, send)
                return
            if await self._answered(replica, scope, receive, send):
                return
            tried += (replica,)

    def _public(self, scope: Scope) -> bool:
        if scope["path"].startswith("/admin"):
            return False
        headers = dict(scope.get("headers") or [])
        if b"authorization" in headers:
            return False
        if b"cookie" not in headers:
            return True
        cookies = _cookies(headers)
        if self.session_cookie in cookies:
            return False
        mark = cookies.get(RECENT_WRITE_COOKIE)
        return not (mark and wrote_recently(scope["app"].state.secret_key, mark.value))

    async def _answered(self, replica: Replica, scope: Scope, receive: Receive, send: Send) -> bool:
        """Run the request with ``replica``; False when the replica failed before the answer started (to retry)."""
        started = False
        dropped = False

        async def send_unless_failed(message: Message) -> None:
            nonlocal started, dropped
            if message["type"] == "http.response.start":
                if message["status"] >= 500 and not replica.in_rotation:
                    dropped = True
                else:
                    started = True
            if not dropped:
                await send(message)

        try:
            await self.app(scope, receive, send_unless_failed)
        except Exception:
            if started or replica.in_rotation:
                raise
            return False
        return not dropped

    def _marking_writes(self, scope: Scope, send: Send) -> Send:
        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                state = scope["app"].state
                cookie = SimpleCookie()
                cookie[RECENT_WRITE_COOKIE] = recent_write_cookie(state.secret_key,
                                                                  state.settings.db.read_your_writes_s)
                morsel = cookie[RECENT_WRITE_COOKIE]
                morsel.update({"path": "/", "max-age": str(int(state.settings.db.read_your_writes_s) + 1),
                               "httponly": True, "samesite": "Lax"})
                if secure_cookies(Request(scope), state.settings):
                    morsel["secure"] = True
                header = morsel.OutputString().encode("latin-1")
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", header)]}
            await send(message)

        return marked
