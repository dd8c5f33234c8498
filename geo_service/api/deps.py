"""Dependency aliases shared by the routers: settings, layer registry, database connection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection, Engine

from geo_service.errors import NotFound
from geo_service.layers import LayerDecl, LayerRegistry
from geo_service.services.ogc.reader import ANONYMOUS, Reader
from geo_service.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_registry(request: Request) -> LayerRegistry:
    return request.app.state.registry


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_connection(request: Request) -> Iterator[Connection]:
    with request.app.state.engine.connect() as conn:
        yield conn


def get_public_layer(layer_id: str, registry: Annotated[LayerRegistry, Depends(get_registry)]) -> LayerDecl:
    """The layer named in the path, if it exists and anonymous readers may see it."""
    if layer_id not in registry or not registry.get(layer_id).is_public:
        raise NotFound(f"Aucune couche publique « {layer_id} »")
    return registry.get(layer_id)


def get_reader(request: Request) -> Reader:
    """Who is reading. No accounts yet: everyone is the anonymous public (published rows, public fields)."""
    return ANONYMOUS


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[LayerRegistry, Depends(get_registry)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ConnectionDep = Annotated[Connection, Depends(get_connection)]
PublicLayerDep = Annotated[LayerDecl, Depends(get_public_layer)]
ReaderDep = Annotated[Reader, Depends(get_reader)]
