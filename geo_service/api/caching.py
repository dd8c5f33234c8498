"""HTTP caching manners shared by the read routers: ETag, Last-Modified, Cache-Control and 304."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from fastapi import Request

from geo_service.settings import Settings


def etag_of(*parts: object) -> str:
    """A strong ETag made of whatever decides the content (layer state, parameters…), not of the bytes."""
    return '"' + hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:32] + '"'


def cache_headers(settings: Settings, etag: str, last_modified: datetime | None = None,
                  vary: str | None = "Accept") -> dict[str, str]:
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={settings.api.cache_max_age_s}"}
    if vary:
        headers["Vary"] = vary
    if last_modified is not None:
        headers["Last-Modified"] = format_datetime(last_modified.astimezone(UTC), usegmt=True)
    return headers


def not_modified(request: Request, etag: str, last_modified: datetime | None) -> bool:
    """True when the client's copy is current (``If-None-Match`` first, else ``If-Modified-Since``)."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        return etag in (t.strip().removeprefix("W/") for t in if_none_match.split(",")) or if_none_match == "*"
    since = request.headers.get("if-modified-since")
    if since and last_modified is not None:
        try:
            return last_modified.replace(microsecond=0) <= parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
    return False
