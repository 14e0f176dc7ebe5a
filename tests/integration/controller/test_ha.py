"""Crash safety and HA, with real `gitmoor controller` processes killed by SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from gitmoor.engine import store
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import AppSource, Automated, Destination, application_manifest
from support.apps import dump, slow_deployment
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from gitmoor.kube import KubeClient
    from gitmoor.testenv import ControlPlane

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{value: '{value}'}}\n"


class Controllers:
    """`gitmoor controller` processes of one test, each killable."""

    def __init__(self, kubeconfig: Path, apps_ns: str, log_dir: Path) -> None:
        self.kubeconfig, self.apps_ns, self.log_dir = kubeconfig, apps_ns, log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, replica: str = "", *, lease_seconds: int = 4) -> subprocess.Popen[bytes]:
        args = [
            sys.executable,
            "-m",
            "gitmoor.cli.main",
            "--kubeconfig",
            str(self.kubeconfig),
            "--apps-namespace",
            self.apps_ns,
            "controller",
            "--interval",
            "600",
            "--listen",
            "",
            "--workers",
            "4",
            # Not about Rollouts: a cluster-wide Rollout controller here could act
            # on other tests' Rollouts (it runs by default where the CRDs exist).
            "--rollouts=false",
        ]
        if replica:
            args += ["--replica-id", replica, "--lease-seconds", str(lease_seconds)]
        log = (self.log_dir / f"controller-{replica or 'solo'}.log").open("ab")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
        self.procs[replica] = proc
        return proc

    def kill(self, replica: str = "") -> None:
        proc = self.procs.pop(replica)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()


@pytest.fixture
def controllers(control_plane: ControlPlane, apps_ns: str, tmp_path: Path) -> Iterator[Controllers]:
    c = Controllers(control_plane.kubeconfig, apps_ns, tmp_path)
    yield c
    c.stop_all()


async def _count(kube: KubeClient, namespace: str, value: str) -> int:
    listed = await kube.list(await kube.resource("", "v1", "ConfigMap"), namespace)
    return sum(1 for o in listed.items if (o.get("data") or {}).get("value") == value)


async def test_two_replicas_share_apps_and_a_killed_ones_apps_are_taken_over(
    kube: KubeClient, namespace: str, apps_ns: str, controllers: Controllers, tmp_path: Path
) -> None:
    repo = GitRepo(tmp_path / "repo")
    names = [f"app{i}" for i in range(6)]
    repo.commit({f"{a}/cm.yaml": CM.format(name=a, value="v1") for a in names})
    for a in names:
        await store.save_app(
            kube,
            application_manifest(
                a,
                apps_ns,
                AppSource(repo.url, a, "main"),
                Destination(namespace),
                automated=Automated(prune=True),
            ),
        )
    controllers.start("alpha")
    controllers.start("beta")

    async def all_at(value: str) -> bool:
        return await _count(kube, namespace, value) == len(names)

    await wait_for(lambda: all_at("v1"), within=60, what="every app synced by the two replicas")
    # Both replicas hold a Lease (the second may still be starting: wait for it).
    lease_res = await kube.resource("coordination.k8s.io", "v1", "Lease")

    async def both_leases() -> bool:
        leases = await kube.list(lease_res, apps_ns)
        return sorted(x["spec"]["holderIdentity"] for x in leases.items) == ["alpha", "beta"]

    await wait_for(both_leases, within=30, what="a Lease for each replica")

    controllers.kill("beta")  # no goodbye: its lease must expire
    repo.commit({f"{a}/cm.yaml": CM.format(name=a, value="v2") for a in names})
    for a in names:
        # A spec change makes the live replica look at every app at once.
        app = await store.get_app(kube, a, apps_ns)
        await store.patch_spec(kube, app, {"source": {"targetRevision": "HEAD"}})
    await wait_for(lambda: all_at("v2"), within=60, what="alpha took over beta's apps")


PRE_SYNC = """apiVersion: batch/v1
kind: Job
metadata: {name: pre, annotations: {gitmoor.io/hook: PreSync}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: 'busybox:1.36', command: [sh, -c, sleep 1]}]
"""
WAVE_CM = (
    "apiVersion: v1\nkind: ConfigMap\n"
    "metadata: {{name: {name}, annotations: {{gitmoor.io/sync-wave: '{wave}'}}}}\n"
    "data: {{value: v1}}\n"
)


async def test_sigkill_in_wave_1_resumes_there_after_the_restart(
    kube: KubeClient, namespace: str, apps_ns: str, controllers: Controllers, tmp_path: Path
) -> None:
    """The kill lands while the operation says it waits at wave 1's gate (a state it
    reports, not a moment hoped for). After the restart the PreSync Job is not run
    again, waves 0 and 1 are not applied again, and the operation ends Succeeded."""
    repo = GitRepo(tmp_path / "repo")
    commit = repo.commit(
        {
            "app/pre.yaml": PRE_SYNC,
            "app/zero.yaml": WAVE_CM.format(name="zero", wave="0"),
            "app/one.yaml": WAVE_CM.format(name="one", wave="1"),
            "app/slow.yaml": dump(slow_deployment("one", 10, wave="1")),
            "app/two.yaml": WAVE_CM.format(name="two", wave="2"),
        }
    )
    await store.save_app(
        kube,
        application_manifest(
            "waves",
            apps_ns,
            AppSource(repo.url, "app", "main"),
            Destination(namespace),
            automated=Automated(prune=True),
        ),
    )
    controllers.start()

    async def at_wave_1_gate() -> bool:
        op = (await store.get_app(kube, "waves", apps_ns)).status.get("operationState") or {}
        p = op.get("progress") or {}
        return (p.get("stage"), p.get("wave"), p.get("part")) == ("wave", 1, "gate")

    await wait_for(at_wave_1_gate, within=60, what="the sync waiting at wave 1")
    controllers.kill()

    def cm(name: str) -> ObjectRef:
        return ObjectRef("", "v1", "ConfigMap", namespace, name)

    hook = ObjectRef("batch", "v1", "Job", namespace, "pre")

    async def version(ref: ObjectRef) -> str:
        live = await kube.get(ref)
        assert live is not None, ref
        return str(live["metadata"]["resourceVersion"])

    hook_uid = (await kube.get(hook) or {})["metadata"]["uid"]
    before = {n: await version(cm(n)) for n in ("zero", "one")}
    assert await kube.get(cm("two")) is None

    controllers.start()

    async def succeeded() -> dict[str, Any] | None:
        st = (await store.get_app(kube, "waves", apps_ns)).status
        op = st.get("operationState") or {}
        return st if op.get("phase") == "Succeeded" else None

    st = await wait_for(succeeded, within=90, what="the resumed operation Succeeded")
    assert (await kube.get(hook) or {})["metadata"]["uid"] == hook_uid, "PreSync not run again"
    assert {n: await version(cm(n)) for n in ("zero", "one")} == before, "waves 0, 1 not again"
    assert await kube.get(cm("two")) is not None
    assert [h["revision"] for h in st["history"]] == [commit]
