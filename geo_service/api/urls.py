"""Absolute links of the service (OGC API links, TileJSON, the embed snippet, a created feature's Location).

With ``settings.public_base_url`` set they are built on it, whatever Host the request named: documents cached
as ``public`` must not carry a name a client chose. Without it (development) they follow the request, whose Host
the trusted-host check (main.py) has already limited to the allowed names. Pages use root-relative links instead.
"""

from __future__ import annotations

from starlette.datastructures import URL
from starlette.requests import Request

from geo_service.api.security_headers import route_path


def site_url(request: Request) -> str:
    """The service's root, without a trailing slash: ``public_base_url``, else the request's scheme, host and
    root path."""
    public: str | None = request.app.state.settings.public_base_url
    return public or str(request.base_url).rstrip("/")


def absolute_url(request: Request, path: str) -> str:
    """``path`` (from the service's root, e.g. ``/ogc``) as an absolute URL."""
    return site_url(request) + path


def request_url(request: Request) -> URL:
    """The URL of this request as the public knows it (the base of self, next and previous links)."""
    if not request.app.state.settings.public_base_url:
        return request.url
    query = request.url.query
    return URL(site_url(request) + route_path(request.scope) + (f"?{query}" if query else ""))
