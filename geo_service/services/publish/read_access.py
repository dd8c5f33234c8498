"""Who is reading: what layers, rows and fields a request may see.

The reader of a request is built by ``geo_service.services.rights.reader_for`` from its account and the
conventions in force (``geo_service.api.deps.get_reader``); the OGC services only ask it.
"""

from __future__ import annotations

from dataclasses import dataclass

from geo_service.layers import LayerDecl


@dataclass(frozen=True)
class Reader:
    """What one request may read; ``ANONYMOUS`` is the public."""

    # Every restricted layer and field (administrators, editors).
    include_restricted: bool = False
    # Editors will also see proposals; the public only sees published rows.
    published_only: bool = True
    # Restricted layers (and their restricted fields) opened by a descending convention in force.
    restricted_layers: frozenset[str] = frozenset()

    def sees_restricted(self, layer: LayerDecl) -> bool:
        """Whether the restricted fields (and, for a restricted layer, the layer itself) are visible."""
        return self.include_restricted or layer.id in self.restricted_layers

    def can_read(self, layer: LayerDecl) -> bool:
        return layer.is_public or self.sees_restricted(layer)

    @property
    def is_public(self) -> bool:
        """True for the anonymous view, which caches may share between users."""
        return self == ANONYMOUS


ANONYMOUS = Reader()
