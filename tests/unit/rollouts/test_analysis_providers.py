"""Provider answers on plain data: Prometheus' instant-query JSON and the web
metric's jsonPath (the real servers are in the integration tests)."""

from __future__ import annotations

import json
import math

import pytest

from gitmoor.rollouts.conditions import evaluate
from gitmoor.rollouts.providers import (
    MeasurementError,
    kubernetes_jsonpath,
    prometheus_result,
    web_result,
)


def test_vector_is_a_list_of_floats_and_result0_works() -> None:
    doc = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": {"job": "web"}, "value": [1764590400.1, "0.975"]}],
        },
    }
    m = prometheus_result(doc)
    assert m.result == [0.975]
    assert m.value == "[0.975]"
    assert evaluate("result[0] >= 0.95", m.result)


def test_empty_vector_is_an_empty_list() -> None:
    m = prometheus_result({"status": "success", "data": {"resultType": "vector", "result": []}})
    assert m.result == [] and m.value == "[]"
    assert evaluate("len(result) == 0", m.result)


def test_scalar_is_a_float() -> None:
    m = prometheus_result(
        {"status": "success", "data": {"resultType": "scalar", "result": [1, "1"]}}
    )
    assert m.result == 1.0 and m.value == "1"


def test_nan_sample() -> None:
    m = prometheus_result(
        {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "NaN"]}]}}
    )
    assert math.isnan(m.result[0]) and m.value == "[NaN]"
    assert evaluate("isNaN(result[0])", m.result)


def test_query_error_is_a_measurement_error() -> None:
    with pytest.raises(MeasurementError, match="bad_data"):
        prometheus_result({"status": "error", "errorType": "bad_data", "error": "parse error"})
    with pytest.raises(MeasurementError, match="not supported"):
        prometheus_result(
            {"status": "success", "data": {"resultType": "string", "result": [1, "x"]}}
        )


@pytest.mark.parametrize(
    ("spelling", "query"),
    [
        ("{$.data.ok}", "$.data.ok"),
        ("{.data.ok}", "$.data.ok"),
        ("{$}", "$"),
        ("", "$"),
        ("$.a[0]", "$.a[0]"),
    ],
)
def test_kubernetes_jsonpath_spelling(spelling: str, query: str) -> None:
    assert kubernetes_jsonpath(spelling) == query


def test_web_result_by_jsonpath() -> None:
    body = json.dumps({"data": {"ok": True, "rate": 0.99, "list": [1, 2]}}).encode()
    assert web_result(body, "{$.data.ok}").result is True
    assert web_result(body, "{$.data.ok}").value == "true"
    assert web_result(body, "{$.data.rate}").value == "0.99"
    assert web_result(body, "{$.data.list}").result == [1, 2]
    whole = web_result(body, "")
    assert whole.result == {"data": {"ok": True, "rate": 0.99, "list": [1, 2]}}
    assert evaluate("result.data.ok == true", whole.result)


def test_web_body_that_is_not_json_is_a_string() -> None:
    m = web_result(b"ok", "{$.x}")
    assert m.result == "ok"
    assert evaluate('result == "ok"', m.result)


def test_web_path_that_matches_nothing_is_an_error() -> None:
    with pytest.raises(MeasurementError, match="Could not find JSONPath"):
        web_result(b'{"a": 1}', "{$.b}")


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999/", "http://a\x00b/"])
async def test_an_unusable_url_is_an_error_measurement_not_a_crash(url: str) -> None:
    """httpx raises InvalidURL (not an HTTPError) for these, and a port out of
    range escapes as an ExceptionGroup: both crashed the reconcile, so the run
    stayed Running for ever instead of ending in Error after its retries."""
    from gitmoor.rollouts import analysis
    from gitmoor.rollouts.analysis_controller import AnalysisController

    ctl = AnalysisController(None)  # type: ignore[arg-type]
    metric = analysis.Metric.parse({"name": "m", "provider": {"web": {"url": url}}})
    try:
        measurement, fatal = await ctl._take(metric, [])
    finally:
        await ctl.aclose()
    assert measurement["phase"] == analysis.ERROR and not fatal
    assert measurement["message"]
