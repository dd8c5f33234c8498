"""``/admin/import``: bulk import of a file into a layer (preview, column mapping, check, commit, undo) and,
for administrators, the open-data importers (ARCEP, ANFR, BAN, national lists).

Handlers only translate HTTP: the file is kept by ``services/importers/uploads.py`` between the pages, the rows go
through ``services/importers/bulk_import.py`` (the editing rules, one change set) and open-data files through
``services/importers.run_import`` — the same services as ``geo-service edit import`` and ``geo-service import``.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from geo_service.api.deps import PrincipalDep, RegistryDep, SettingsDep, connection, transaction
from geo_service.api.problems import status_of
from geo_service.api.router_helpers import (
    STAFF,
    check_csrf,
    edit_context,
    error_page,
    login_redirect,
    page,
    require_role,
)
from geo_service.errors import ImportFileError, NotFound, ServiceError
from geo_service.layers import LayerDecl, LayerRegistry
from geo_service.services.editing import rights
from geo_service.services.editing.accounts import Principal
from geo_service.services.importers import OPEN_DATA_KINDS, bulk_import, kinds, run_import, uploads
from geo_service.services.importers.framework import file_types
from geo_service.services.importers.framework.coordinates import LAMBERT93, WGS84
from geo_service.services.importers.framework.sources import FileLimits, check_file
from geo_service.settings import Settings

router = APIRouter(prefix="/admin/import", include_in_schema=False)
CRS_CHOICES = {WGS84: "Longitude / latitude en degrés (WGS 84)", LAMBERT93: "x / y en mètres (Lambert-93)"}
MESSAGES = {"reverted": "Import annulé : les entités créées sont supprimées, les autres ont retrouvé leur version "
                        "d'avant."}
# The importers of published open data; "generic" is the bulk import above, with the editing rules.
OPEN_DATA_EXCLUDED = ("generic",)


def _folder(settings: Settings) -> Path:
    return settings.editing.upload_dir or uploads.default_folder()


def _keep(settings: Settings, file: UploadFile, principal: Principal, accepted: frozenset[str]) -> uploads.Upload:
    """The sent file, stored once its bytes show an accepted kind (alone, gzipped, or the members of a zip);
    refused with nothing kept otherwise."""
    kept = uploads.save(_folder(settings), file.file, file.filename or "fichier", principal.username,
                        settings.editing.max_upload_bytes, accepted | {file_types.ZIP, file_types.GZIP})
    try:
        check_file(kept.path, kept.name, accepted, FileLimits.from_settings(settings))
    except ServiceError:
        uploads.discard(kept)
        raise
    return kept


async def _form(request: Request) -> FormData:
    # The mapping form has one field per layer field (map__<name>): read as a whole.
    return await request.form()


def _layers(request: Request, principal: Principal, registry: LayerRegistry) -> list:
    with connection(request) as conn:
        return [grant.layer for grant in rights.editable_layers(conn, principal, list(registry))]


def _index(request: Request, settings: Settings, principal: Principal, registry: LayerRegistry,
           error: str | None = None, status: int = 200, report=None) -> Response:
    with connection(request) as conn:
        recent = bulk_import.change_sets(conn, 30) if principal.role in STAFF else []
    open_data = {name: kind for name, kind in kinds().items() if name not in OPEN_DATA_EXCLUDED} \
        if principal.role == "admin" else {}
    return page(request, settings, principal, "admin/import.html",
                {"layers": _layers(request, principal, registry), "recent": recent, "open_data": open_data,
                 "chosen_layer": request.query_params.get("layer"),
                 "error": error, "report": report, "message": MESSAGES.get(request.query_params.get("done", "")),
                 "max_mb": settings.editing.max_upload_bytes / 1024 / 1024},
                status=status)


@router.get("", response_class=HTMLResponse)
def index(request: Request, settings: SettingsDep, principal: PrincipalDep, registry: RegistryDep) -> Response:
    if not principal.authenticated:
        return login_redirect(request)
    return _index(request, settings, principal, registry)


@router.post("", response_class=HTMLResponse)
def upload(request: Request, settings: SettingsDep, principal: PrincipalDep, registry: RegistryDep,
           file: Annotated[UploadFile, File()], layer: Annotated[str, Form()] = "",
           csrf_token: Annotated[str, Form()] = "") -> Response:
    """Keep the file and show its preview with the suggested mapping."""
    try:
        check_csrf(request, principal, csrf_token)
        if layer not in {item.id for item in _layers(request, principal, registry)}:
            raise NotFound("Choisissez une couche que vous pouvez modifier")
        kept = _keep(settings, file, principal, bulk_import.ACCEPTED_KINDS)
    except ServiceError as exc:
        return _index(request, settings, principal, registry, error=exc.detail, status=status_of(exc))
    return RedirectResponse(f"/admin/import/{kept.token}?layer={layer}", status_code=303)


@router.post("/undo", response_class=HTMLResponse, name="undo_import")
def undo(request: Request, settings: SettingsDep, principal: PrincipalDep, registry: RegistryDep,
         change_set: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "") -> Response:
    try:
        check_csrf(request, principal, csrf_token)
        require_role(principal, STAFF)
        with transaction(request) as conn:
            bulk_import.revert_change_set(conn, edit_context(principal, registry, settings, path="web"), change_set)
    except ServiceError as exc:
        return _index(request, settings, principal, registry, error=exc.detail, status=status_of(exc))
    return RedirectResponse("/admin/import?done=reverted", status_code=303)


@router.post("/open-data", response_class=HTMLResponse)
def open_data(request: Request, settings: SettingsDep, principal: PrincipalDep, registry: RegistryDep,
              file: Annotated[UploadFile, File()], kind: Annotated[str, Form()] = "",
              check_only: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "") -> Response:
    """An open-data file (administrators): filtered to the territory, checked, upserted, in one transaction."""
    try:
        check_csrf(request, principal, csrf_token)
        require_role(principal, ("admin",))
        if kind in OPEN_DATA_EXCLUDED or kind not in kinds():
            raise ImportFileError(f"Type d'import inconnu « {kind} »")
        kept = _keep(settings, file, principal, OPEN_DATA_KINDS)
        try:
            with transaction(request) as conn:
                report = run_import(conn, registry, settings.territory, kind, kept.path, filename=kept.name,
                                    user=principal.username, dry_run=bool(check_only),
                                    limits=FileLimits.from_settings(settings), lift_time_limit=True)
        finally:
            uploads.discard(kept)
    except ServiceError as exc:
        return _index(request, settings, principal, registry, error=exc.detail, status=status_of(exc))
    return page(request, settings, principal, "admin/import_open_data.html",
                {"report": report, "kind": kinds()[kind]})


# Declared after /undo and /open-data: a token never takes their place.
def _preview_page(request: Request, settings: Settings, principal: Principal, registry: LayerRegistry,
                  token: str, layer_id: str, form: FormData | None = None, report=None, error: str | None = None,
                  status: int = 200) -> Response:
    try:
        kept = uploads.load(_folder(settings), token, principal.username)
        if layer_id not in registry:
            raise NotFound(f"Aucune couche « {layer_id} »")
        layer = registry.get(layer_id)
        seen = _preview(settings, kept, layer)
    except ServiceError as exc:
        return error_page(request, settings, principal, exc)
    if form is not None:  # the person's own choices, shown again with the report
        chosen = {f.name: form.get(f"map__{f.name}", "") for f in layer.fields}
        xy = {"x": form.get("x") or None, "y": form.get("y") or None, "crs": form.get("crs") or seen.crs,
              "source": form.get("source", ""), "licence": form.get("licence", "")}
    else:
        chosen = {f: c for c, f in seen.suggested.items()}
        xy = {"x": seen.x, "y": seen.y, "crs": seen.crs, "source": "", "licence": ""}
    return page(request, settings, principal, "admin/import_preview.html",
                {"token": token, "layer": layer, "seen": seen, "chosen": chosen, "xy": xy, "report": report,
                 "crs_choices": CRS_CHOICES, "error": error}, status=status)


def _preview(settings: Settings, kept: uploads.Upload, layer: LayerDecl) -> bulk_import.Preview:
    """The file's preview for ``layer``, read from the file once and kept with it for the next pages."""
    record = f"apercu-{layer.id}"
    known = uploads.recall(kept, record)
    if isinstance(known, dict):
        return bulk_import.Preview(**known)
    seen = bulk_import.preview(kept.path, kept.name, layer, max_rows=settings.editing.max_import_rows,
                               limits=FileLimits.from_settings(settings))
    uploads.remember(kept, record, asdict(seen))
    return seen


