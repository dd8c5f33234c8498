"""What every ``geo-service`` command shares: the settings, registry and engine of the invocation (built lazily, so
``--help`` needs no database), the French failure, and one transaction per command."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from pydantic import ValidationError

from geo_service.errors import ServiceError
from geo_service.layers import LayerRegistry
from geo_service.settings import Settings


class CliState:
    """Settings and registry, built once per invocation, lazily so ``--help`` needs no database."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._registry: LayerRegistry | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = Settings()
            except ValidationError as exc:  # a setting refused (production without its secret key or address…)
                fail(" ; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors()))
        return self._settings

    @property
    def registry(self) -> LayerRegistry:
        if self._registry is None:
            self._registry = LayerRegistry.from_dir(self.settings.layers_dir)
        return self._registry

    def engine(self):
        from geo_service.db import make_engine

        return make_engine(self.settings, pool_size=2)


pass_state = click.make_pass_decorator(CliState, ensure=True)


def fail(message: str) -> None:
    click.secho(f"Erreur : {message}", fg="red", err=True)
    sys.exit(1)


def current_state() -> CliState:
    """The invocation's state, for commands that do not take it as an argument."""
    return click.get_current_context().ensure_object(CliState)


@contextmanager
def transaction() -> Iterator:
    """One transaction per command; a refused operation ends with its French message and exit code 1."""
    try:
        with current_state().engine().begin() as conn:
            yield conn
    except ServiceError as exc:
        fail(exc.detail)


def read_secret(from_stdin: bool) -> str | None:
    return sys.stdin.readline().rstrip("\n") if from_stdin else None
