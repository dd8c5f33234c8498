"""The editor's list of features: search, filters by commune, EPCI and state, as GeoJSON with versions.

Unlike the public API, an editor may ask for proposals (its own, or all for the GIS staff) and the GIS staff
for deleted rows; every row carries ``_state`` and ``_version`` (for the ``If-Match`` of its next change).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Connection, text

from geo_service.errors import Forbidden, InvalidParameter
from geo_service.layers import LayerDecl
from geo_service.services.editing.accounts import Principal
from geo_service.services.publish.read_access import Reader
from geo_service.services.publish.visibility import visible_rows_sql
from geo_service.services.sql_build import columns_object_sql, quote_ident

STATES = ("published", "proposed", "deleted")
MAX_ROWS = 2000


@dataclass(frozen=True)
class Filters:
    q: str | None = None
    commune: str | None = None
    epci: str | None = None
    state: str = "published"
    bbox: tuple[float, float, float, float] | None = None
    limit: int = 500


def search(conn: Connection, layer: LayerDecl, principal: Principal, reader: Reader, filters: Filters) -> dict:
    """A FeatureCollection of at most ``filters.limit`` rows matching the filters (identifiers from the layer)."""
    if not layer.editable:
        raise InvalidParameter(f"La couche « {layer.title} » n'est pas modifiable", parameter="layer")
    if filters.state not in STATES:
        raise InvalidParameter(f"État inconnu « {filters.state} » ; états : {', '.join(STATES)}", parameter="state")
    staff = principal.role in ("admin", "editor")
    where, params = ["TRUE"], {"limit": min(max(filters.limit, 1), MAX_ROWS)}
    if filters.state == "published":
        where.append(visible_rows_sql(layer, "t"))
    elif filters.state == "proposed":
        where.append("t.validation_state = 'proposed' AND t.deleted_at IS NULL")
        if not staff:
            # A contributor sees its own proposals only.
            where.append("t.updated_by = :me")
            params["me"] = principal.username
    else:
        if not staff:
            raise Forbidden("Seuls les administrateurs et éditeurs voient les entités supprimées")
        where.append("t.deleted_at IS NOT NULL")
    names = {f.name for f in layer.fields}
    if filters.q and layer.label_field:
        where.append(f"t.{quote_ident(layer.label_field)} ILIKE :q")
        params["q"] = "%" + filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if filters.commune and "code_insee" in names:
        where.append("t.code_insee = :commune")
        params["commune"] = filters.commune
    if filters.epci:
        where.append("ST_Intersects(t.geom, (SELECT geom FROM epci WHERE siren = :epci))")
        params["epci"] = filters.epci
    if filters.bbox:
        where.append("t.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)")
        params.update(zip(("x0", "y0", "x1", "y1"), filters.bbox, strict=True))
    fields = layer.fields if reader.sees_restricted(layer) else layer.public_fields()
    props = columns_object_sql([*(f.name for f in fields), "source"], "t")
    sql = text(
        f"SELECT json_build_object('type', 'Feature', 'id', t.fid, 'geometry', ST_AsGeoJSON(t.geom, 7)::json, "
        f"'properties', {props} || jsonb_build_object('_version', t.version, '_state', "
        "CASE WHEN t.deleted_at IS NOT NULL THEN 'deleted' ELSE t.validation_state END))::text "
        f"FROM {quote_ident(layer.id)} t WHERE {' AND '.join(where)} ORDER BY t.fid DESC LIMIT :limit")
    features = [json.loads(row[0]) for row in conn.execute(sql, params)]
    return {"type": "FeatureCollection", "features": features, "numberReturned": len(features),
            "limit": params["limit"]}
