"""Analysis with a `web` metric against a real HTTP server on loopback, runs
created from AnalysisTemplates and measured by the AnalysisRun controller,
every AnalysisRun and measurement read back from the real API server."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.rollouts.analysis_controller import AnalysisController
from gitmoor.rollouts.analysisrun import (
    API_VERSION,
    run_message,
    run_phase,
    run_ref,
    terminate_analysis_run,
)
from support.rollouts import start_run

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from gitmoor.kube import KubeClient


class MetricServer:
    """A JSON endpoint whose answer the test sets; it counts what it was asked."""

    def __init__(self) -> None:
        self.status = 200
        self.answer: Any = {"data": {"rate": 1.0}}
        self.requests: list[tuple[str, str]] = []
        #: (headers, body) of each request, in order
        self.received: list[tuple[dict[str, str], bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                owner.requests.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                owner.received.append((dict(self.headers.items()), self.rfile.read(length)))
                body = json.dumps(owner.answer).encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def hits(self, path: str) -> int:
        return sum(1 for _, p in self.requests if p == path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def metric_server() -> Iterator[MetricServer]:
    server = MetricServer()
    yield server
    server.close()


@pytest.fixture
async def controller(kube: KubeClient, namespace: str, rollout_crds: None) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(AnalysisController(kube, namespace).run(stop))
    yield
    stop.set()
    await asyncio.wait_for(task, timeout=30)


async def rollout(kube: KubeClient, namespace: str, app: str = "web") -> dict[str, Any]:
    """A paused Rollout with no replicas: the owner the runs are created for."""
    return await kube.create(
        {
            "apiVersion": API_VERSION,
            "kind": "Rollout",
            "metadata": {"name": app, "namespace": namespace, "labels": {"app": app}},
            "spec": {
                "replicas": 0,
                "paused": True,
                "selector": {"matchLabels": {"app": app}},
                "template": {
                    "metadata": {"labels": {"app": app}},
                    "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
                },
                "strategy": {"canary": {"steps": [{"pause": {}}]}},
            },
        }
    )


async def template(kube: KubeClient, namespace: str, name: str, **metric: Any) -> None:
    await kube.create(
        {
            "apiVersion": API_VERSION,
            "kind": "AnalysisTemplate",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "args": [{"name": "service"}, {"name": "threshold", "value": "0.95"}],
                "metrics": [{"name": "success-rate", **metric}],
            },
        }
    )


def web(server: MetricServer, json_path: str = "{$.data.rate}") -> dict[str, Any]:
    return {"web": {"url": f"{server.url}/rate/{{{{args.service}}}}", "jsonPath": json_path}}


async def finished(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        run = await kube.get(run_ref(namespace, name))
        return run if run is not None and run_phase(run) not in ("Pending", "Running") else None

    result: dict[str, Any] = await wait_for(done, within=60, what=f"AnalysisRun {name} to finish")
    return result


def measurements(run: dict[str, Any]) -> list[dict[str, Any]]:
    (result,) = run["status"]["metricResults"]
    return list(result["measurements"])


ARGS = [{"name": "service", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}]


async def test_web_metric_passes_fails_and_is_inconclusive_by_jsonpath(
    kube: KubeClient, namespace: str, controller: None, metric_server: MetricServer
) -> None:
    owner = await rollout(kube, namespace)
    await template(
        kube,
        namespace,
        "rate",
        successCondition="result >= {{args.threshold}}",
        failureCondition="result < 0.5",
        provider=web(metric_server),
    )
    outcomes = {}
    for name, rate in (("pass", 0.99), ("fail", 0.2), ("unsure", 0.7)):
        metric_server.answer = {"data": {"rate": rate}}
        created = await start_run(
            kube,
            namespace,
            owner,
            f"web-{name}",
            template="rate",
            args=ARGS,
            labels={"rollout-type": "Step"},
        )
        run = await finished(kube, namespace, created["metadata"]["name"])
        outcomes[name] = run
        (m,) = measurements(run)
        assert m["value"] == json.dumps(rate)
        assert m["startedAt"] and m["finishedAt"]
    assert run_phase(outcomes["pass"]) == "Successful"
    assert run_phase(outcomes["fail"]) == "Failed"
    assert run_message(outcomes["fail"]) == (
        'Metric "success-rate" assessed Failed due to failed (1) > failureLimit (0)'
    )
    assert run_phase(outcomes["unsure"]) == "Inconclusive"
    assert run_message(outcomes["unsure"]) == (
        'Metric "success-rate" assessed Inconclusive due to inconclusive (1) > inconclusiveLimit (0)'
    )
    # args: the template's default value, and the Rollout's label through fieldRef
    run = outcomes["pass"]
    assert run["spec"]["args"] == [
        {"name": "service", "value": "web"},
        {"name": "threshold", "value": "0.95"},
    ]
    assert metric_server.hits("/rate/web") == 3
    (ref,) = run["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        "Rollout",
        "web",
        owner["metadata"]["uid"],
        True,
    )
    assert run["metadata"]["labels"] == {"rollout-type": "Step"}


async def test_interval_and_count_take_each_measurement_once(
    kube: KubeClient, namespace: str, controller: None, metric_server: MetricServer
) -> None:
    owner = await rollout(kube, namespace)
    metric_server.answer = {"data": {"rate": 0.99}}
    await template(
        kube,
        namespace,
        "rate",
        interval="1s",
        count=3,
        successCondition="result.data.rate >= 0.95",
        provider=web(metric_server, json_path=""),  # no jsonPath: the whole body
    )
    await start_run(
        kube,
        namespace,
        owner,
        "counted",
        template="rate",
        args=[{"name": "service", "value": "api"}],
    )
    run = await finished(kube, namespace, "counted")
    assert run_phase(run) == "Successful"
    ms = measurements(run)
    assert [m["phase"] for m in ms] == ["Successful"] * 3
    assert ms[0]["value"] == '{"data":{"rate":0.99}}'
    result = run["status"]["metricResults"][0]
    assert (result["count"], result["successful"], result["failed"]) == (3, 3, 0)
    assert metric_server.hits("/rate/api") == 3
    assert run["status"]["startedAt"] and run["status"]["completedAt"]


async def test_a_restarted_controller_resumes_without_measuring_twice(
    kube: KubeClient, namespace: str, rollout_crds: None, metric_server: MetricServer
) -> None:
    owner = await rollout(kube, namespace)
    await template(kube, namespace, "rate", interval="3s", count=3, provider=web(metric_server))
    await start_run(
        kube,
        namespace,
        owner,
        "resumed",
        template="rate",
        args=[{"name": "service", "value": "svc"}],
    )

    async def recorded(at_least: int) -> bool:
        run = await kube.get(run_ref(namespace, "resumed"))
        results = ((run or {}).get("status") or {}).get("metricResults") or []
        return bool(results) and len(results[0].get("measurements") or []) >= at_least

    stop = asyncio.Event()
    first = asyncio.create_task(AnalysisController(kube, namespace).run(stop))
    await wait_for(lambda: recorded(1), within=30, what="the first measurement")
    stop.set()
    await asyncio.wait_for(first, timeout=30)
    stop = asyncio.Event()
    second = asyncio.create_task(AnalysisController(kube, namespace).run(stop))
    try:
        run = await finished(kube, namespace, "resumed")
    finally:
        stop.set()
        await asyncio.wait_for(second, timeout=30)
    assert run_phase(run) == "Successful"
    assert len(measurements(run)) == 3
    assert metric_server.hits("/rate/svc") == 3


async def test_background_analysis_runs_until_terminated(
    kube: KubeClient, namespace: str, controller: None, metric_server: MetricServer
) -> None:
    owner = await rollout(kube, namespace)
    await template(kube, namespace, "rate", interval="1s", provider=web(metric_server))
    await start_run(
        kube,
        namespace,
        owner,
        "background",
        template="rate",
        args=[{"name": "service", "value": "bg"}],
        labels={"rollout-type": "Background"},
        background=True,
    )

    async def measured_twice() -> bool:
        run = await kube.get(run_ref(namespace, "background"))
        results = ((run or {}).get("status") or {}).get("metricResults") or []
        return bool(results) and int(results[0].get("count") or 0) >= 2

    await wait_for(measured_twice, within=30, what="two background measurements")
    run = await kube.get(run_ref(namespace, "background"))
    assert run is not None and run_phase(run) == "Running"
    await terminate_analysis_run(kube, namespace, "background")
    run = await finished(kube, namespace, "background")
    assert run_phase(run) == "Successful"
    assert run_message(run) == "Run Terminated"


async def test_a_non_2xx_answer_is_an_error_measurement(
    kube: KubeClient, namespace: str, controller: None, metric_server: MetricServer
) -> None:
    owner = await rollout(kube, namespace)
    await template(kube, namespace, "rate", consecutiveErrorLimit=0, provider=web(metric_server))
    metric_server.status = 503
    await start_run(
        kube,
        namespace,
        owner,
        "erroring",
        template="rate",
        args=[{"name": "service", "value": "down"}],
    )
    run = await finished(kube, namespace, "erroring")
    assert run_phase(run) == "Error"
    (m,) = measurements(run)
    assert (m["phase"], m["message"]) == ("Error", "received non 2xx response code: 503")
    assert run_message(run) == (
        'Metric "success-rate" assessed Error due to consecutiveErrors (1) > '
        'consecutiveErrorLimit (0): "Error Message: received non 2xx response code: 503"'
    )


async def test_a_missing_arg_or_template_creates_the_run_in_error(
    kube: KubeClient, namespace: str, rollout_crds: None, metric_server: MetricServer
) -> None:
    owner = await rollout(kube, namespace)
    await template(kube, namespace, "rate", provider=web(metric_server))
    created = await start_run(
        kube,
        namespace,
        owner,
        "no-arg",
        template="rate",
        args=[],
    )
    assert run_phase(created) == "Error"
    assert run_message(created) == "args.service was not resolved"
    live = await kube.get(run_ref(namespace, "no-arg"))
    assert live is not None and run_message(live) == "args.service was not resolved"
    created = await start_run(
        kube,
        namespace,
        owner,
        "no-template",
        template="absent",
        args=ARGS,
    )
    assert run_phase(created) == "Error"
    assert run_message(created) == f'AnalysisTemplate "absent" not found in namespace {namespace}'
    assert metric_server.requests == []


async def test_a_secret_arg_is_used_and_never_recorded(
    kube: KubeClient, namespace: str, controller: None, metric_server: MetricServer
) -> None:
    owner = await rollout(kube, namespace)
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "metric-token", "namespace": namespace},
            "stringData": {"path": "s3cr3t-path"},
        }
    )
    await kube.create(
        {
            "apiVersion": API_VERSION,
            "kind": "AnalysisTemplate",
            "metadata": {"name": "secret", "namespace": namespace},
            "spec": {
                "args": [
                    {
                        "name": "service",
                        "valueFrom": {"secretKeyRef": {"name": "metric-token", "key": "path"}},
                    }
                ],
                "metrics": [
                    {
                        "name": "success-rate",
                        "provider": {"web": {"url": f"{metric_server.url}/{{{{args.service}}}}"}},
                        "successCondition": "result.data.rate > 2",
                    }
                ],
            },
        }
    )
    await start_run(
        kube,
        namespace,
        owner,
        "secret",
        template="secret",
        args=[],
    )
    run = await finished(kube, namespace, "secret")
    assert run_phase(run) == "Failed"
    assert metric_server.hits("/s3cr3t-path") == 1
    assert "s3cr3t" not in json.dumps(run)


async def test_runs_are_garbage_collected_with_their_rollout(
    kube: KubeClient, namespace: str, rollout_crds: None, metric_server: MetricServer
) -> None:
    owner = await rollout(kube, namespace)
    await template(kube, namespace, "rate", provider=web(metric_server))
    await start_run(
        kube,
        namespace,
        owner,
        "owned",
        template="rate",
        args=ARGS,
    )
    await kube.delete(ObjectRef("argoproj.io", "v1alpha1", "Rollout", namespace, "web"))

    async def gone() -> bool:
        return await kube.get(run_ref(namespace, "owned")) is None

    await wait_for(gone, within=30, what="the run to follow its Rollout")


async def test_post_with_headers_and_json_body(
    kube: KubeClient, namespace: str, controller: None, metric_server: MetricServer
) -> None:
    owner = await rollout(kube, namespace)
    metric_server.answer = {"verdict": "ok"}
    await kube.create(
        {
            "apiVersion": API_VERSION,
            "kind": "AnalysisTemplate",
            "metadata": {"name": "post", "namespace": namespace},
            "spec": {
                "args": [{"name": "service"}],
                "metrics": [
                    {
                        "name": "verdict",
                        "successCondition": 'result == "ok"',
                        "provider": {
                            "web": {
                                "method": "POST",
                                "url": f"{metric_server.url}/check",
                                "headers": [{"key": "X-Service", "value": "{{args.service}}"}],
                                "jsonBody": {"service": "{{args.service}}", "window": "5m"},
                                "jsonPath": "{$.verdict}",
                            }
                        },
                    }
                ],
            },
        }
    )
    await start_run(
        kube,
        namespace,
        owner,
        "posted",
        template="post",
        args=ARGS,
    )
    run = await finished(kube, namespace, "posted")
    assert run_phase(run) == "Successful"
    assert measurements(run)[0]["value"] == '"ok"'
    assert metric_server.requests == [("POST", "/check")]
    ((headers, body),) = metric_server.received
    assert headers["X-Service"] == "web"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"service": "web", "window": "5m"}


async def test_the_controller_wakes_when_a_measurement_is_due_not_every_second(
    kube: KubeClient, namespace: str, rollout_crds: None, metric_server: MetricServer
) -> None:
    owner = await rollout(kube, namespace)
    await template(kube, namespace, "rate", interval="6s", count=2, provider=web(metric_server))
    stop = asyncio.Event()
    ctrl = AnalysisController(kube, namespace)
    task = asyncio.create_task(ctrl.run(stop))
    try:
        await start_run(
            kube,
            namespace,
            owner,
            "timed",
            template="rate",
            args=ARGS,
        )
        run = await finished(kube, namespace, "timed")

        async def counted() -> bool:  # the worker counts just after its write returns
            return ctrl.reconciles.get("written") == 2

        await wait_for(counted, within=10, what="the second write to be counted")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    assert run_phase(run) == "Successful"
    assert metric_server.hits("/rate/web") == 2
    # Two status writes, 6 s apart; between them a look or two at the run (the
    # watch telling of its creation and of the first write), where a poller
    # would have looked every second.
    assert ctrl.reconciles.get("unchanged", 0) <= 3


async def test_a_finished_run_is_deleted_after_its_ttl(
    kube: KubeClient, namespace: str, controller: None, metric_server: MetricServer
) -> None:
    owner = await rollout(kube, namespace)
    await template(kube, namespace, "rate", provider=web(metric_server))
    created = await start_run(
        kube,
        namespace,
        owner,
        "short-lived",
        template="rate",
        args=ARGS,
    )
    await kube.merge_patch(
        run_ref(namespace, "short-lived"), {"spec": {"ttlStrategy": {"secondsAfterCompletion": 1}}}
    )

    async def gone() -> bool:
        return await kube.get(run_ref(namespace, "short-lived")) is None

    await wait_for(gone, within=30, what="the run to be deleted after its TTL")
    assert metric_server.hits("/rate/web") == 1
    assert created["metadata"]["name"] == "short-lived"
