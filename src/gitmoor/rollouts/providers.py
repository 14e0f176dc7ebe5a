"""Metric providers: fetch the value a metric's conditions are evaluated on.

Two of Argo Rollouts' providers, with its field names and behaviour:

- ``web`` (``metricproviders/webmetric``): ``method`` (GET, POST, PUT; GET by
  default), ``url``, ``headers`` (``[{key, value}]``), ``body`` or
  ``jsonBody`` (POST/PUT only), ``timeoutSeconds`` (default 10),
  ``insecure``, and ``jsonPath`` in Kubernetes' JSONPath spelling with braces
  (``{$.data.ok}``, default ``{$}``: the whole JSON body). A non-2xx answer
  is an error; a body that is not JSON is the result as a string; the first
  match of the path is the result, recorded as its JSON text.
- ``prometheus`` (``metricproviders/prometheus``): ``address`` and ``query``
  as an instant query (``GET /api/v1/query``), ``headers``, ``timeout``
  (seconds, default 30). A vector is a list of floats (``result[0]``, and
  ``[]`` when it is empty), a scalar a float; the value is recorded as
  Prometheus prints it (``[0.99]``).

A provider raises :class:`MeasurementError` when it cannot measure; the
state machine records that as an Error measurement, retried after 10 s.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import httpx
import jsonpath

from gitmoor.model import GitmoorError, JSONDict

WEB_TIMEOUT = 10.0
PROMETHEUS_TIMEOUT = 30.0
#: a metric's answer is read whole; bound it so a wrong URL cannot fill memory
MAX_BODY = 4 * 1024 * 1024


class MeasurementError(GitmoorError):
    """The provider could not take the measurement (unreachable, non-2xx, bad data)."""


@dataclass(frozen=True)
class Measured:
    #: what a condition sees as ``result``
    result: Any
    #: what ``measurements[].value`` records
    value: str


async def measure(provider: JSONDict, http: httpx.AsyncClient) -> Measured:
    """Measure with whichever provider the metric names."""
    if provider.get("web"):
        return await measure_web(provider["web"], http)
    if provider.get("prometheus"):
        return await measure_prometheus(provider["prometheus"], http)
    kinds = ", ".join(sorted(k for k, v in provider.items() if v)) or "none"
    raise MeasurementError(
        f"unsupported metric provider: {kinds} (gitmoor runs web and prometheus)"
    )


# --------------------------------------------------------------------- web


def kubernetes_jsonpath(expression: str) -> str:
    """``{$.data.ok}`` / ``{.data.ok}`` (Kubernetes' template spelling) as a
    plain JSONPath query ``$.data.ok``."""
    path = expression.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1].strip()
    if not path or path == "$":
        return "$"
    if path.startswith((".", "[")):
        path = "$" + path
    elif not path.startswith("$"):
        path = "$." + path
    return path


def _go_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def web_result(body: bytes, json_path: str = "") -> Measured:
    """The result of a web metric's answer: the first match of ``jsonPath``."""
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        # upstream evaluates a body that is not JSON as a string
        return Measured(text, text)
    query = kubernetes_jsonpath(json_path or "{$}")
    try:
        matches = jsonpath.findall(query, data)
    except jsonpath.JSONPathError as e:
        raise MeasurementError(f"invalid jsonPath {json_path!r}: {e}") from e
    if not matches:
        raise MeasurementError(
            f"Could not find JSONPath in body: {json_path or '{$}'} matched nothing"
        )
    value = matches[0]
    return Measured(value, _go_json(value))


async def measure_web(web: JSONDict, http: httpx.AsyncClient) -> Measured:
    method = str(web.get("method") or "GET").upper()
    url = str(web.get("url") or "")
    if not url:
        raise MeasurementError("web metric has no url")
    if method not in ("GET", "POST", "PUT"):
        raise MeasurementError(f"web metric method {method} is not one of GET, POST, PUT")
    body, json_body = web.get("body") or "", web.get("jsonBody")
    if body and json_body is not None:
        raise MeasurementError(
            "use either Body or JSONBody; both cannot exists for WebMetric payload"
        )
    if (body or json_body is not None) and method == "GET":
        raise MeasurementError(
            "Body/JSONBody can only be used with POST or PUT WebMetric Method types"
        )
    headers = {str(h.get("key")): str(h.get("value") or "") for h in web.get("headers") or []}
    content: bytes | None = None
    if body:
        content = str(body).encode()
    elif json_body is not None:
        content = _go_json(json_body).encode()
        headers["Content-Type"] = "application/json"
    timeout = float(web.get("timeoutSeconds") or 0) or WEB_TIMEOUT
    raw = await _fetch(
        http,
        method,
        url,
        headers=headers,
        content=content,
        seconds=timeout,
        insecure=bool(web.get("insecure")),
    )
    return web_result(raw, str(web.get("jsonPath") or ""))


async def _fetch(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    content: bytes | None = None,
    params: dict[str, str] | None = None,
    seconds: float,
    insecure: bool = False,
) -> bytes:
    client = http
    own: httpx.AsyncClient | None = None
    if insecure:
        # verification is a property of the connection pool in httpx
        own = client = httpx.AsyncClient(verify=False)  # noqa: S501 - the metric asked for it
    try:
        async with client.stream(
            method,
            url,
            headers=headers,
            content=content,
            params=params,
            timeout=httpx.Timeout(seconds),
        ) as r:
            chunks: list[bytes] = []
            size = 0
            async for chunk in r.aiter_bytes():
                size += len(chunk)
                if size > MAX_BODY:
                    raise MeasurementError(f"the answer of {url} exceeds {MAX_BODY} bytes")
                chunks.append(chunk)
            if not 200 <= r.status_code < 300:
                raise MeasurementError(f"received non 2xx response code: {r.status_code}")
            return b"".join(chunks)
    except httpx.HTTPError as e:
        raise MeasurementError(f"{method} {url}: {type(e).__name__}: {e}") from e
    finally:
        if own is not None:
            await own.aclose()


# --------------------------------------------------------------------- prometheus


def prometheus_float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError) as e:
        raise MeasurementError(
            f"Prometheus returned a sample that is not a number: {text!r}"
        ) from e


