"""The `prometheus` metric provider against the real Prometheus server (built
from its Go module by testenv/build.sh; the ``prometheus`` fixture of this
folder's conftest), scraping an endpoint whose success ratio the test sets;
the AnalysisRuns are measured by the AnalysisRun controller in the real API
server."""

from __future__ import annotations

import asyncio
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
)
from support.prometheus import JOB
from support.rollouts import start_run

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gitmoor.kube import KubeClient
    from support.prometheus import LivePrometheus

#: Argo Rollouts' success-rate shape, with the job passed as an arg
QUERY = (
    'sum(rate(http_requests_total{job="{{args.job}}",status!~"5.."}[5s]))'
    ' / sum(rate(http_requests_total{job="{{args.job}}"}[5s]))'
)


@pytest.fixture
async def controller(kube: KubeClient, namespace: str, rollout_crds: None) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(AnalysisController(kube, namespace).run(stop))
    yield
    stop.set()
    await asyncio.wait_for(task, timeout=30)


async def success_rate_run(
    kube: KubeClient, namespace: str, prometheus: LivePrometheus, name: str, job: str = JOB
) -> dict[str, Any]:
    """The seed's ``success-rate`` AnalysisTemplate (one measurement), run for a Rollout."""
    owner = await kube.get(ObjectRef("argoproj.io", "v1alpha1", "Rollout", namespace, "web"))
    if owner is None:
        owner = await kube.create(
            {
                "apiVersion": API_VERSION,
                "kind": "Rollout",
                "metadata": {"name": "web", "namespace": namespace, "labels": {"app": "web"}},
                "spec": {
                    "replicas": 0,
                    "paused": True,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
                    },
                    "strategy": {"canary": {"steps": [{"pause": {}}]}},
                },
            }
        )
        await kube.create(
            {
                "apiVersion": API_VERSION,
                "kind": "AnalysisTemplate",
                "metadata": {"name": "success-rate", "namespace": namespace},
                "spec": {
                    "args": [{"name": "job"}],
                    "metrics": [
                        {
                            "name": "success-rate",
                            "successCondition": "result[0] >= 0.95",
                            "consecutiveErrorLimit": 0,
                            "provider": {
                                "prometheus": {"address": prometheus.address, "query": QUERY}
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
        name,
        template="success-rate",
        args=[{"name": "job", "value": job}],
    )

    async def done() -> dict[str, Any] | None:
        run = await kube.get(run_ref(namespace, name))
        return run if run is not None and run_phase(run) not in ("Pending", "Running") else None

    run: dict[str, Any] = await wait_for(done, within=60, what=f"AnalysisRun {name} to finish")
    return run


def only_measurement(run: dict[str, Any]) -> dict[str, Any]:
    (result,) = run["status"]["metricResults"]
    (m,) = result["measurements"]
    return dict(m)


async def test_a_passing_and_a_failing_success_rate(
    kube: KubeClient, namespace: str, controller: None, prometheus: LivePrometheus
) -> None:
    prometheus.set_success_ratio(0.99)
    await prometheus.wait_for_ratio(0.99, tolerance=0.005)
    run = await success_rate_run(kube, namespace, prometheus, "passing")
    assert run_phase(run) == "Successful"
    m = only_measurement(run)
    assert m["phase"] == "Successful"
    # an instant vector of one sample, recorded as Argo Rollouts prints it
    assert m["value"].startswith("[") and m["value"].endswith("]")
    assert float(m["value"][1:-1]) == pytest.approx(0.99, abs=0.01)
    assert run["spec"]["args"] == [{"name": "job", "value": JOB}]

    prometheus.set_success_ratio(0.5)
    await prometheus.wait_for_ratio(0.5, tolerance=0.01)
    run = await success_rate_run(kube, namespace, prometheus, "failing")
    assert run_phase(run) == "Failed"
    assert float(only_measurement(run)["value"][1:-1]) == pytest.approx(0.5, abs=0.02)
    assert run_message(run) == (
        'Metric "success-rate" assessed Failed due to failed (1) > failureLimit (0)'
    )


async def test_an_empty_vector_is_no_data(
    kube: KubeClient, namespace: str, controller: None, prometheus: LivePrometheus
) -> None:
    run = await success_rate_run(kube, namespace, prometheus, "nodata", job="no-such-job")
    assert run_phase(run) == "Error"
    m = only_measurement(run)
    assert m["value"] == "[]"
    assert m["message"] == (
        'could not evaluate successCondition "result[0] >= 0.95": metric result is nil '
        "or empty: no data returned from the metric provider"
    )
