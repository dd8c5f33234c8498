"""What the three importers of places (médiation numérique, France Services, tiers-lieux) share."""

from __future__ import annotations

import re

from geo_service.services.importers.framework.import_run import ImportContext
from geo_service.services.resident import opening_hours

_PHONE_DIGITS = re.compile(r"\D")


def phone(raw: str | None) -> str | None:
    """French numbers as people read them: ``+33565406520`` or ``0565406520`` → ``05 65 40 65 20``."""
    if not raw:
        return None
    digits = _PHONE_DIGITS.sub("", raw)
    if digits.startswith("33") and len(digits) == 11:
        digits = "0" + digits[2:]
    if len(digits) == 10 and digits.startswith("0"):
        return " ".join(digits[i:i + 2] for i in range(0, 10, 2))
    return raw.strip()


def first(items: list[str] | None) -> str | None:
    return items[0] if items else None


def checked_hours(ctx: ImportContext, file: str, line: int, column: str, value: str | None) -> str | None:
    """OSM opening_hours kept only when valid (the resident map evaluates them); else dropped and reported."""
    if not value:
        return None
    if opening_hours.is_valid(value):
        return value
    ctx.warn(file, line, column, value, "horaires hors de la syntaxe OpenStreetMap opening_hours : ignorés")
    return None
