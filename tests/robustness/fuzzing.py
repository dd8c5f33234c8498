"""The fuzzing engine shared by ``test_fuzz.py`` (``make test``, in process) and ``soak.py`` (``make soak``, against
uvicorn): schemathesis strategies for every operation of an OpenAPI document, positive and negative data, path
parameters steered part of the time to ids that exist, writes sent with an administrator's token."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def known_values(layers: Iterable[str], fids: Iterable[int]) -> dict[str, list]:
    """Real values of the path parameters, so that part of the requests reach past the 404 of an unknown id."""
    layers, fids = list(layers), sorted(fids)
    return {"collectionId": layers, "layer_id": layers, "layerId": layers,
            "featureId": [str(f) for f in fids], "fid": fids, "request_id": [1, 2],
            "tileMatrixSetId": ["WebMercatorQuad"], "tileMatrix": ["8", "12"], "z": [8, 12]}


def steer_path_parameters(known: dict[str, list]):
    """A schemathesis ``flatmap_path_parameters`` hook: the generated parameters, or the same with the known
    values put in (Hypothesis chooses, so both kinds of request are sent)."""

    def hook(context, path_parameters: dict):
        names = [name for name in path_parameters or {} if name in known]
        if not names:
            return st.just(path_parameters)
        steered = st.fixed_dictionaries({name: st.sampled_from(known[name]) for name in names})
        return st.one_of(st.just(path_parameters), steered.map(lambda values: {**path_parameters, **values}))

    return hook


def prepare(schema, known: dict[str, list], allow_nul: bool):
    schema.config.generation.update(allow_x00=allow_nul)
    schema.hook("flatmap_path_parameters")(steer_path_parameters(known))
    return schema


def fuzz(schema, admin_token: str, examples: int, sent: Counter, base_url: str | None = None) -> list[str]:
    """Every operation of ``schema`` with its own seeded Hypothesis run; counts the answers by status in ``sent``
    and returns one line per failing operation. Writes and the administration API go as an administrator,
    public reads anonymously."""
    hypothesis_settings = settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                                   suppress_health_check=list(HealthCheck),
                                   phases=[Phase.explicit, Phase.generate, Phase.shrink])
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                              operation.as_strategy(GenerationMode.NEGATIVE)))
        @hypothesis_settings
        def run(case) -> None:
            write = case.method.upper() != "GET" or case.path.startswith("/admin")
            headers = {"Authorization": f"Bearer {admin_token}"} if write else {}
            response = case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)
            sent[str(response.status_code)] += 1

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # every failure is listed, then the caller fails once
            failures.append(f"{operation.label}: {str(exc).strip()[:1500]}")
    return failures


def from_asgi(path: str, app, known: dict[str, list], allow_nul: bool):
    return prepare(schemathesis.openapi.from_asgi(path, app), known, allow_nul)


def from_url(url: str, known: dict[str, list], allow_nul: bool):
    return prepare(schemathesis.openapi.from_url(url), known, allow_nul)
