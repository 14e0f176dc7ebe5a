"""The controller's Prometheus metrics, read back from the text exposition."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from gitmoor.controller.metrics import Metrics
from gitmoor.kube import ClusterConfig, KubeClient
from gitmoor.model.application import (
    AppSource,
    Destination,
    application_manifest,
    parse_application,
)


def samples(m: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample called ``name`` in the exposition, keyed by its sorted labels."""
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(m.exposition().decode()):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def key(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def app(name: str, *, status: dict[str, Any] | None = None, **kw: Any) -> Any:
    manifest = application_manifest(
        name,
        "gitmoor",
        AppSource(kw.pop("repo", "https://git.example.com/org/deploy.git"), "apps"),
        Destination(kw.pop("dest_ns", "web"), kw.pop("dest", "")),
        project=kw.pop("project", "default"),
    )
    manifest["metadata"]["uid"] = f"uid-{name}"
    if status is not None:
        manifest["status"] = status
    manifest.update(kw)
    return parse_application(manifest)


def test_reconcile_observations_land_in_histogram_and_counter() -> None:
    m = Metrics()
    m.observe_reconcile("web", "gitmoor", 0.3, "ok")
    m.observe_reconcile("web", "gitmoor", 3.0, "ok")
    m.observe_reconcile("api", "gitmoor", 20.0, "error")

    assert samples(m, "gitmoor_app_reconcile_total") == {
        key(namespace="gitmoor", name="web", outcome="ok"): 2.0,
        key(namespace="gitmoor", name="api", outcome="error"): 1.0,
    }
    assert samples(m, "gitmoor_app_reconcile_duration_seconds_count") == {
        key(namespace="gitmoor"): 3.0
    }
    assert samples(m, "gitmoor_app_reconcile_duration_seconds_sum") == {
        key(namespace="gitmoor"): pytest.approx(23.3)
    }
    buckets = samples(m, "gitmoor_app_reconcile_duration_seconds_bucket")
    # Argo CD's buckets: 0.3 s falls in le=0.5, 3 s in le=4, 20 s only in +Inf.
    assert buckets[key(namespace="gitmoor", le="0.25")] == 0
    assert buckets[key(namespace="gitmoor", le="0.5")] == 1
    assert buckets[key(namespace="gitmoor", le="4.0")] == 2
    assert buckets[key(namespace="gitmoor", le="16.0")] == 2
    assert buckets[key(namespace="gitmoor", le="+Inf")] == 3


def test_sync_counter_by_phase_and_forget_app() -> None:
    m = Metrics()
    m.observe_sync("web", "gitmoor", "Succeeded")
    m.observe_sync("web", "gitmoor", "Succeeded")
    m.observe_sync("web", "gitmoor", "Failed")
    m.observe_sync("api", "gitmoor", "Error")
    assert samples(m, "gitmoor_app_sync_total") == {
        key(namespace="gitmoor", name="web", phase="Succeeded"): 2.0,
        key(namespace="gitmoor", name="web", phase="Failed"): 1.0,
        key(namespace="gitmoor", name="api", phase="Error"): 1.0,
    }
    m.observe_reconcile("web", "gitmoor", 1.0, "ok")
    m.forget_app("web", "gitmoor")
    assert samples(m, "gitmoor_app_sync_total") == {
        key(namespace="gitmoor", name="api", phase="Error"): 1.0
    }
    assert samples(m, "gitmoor_app_reconcile_total") == {}


def test_app_info_labels_and_replacement() -> None:
    m = Metrics()
    web = app(
        "web",
        repo="git@git.example.com:org/deploy.git",
        dest="prod",
        dest_ns="shop",
        project="team-a",
        status={"sync": {"status": "OutOfSync"}, "health": {"status": "Degraded"}},
        operation={"sync": {"revision": "main"}},
    )
    api = app("api")  # no status yet
    m.set_app_info([web, api])
    assert samples(m, "gitmoor_app_info") == {
        key(
            namespace="gitmoor",
            name="web",
            project="team-a",
            repo="ssh://git.example.com/org/deploy",
            dest_namespace="shop",
            dest_server="prod",
            sync_status="OutOfSync",
            health_status="Degraded",
            operation="sync",
        ): 1.0,
        key(
            namespace="gitmoor",
            name="api",
            project="default",
            repo="https://git.example.com/org/deploy",
            dest_namespace="web",
            dest_server="in-cluster",
            sync_status="Unknown",
            health_status="Unknown",
            operation="",
        ): 1.0,
    }

    # A new snapshot replaces every series: the removed app and the old state are gone.
    synced = app(
        "web",
        repo="git@git.example.com:org/deploy.git",
        dest="prod",
        dest_ns="shop",
        project="team-a",
        status={"sync": {"status": "Synced"}, "health": {"status": "Healthy"}},
    )
    m.set_app_info([synced])
    after = samples(m, "gitmoor_app_info")
    assert list(after) == [
        key(
            namespace="gitmoor",
            name="web",
            project="team-a",
            repo="ssh://git.example.com/org/deploy",
            dest_namespace="shop",
            dest_server="prod",
            sync_status="Synced",
            health_status="Healthy",
            operation="",
        )
    ]
    m.set_app_info([])
    assert samples(m, "gitmoor_app_info") == {}


def test_git_requests_never_carry_credentials() -> None:
    m = Metrics()
    m.observe_git("https://bot:s3cr3t-token@git.example.com/org/deploy.git", 0.4, False)
    m.observe_git("https://git.example.com/org/deploy?private_token=abc123", 2.5, True)
    m.observe_git("https://git.example.com/org/deploy.git", 0.05, False, request="ls-remote")

    text = m.exposition().decode()
    assert "s3cr3t" not in text and "bot" not in text and "abc123" not in text
    # Three spellings of one repository are one repo label.
    repo = "https://git.example.com/org/deploy"
    assert samples(m, "gitmoor_git_request_total") == {
        key(repo=repo, request="fetch", error="false"): 1.0,
        key(repo=repo, request="fetch", error="true"): 1.0,
        key(repo=repo, request="ls-remote", error="false"): 1.0,
    }
    assert samples(m, "gitmoor_git_request_duration_seconds_count") == {
        key(repo=repo, request="fetch"): 2.0,
        key(repo=repo, request="ls-remote"): 1.0,
    }
    assert samples(m, "gitmoor_git_request_duration_seconds_sum")[
        key(repo=repo, request="fetch")
    ] == pytest.approx(2.9)


async def test_kube_requests_are_read_from_the_client_at_scrape_time() -> None:
    # A real KubeClient (never connected: nothing here talks to an API server).
    async with KubeClient(ClusterConfig(server="https://127.0.0.1:1")) as kc:
        m = Metrics()
        m.track_kube_client("local", kc)
        assert samples(m, "gitmoor_kube_requests_total") == {}

        kc.requests[("GET", 200)] += 5
        kc.requests[("PATCH", 409)] += 1
        kc.requests[("GET", 0)] += 2  # no response at all
        assert samples(m, "gitmoor_kube_requests_total") == {
            key(cluster="local", verb="GET", code="200"): 5.0,
            key(cluster="local", verb="PATCH", code="409"): 1.0,
            key(cluster="local", verb="GET", code="<error>"): 2.0,
        }
        # The next scrape sees the counter as it is now, with no call in between.
        kc.requests[("GET", 200)] += 1
        assert (
            samples(m, "gitmoor_kube_requests_total")[key(cluster="local", verb="GET", code="200")]
            == 6.0
        )


def test_queue_depth_and_cache_sizes_are_read_at_scrape_time() -> None:
    m = Metrics()
    assert samples(m, "gitmoor_workqueue_depth") == {}
    depth = [3]
    sizes = {"in-cluster": 120, "prod": 7}
    m.set_queue_depth_source(lambda: depth[0])
    m.set_cache_size_source(lambda: dict(sizes))
    assert samples(m, "gitmoor_workqueue_depth") == {(): 3.0}
    assert samples(m, "gitmoor_cluster_cache_objects") == {
        key(cluster="in-cluster"): 120.0,
        key(cluster="prod"): 7.0,
    }
    depth[0] = 0
    sizes["prod"] = 9
    assert samples(m, "gitmoor_workqueue_depth") == {(): 0.0}
    assert samples(m, "gitmoor_cluster_cache_objects")[key(cluster="prod")] == 9.0


def test_a_failing_source_costs_only_its_own_series() -> None:
    m = Metrics()
    m.observe_sync("web", "gitmoor", "Succeeded")

    def broken() -> int:
        raise RuntimeError("cache not ready")

    m.set_queue_depth_source(broken)
    m.set_cache_size_source(lambda: {"in-cluster": 1})
    assert samples(m, "gitmoor_workqueue_depth") == {}
    assert samples(m, "gitmoor_cluster_cache_objects") == {key(cluster="in-cluster"): 1.0}
    assert samples(m, "gitmoor_app_sync_total") == {
        key(namespace="gitmoor", name="web", phase="Succeeded"): 1.0
    }


def test_each_instance_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()  # the global registry would refuse the second
    a.observe_sync("web", "gitmoor", "Succeeded")
    assert samples(a, "gitmoor_app_sync_total")
    assert samples(b, "gitmoor_app_sync_total") == {}


async def test_router_serves_the_text_format() -> None:
    m = Metrics()
    m.observe_sync("web", "gitmoor", "Failed")
    api = FastAPI()
    api.include_router(m.router())
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get("/metrics")
        schema = (await client.get("/openapi.json")).json()
    assert r.status_code == 200
    assert r.headers["content-type"] == CONTENT_TYPE_LATEST
    served = {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }
    assert (
        "gitmoor_app_sync_total",
        key(namespace="gitmoor", name="web", phase="Failed"),
        1.0,
    ) in served
    op = schema["paths"]["/metrics"]["get"]
    assert op["summary"] == "Prometheus metrics"
    assert CONTENT_TYPE_LATEST in op["responses"]["200"]["content"]
