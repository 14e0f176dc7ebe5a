"""One app's hostile repository does not stall the others.

A real ``gitmoor controller`` process serves two automated apps: one whose
commits are alias bombs (a new one pushed again and again, so every refresh has
a fresh bomb to render), one healthy. While the bombs keep coming, the healthy
app's drift is corrected within 2 s (the bound the issue sets) and ``/healthz``
answers: the bomb is refused while loading, on a worker thread, and never
reaches the event loop as an expansion to do.
"""

from __future__ import annotations

import asyncio
import calendar
import os
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from gitmoor.engine import store
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import AppSource, Automated, Destination, application_manifest
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from gitmoor.kube import KubeClient
    from gitmoor.testenv import ControlPlane

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{value: '{value}'}}\n"


def billion_laughs(salt: int) -> str:
    lines = [f'l0: &l0 ["lol{salt}", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n" + "".join(
        f"  {line}\n" for line in lines
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def controller(
    control_plane: ControlPlane, apps_ns: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    log = (tmp_path / "controller.log").open("ab")
    args = [
        sys.executable,
        "-m",
        "gitmoor.cli.main",
        "--kubeconfig",
        str(control_plane.kubeconfig),
        "--apps-namespace",
        apps_ns,
        "controller",
        # Every app refreshed every second: the bomb app renders all the time.
        "--interval",
        "1",
        "--listen",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--self-heal-debounce",
        "0.5",
        # Not about Rollouts: a cluster-wide Rollout controller here could act on
        # other tests' Rollouts (it runs by default wherever the CRDs are installed).
        "--rollouts=false",
    ]
    env = {**os.environ, "GITMOOR_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


async def _app_saved(kube: KubeClient, apps_ns: str, name: str, url: str, path: str) -> None:
    await store.save_app(
        kube,
        application_manifest(
            name,
            apps_ns,
            AppSource(url, path, "main"),
            Destination(apps_ns.removesuffix("-apps")),
            automated=Automated(prune=True, self_heal=True),
        ),
    )


def _mentions(status: dict[str, Any], text: str) -> bool:
    messages = [c.get("message", "") for c in status.get("conditions") or []]
    messages.append((status.get("operationState") or {}).get("message", ""))
    return any(text in m for m in messages)


async def test_an_alias_bomb_next_door_does_not_stall_self_heal_or_healthz(
    kube: KubeClient,
    namespace: str,
    apps_ns: str,
    tmp_path: Path,
    controller: tuple[subprocess.Popen[bytes], str],
) -> None:
    proc, base = controller
    repo = GitRepo(tmp_path / "repo")
    repo.commit(
        {"steady/cm.yaml": CM.format(name="steady", value="git"), "bomb/cm.yaml": billion_laughs(0)}
    )
    await _app_saved(kube, apps_ns, "steady", repo.url, "steady")
    await _app_saved(kube, apps_ns, "bombed", repo.url, "bomb")
    ref = ObjectRef("", "v1", "ConfigMap", namespace, "steady")

    async with httpx.AsyncClient(timeout=2.0) as http:

        async def healthy() -> bool:
            assert proc.poll() is None, "the controller exited"
            try:
                return (await http.get(f"{base}/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(healthy, within=60, what="controller /healthz")

        async def value() -> str | None:
            obj = await kube.get(ref)
            return obj["data"]["value"] if obj else None

        async def is_(want: str) -> bool:
            return await value() == want

        await wait_for(lambda: is_("git"), within=60, what="steady app applied")

        async def bomb_reported() -> bool:
            app = await store.get_app(kube, "bombed", apps_ns)
            return _mentions(app.status, "alias bomb")

        await wait_for(bomb_reported, within=60, what="the bomb refused on the app's status")

        async def settled() -> bool:
            # Past the self-heal debounce of the last sync of the steady app.
            app = await store.get_app(kube, "steady", apps_ns)
            st = app.status
            finished = (st.get("operationState") or {}).get("finishedAt")
            synced = (st.get("sync") or {}).get("status") == "Synced"
            if not (synced and finished):
                return False
            done = calendar.timegm(time.strptime(finished, "%Y-%m-%dT%H:%M:%SZ"))
            return time.time() - done > 1.0

        await wait_for(settled, within=60, what="steady app Synced and settled")

        # Keep the bombs coming while the drift is healed.
        stop = asyncio.Event()

        async def keep_bombing() -> int:
            pushed = 0
            while not stop.is_set():
                pushed += 1
                await asyncio.to_thread(repo.commit, {"bomb/cm.yaml": billion_laughs(pushed)})
                await asyncio.sleep(0.2)
            return pushed

        bomber = asyncio.create_task(keep_bombing())
        try:
            for drift in ("drifted-1", "drifted-2"):
                await kube.merge_patch(ref, {"data": {"value": drift}})
                started = time.monotonic()
                await wait_for(
                    lambda: is_("git"), within=2.0, interval=0.05, what="drift corrected"
                )
                assert time.monotonic() - started <= 2.0
                health = await http.get(f"{base}/healthz")
                assert health.status_code == 200
                await wait_for(settled, within=30, what="settled again")
        finally:
            stop.set()
            pushed = await bomber
        assert pushed >= 2
        assert proc.poll() is None
        app = await store.get_app(kube, "bombed", apps_ns)
        assert _mentions(app.status, "alias bomb")
        assert await kube.get(ObjectRef("", "v1", "ConfigMap", namespace, "bomb")) is None
