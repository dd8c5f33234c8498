"""What every reader gets: the one feature reader (which rows and properties a reader may see, and the
GeoJSON PostGIS writes for them), the OGC API – Features documents and items, CQL2, coordinate systems,
vector tiles and tilesets, whole-layer exports and the layer change counters behind ETags and caches.
Imports nothing from the other surfaces; they import it."""
