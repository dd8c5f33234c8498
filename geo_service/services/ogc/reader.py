"""Who is reading: the one place that decides which layers, rows and fields a request may see.

There are no accounts yet, so every request reads as the anonymous public. When accounts arrive
(editing issue), the dependency that builds a ``Reader`` changes; the OGC services already ask it.
"""

from __future__ import annotations

from dataclasses import dataclass

from geo_service.layers import LayerDecl


@dataclass(frozen=True)
class Reader:
    """What one request may read; ``ANONYMOUS`` is the public."""

    include_restricted: bool = False
    # Editors will also see proposals; the public only sees published rows.
    published_only: bool = True

    def can_read(self, layer: LayerDecl) -> bool:
        return layer.is_public or self.include_restricted


ANONYMOUS = Reader()