def prometheus_string(value: float) -> str:
    """A sample as Prometheus' Go client prints it (``SampleValue.String``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def prometheus_result(doc: Any) -> Measured:
    """The result of an instant query's JSON answer (``processResponse``)."""
    if not isinstance(doc, dict):
        raise MeasurementError("Prometheus answered something that is not a JSON object")
    if doc.get("status") != "success":
        raise MeasurementError(
            f"Prometheus query failed: {doc.get('errorType', '')}: {doc.get('error', '')}".strip()
        )
    data = doc.get("data") or {}
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar":
        v = prometheus_float((result or [None, None])[1])
        return Measured(v, prometheus_string(v))
    if kind == "vector":
        values = [prometheus_float((s.get("value") or [None, None])[1]) for s in result or []]
    elif kind == "matrix":
        values = [prometheus_float(pair[1]) for s in result or [] for pair in s.get("values") or []]
    else:
        raise MeasurementError("Prometheus metric type not supported")
    return Measured(values, "[" + ",".join(prometheus_string(v) for v in values) + "]")


async def measure_prometheus(prom: JSONDict, http: httpx.AsyncClient) -> Measured:
    address = str(prom.get("address") or "").rstrip("/")
    query = str(prom.get("query") or "")
    if not address:
        raise MeasurementError("prometheus metric has no address")
    if not query:
        raise MeasurementError("prometheus metric has no query")
    headers = {str(h.get("key")): str(h.get("value") or "") for h in prom.get("headers") or []}
    timeout = float(prom.get("timeout") or 0) or PROMETHEUS_TIMEOUT
    raw = await _fetch(
        http,
        "GET",
        f"{address}/api/v1/query",
        headers=headers,
        params={"query": query},
        seconds=timeout,
        insecure=bool(prom.get("insecure")),
    )
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise MeasurementError("Prometheus answered something that is not JSON") from e
    return prometheus_result(doc)
