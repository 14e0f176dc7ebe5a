"""The local control plane behaves like a real cluster: the real API server,
controllers that act, nodes where pods run, RBAC that refuses."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from gitmoor.kube import ApiError, KubeClient, load_kubeconfig, wait_for
from gitmoor.model import ObjectRef
from gitmoor.testenv import ControlPlane, port_is_free

DEPLOY = ObjectRef("apps", "v1", "Deployment", "", "")


def deployment(
    ns: str, name: str, *, image: str = "nginx:1.27", replicas: int = 3, deadline: int | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "main", "image": image}]},
        },
    }
    if deadline is not None:
        spec["progressDeadlineSeconds"] = deadline
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def condition(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    for c in (obj or {}).get("status", {}).get("conditions", []):
        if c["type"] == ctype:
            return dict(c)
    return None


def ref(kind: str, ns: str, name: str, group: str = "", version: str = "v1") -> ObjectRef:
    return ObjectRef(group, version, kind, ns, name)


def test_readyz_livez_and_the_controllers_healthy(control_plane: ControlPlane) -> None:
    with control_plane.admin_client() as c:
        assert c.get("/readyz").status_code == 200
        assert c.get("/livez").status_code == 200
        version = c.get("/version").json()
        assert version["gitVersion"] == "v1.37.2"
    # kube-controller-manager and kube-scheduler run without leader election (one
    # of each: an election would make them exit during an API server restart);
    # their own /healthz says they are up.
    for port in ("controller_manager", "scheduler"):
        r = httpx.get(f"https://127.0.0.1:{control_plane.ports[port]}/healthz", verify=False)
        assert (r.status_code, r.text) == (200, "ok"), port


def test_nodes_are_ready_and_labelled_like_a_kubelet(control_plane: ControlPlane) -> None:
    with control_plane.admin_client() as c:
        nodes = c.get("/api/v1/nodes").json()["items"]
    assert len(nodes) >= 1
    for n in nodes:
        labels = n["metadata"]["labels"]
        assert labels["kubernetes.io/os"] == "linux"
        assert labels["kubernetes.io/hostname"] == n["metadata"]["name"]
        assert condition(n, "Ready")["status"] == "True"  # type: ignore[index]


async def test_deployment_becomes_available(kube: KubeClient, namespace: str) -> None:
    await kube.create(deployment(namespace, "web", replicas=3))

    async def available() -> dict[str, Any] | None:
        d = await kube.get(ref("Deployment", namespace, "web", "apps"))
        c = condition(d, "Available")
        return d if c and c["status"] == "True" and d["status"].get("readyReplicas") == 3 else None  # type: ignore[index]

    d = await wait_for(available, within=30, what="Deployment web Available")
    assert d["status"]["availableReplicas"] == 3
    pods = await kube.list(await kube.resource("", "v1", "Pod"), namespace)
    assert len(pods.items) == 3
    assert all(p["status"]["phase"] == "Running" for p in pods.items)
    assert all(p["spec"]["nodeName"] for p in pods.items)


async def test_failing_image_reports_progress_deadline_exceeded(
    kube: KubeClient, namespace: str
) -> None:
    await kube.create(deployment(namespace, "broken", image="nginx:fail", replicas=1, deadline=3))

    async def stalled() -> dict[str, Any] | None:
        d = await kube.get(ref("Deployment", namespace, "broken", "apps"))
        c = condition(d, "Progressing")
        return c if c and c.get("reason") == "ProgressDeadlineExceeded" else None

    c = await wait_for(stalled, within=60, what="ProgressDeadlineExceeded")
    assert c["status"] == "False"
    pods = (await kube.list(await kube.resource("", "v1", "Pod"), namespace)).items
    waiting = pods[0]["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "CrashLoopBackOff"


async def test_deleting_a_deployment_collects_its_replicasets_and_pods(
    kube: KubeClient, namespace: str
) -> None:
    await kube.create(deployment(namespace, "gc", replicas=2))
    pod_res = await kube.resource("", "v1", "Pod")
    rs_res = await kube.resource("apps", "v1", "ReplicaSet")

    async def two_pods() -> bool:
        return len((await kube.list(pod_res, namespace)).items) == 2

    await wait_for(two_pods, within=30, what="2 pods")
    assert len((await kube.list(rs_res, namespace)).items) == 1
    await kube.delete(ref("Deployment", namespace, "gc", "apps"), propagation="Background")

    async def collected() -> bool:
        rs = (await kube.list(rs_res, namespace)).items
        pods = (await kube.list(pod_res, namespace)).items
        return not rs and not pods

    await wait_for(collected, within=60, what="ReplicaSets and Pods garbage-collected")


async def test_pods_run_to_completion_or_fail_by_the_documented_rules(
    kube: KubeClient, namespace: str
) -> None:
    def pod(name: str, image: str, command: list[str] | None = None) -> dict[str, Any]:
        c: dict[str, Any] = {"name": "main", "image": image}
        if command:
            c["command"] = command
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"restartPolicy": "Never", "containers": [c]},
        }

    await kube.create(pod("ok", "busybox:1.36", ["sh", "-c", "echo hi"]))
    await kube.create(pod("bad", "busybox:fail"))
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate", "namespace": namespace},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "m", "image": "busybox:1.36", "command": ["sleep", "2"]}
                    ],
                }
            },
        },
    }
    await kube.create(job)

    async def phase(name: str, want: str) -> bool:
        p = await kube.get(ref("Pod", namespace, name))
        return bool(p and p.get("status", {}).get("phase") == want)

    await wait_for(lambda: phase("ok", "Succeeded"), within=30, what="pod ok Succeeded")
    await wait_for(lambda: phase("bad", "Failed"), within=30, what="pod bad Failed")

    async def complete() -> dict[str, Any] | None:
        j = await kube.get(ref("Job", namespace, "migrate", "batch"))
        c = condition(j, "Complete")
        return j if c and c["status"] == "True" else None

    j = await wait_for(complete, within=40, what="Job Complete")
    # `sleep 2` sets how long the pod runs: the Job cannot finish sooner.
    from datetime import datetime

    started = datetime.fromisoformat(j["status"]["startTime"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(j["status"]["completionTime"].replace("Z", "+00:00"))
    assert (finished - started).total_seconds() >= 2


async def test_readiness_probe_delays_ready(kube: KubeClient, namespace: str) -> None:
    probe = {"httpGet": {"path": "/", "port": 80}, "initialDelaySeconds": 5}
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "slow", "namespace": namespace},
            "spec": {
                "containers": [{"name": "main", "image": "nginx:1.27", "readinessProbe": probe}]
            },
        }
    )

    async def running() -> dict[str, Any] | None:
        p = await kube.get(ref("Pod", namespace, "slow"))
        return p if p and p.get("status", {}).get("phase") == "Running" else None

    p = await wait_for(running, within=20, what="pod Running")
    assert condition(p, "Ready")["status"] == "False"  # type: ignore[index]

    async def ready() -> bool:
        c = condition(await kube.get(ref("Pod", namespace, "slow")), "Ready")
        return bool(c and c["status"] == "True")

    await wait_for(ready, within=30, what="pod Ready after initialDelaySeconds")


async def test_rbac_refuses_outside_the_rolebinding(
    control_plane: ControlPlane, kube: KubeClient, namespace: str
) -> None:
    other = f"{namespace}-other"
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    try:
        await kube.create(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "alice-edit", "namespace": namespace},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "edit",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}
                ],
            }
        )
        cfg = control_plane.mint_kubeconfig("alice", ["dev-team"])
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}}
        async with KubeClient(load_kubeconfig(cfg)) as alice:
            created = await alice.create({**cm, "metadata": {"name": "ok", "namespace": namespace}})
            assert created["metadata"]["name"] == "ok"
            with pytest.raises(ApiError) as refused:
                await alice.create({**cm, "metadata": {"name": "no", "namespace": other}})
            assert refused.value.code == 403
            assert refused.value.reason == "Forbidden"
        # and the real kubectl agrees, with the same kubeconfig
        out = subprocess.run(
            ["kubectl", "--kubeconfig", str(cfg), "-n", other, "get", "configmaps"],
            capture_output=True,
            text=True,
        )
        assert out.returncode != 0 and "forbidden" in out.stderr.lower()
    finally:
        await kube.delete(ref("Namespace", "", other))


def test_a_second_control_plane_runs_beside_and_leaves_nothing(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    cp = ControlPlane(home=tmp_path / "second", name="second")
    cp.start()
    try:
        assert cp.server != control_plane.server
        with cp.admin_client() as c:
            assert c.get("/readyz").status_code == 200
        pids = [p.pid for p in cp.procs]
        ports = list(cp.ports.values())
        data_dir = cp.data_dir
        assert data_dir is not None and data_dir.exists()
    finally:
        cp.stop()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), f"process {pid} left running"
    for port in ports:
        assert port_is_free(port), f"port {port} still bound"
    assert not data_dir.exists()
    assert not (tmp_path / "second").exists()
    # the first control plane is untouched
    with control_plane.admin_client() as c:
        assert c.get("/readyz").status_code == 200
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{cp.server}/readyz", verify=False, timeout=2)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_make_cluster_kubeconfig_works_with_kubectl(control_plane: ControlPlane) -> None:
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(control_plane.kubeconfig), "get", "nodes", "-o", "name"],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert out.returncode == 0, out.stderr
    assert "node/" in out.stdout
