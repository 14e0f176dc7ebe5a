"""``deploy/`` on the real API server: every rendering passes server-side
dry-run with strict field validation and no warning (Pod Security
``restricted`` included), and the controller's Deployment rolls out in a
namespace that enforces ``restricted``.

What the manifests render is moved into this test's namespaces first
(``deploytools.retarget``): ``gitmoor`` and the namespaced overlay's
destinations may not exist here, and a dry-run does not create the Namespace it
would apply before the objects inside it.
"""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from deploytools import TARGETS, create_namespace, kubectl, namespaces_of, render, retarget

from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.kube import KubeClient


async def _moved(
    kube: KubeClient, target: str, namespace: str, extra_namespaces: list[str]
) -> list[dict[str, Any]]:
    """``target`` rendered, in ``namespace`` (gitmoor's) and new namespaces of
    this test (the namespaced overlay's destinations); the Namespaces applied."""
    rendered = render(target)
    moves = {"gitmoor": namespace}
    for i, ns in enumerate(sorted(namespaces_of(rendered) - {"gitmoor"})):
        moves[ns] = await create_namespace(kube, f"{namespace}-d{i}", extra_namespaces)
    objs = retarget(rendered, moves, namespace)
    for ns in (o for o in objs if o["kind"] == "Namespace"):
        # Really applied: the labels (Pod Security levels) shape what follows.
        await kube.apply(ns, force=True)
    return objs


def _kubectl(kubeconfig: Path, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
    )


@pytest.mark.parametrize("target", TARGETS)
async def test_server_side_dry_run_accepts_the_manifests(
    target: str,
    kube: KubeClient,
    kubeconfig: Path,
    namespace: str,
    extra_namespaces: list[str],
) -> None:
    objs = await _moved(kube, target, namespace, extra_namespaces)
    out = _kubectl(
        kubeconfig,
        "apply",
        "--server-side",
        "--dry-run=server",
        # Strict: a misspelt or misplaced field is an error, not a silent drop.
        "--validate=strict",
        "--force-conflicts",
        "--field-manager=gitmoor-deploy-test",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(objs),
    )
    assert out.returncode == 0, out.stderr
    # Warnings include Pod Security's ("would violate PodSecurity restricted")
    # for the Deployment's pod template: the namespace warns at that level.
    assert "Warning" not in out.stderr, out.stderr
    applied = [line for line in out.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(objs), out.stdout


@pytest.mark.parametrize(("target", "replicas"), [("deploy", 1), ("deploy/overlays/ha", 2)])
async def test_the_controller_deployment_rolls_out_under_restricted_pod_security(
    target: str,
    replicas: int,
    kube: KubeClient,
    namespace: str,
    extra_namespaces: list[str],
) -> None:
    """Applied for real (all but the CRD and the cluster-wide RBAC, which would
    make this test's ServiceAccount cluster-admin): the pods are admitted by
    Pod Security ``restricted`` (enforced by the Namespace's labels), scheduled
    on a node by its labels, and Ready. kwok plays the kubelet; no image is pulled."""
    objs = await _moved(kube, target, namespace, extra_namespaces)
    skip = ("Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding")
    for obj in objs:
        if obj["kind"] not in skip:
            await kube.apply(obj, force=True)
    ns = await kube.get(ObjectRef("", "v1", "Namespace", "", namespace))
    assert ns is not None
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    ref = ObjectRef("apps", "v1", "Deployment", namespace, "gitmoor-controller")

    async def available() -> dict[str, Any] | None:
        obj = await kube.get(ref)
        st = (obj or {}).get("status") or {}
        return obj if st.get("availableReplicas") == replicas else None

    try:
        await wait_for(available, within=60, what=f"{replicas} controller pod(s) available")
    except TimeoutError:
        # Say why: a pod refused by Pod Security shows as a ReplicaSet condition.
        sets = await kube.list(await kube.resource("apps", "v1", "ReplicaSet"), namespace)
        why = [
            c.get("message") for r in sets.items for c in r.get("status", {}).get("conditions", [])
        ]
        pytest.fail(f"{target}: the controller did not become available: {why}")
    pods = await kube.list(
        await kube.resource("", "v1", "Pod"),
        namespace,
        label_selector="app.kubernetes.io/name=gitmoor,app.kubernetes.io/component=controller",
    )
    assert len(pods.items) == replicas
    for pod in pods.items:
        spec = pod["spec"]
        assert spec["serviceAccountName"] == "gitmoor-controller"
        env = {e["name"] for e in spec["containers"][0]["env"]}
        assert ("POD_NAME" in env) == (replicas > 1)
    if target == "deploy":
        # The default install's API server (deploy/server) is admitted the same way.
        server = ObjectRef("apps", "v1", "Deployment", namespace, "gitmoor-server")

        async def server_available() -> bool:
            st = ((await kube.get(server)) or {}).get("status") or {}
            return bool(st.get("availableReplicas") == 1)

        await wait_for(server_available, within=60, what="the API server's pod available")
