"""The security headers of every response, set here and nowhere else (``main.create_app`` configures them).

Every response: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy`` and a frame policy (CSP
``frame-ancestors`` and ``X-Frame-Options``): no site may frame this service, except the paths of ``framable``
(``/map/embed``) and the sites listed for them. HSTS on https requests in production (the scheme is the one the
trusted proxy saw, see ``ProxyHeadersMiddleware`` in main.py).

HTML pages get a Content-Security-Policy that allows only this service's own scripts, styles, images and
connections: no inline script runs unless it carries the response's nonce (``csp_nonce``), which the templates
write on the few inline scripts left (Folium's map creation, the OGC mini-map, Swagger UI's start-up). They also
get ``Cross-Origin-Opener-Policy`` and a ``Permissions-Policy`` (geolocation for the map itself, none inside an
embed). Other responses (JSON, tiles, files) get a CSP that forbids everything, in case a browser shows one as a
document.

A nonce in a page cached as ``public`` (the embed, the OGC pages) is replayed with that page, header and body
together: it still holds, because a script injected later is not in the cached body. A 304 answer carries no
CSP: the headers of a 304 replace the stored ones, and a new nonce would block the cached body's scripts.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NONCE_KEY = "csp_nonce"
# One year; no includeSubDomains: the service does not own its domain's other names.
HSTS_VALUE = b"max-age=31536000"
# Leaflet and its plugins position tiles, markers and popups with style attributes, and the legend's swatches
# carry each layer's colours as CSS variables (map/_layers.html): styles inline are allowed. They cannot run
# script; a nonce in style-src would make browsers ignore 'unsafe-inline'.
_STYLE_SRC = "'self' 'unsafe-inline'"
_NOT_FRAMED = "'none'"


def csp_nonce(request: Request) -> str:
    """This response's nonce, for the ``nonce`` attribute of an inline ``<script>``; drawn at the first call."""
    return _nonce(request.scope.setdefault("state", {}))


def _nonce(state: dict) -> str:
    if NONCE_KEY not in state:
        state[NONCE_KEY] = secrets.token_urlsafe(18)
    return state[NONCE_KEY]


def route_path(scope: Scope) -> str:
    """The path inside the app (without the ``root_path`` a proxy mounted it under)."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        return path[len(root):]
    return path


@dataclass(frozen=True)
class SecurityPolicy:
    """What the settings decide: who may frame which path, where images may come from, HSTS."""

    # Exact paths that other sites may frame → their CSP frame-ancestors sources (settings.map.embed_frame_ancestors).
    framable: dict[str, list[str]] = field(default_factory=dict)
    # Image sources beyond 'self' and data: the configured base map's outside tile server, if any
    # (services/basemap/basemap_choice.py); Leaflet loads raster tiles as <img>, so connect-src stays 'self'.
    image_sources: list[str] = field(default_factory=list)
    # Strict-Transport-Security on requests that came over https (production).
    hsts: bool = False


@dataclass(frozen=True)
class _PathHeaders:
    """The headers of one kind of path (framable or not), prepared once; the HTML CSP waits for its nonce."""

    html: list[tuple[bytes, bytes]]  # without the CSP
    html_csp: str  # with "{nonce}"
    other: list[tuple[bytes, bytes]]  # with its CSP
    names: frozenset[bytes]  # every header name set here: one a route set is replaced


def _path_headers(policy: SecurityPolicy, ancestors: list[str] | None) -> _PathHeaders:
    framed = ancestors is not None
    frame_ancestors = " ".join(ancestors or []) or _NOT_FRAMED
    images = " ".join(["'self'", "data:", *policy.image_sources])
    html_csp = ("default-src 'self'; script-src 'self' 'nonce-{nonce}'; " f"style-src {_STYLE_SRC}; "
                f"img-src {images}; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
                f"frame-ancestors {frame_ancestors}")
    always = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"strict-origin-when-cross-origin")]
    if not framed:
        # For browsers without CSP frame-ancestors; it cannot name the embed's sites, so the embed goes without.
        always.append((b"x-frame-options", b"DENY"))
    # The map locates the resident on request; inside a foreign page (the embed) it does not.
    geolocation = "()" if framed else "(self)"
    permissions = f"geolocation={geolocation}, camera=(), microphone=(), payment=(), usb=()"
    html = [*always, (b"cross-origin-opener-policy", b"same-origin"), (b"permissions-policy", permissions.encode())]
    other = [*always, (b"content-security-policy", f"default-src 'none'; frame-ancestors {frame_ancestors}".encode())]
    names = frozenset(name for name, _ in [*html, *other, (b"strict-transport-security", b"")])
    return _PathHeaders(html, html_csp, other, names)


class SecurityHeaders:
    """ASGI middleware adding the security headers (replacing any a route set) to every HTTP response."""

    def __init__(self, app: ASGIApp, policy: SecurityPolicy) -> None:
        self.app = app
        self.hsts = policy.hsts
        self.default = _path_headers(policy, None)
        self.framable = {path: _path_headers(policy, ancestors) for path, ancestors in policy.framable.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The request's state, shared by the scopes routing derives from this one: where the page's nonce is kept.
        state = scope.setdefault("state", {})
        prepared = self.framable.get(route_path(scope), self.default)
        https = self.hsts and scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = message.get("headers", [])
                html = any(k == b"content-type" and v.startswith(b"text/html") for k, v in raw)
                added = list(prepared.html if html else prepared.other)
                if message["status"] == 304:  # a 304's headers replace the stored ones: keep the body's own CSP
                    added = [(k, v) for k, v in added if k != b"content-security-policy"]
                elif html:
                    added.append((b"content-security-policy", prepared.html_csp.format(nonce=_nonce(state)).encode()))
                if https:
                    added.append((b"strict-transport-security", HSTS_VALUE))
                kept = [(k, v) for k, v in raw if k.lower() not in prepared.names]
                message = {**message, "headers": kept + added}
            await send(message)

        await self.app(scope, receive, send_with_headers)
