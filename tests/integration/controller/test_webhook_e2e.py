"""A Git push webhook through the controller's HTTP server: a signed push is
applied within seconds; a push with a bad signature changes nothing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING

import httpx
import pytest

from gitmoor.controller.service import WEBHOOK_SECRET, serve_controller
from gitmoor.engine import store
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import AppSource, Automated, Destination, application_manifest
from gitmoor.settings.repos import add_repo
from gitmoor.testenv import free_port
from support.githttp import PASSWORD, USER, GitHTTPServer, _handler
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.kube import KubeClient

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{value: '{value}'}}\n"
SECRET = "s3cret-webhook-key"


def push(url: str, after: str) -> bytes:
    return json.dumps(
        {
            "ref": "refs/heads/main",
            "after": after,
            "repository": {"clone_url": url, "html_url": url, "default_branch": "main"},
        }
    ).encode()


def sign(body: bytes, key: str = SECRET) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def git_server(tmp_path: Path) -> GitHTTPServer:
    state = GitHTTPServer(root=tmp_path / "srv")
    state.root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield state  # type: ignore[misc]
    httpd.shutdown()
    httpd.server_close()


async def test_signed_push_is_applied_and_a_forged_one_changes_nothing(
    kube: KubeClient, namespace: str, git_server: GitHTTPServer
) -> None:
    apps_ns = f"{namespace}-apps"
    await store.install(kube, apps_ns)
    origin = GitRepo(git_server.root / "cfg")
    origin.commit({"app/cm.yaml": CM.format(value="v1")})
    url = git_server.url("cfg")
    await add_repo(kube, url, username=USER, password=PASSWORD, namespace=apps_ns)
    await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": WEBHOOK_SECRET, "namespace": apps_ns},
            "stringData": {"webhook.github.secret": SECRET},
        }
    )
    await store.save_app(
        kube,
        application_manifest(
            "hooked",
            apps_ns,
            AppSource(url, "app", "main"),
            Destination(namespace),
            automated=Automated(prune=True),
        ),
    )
    port = free_port()
    stop = asyncio.Event()
    # A ten-minute interval: only the webhook can bring the next commit in quickly.
    task = asyncio.create_task(
        serve_controller(
            kube,
            apps_ns,
            interval=600,
            workers=2,
            listen=f"127.0.0.1:{port}",
            stop=stop,
            # not about Rollouts: no cluster-wide Rollout controller over other tests'
            rollouts=False,
        )
    )
    ref = ObjectRef("", "v1", "ConfigMap", namespace, "settings")

    async def value() -> str | None:
        obj = await kube.get(ref)
        return obj["data"]["value"] if obj else None

    try:
        await wait_for(lambda: _is(value(), "v1"), within=30, what="first commit applied")
        second = origin.commit({"app/cm.yaml": CM.format(value="v2")})
        body = push(url, second)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            forged = await http.post(
                "/api/webhook",
                content=body,
                headers={
                    "X-GitHub-Event": "push",
                    "X-Hub-Signature-256": sign(body, "wrong-key"),
                    "Content-Type": "application/json",
                },
            )
            assert forged.status_code == 401
            # GitLab has no secret configured: its pushes are refused, not taken unsigned.
            gitlab_body = json.dumps(
                {
                    "object_kind": "push",
                    "ref": "refs/heads/main",
                    "checkout_sha": second,
                    "project": {"git_http_url": url, "default_branch": "main"},
                }
            ).encode()
            unsigned = await http.post(
                "/api/webhook",
                content=gitlab_body,
                headers={"X-Gitlab-Event": "Push Hook", "Content-Type": "application/json"},
            )
            assert unsigned.status_code == 401
            assert "--webhook-allow-unsigned" in unsigned.json()["error"]
            # The forged and unsigned pushes refreshed nothing: the app still sits at the
            # first commit.
            await asyncio.sleep(0)  # let any (wrongly) queued work start
            st = (await store.get_app(kube, "hooked", apps_ns)).status
            assert st["sync"]["revision"] != second
            assert await value() == "v1"

            ok = await http.post(
                "/api/webhook",
                content=body,
                headers={
                    "X-GitHub-Event": "push",
                    "X-Hub-Signature-256": sign(body),
                    "Content-Type": "application/json",
                },
            )
            assert ok.status_code == 200
            assert ok.json() == {"refreshed": 1}
            await wait_for(
                lambda: _is(value(), "v2"), within=20, interval=0.05, what="pushed commit applied"
            )
            metrics = (await http.get("/metrics")).text
            assert 'gitmoor_app_sync_total{name="hooked"' in metrics
    finally:
        stop.set()
        await task
        await kube.delete(store.app_ref("hooked", apps_ns))
        await kube.delete(ObjectRef("", "v1", "Namespace", "", apps_ns))


async def _is(probe: object, want: str) -> bool:
    return await probe == want  # type: ignore[misc]
