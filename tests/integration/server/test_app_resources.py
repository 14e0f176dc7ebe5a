"""An application's live objects through the API: the resource tree, one
object's manifests (Secrets masked), Kubernetes Events and pod logs, each read
from the real control plane and refused to callers of another project."""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any

import pytest

from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.secrets.redact import is_mask
from gitmoor.testenv.controlplane import POD_LOG
from support.apps import configmap, deployment, dump, secret, service

if TYPE_CHECKING:
    import httpx

    from conftest import Server
    from gitmoor.kube import KubeClient
    from support.apps import AppEnv

SECRET_VALUE = "hunter2-d-resources-7f3a"


def _by_kind(tree: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [n for n in tree["nodes"] if n["kind"] == kind]


async def _synced_web(server: Server, env: AppEnv, *, replicas: int = 2) -> httpx.AsyncClient:
    """App `web`: a Deployment, its Service, a ConfigMap and a Secret, synced, and
    an admin client once the server's watch shows the app's objects."""
    env.repo.commit(
        {
            "app/web.yaml": dump(
                deployment("web", replicas=replicas),
                service("web"),
                configmap("settings", {"mode": "one"}),
                secret("creds", {"password": SECRET_VALUE}),
            )
        }
    )
    await env.create("web", path="app")
    assert (await env.sync("web")).ok
    admin = await server.login()

    async def seen() -> bool:
        r = await admin.get("/api/v1/applications/web")
        return r.status_code == 200 and r.json()["resources"] == 4

    await wait_for(seen, within=20, what="the server sees web's four objects")
    return admin


async def _tree_when(
    c: httpx.AsyncClient, name: str, ready: Any, what: str, within: float = 60
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        r = await c.get(f"/api/v1/applications/{name}/tree")
        assert r.status_code == 200, r.text
        tree: dict[str, Any] = r.json()
        return tree if ready(tree) else None

    result: dict[str, Any] = await wait_for(probe, within=within, interval=0.3, what=what)
    return result


def _pods_running(tree: dict[str, Any], n: int) -> bool:
    pods = _by_kind(tree, "Pod")
    return len(pods) == n and all(p["pod"]["phase"] == "Running" for p in pods)


async def test_tree_links_deployment_replicaset_pods_and_service_endpointslice(
    server: Server, env: AppEnv
) -> None:
    admin = await _synced_web(server, env)
    tree = await _tree_when(
        admin,
        "web",
        lambda t: _pods_running(t, 2) and _by_kind(t, "EndpointSlice"),
        "two running pods and the Service's EndpointSlice in the tree",
    )
    assert tree["truncated"] is False
    (dep,) = _by_kind(tree, "Deployment")
    assert dep["status"] == "Synced"
    assert dep["parentUids"] == []
    assert dep["uid"]
    (rs,) = _by_kind(tree, "ReplicaSet")
    assert rs["parentUids"] == [dep["uid"]]
    assert rs["status"] == ""  # a child has no sync status of its own
    assert rs["name"].startswith("web-")
    for pod in _by_kind(tree, "Pod"):
        assert pod["parentUids"] == [rs["uid"]]
        assert pod["namespace"] == env.namespace
        assert pod["health"]["status"] == "Healthy"
        assert [c["name"] for c in pod["pod"]["containers"]] == ["main"]
        assert pod["pod"]["containers"][0]["ready"] is True
    (svc,) = _by_kind(tree, "Service")
    (slice_,) = _by_kind(tree, "EndpointSlice")
    assert slice_["parentUids"] == [svc["uid"]]
    assert slice_["group"] == "discovery.k8s.io"
    top = {n["kind"]: n for n in tree["nodes"] if not n["parentUids"]}
    assert set(top) == {"Deployment", "Service", "ConfigMap", "Secret"}
    assert all(n["status"] == "Synced" for n in top.values())
    # Depth first: each child follows its parent.
    kinds = [n["kind"] for n in tree["nodes"]]
    assert kinds.index("Deployment") < kinds.index("ReplicaSet") < kinds.index("Pod")
    # The Deployment becomes Healthy once its pods are Ready.
    tree = await _tree_when(
        admin,
        "web",
        lambda t: _by_kind(t, "Deployment")[0]["health"]["status"] == "Healthy",
        "the Deployment Healthy",
    )


async def test_secret_manifest_masks_every_value(server: Server, env: AppEnv) -> None:
    admin = await _synced_web(server, env)
    # A client-side `kubectl apply` would leave the whole Secret in this annotation.
    await env.kube.merge_patch(
        ObjectRef("", "v1", "Secret", env.namespace, "creds"),
        {
            "metadata": {
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": (
                        f'{{"stringData":{{"password":"{SECRET_VALUE}"}}}}'
                    )
                }
            }
        },
    )
    r = await admin.get(
        "/api/v1/applications/web/resource",
        params={"version": "v1", "kind": "Secret", "namespace": env.namespace, "name": "creds"},
    )
    assert r.status_code == 200, r.text
    encoded = base64.b64encode(SECRET_VALUE.encode()).decode()
    assert SECRET_VALUE not in r.text
    assert encoded not in r.text
    body = r.json()
    # one value, one mask (issue 13's digest keyed per app): live and git agree
    mask = body["live"]["data"]["password"]
    assert is_mask(mask) and body["live"]["data"] == {"password": mask}
    assert body["desired"]["data"] == {"password": mask}
    assert "stringData" not in body["desired"]
    for side in ("live", "desired"):
        meta = body[side]["metadata"]
        assert "managedFields" not in meta
        assert "kubectl.kubernetes.io/last-applied-configuration" not in meta.get("annotations", {})
    assert f"password: {mask}" in body["liveYaml"]
    assert body["revision"] == env.repo.rev("HEAD")


