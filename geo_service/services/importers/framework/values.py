"""Raw text values of open-data files turned into typed values: decimal comma, French dates, t/f booleans, DMS.

Every parser raises ``ValueError`` with the French reason that ends up in the rejected-rows report.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import date, datetime
from functools import lru_cache

from geo_service.layers import FieldDecl

_TRUE = frozenset({"1", "t", "true", "vrai", "oui", "o", "y", "yes"})
_FALSE = frozenset({"0", "f", "false", "faux", "non", "n", "no"})
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%Y/%m/%d", "%d-%m-%Y", "%Y%m%d", "%d/%m/%y", "%d.%m.%Y")


def clean(raw: str | None, nulls: frozenset[str] = frozenset()) -> str | None:
    """Trimmed text, or None when empty (or one of the file's null markers such as ``NA``)."""
    if raw is None:
        return None
    value = raw.strip()
    return None if not value or value in nulls else value


def parse_float(raw: str) -> float:
    """``12.5``, ``12,5``, ``1 234,5`` → float; refuses text, infinities and NaN."""
    value = raw.strip().replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
    if "," in value:
        # "1.234,5": dots are thousands separators; "12,5": the comma is the decimal mark.
        value = value.replace(".", "").replace(",", ".") if "." in value else value.replace(",", ".")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"nombre attendu, lu « {raw.strip()} »") from None
    if not math.isfinite(number):
        raise ValueError(f"nombre fini attendu, lu « {raw.strip()} »")
    return number


def parse_int(raw: str) -> int:
    """``12``, ``12.0`` (a spreadsheet's float), ``12,0`` → 12; ``12.5`` is refused."""
    number = parse_float(raw)
    if not number.is_integer():
        raise ValueError(f"nombre entier attendu, lu « {raw.strip()} »")
    return int(number)


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"booléen attendu (1/0, t/f, oui/non), lu « {raw.strip()} »")


@lru_cache(maxsize=4096)  # a file repeats the same few dates over and over
def parse_date(raw: str) -> date:
    """ISO ``AAAA-MM-JJ`` or French ``JJ/MM/AAAA`` (a time part, if any, is ignored)."""
    value = raw.strip().split("T")[0].split(" ")[0]
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"date attendue (AAAA-MM-JJ ou JJ/MM/AAAA), lu « {raw.strip()} »")


def dms_to_decimal(degrees: float, minutes: float, seconds: float, hemisphere: str) -> float:
    """Degrees, minutes, seconds and N/S/E/W as signed decimal degrees; the sign applies to the whole value.

    >>> round(dms_to_decimal(1, 30, 30, "W"), 6)
    -1.508333
    """
    if min(degrees, minutes, seconds) < 0 or minutes >= 60 or seconds >= 60:
        raise ValueError(f"coordonnée DMS invalide {degrees:g}°{minutes:g}'{seconds:g}\" (minutes et secondes < 60)")
    hemi = hemisphere.strip().upper()
    if hemi not in ("N", "S", "E", "W", "O"):
        raise ValueError(f"hémisphère N, S, E ou W attendu, lu « {hemisphere.strip()} »")
    value = degrees + minutes / 60 + seconds / 3600
    return -value if hemi in ("S", "W", "O") else value


def insee_code(raw: str | None) -> str | None:
    """A commune code as text: ``1002`` or ``1002.0`` (read as a number upstream) → ``01002``; ``2A004`` kept."""
    value = clean(raw)
    if value is None:
        return None
    if len(value) == 5 and value.isdigit():
        return value  # the usual case, on every row of a national file: no regular expression
    if re.fullmatch(r"\d{1,5}(\.0+)?", value):
        return value.split(".")[0].zfill(5)
    return value.upper()


def postal_code(raw: str | None) -> str | None:
    """``10000.0`` or ``1000`` → ``10000`` / ``01000``."""
    value = clean(raw)
    if value is not None and re.fullmatch(r"\d{1,5}(\.0+)?", value):
        return value.split(".")[0].zfill(5)
    return value


def station_number(raw: str | None) -> str | None:
    """An ANFR station number keeps its 10 digits: ``812290243`` (leading zero lost) → ``0812290243``."""
    value = clean(raw)
    if value is not None and re.fullmatch(r"\d{1,10}(\.0+)?", value):
        return value.split(".")[0].zfill(10)
    return value


@lru_cache(maxsize=4096)  # code-list values repeat on every row
def plain(text: str) -> str:
    """Lower case without accents and with single spaces: how code-list values are compared.

    >>> plain("  Déployé ")
    'deploye'
    """
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.replace("_", " ").lower().split())


def split_list(raw: str | None, separator: str = "|") -> list[str] | None:
    """``a|b|c`` → ``["a", "b", "c"]`` (empty items dropped), None when empty."""
    value = clean(raw)
    if value is None:
        return None
    items = [item.strip() for item in value.split(separator)]
    return [item for item in items if item] or None


def typed(field: FieldDecl, raw: object, list_separator: str = "|") -> object:
    """A raw value in the field's declared type (text is parsed; already typed values pass through)."""
    if not isinstance(raw, str):
        return raw
    value = clean(raw)
    if value is None:
        return None
    kind = field.type
    if kind == "integer":
        return parse_int(value)
    if kind == "number":
        return parse_float(value)
    if kind == "boolean":
        return parse_bool(value)
    if kind == "date":
        return parse_date(value)
    if kind == "datetime":
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"date et heure ISO 8601 attendues, lu « {value} »") from None
        return moment
    if kind == "string_list":
        return split_list(value, list_separator)
    return value
