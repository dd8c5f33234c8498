"""The base map under the service's maps: presets, the self-hosted MBTiles."""