async def test_configmap_manifest_has_live_and_desired(server: Server, env: AppEnv) -> None:
    admin = await _synced_web(server, env)
    r = await admin.get(
        "/api/v1/applications/web/resource",
        params={"kind": "ConfigMap", "namespace": env.namespace, "name": "settings"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == "v1"
    assert body["live"]["data"] == {"mode": "one"}
    assert body["live"]["metadata"]["uid"]
    assert body["desired"]["data"] == {"mode": "one"}
    assert body["desiredError"] == ""
    assert "mode: one" in body["liveYaml"]
    assert "mode: one" in body["desiredYaml"]


async def test_objects_outside_the_app_are_not_found(server: Server, env: AppEnv) -> None:
    admin = await _synced_web(server, env)
    tree = await _tree_when(admin, "web", lambda t: _pods_running(t, 2), "two running pods")
    url = "/api/v1/applications/web/resource"
    # In the app's namespace, but the cluster's, not the app's.
    r = await admin.get(
        url, params={"kind": "ConfigMap", "namespace": env.namespace, "name": "kube-root-ca.crt"}
    )
    assert r.status_code == 404, r.text
    assert "not an object of application web" in r.json()["detail"]
    # The app's ConfigMap name in another namespace.
    r = await admin.get(
        url, params={"kind": "ConfigMap", "namespace": "kube-system", "name": "settings"}
    )
    assert r.status_code == 404
    # A Secret of the cluster, named as one of the app's.
    r = await admin.get(url, params={"kind": "Secret", "namespace": "default", "name": "creds"})
    assert r.status_code == 404
    # A pod of the app's tree is readable, with no desired side.
    pod = _by_kind(tree, "Pod")[0]
    r = await admin.get(
        url, params={"kind": "Pod", "namespace": pod["namespace"], "name": pod["name"]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["live"]["metadata"]["uid"] == pod["uid"]
    assert r.json()["desired"] is None
    # The same for logs: a pod that is not in the tree.
    r = await admin.get(
        "/api/v1/applications/web/logs", params={"namespace": env.namespace, "pod": "other"}
    )
    assert r.status_code == 404


async def test_events_of_the_app_and_its_objects(server: Server, env: AppEnv) -> None:
    admin = await _synced_web(server, env)
    r = await admin.post("/api/v1/applications/web/refresh", json={"type": "normal"})
    assert r.status_code == 202, r.text

    async def events() -> list[dict[str, Any]] | None:
        r = await admin.get("/api/v1/applications/web/events")
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        kinds = {e["involvedObject"]["kind"] for e in items}
        # The audit Event of the refresh, the Deployment controller's scaling,
        # the ReplicaSet controller's pod creations, the scheduler's placements.
        return items if {"Application", "Deployment", "ReplicaSet", "Pod"} <= kinds else None

    items = await wait_for(events, within=30, what="Events of the app and of its objects")
    app_events = [e for e in items if e["involvedObject"]["kind"] == "Application"]
    assert any(e["reason"] == "AuditRefresh" for e in app_events)
    assert all(e["involvedObject"]["name"] == "web" for e in app_events)
    assert any(
        e["reason"] == "ScalingReplicaSet" and e["involvedObject"]["name"] == "web" for e in items
    )
    stamps = [e["lastTimestamp"] for e in items]
    assert all(stamps), "every Event has a time"
    assert len(items) <= 200
    # Nothing of another app's namespace: every object event is about web's tree.
    assert all(
        e["involvedObject"]["namespace"] in (env.namespace, env.apps_namespace) for e in items
    )


async def _kwok_serves_logs(kube: KubeClient) -> bool:
    """Whether the nodes name a kubelet port: the control plane was started with
    kwok serving pod logs (testenv ``POD_LOG``); one started before cannot."""
    nodes = await kube.list(await kube.resource("", "v1", "Node"))
    return bool(nodes.items) and all(
        ((n.get("status") or {}).get("daemonEndpoints") or {})
        .get("kubeletEndpoint", {})
        .get("Port")
        for n in nodes.items
    )


async def test_pod_logs_through_the_api_server(
    server: Server, env: AppEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gitmoor.server")
    admin = await _synced_web(server, env, replicas=1)
    tree = await _tree_when(admin, "web", lambda t: _pods_running(t, 1), "one running pod")
    pod = _by_kind(tree, "Pod")[0]
    url = "/api/v1/applications/web/logs"
    where = {"namespace": pod["namespace"], "pod": pod["name"]}
    if not await _kwok_serves_logs(env.kube):
        # The node cannot serve logs: the API server's error, said as a 502.
        r = await admin.get(url, params=where)
        assert r.status_code == 502, r.text
        assert "the API server could not serve the log" in r.json()["detail"]
        # Not a skip: a suite that passes without reading a log would hide a
        # broken logs route. The 502 above was checked; the cluster is what is old.
        pytest.fail(
            "the attached control plane predates kwok's pod logs (its nodes name no "
            "kubelet port): restart it (make cluster-down; make cluster) or set "
            "GITMOOR_FRESH_CLUSTER=1"
        )
    r = await admin.get(url, params=where)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text.splitlines() == list(POD_LOG)

    r = await admin.get(url, params={**where, "container": "main", "tailLines": 1})
    assert r.text.splitlines() == [POD_LOG[-1]]
    r = await admin.get(url, params={**where, "container": "sidecar"})
    assert r.status_code == 404
    assert "no container 'sidecar'" in r.json()["detail"]
    r = await admin.get(url, params={**where, "tailLines": 5001})
    assert r.status_code == 422  # above the bound

    # follow: the log so far, then the stream stays open for new lines until the
    # client leaves (the file kwok serves never grows).
    seen: list[str] = []
    async with admin.stream("GET", url, params={**where, "follow": "true"}) as s:
        assert s.status_code == 200
        async for line in s.aiter_lines():
            seen.append(line)
            if line == POD_LOG[-1]:
                break
    assert seen == list(POD_LOG)

    # The client left: the server closes its stream from the API server too.
    async def ended() -> bool:
        return any("event=logs_follow_end" in r.getMessage() for r in caplog.records)

    await wait_for(ended, within=10, what="the follow stream closed after the client left")


async def test_another_projects_role_is_refused_everywhere(server: Server, env: AppEnv) -> None:
    admin = await _synced_web(server, env, replicas=1)
    tree = await _tree_when(admin, "web", lambda t: _pods_running(t, 1), "one running pod")
    pod = _by_kind(tree, "Pod")[0]
    await server.add_user("bob", "bob-password-1")
    await server.add_user("carol", "carol-password-1")
    await server.set_policy(
        "p, role:team-b, applications, get, team-b/*, allow\n"
        "p, role:team-b, logs, get, team-b/*, allow\n"
        "g, bob, role:team-b\n"
        # carol may read default's apps, but not their logs
        "p, role:viewer, applications, get, default/*, allow\n"
        "g, carol, role:viewer\n"
    )
    bob = await server.login("bob", "bob-password-1")
    routes: list[tuple[str, dict[str, str]]] = [
        ("/api/v1/applications/web/tree", {}),
        (
            "/api/v1/applications/web/resource",
            {"kind": "ConfigMap", "namespace": env.namespace, "name": "settings"},
        ),
        ("/api/v1/applications/web/events", {}),
        ("/api/v1/applications/web/logs", {"namespace": pod["namespace"], "pod": pod["name"]}),
    ]
    for url, params in routes:
        r = await bob.get(url, params=params)
        assert r.status_code == 403, (url, r.text)
        assert "settings" not in r.text and pod["name"] not in r.text

    carol = await server.login("carol", "carol-password-1")
    assert (await carol.get(routes[0][0])).status_code == 200
    r = await carol.get(routes[3][0], params=routes[3][1])
    assert r.status_code == 403
    assert r.json()["detail"] == "permission denied: logs, get, default/web"

    anonymous = server.anonymous()
    for url, params in routes:
        assert (await anonymous.get(url, params=params)).status_code == 401
