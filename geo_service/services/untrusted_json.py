"""JSON sent by clients (request bodies, CQL2-JSON filters), read with the limits JSON itself sets.

The standard library's parser accepts ``NaN``, ``Infinity`` and numbers that overflow to infinity, none of
which is JSON nor storable as a coordinate; and it recurses, so a text nested a few thousand levels deep
ends in a RecursionError (a 500). ``loads`` refuses both, the depth measured before parsing.
"""

from __future__ import annotations

import json
import math

import numpy as np


class TooDeep(ValueError):
    """The text nests arrays and objects deeper than allowed."""

    def __init__(self, max_depth: int):
        super().__init__(f"imbrication de plus de {max_depth} niveaux")
        self.max_depth = max_depth


def deeper_than(raw: bytes, depth: int) -> bool:
    """Whether JSON text nests arrays and objects more than ``depth`` deep, found without parsing it.

    The depth is the highest running count of opening minus closing brackets outside strings, computed by numpy
    in a few passes over the bytes: tens of milliseconds for a 10 MB body, whatever it holds (a Python loop
    takes seconds, and regular expressions slow down on many small strings).

    >>> deeper_than(b'{"a": [[1, 2], {"b": "]]]"}]}', 3), deeper_than(b"[[[[]]]]", 3)
    (False, True)
    """
    if len(raw) <= 2 * depth:
        return False
    # Without escaped backslashes and quotes, every quote opens or closes a string.
    text = np.frombuffer(raw.replace(b"\\\\", b"").replace(b'\\"', b""), dtype=np.uint8)
    in_string = np.cumsum(text == ord('"'), dtype=np.int32) % 2 == 1
    steps = ((text == ord("[")) | (text == ord("{"))).astype(np.int8) - ((text == ord("]")) | (text == ord("}")))
    steps[in_string] = 0
    return int(np.cumsum(steps, dtype=np.int32).max()) > depth


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} n'est pas un nombre JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"nombre hors limites : {text[:40]}")
    return value


def loads(raw: str | bytes, max_depth: int) -> object:
    """Parse JSON text nested at most ``max_depth`` deep (else ``TooDeep``), with finite numbers only (else
    ``ValueError``, as for any invalid JSON)."""
    if deeper_than(raw.encode() if isinstance(raw, str) else raw, max_depth):
        raise TooDeep(max_depth)
    return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
