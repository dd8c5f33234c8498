"""Caps on what an OGC API filter may cost: the text's length, the expression's depth and size, the values of
an ``IN`` list and the terms of an AND/OR chain, the ``sortby``/``properties`` lists. A filter beyond a cap is a
400 problem naming ``filter`` and the cap, decided before any SQL — never a RecursionError or a 500.

Requests are sent with a hand-made query string, so that a filter of 20,000 values fits in the test client's
URL limit (64 KiB): commas, quotes and brackets stay as they are, as many clients send them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from geo_service.errors import InvalidParameter
from geo_service.main import create_app
from geo_service.services.publish import cql2_parser
from geo_service.services.publish.cql2_parser import FilterLimits
from geo_service.settings import ApiSettings, Settings

WIFI = "/ogc/collections/wifi_hotspots/items"
DEFAULTS = ApiSettings()


@pytest.fixture(scope="module")
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def get(client: TestClient, path: str, **params: str):
    """GET with the values percent-encoded only where a URL requires it (the test client's limit is 64 KiB)."""
    query = "&".join(f"{quote(k)}={quote_plus(v, safe=chr(39) + '(),:=')}" for k, v in params.items())
    return client.get(f"{path}?{query}")


def refused(response, *mentions: str) -> dict:
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["parameter"] == "filter", problem
    for mention in mentions:
        assert mention in problem["detail"], problem["detail"]
    return problem


def nested_not_json(depth: int) -> str:
    # Built as text: json.dumps itself recurses.
    leaf = '{"op":"=","args":[{"property":"rayon_m"},1]}'
    return '{"op":"not","args":[' * depth + leaf + "]}" * depth


# -- through HTTP, with the service's default limits ----------------------------------------------------------
def test_an_in_list_of_20000_values_is_a_400_naming_a_limit(client: TestClient):
    values = ",".join(["1"] * 20_000)
    assert refused(get(client, WIFI, filter=f"rayon_m IN ({values})"), str(DEFAULTS.filter_max_chars))
    as_json = json.dumps({"op": "in", "args": [{"property": "rayon_m"}, [1] * 20_000]}, separators=(",", ":"))
    assert refused(get(client, WIFI, filter=as_json, **{"filter-lang": "cql2-json"}), str(DEFAULTS.filter_max_chars))


def test_3000_and_terms_are_a_400_naming_a_limit(client: TestClient):
    assert refused(get(client, WIFI, filter=" AND ".join(["rayon_m=1"] * 3000)), str(DEFAULTS.filter_max_chars))


def test_10000_parentheses_deep_is_a_400(client: TestClient):
    deep = "(" * 10_000 + "rayon_m = 1" + ")" * 10_000
    assert refused(get(client, WIFI, filter=deep), str(DEFAULTS.filter_max_chars))


def test_a_cql2_json_filter_nested_1000_deep_is_a_400_not_a_recursion_error(client: TestClient):
    # Before the caps: RecursionError in json.loads, a 500.
    assert refused(get(client, WIFI, filter=nested_not_json(1000), **{"filter-lang": "cql2-json"}))


@pytest.mark.parametrize(("lang", "expression", "mention"), [
    ("cql2-text", "rayon_m IN (" + ",".join(["1"] * (DEFAULTS.filter_max_list + 1)) + ")",
     f"au plus {DEFAULTS.filter_max_list}"),
    ("cql2-json", json.dumps({"op": "in", "args": [{"property": "rayon_m"}, [1] * (DEFAULTS.filter_max_list + 1)]}),
     f"au plus {DEFAULTS.filter_max_list}"),
    ("cql2-text", " AND ".join(["rayon_m<>1"] * (DEFAULTS.filter_max_terms + 1)),
     f"au plus {DEFAULTS.filter_max_terms}"),
    ("cql2-text", " OR ".join(["rayon_m=1"] * (DEFAULTS.filter_max_terms + 1)),
     f"au plus {DEFAULTS.filter_max_terms}"),
    ("cql2-json", json.dumps({"op": "or", "args": [{"op": "=", "args": [{"property": "rayon_m"}, 1]}]
                              * (DEFAULTS.filter_max_terms + 1)}), f"au plus {DEFAULTS.filter_max_terms}"),
    ("cql2-json", nested_not_json(DEFAULTS.filter_max_depth + 1), f"{DEFAULTS.filter_max_depth} niveaux"),
], ids=["in-text", "in-json", "and-text", "or-text", "or-json", "depth-json"])
def test_each_cap_is_said_in_the_answer(client: TestClient, lang: str, expression: str, mention: str):
    problem = refused(get(client, WIFI, filter=expression, **{"filter-lang": lang}), mention)
    assert isinstance(problem.get("limit"), int)


def test_filters_within_the_caps_still_work(client: TestClient):
    within = [
        ("cql2-text", "rayon_m IN (" + ",".join(str(i) for i in range(DEFAULTS.filter_max_list)) + ")"),
        ("cql2-text", " AND ".join([f"rayon_m <> {i}" for i in range(DEFAULTS.filter_max_terms)])),
        ("cql2-text", "(" * 500 + "rayon_m = 1" + ")" * 500),  # parentheses are grouping, not depth
        ("cql2-json", nested_not_json(DEFAULTS.filter_max_depth - 4)),
        ("cql2-text", "statut = 'installee' AND (rayon_m > 10 OR rayon_m IS NULL) AND NOT (lieu LIKE 'x%')"),
    ]
    for lang, expression in within:
        answer = get(client, WIFI, filter=expression, **{"filter-lang": lang})
        assert answer.status_code == 200, (expression[:80], answer.text[:300])


@pytest.mark.parametrize("parameter", ["sortby", "properties"])
def test_sortby_and_properties_name_each_property_once(client: TestClient, parameter: str):
    answer = get(client, WIFI, **{parameter: ",".join(["lieu"] * 1000)})
    assert answer.status_code == 400, answer.text[:300]
    assert answer.json()["parameter"] == parameter
    assert "lieu" in answer.json()["detail"]
    assert get(client, WIFI, **{parameter: "lieu,statut"}).status_code == 200


def test_an_over_long_parameter_is_refused_naming_it(client: TestClient):
    answer = get(client, WIFI, lieu="x" * (DEFAULTS.filter_max_chars + 1))
    assert answer.status_code == 400 and answer.json()["parameter"] == "lieu", answer.text[:300]


# -- the parser alone, each cap on its own (the length and size caps lifted) ------------------------------------
UNLIMITED_TEXT = FilterLimits(max_chars=10_000_000, max_nodes=1_000_000)


def refusal(expression: str, lang: str, limits: FilterLimits = UNLIMITED_TEXT) -> InvalidParameter:
    with pytest.raises(InvalidParameter) as caught:
        cql2_parser.parse(expression, lang, limits)
    assert caught.value.parameter == "filter"
    return caught.value


def test_20000_in_values_in_either_encoding():
    text = "rayon_m IN (" + ",".join(str(i) for i in range(20_000)) + ")"
    as_json = json.dumps({"op": "in", "args": [{"property": "rayon_m"}, list(range(20_000))]})
    for expression, lang in ((text, "cql2-text"), (as_json, "cql2-json")):
        assert f"au plus {UNLIMITED_TEXT.max_list}" in refusal(expression, lang).detail


def test_3000_and_terms_in_either_encoding():
    text = " AND ".join(f"rayon_m <> {i}" for i in range(3000))
    as_json = json.dumps({"op": "and", "args": [{"op": "<>", "args": [{"property": "rayon_m"}, i]}
                                                for i in range(3000)]})
    for expression, lang in ((text, "cql2-text"), (as_json, "cql2-json")):
        assert f"au plus {UNLIMITED_TEXT.max_terms}" in refusal(expression, lang).detail


def test_10000_deep_nesting_in_either_encoding():
    # CQL2-text cannot nest NOT (its grammar), but functions and NOT(...) of JSON can.
    assert "niveaux" in refusal(nested_not_json(10_000), "cql2-json").detail
    deep_casei = "CASEI(" * 10_000 + "lieu" + ")" * 10_000 + " = 'x'"
    refusal(deep_casei, "cql2-text")


def test_many_nodes_without_long_chains_or_lists():
    # 30 IN lists of 60 values: each list and the chain within their caps, the whole beyond the node cap.
    limits = FilterLimits(max_chars=10**7, max_nodes=1000)
    part = "rayon_m IN (" + ",".join(["1"] * 60) + ")"
    as_text = " OR ".join(f"({part})" for _ in range(30))
    in_list = {"op": "in", "args": [{"property": "rayon_m"}, [1] * 60]}
    as_json = json.dumps({"op": "or", "args": [in_list] * 30})
    for expression, lang in ((as_text, "cql2-text"), (as_json, "cql2-json")):
        assert "plus de 1000 éléments" in refusal(expression, lang, limits).detail


def test_a_text_filter_with_far_more_words_than_elements_is_refused_before_parsing():
    # 16,000 characters of "1," cost the parser 0.3 s; counting them costs a millisecond.
    expression = "rayon_m IN (" + ",".join(["1"] * 8000) + ")"
    assert "éléments" in refusal(expression, "cql2-text", FilterLimits()).detail


@pytest.mark.parametrize(("literal", "reason"), [
    ("NaN", "NaN n'est pas un nombre JSON"), ("Infinity", "Infinity n'est pas un nombre JSON"),
    ("-Infinity", "-Infinity n'est pas un nombre JSON"), ("1e400", "nombre hors limites : 1e400")])
def test_non_finite_numbers_are_refused_in_cql2_json(literal: str, reason: str):
    detail = refusal('{"op":"=","args":[{"property":"rayon_m"},' + literal + "]}", "cql2-json").detail
    assert detail == f"filter : JSON invalide — {reason}"


def test_the_caps_come_from_the_settings():
    api = ApiSettings(filter_max_chars=100, filter_max_depth=3, filter_max_nodes=50, filter_max_list=5,
                      filter_max_terms=4)
    limits = FilterLimits.from_settings(api)
    assert limits == FilterLimits(max_chars=100, max_depth=3, max_nodes=50, max_list=5, max_terms=4)
    assert "au plus 5" in refusal("rayon_m IN (1,2,3,4,5,6)", "cql2-text", limits).detail
    assert "100" in refusal("lieu = '" + "x" * 100 + "'", "cql2-text", limits).detail
