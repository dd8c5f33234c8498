"""Streamed answers whose query has run before the answer starts."""

from __future__ import annotations

import itertools
from collections.abc import Iterator


def started(chunks: Iterator[str]) -> Iterator[str]:
    """``chunks`` advanced to its first chunk now, in the handler.

    The streams of features fetch their first batch before their first chunk, so the statement's cost (a sort,
    a scan, a lock to wait for) is paid here: its failure — a statement cancelled by the time limit — is still
    an error answer (errors.py), where it would otherwise cut short a 200 whose status line is already sent.
    """
    first = next(chunks, None)
    return chunks if first is None else itertools.chain((first,), chunks)
