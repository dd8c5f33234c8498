"""Fuzzing the service from its own OpenAPI documents (schemathesis): ``/openapi.json`` and the OGC API's
``/ogc/api``, every operation, writes included (OGC API Part 4 and the moderation API, with an administrator's
token). Checks: no 5xx, responses matching their schema where the document describes one, and content types
matching the document.

``make test`` runs a seeded, bounded run in process (ASGI) on a database of its own, so the writes it manages to
make never reach the other tests; ``make soak`` runs a large one against uvicorn (``tests/robustness/soak.py``).
The number of requests sent is written to ``test-output/robustness-fuzz.json``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from geo_service.main import create_app
from robustness.fuzzing import from_asgi, fuzz, known_values
from robustness.support import World, build_world, scratch_database

# Examples per operation: ≈70 operations in the two documents; FUZZ_EXAMPLES raises it for a longer run.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
# NUL bytes in query strings are sent too (a 400 naming the parameter); FUZZ_NUL=0 leaves them out.
ALLOW_NUL = os.environ.get("FUZZ_NUL") != "0"
# Counted by status, over both documents, and written to test-output/ at the end of the module.
SENT: Counter[str] = Counter()


@pytest.fixture(scope="module")
def world(settings, registry, boundaries_dir) -> Iterator[World]:
    with scratch_database(settings, "fuzz") as scratch:
        built = build_world(scratch, registry, boundaries_dir)
        yield built
        built.engine.dispose()


@pytest.fixture(scope="module")
def app(world: World) -> Iterator[FastAPI]:
    application = create_app(world.settings)
    with TestClient(application):  # the lifespan: engines on app.state for every call schemathesis makes
        yield application


@pytest.fixture(scope="module")
def count_requests(artefacts_dir) -> Iterator[Counter]:
    yield SENT
    (artefacts_dir / "robustness-fuzz.json").write_text(
        json.dumps({"requests": sum(SENT.values()), "by_status": dict(sorted(SENT.items())),
                    "examples_per_operation": EXAMPLES}, indent=1), encoding="utf-8")


def load(path: str, app: FastAPI, world: World):
    return from_asgi(path, app, known_values((layer.id for layer in world.registry), world.features.values()),
                     ALLOW_NUL)


@pytest.fixture(scope="module")
def service_schema(app: FastAPI, world: World):
    return load("/openapi.json", app, world)


@pytest.fixture(scope="module")
def ogc_schema(app: FastAPI, world: World):
    return load("/ogc/api", app, world)


def test_both_documents_are_valid_openapi(app: FastAPI):
    with TestClient(app) as client:
        for path in ("/openapi.json", "/ogc/api"):
            document = client.get(path).json()
            validate(document)  # raises on an invalid document
            assert document["openapi"].startswith("3.") and document["paths"], path


def test_service_api(service_schema, world: World, count_requests: Counter):
    failures = fuzz(service_schema, world.tokens["admin"], EXAMPLES, count_requests)
    assert not failures, "\n\n".join(failures)


def test_ogc_api(ogc_schema, world: World, count_requests: Counter):
    failures = fuzz(ogc_schema, world.tokens["admin"], EXAMPLES, count_requests)
    assert not failures, "\n\n".join(failures)
