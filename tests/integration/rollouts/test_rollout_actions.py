"""`gitmoor rollout promote|abort|retry|undo|restart|get` against the real API server.

Each verb must leave the Rollout exactly as the Argo Rollouts kubectl plugin
leaves it, whichever controller then acts on it; so the tests build the objects a
controller would have made (a Rollout with a status written through the status
subresource, ReplicaSets owned by it and labelled with their pod-template hash,
an AnalysisRun) and run no Rollout controller. The ReplicaSets' pods are made by
the cluster's own ReplicaSet controller and run on the simulated nodes.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef

if TYPE_CHECKING:
    import subprocess

    from gitmoor.kube import KubeClient
    from support.cli import Gitmoor

JSON = dict[str, Any]


def ro_ref(namespace: str, name: str = "web") -> ObjectRef:
    return ObjectRef("argoproj.io", "v1alpha1", "Rollout", namespace, name)


def template(image: str, h: str | None = None) -> JSON:
    labels = {"app": "web"}
    if h:
        labels["rollouts-pod-template-hash"] = h
    return {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "main", "image": image}]},
    }


BLUE_GREEN = {"blueGreen": {"activeService": "web-active", "previewService": "web-preview"}}
CANARY = {
    "canary": {
        "steps": [
            {"setWeight": 25},
            {"pause": {"duration": "5s"}},
            {"setWeight": 50},
            {"pause": {}},
        ]
    }
}


async def make_rollout(
    kube: KubeClient,
    namespace: str,
    strategy: JSON,
    status: JSON,
    *,
    paused: bool = False,
    image: str = "web:2",
) -> JSON:
    obj = await kube.create(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "replicas": 1,
                "paused": paused,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template(image),
                "strategy": strategy,
            },
        }
    )
    if status:
        obj = await kube.merge_patch(ro_ref(namespace), {"status": status}, subresource="status")
    return obj


async def make_rs(
    kube: KubeClient, namespace: str, rollout: JSON, h: str, revision: int, image: str
) -> JSON:
    meta = rollout["metadata"]
    return await kube.create(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"web-{h}",
                "namespace": namespace,
                "labels": {"app": "web", "rollouts-pod-template-hash": h},
                "annotations": {"rollout.argoproj.io/revision": str(revision)},
                "ownerReferences": [
                    {
                        "apiVersion": "argoproj.io/v1alpha1",
                        "kind": "Rollout",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web", "rollouts-pod-template-hash": h}},
                "template": template(image, h),
            },
        }
    )


async def make_service(kube: KubeClient, namespace: str, name: str, h: str) -> None:
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "ports": [{"port": 80}],
                "selector": {"app": "web", "rollouts-pod-template-hash": h},
            },
        }
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


async def live(kube: KubeClient, namespace: str) -> JSON:
    obj = await kube.get(ro_ref(namespace))
    assert obj is not None
    return obj


# ---------------------------------------------------------------------- the verbs


async def test_promote_abort_retry_restart_write_the_plugins_patches(
    kube: KubeClient, namespace: str, gitmoor: Gitmoor, rollout_crds: None
) -> None:
    await make_rollout(
        kube,
        namespace,
        BLUE_GREEN,
        {
            "phase": "Paused",
            "pauseConditions": [{"reason": "BlueGreenPause", "startTime": "2026-01-01T00:00:00Z"}],
            "controllerPause": True,
            "currentPodHash": "bbb",
            "stableRS": "aaa",
            "blueGreen": {"activeSelector": "aaa", "previewSelector": "bbb"},
        },
        paused=True,
    )

    out = ok(gitmoor("rollout", "promote", "web", "-n", namespace))
    assert out.strip() == "rollout 'web' promoted"
    ro = await live(kube, namespace)
    assert ro["spec"]["paused"] is False
    assert "pauseConditions" not in ro["status"]
    # the controller's own flag is the controller's to clear (the plugin leaves it)
    assert ro["status"]["controllerPause"] is True

    out = ok(gitmoor("rollout", "promote", "web", "-n", namespace, "--full"))
    assert out.strip() == "rollout 'web' fully promoted"
    assert (await live(kube, namespace))["status"]["promoteFull"] is True

    ok(gitmoor("rollout", "abort", "web", "-n", namespace))
    assert (await live(kube, namespace))["status"]["abort"] is True
    ok(gitmoor("rollout", "retry", "web", "-n", namespace))
    assert (await live(kube, namespace))["status"]["abort"] is False

    before = datetime.now(UTC).replace(microsecond=0)
    out = ok(gitmoor("rollout", "restart", "web", "-n", namespace))
    restart_at = (await live(kube, namespace))["spec"]["restartAt"]
    assert restart_at in out
    assert datetime.fromisoformat(restart_at.replace("Z", "+00:00")) >= before

    missing = gitmoor("rollout", "promote", "nope", "-n", namespace)
    assert missing.returncode == 2 and "no such Rollout" in missing.stderr


async def test_promote_of_a_canary_in_a_step_moves_to_the_next_step(
    kube: KubeClient, namespace: str, gitmoor: Gitmoor, rollout_crds: None
) -> None:
    """No pause condition (an analysis step running): the plugin skips the step."""
    await make_rollout(kube, namespace, CANARY, {"phase": "Progressing", "currentStepIndex": 2})
    ok(gitmoor("rollout", "promote", "web", "-n", namespace))
    status = (await live(kube, namespace))["status"]
    assert status["currentStepIndex"] == 3
    assert "pauseConditions" not in status


async def test_undo_puts_an_earlier_template_back(
    kube: KubeClient, namespace: str, gitmoor: Gitmoor, rollout_crds: None
) -> None:
    ro = await make_rollout(kube, namespace, BLUE_GREEN, {"phase": "Healthy"}, image="web:3")
    await make_rs(kube, namespace, ro, "r1", 1, "web:1")
    await make_rs(kube, namespace, ro, "r2", 2, "web:2")
    await make_rs(kube, namespace, ro, "r3", 3, "web:3")

    ok(gitmoor("rollout", "undo", "web", "-n", namespace))
    spec = (await live(kube, namespace))["spec"]
    assert spec["template"]["spec"]["containers"][0]["image"] == "web:2"
    # the hash label stays on the ReplicaSet, not in the Rollout's template
    assert spec["template"]["metadata"]["labels"] == {"app": "web"}

    ok(gitmoor("rollout", "undo", "web", "-n", namespace, "--to-revision", "1"))
    image = (await live(kube, namespace))["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "web:1"

    again = ok(gitmoor("rollout", "undo", "web", "-n", namespace, "--to-revision", "1"))
    assert "skipped rollback" in again

    bad = gitmoor("rollout", "undo", "web", "-n", namespace, "--to-revision", "7")
    assert bad.returncode == 2 and "unable to find specified revision 7" in bad.stderr


# ---------------------------------------------------------------------- get


async def _blue_green_world(kube: KubeClient, namespace: str) -> None:
    """Revision 1 active and stable, revision 2 in preview with a finished analysis."""
    ro = await make_rollout(
        kube,
        namespace,
        BLUE_GREEN,
        {
            "phase": "Paused",
            "message": "BlueGreenPause",
            "pauseConditions": [{"reason": "BlueGreenPause", "startTime": "2026-01-01T00:00:00Z"}],
            "currentPodHash": "r2",
            "stableRS": "r1",
            "blueGreen": {"activeSelector": "r1", "previewSelector": "r2"},
        },
        paused=True,
    )
    await make_rs(kube, namespace, ro, "r1", 1, "web:1")
    await make_rs(kube, namespace, ro, "r2", 2, "web:2")
    await make_service(kube, namespace, "web-active", "r1")
    await make_service(kube, namespace, "web-preview", "r2")
    await kube.create(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {
                "name": "web-r2-2-pre",
                "namespace": namespace,
                "annotations": {"rollout.argoproj.io/revision": "2"},
                "ownerReferences": [
                    {
                        "apiVersion": "argoproj.io/v1alpha1",
                        "kind": "Rollout",
                        "name": "web",
                        "uid": ro["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "metrics": [
                    {
                        "name": "success-rate",
                        "successCondition": "result[0] >= 0.95",
                        "provider": {"prometheus": {"address": "http://127.0.0.1:1", "query": "x"}},
                    }
                ]
            },
            "status": {
                "phase": "Successful",
                "metricResults": [
                    {
                        "name": "success-rate",
                        "phase": "Successful",
                        "count": 1,
                        "successful": 1,
                        "measurements": [
                            {
                                "phase": "Successful",
                                "value": "[0.98]",
                                "startedAt": "2026-01-01T00:00:01Z",
                                "finishedAt": "2026-01-01T00:00:02Z",
                            }
                        ],
                    }
                ],
            },
        }
    )

    async def pods_running() -> bool:
        pods = await kube.list(await kube.resource("", "v1", "Pod"), namespace)
        return len(pods.items) == 2 and all(
            (p.get("status") or {}).get("phase") == "Running" for p in pods.items
        )

    await wait_for(pods_running, within=30, what="the ReplicaSets' pods Running")


async def test_get_shows_replicasets_pods_analysis_and_services(
    kube: KubeClient, namespace: str, gitmoor: Gitmoor, rollout_crds: None
) -> None:
    await _blue_green_world(kube, namespace)

    doc = json.loads(ok(gitmoor("rollout", "get", "web", "-n", namespace, "-o", "json")))
    assert (doc["strategy"], doc["status"], doc["message"]) == (
        "BlueGreen",
        "Paused",
        "BlueGreenPause",
    )
    assert [(r["name"], r["revision"], r["roles"]) for r in doc["replicaSets"]] == [
        ("web-r2", 2, ["preview"]),
        ("web-r1", 1, ["stable", "active"]),
    ]
    for rs in doc["replicaSets"]:
        [pod] = rs["pods"]
        assert pod["name"].startswith(rs["name"] + "-")
        assert (pod["status"], pod["ready"]) == ("Running", "1/1")
    [run] = doc["analysisRuns"]
    assert (run["name"], run["phase"]) == ("web-r2-2-pre", "Successful")
    [metric] = run["metrics"]
    assert [(m["phase"], m["value"]) for m in metric["measurements"]] == [("Successful", "[0.98]")]
    assert [(s["role"], s["name"], s["replicaSet"]) for s in doc["services"]] == [
        ("active", "web-active", "web-r1"),
        ("preview", "web-preview", "web-r2"),
    ]

    text = ok(gitmoor("rollout", "get", "web", "-n", namespace))
    assert "Status:          ॥ Paused" in text
    assert "Strategy:        BlueGreen" in text
    assert "web:1 (active, stable)" in text and "web:2 (preview)" in text
    assert "# revision:2" in text and "# revision:1" in text
    assert "web-r2-2-pre" in text and "success-rate" in text and "[0.98]" in text
    assert "web-active  → r1 (web-r1)" in text
    assert "ready:1/1" in text


async def test_get_watch_prints_again_on_a_change(
    kube: KubeClient, namespace: str, gitmoor: Gitmoor, rollout_crds: None
) -> None:
    await make_rollout(
        kube,
        namespace,
        BLUE_GREEN,
        {
            "phase": "Paused",
            "message": "BlueGreenPause",
            "pauseConditions": [{"reason": "BlueGreenPause"}],
        },
        paused=True,
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gitmoor.cli.main",
        "--kubeconfig",
        str(gitmoor.kubeconfig),
        "--apps-namespace",
        gitmoor.apps_namespace,
        "rollout",
        "get",
        "web",
        "-n",
        namespace,
        "--watch",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=gitmoor.env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = proc.stdout, proc.stderr
    lines: list[str] = []

    async def read() -> None:
        async for line in stdout:
            lines.append(line.decode())

    reader = asyncio.create_task(read())
    try:

        async def printed(word: str) -> bool:
            if proc.returncode is not None:
                raise AssertionError(f"watch ended: {(await stderr.read()).decode()}")
            return any(word in line for line in lines)

        await wait_for(lambda: printed("॥ Paused"), within=30, what="the first view")
        await kube.merge_patch(
            ro_ref(namespace),
            {"status": {"phase": "Healthy", "message": "", "pauseConditions": None}},
            subresource="status",
        )
        await wait_for(lambda: printed("✔ Healthy"), within=30, what="the view after the change")
    finally:
        # Ctrl-C, as a user ends the watch
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        await reader
    assert proc.returncode == 0, (proc.returncode, (await stderr.read()).decode())
