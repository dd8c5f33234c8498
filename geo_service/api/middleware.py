"""ASGI middlewares: request body size limit, no shared caching of personal answers, the trusted-host check.

``BodySizeLimit``: a 413 problem before a large body is read, whatever the route. A declared
``Content-Length`` above the limit is refused at once; a chunked body is counted as it arrives and refused
as soon as it passes the limit (``PayloadTooLarge`` raised from ``receive``, which the error handlers turn
into the same problem details).
"""

from __future__ import annotations

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo_service.api.problems import problem, status_of
from geo_service.errors import PayloadTooLarge


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Le contenu dépasse la taille maximale acceptée ({limit / 1024 / 1024:g} Mo) : "
                           "découpez l'envoi ou passez par l'import en ligne de commande")


class BodySizeLimit:
    """``max_bytes`` for every request body, except under the path prefixes of ``larger`` (file uploads)."""

    def __init__(self, app: ASGIApp, max_bytes: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger or {}

    def _limit(self, path: str) -> int:
        return next((limit for prefix, limit in self.larger.items() if path.startswith(prefix)), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope.get("path", ""))
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            error = _too_large(limit)
            await problem(status_of(error), error.title, error.detail)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message

        await self.app(scope, limited, send)


class PrivateWhenAuthenticated:
    """Answers to a request with credentials (token or session cookie) may hold restricted data: they are
    marked ``private, no-cache`` and ``Vary: Authorization, Cookie`` so that no shared cache replays them to
    the public, whatever ``Cache-Control`` the read routes set for anonymous answers."""

    def __init__(self, app: ASGIApp, cookie_name: str) -> None:
        self.app = app
        self.cookie = cookie_name.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or []) if scope["type"] == "http" else {}
        personal = b"authorization" in headers or self.cookie + b"=" in headers.get(b"cookie", b"")
        if not personal:
            await self.app(scope, receive, send)
            return

        async def private(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in (b"cache-control", b"vary")]
                vary = next((v for k, v in message.get("headers", []) if k.lower() == b"vary"), b"")
                kept += [(b"cache-control", b"private, no-cache"),
                         (b"vary", b", ".join(p for p in (vary, b"Authorization, Cookie") if p))]
                message = {**message, "headers": kept}
            await send(message)

        await self.app(scope, receive, private)


class QgisHeaderCase:
    """``Location`` written with its capital: QGIS (3.32 to 3.40 at least) looks for the created feature's address
    under that exact name, while Starlette writes every header name in lower case (HTTP names are case-insensitive,
    so no other client minds). Without it QGIS reports each creation as failed and sends it again at the next save.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return

        async def capitalised(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [(b"Location" if k == b"location" else k, v)
                                                   for k, v in message.get("headers", [])]}
            await send(message)

        await self.app(scope, receive, capitalised)


_HOST_ACCEPTED = "geo_service.host_accepted"


async def _accept(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": _HOST_ACCEPTED})


class TrustedHosts:
    """A request whose ``Host`` is not one of ``allowed_hosts`` (names, or ``*.domain``) gets a 400 problem: links
    built from the request (development, api/urls.py) and cache keys then only hold names the service owns.

    Starlette's ``TrustedHostMiddleware`` decides; only its English text refusal is replaced by problem details."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.check = TrustedHostMiddleware(_accept, allowed_hosts=allowed_hosts, www_redirect=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        verdict: list[str] = []

        async def record(message: Message) -> None:
            verdict.append(message["type"])

        await self.check(scope, receive, record)
        if verdict[:1] == [_HOST_ACCEPTED]:
            await self.app(scope, receive, send)
            return
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")[:100]
        await problem(400, "Hôte inconnu", f"Ce service ne répond pas au nom d'hôte « {host} »",
                      parameter="Host")(scope, receive, send)
