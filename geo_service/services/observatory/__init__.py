"""The observatory: the roll-out's figures for the département, each EPCI and each current commune.

Each indicator is declared once in ``indicator_catalogue`` (id, French label, unit, source layers, levels,
caveat); ``indicator_values`` computes them all set-based in PostGIS from the published, not deleted rows of
the layers (``publish.visibility``), per current commune first (merged communes rolled up through the communes
layer's ``code_insee_actuel``), then summed to EPCI and département with ``GROUPING SETS`` so that additive
figures add up by construction. The API (``/api/indicators``) and, later, the pages, snapshots and notebooks
read the same values.
"""