@router.get("/{token}", response_class=HTMLResponse)
def preview(request: Request, token: str, settings: SettingsDep, principal: PrincipalDep, registry: RegistryDep,
            layer: str = "") -> Response:
    if not principal.authenticated:
        return login_redirect(request)
    return _preview_page(request, settings, principal, registry, token, layer)


@router.post("/{token}", response_class=HTMLResponse)
def check_or_commit(request: Request, token: str, settings: SettingsDep, principal: PrincipalDep,
                    registry: RegistryDep, form: Annotated[FormData, Depends(_form)]) -> Response:
    """« Vérifier » reports every rejected row and writes nothing; « Importer » writes all rows or none."""
    layer_id = str(form.get("layer", ""))
    commit = form.get("action") == "commit"
    try:
        check_csrf(request, principal, str(form.get("csrf_token", "")))
        kept = uploads.load(_folder(settings), token, principal.username)
        if layer_id not in registry:
            raise NotFound(f"Aucune couche « {layer_id} »")
        columns = {str(form[f"map__{f.name}"]): f.name for f in registry.get(layer_id).fields
                   if form.get(f"map__{f.name}")}
        mapping = bulk_import.ColumnMapping(
            layer_id, columns, x=str(form.get("x") or "") or None, y=str(form.get("y") or "") or None,
            crs=str(form.get("crs") or WGS84), source=str(form.get("source") or "").strip() or None,
            licence=str(form.get("licence") or "").strip() or None)
        ctx = replace(edit_context(principal, registry, settings, path="web"), change_set=bulk_import.new_change_set())
        with transaction(request) as conn:
            report = bulk_import.run(conn, ctx, kept.path, kept.name, mapping, commit=commit,
                                     max_rows=settings.editing.max_import_rows,
                                     limits=FileLimits.from_settings(settings))
    except ServiceError as exc:
        return _preview_page(request, settings, principal, registry, token, layer_id, form, error=exc.detail,
                             status=status_of(exc))
    if report.committed:
        uploads.discard(kept)
        return page(request, settings, principal, "admin/import_done.html",
                    {"report": report, "layer": registry.get(layer_id)})
    status = 422 if report.rejected else 200
    return _preview_page(request, settings, principal, registry, token, layer_id, form, report=report, status=status)
