"""Rights: the one place that answers "may this person do this on this layer, with this geometry, now?".

Every write path (OGC API Part 4, the web editor, imports, the CLI) goes through ``services/editing/feature_writes.py``,
which asks here; readers are built here too (``reader_for``). The answer comes from three sources only:
the layer declaration (``access.edit`` roles, ``access.read``), the account's role and EPCI, and the
conventions in force at the moment of the request (``services/editing/conventions.py``). Refusals carry the reason
in French.

- admin, editor: every editable layer whose declaration lists their role; changes are published at once.
- epci_contributor: only layers listing ``epci_contributor`` *and* named by an ascending convention of its
  EPCI in force today; only geometries inside the EPCI's perimeter (give or take the tolerance), before and
  after the change; the change is a proposal that an administrator accepts or rejects.
- epci_reader: never writes. Restricted layers and fields are readable by admin, editor, and EPCI accounts
  with a descending convention in force naming the layer.
- accepting or rejecting proposals, reverting and restoring: admin (revert/restore also editor).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

from geo_service.errors import Forbidden, MethodNotAllowed, Unauthenticated
from geo_service.layers import LayerDecl
from geo_service.services.editing.accounts import ROLE_LABELS, Principal
from geo_service.services.editing.conventions import Convention, conventions_for, local_day
from geo_service.services.editing.geometry_checks import Shape, lies_within
from geo_service.services.publish.read_access import ANONYMOUS, Reader

ACTIONS = {"create": "créer", "update": "modifier", "delete": "supprimer", "restore": "restaurer",
           "revert": "rétablir une version de"}


@dataclass(frozen=True)
class WriteGrant:
    """Permission to change one layer: whether the change waits for validation, and under which convention."""

    principal: Principal
    layer: LayerDecl
    moderated: bool
    convention: Convention | None = None


def require_account(principal: Principal) -> None:
    if not principal.authenticated:
        raise Unauthenticated("Connectez-vous ou présentez un jeton d'accès (Authorization: Bearer …) pour modifier "
                              "les données")


def check_layer(conn: Connection, principal: Principal, layer: LayerDecl, action: str,
                at: datetime | None = None) -> WriteGrant:
    """May ``principal`` do ``action`` on ``layer`` at all (role, declaration, convention in force)?"""
    require_account(principal)
    verb = ACTIONS.get(action, action)
    if not layer.editable:
        raise MethodNotAllowed(f"La couche « {layer.title} » est une couche de référence : on ne peut pas en {verb} "
                               "les entités", allowed=("GET", "HEAD", "OPTIONS"))
    role = principal.role or ""
    if role not in layer.access.edit:
        raise Forbidden(f"Votre rôle ({ROLE_LABELS.get(role, role)}) ne permet pas de {verb} les entités de "
                        f"« {layer.title} »")
    if role in ("admin", "editor"):
        return WriteGrant(principal, layer, moderated=False)
    if action in ("restore", "revert"):
        raise Forbidden(f"Seuls les administrateurs et éditeurs peuvent {verb} une entité")
    day = local_day(at)
    covering = [c for c in conventions_for(conn, principal.epci_siren or "")
                if c.direction == "ascendante" and layer.id in c.layers]
    in_force = next((c for c in covering if c.in_force(day)), None)
    if in_force is None:
        epci = epci_name(conn, principal.epci_siren)
        why = f" : {covering[0].why_not_in_force(day)}" if covering else ""
        raise Forbidden(f"Aucune convention ascendante en vigueur ne permet à {epci} de {verb} les entités de "
                        f"« {layer.title} »{why}")
    return WriteGrant(principal, layer, moderated=True, convention=in_force)


def check_geometries(conn: Connection, grant: WriteGrant, shapes: Sequence[tuple[str, Shape]],
                     tolerance_m: float) -> None:
    """The perimeter rule: each geometry (``(role, shape)``, role "existante" or "nouvelle") inside the EPCI."""
    siren = grant.principal.epci_siren
    if not grant.moderated or siren is None:
        return
    epci = epci_name(conn, siren)
    for role, shape in shapes:
        inside = lies_within(conn, "SELECT geom FROM epci WHERE siren = :siren", {"siren": siren}, shape, tolerance_m)
        if inside is None:
            raise Forbidden(f"Le périmètre de {epci} n'est pas chargé : aucune contribution n'est possible")
        if not inside:
            what = "L'entité existante est" if role == "existante" else "La géométrie est"
            raise Forbidden(f"{what} hors du périmètre de {epci} (tolérance {tolerance_m:g} m) : seules les entités "
                            "situées dans votre EPCI peuvent être créées, déplacées, modifiées ou supprimées")


def authorize(conn: Connection, principal: Principal, layer: LayerDecl, action: str,
              shapes: Sequence[tuple[str, Shape]], tolerance_m: float, at: datetime | None = None) -> WriteGrant:
    """Both checks at once, for callers that already hold the geometries."""
    grant = check_layer(conn, principal, layer, action, at)
    check_geometries(conn, grant, shapes, tolerance_m)
    return grant


def require_moderator(principal: Principal) -> None:
    """Accepting or rejecting proposals is the département GIS officer's job."""
    require_account(principal)
    if principal.role != "admin":
        raise Forbidden("Seul un administrateur peut accepter ou refuser une proposition")


def require_admin(principal: Principal) -> None:
    require_account(principal)
    if principal.role != "admin":
        raise Forbidden("Réservé aux administrateurs")


def epci_name(conn: Connection, siren: str | None) -> str:
    name = conn.execute(text("SELECT nom FROM epci WHERE siren = :s"), {"s": siren}).scalar() if siren else None
    return f"l'EPCI « {name} »" if name else f"l'EPCI {siren}"


def reader_for(conn: Connection, principal: Principal, at: datetime | None = None) -> Reader:
    """What ``principal`` may read: admin and editor everything; EPCI accounts the restricted layers and fields
    of their descending conventions in force; everyone else the public."""
    if principal.role in ("admin", "editor"):
        return Reader(include_restricted=True)
    if principal.role in ("epci_contributor", "epci_reader") and principal.epci_siren:
        day = local_day(at)
        layers = {layer for c in conventions_for(conn, principal.epci_siren)
                  if c.direction == "descendante" and c.in_force(day) for layer in c.layers}
        if layers:
            return Reader(restricted_layers=frozenset(layers))
    return ANONYMOUS


def editable_layers(conn: Connection, principal: Principal, layers: Sequence[LayerDecl],
                    at: datetime | None = None) -> list[WriteGrant]:
    """The layers ``principal`` may change today, with whether its changes are proposals (the editor's menu)."""
    grants = []
    for layer in layers:
        try:
            grants.append(check_layer(conn, principal, layer, "create", at))
        except (Forbidden, MethodNotAllowed, Unauthenticated):
            continue
    return grants
