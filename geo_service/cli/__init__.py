"""The ``geo-service`` command line: one module per theme, each calling the same services as the API."""

from geo_service.cli.app import cli, main

__all__ = ["cli", "main"]
