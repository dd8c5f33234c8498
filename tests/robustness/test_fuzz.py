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
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from geo_service.main import create_app
from robustness.support import World, build_world, scratch_database

# Examples per operation: ≈70 operations in the two documents; FUZZ_EXAMPLES raises it for a longer run.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
# NUL bytes in query strings are the "limits" work of issue 10 (tests/robustness/test_hostile_inputs.py holds the
# case); FUZZ_NUL=1 lets the fuzzer send them too.
ALLOW_NUL = os.environ.get("FUZZ_NUL") == "1"
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
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
    schema = schemathesis.openapi.from_asgi(path, app)
    schema.config.generation.update(allow_x00=ALLOW_NUL)
    schema.hook("flatmap_path_parameters")(steer_path_parameters(world))
    return schema


@pytest.fixture(scope="module")
def service_schema(app: FastAPI, world: World):
    return load("/openapi.json", app, world)


@pytest.fixture(scope="module")
def ogc_schema(app: FastAPI, world: World):
    return load("/ogc/api", app, world)


def known_values(world: World) -> dict[str, list]:
    """Real values of the path parameters, so that part of the requests reach past the 404 of an unknown id."""
    layers = [layer.id for layer in world.registry]
    fids = sorted(world.features.values())
    return {"collectionId": layers, "layer_id": layers, "layerId": layers,
            "featureId": [str(f) for f in fids], "fid": fids, "request_id": [1, 2],
            "tileMatrixSetId": ["WebMercatorQuad"], "tileMatrix": ["8", "12"], "z": [8, 12]}


def steer_path_parameters(world: World):
    """A schemathesis ``flatmap_path_parameters`` hook: the generated parameters, or the same with the known
    values put in (Hypothesis chooses, so both kinds of request are sent)."""
    known = known_values(world)

    def hook(context, path_parameters: dict):
        names = [name for name in path_parameters or {} if name in known]
        if not names:
            return st.just(path_parameters)
        steered = st.fixed_dictionaries({name: st.sampled_from(known[name]) for name in names})
        return st.one_of(st.just(path_parameters), steered.map(lambda values: {**path_parameters, **values}))

    return hook


def headers_for(case, world: World) -> dict[str, str]:
    """Writes and the administration API as an administrator; public reads anonymously."""
    if case.method.upper() != "GET" or case.path.startswith("/admin"):
        return {"Authorization": f"Bearer {world.tokens['admin']}"}
    return {}


def test_both_documents_are_valid_openapi(app: FastAPI):
    with TestClient(app) as client:
        for path in ("/openapi.json", "/ogc/api"):
            validate(client.get(path).json())


FUZZ_SETTINGS = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate, Phase.shrink])


def fuzz(schema, world: World, sent: Counter) -> list[str]:
    """Every operation of ``schema`` with its own Hypothesis run; returns one line per failing operation."""
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                              operation.as_strategy(GenerationMode.NEGATIVE)))
        @FUZZ_SETTINGS
        def run(case) -> None:
            response = case.call_and_validate(headers=headers_for(case, world), checks=CHECKS)
            sent[str(response.status_code)] += 1

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # every failure is listed, then the test fails once
            failures.append(f"{operation.label}: {str(exc).strip()[:1500]}")
    return failures


def test_service_api(service_schema, world: World, count_requests: Counter):
    failures = fuzz(service_schema, world, count_requests)
    assert not failures, "\n\n".join(failures)


def test_ogc_api(ogc_schema, world: World, count_requests: Counter):
    failures = fuzz(ogc_schema, world, count_requests)
    assert not failures, "\n\n".join(failures)
