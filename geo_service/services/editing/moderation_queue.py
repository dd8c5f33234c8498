"""The validation queue: EPCI contributors' proposals, accepted or rejected by an administrator with a comment.

A proposal is a ``change_requests`` row. For a new feature it points at the row created in state
``proposed``; for a change or a deletion it holds the complete proposed state and the version it was made
on (``base_version``): if the feature changed since, accepting is refused (409) rather than silently
overwriting the newer version. Accepting writes through the same history as any edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from geo_service.errors import Conflict, InvalidParameter, NotFound
from geo_service.services.editing import history, rights
from geo_service.services.editing.feature_writes import EditContext, EditResult, mark_deleted
from geo_service.services.publish.visibility import is_published
from geo_service.tables import metadata_for


@dataclass(frozen=True)
class ChangeRequest:
    id: int
    layer_id: str
    fid: int
    kind: str
    status: str
    properties: dict | None
    geojson: dict | None
    base_version: int | None
    submitted_by: str
    epci_siren: str | None
    path: str
    submitted_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None


_COLUMNS = ("id, layer_id, fid, kind, status, properties, ST_AsGeoJSON(geom)::json, base_version, submitted_by, "
            "epci_siren, path, submitted_at, decided_by, decided_at, comment")


def list_requests(conn: Connection, status: str | None = "pending", layer_id: str | None = None) -> list[ChangeRequest]:
    rows = conn.execute(text(
        f"SELECT {_COLUMNS} FROM change_requests WHERE (CAST(:s AS text) IS NULL OR status = :s) "
        "AND (CAST(:l AS text) IS NULL OR layer_id = :l) ORDER BY submitted_at, id"), {"s": status, "l": layer_id})
    return [ChangeRequest(*row) for row in rows]


def get_request(conn: Connection, request_id: int, *, lock: bool = False) -> ChangeRequest:
    row = conn.execute(text(f"SELECT {_COLUMNS} FROM change_requests WHERE id = :i{' FOR UPDATE' if lock else ''}"),
                       {"i": request_id}).first()
    if row is None:
        raise NotFound(f"Aucune proposition n° {request_id}")
    return ChangeRequest(*row)


def _pending(conn: Connection, ctx: EditContext, request_id: int) -> ChangeRequest:
    rights.require_moderator(ctx.principal)
    request = get_request(conn, request_id, lock=True)
    if request.status != "pending":
        raise Conflict(f"La proposition n° {request_id} a déjà été traitée ({request.status})")
    if request.layer_id not in ctx.registry:
        raise Conflict(f"La couche « {request.layer_id} » de la proposition n'existe plus")
    return request


def _decide(conn: Connection, ctx: EditContext, request: ChangeRequest, status: str, comment: str | None) -> None:
    conn.execute(text("UPDATE change_requests SET status = :s, decided_by = :u, decided_at = now(), comment = :c "
                      "WHERE id = :i"), {"s": status, "u": ctx.principal.username, "c": comment, "i": request.id})


def accept(conn: Connection, ctx: EditContext, request_id: int, comment: str | None = None) -> EditResult:
    """Apply a pending proposal; refused (409) if the feature changed since the proposal was made."""
    request = _pending(conn, ctx, request_id)
    layer = ctx.registry.get(request.layer_id)
    table = metadata_for(ctx.registry).tables[layer.id]
    before = history.snapshot(conn, layer, request.fid, lock=True)
    if before is None:
        raise Conflict(f"L'entité {request.fid} de la proposition n'existe plus")
    if request.kind == "create":
        if before.validation_state != "proposed" or before.deleted_at is not None:
            raise Conflict(f"L'entité proposée {request.fid} n'est plus en attente")
        conn.execute(text(f'UPDATE "{layer.id}" SET validation_state = \'published\', version = version + 1, '
                          "updated_at = now() WHERE fid = :f"), {"f": request.fid})
    else:
        if not is_published(before.validation_state, before.deleted_at):
            raise Conflict(f"L'entité {request.fid} n'est plus publiée")
        if before.version != request.base_version:
            raise Conflict(f"L'entité {request.fid} a changé depuis la proposition (version {request.base_version} → "
                           f"{before.version}) : refusez la proposition ou demandez-en une nouvelle")
        if request.kind == "update":
            assert request.properties is not None
            ewkb = conn.execute(text("SELECT ST_AsEWKB(geom) FROM change_requests WHERE id = :i"),
                                {"i": request.id}).scalar_one()
            try:
                history.write_state(conn, layer, request.fid, request.properties, bytes(ewkb), request.submitted_by)
            except IntegrityError:
                # E.g. the proposed natural key was taken by another feature since the proposal.
                raise Conflict(f"La proposition n° {request.id} entre en conflit avec une autre entité "
                               f"({layer.natural_key} déjà utilisé) : refusez-la") from None
        else:
            mark_deleted(conn, table, request.fid, request.submitted_by)
    _decide(conn, ctx, request, "accepted", comment)
    after = history.snapshot(conn, layer, request.fid)
    assert after is not None
    history.record(conn, layer.id, request.fid, "accept", actor=ctx.principal.username, path=ctx.path,
                   before=before, after=after, change_request_id=request.id, change_set=ctx.change_set,
                   comment=comment or f"proposition de {request.submitted_by} acceptée")
    return EditResult(layer.id, request.fid, after.version, "deleted" if after.deleted_at else "published", request.id)


def reject(conn: Connection, ctx: EditContext, request_id: int, comment: str) -> ChangeRequest:
    """Refuse a pending proposal with a comment for its author; a proposed new feature stays hidden (rejected)."""
    if not comment or not comment.strip():
        raise InvalidParameter("Un refus s'accompagne d'un commentaire pour le contributeur", parameter="comment")
    request = _pending(conn, ctx, request_id)
    if request.kind == "create":
        layer = ctx.registry.get(request.layer_id)
        before = history.snapshot(conn, layer, request.fid, lock=True)
        conn.execute(text(f'UPDATE "{layer.id}" SET validation_state = \'rejected\', version = version + 1, '
                          "updated_at = now() WHERE fid = :f"), {"f": request.fid})
        after = history.snapshot(conn, layer, request.fid)
        history.record(conn, layer.id, request.fid, "reject", actor=ctx.principal.username, path=ctx.path,
                       before=before, after=after, change_request_id=request.id, comment=comment)
    _decide(conn, ctx, request, "rejected", comment.strip())
    return get_request(conn, request_id)
