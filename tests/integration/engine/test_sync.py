"""Sync of a plain-YAML app: first sync, a re-sync that writes nothing, selective
sync, and the CreateNamespace option."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from gitmoor.engine.app import Engine
from gitmoor.engine.sync import Action, Phase, SyncOptions
from gitmoor.kube import KubeClient, load_kubeconfig
from gitmoor.model import ObjectRef
from gitmoor.model.application import INSTANCE_LABEL, TRACKING_ANNOTATION
from support.apps import (
    actions,
    annotations_of,
    configmap,
    delete_namespace,
    deployment,
    dump,
    job,
    labels_of,
    secret,
    service,
)

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from support.apps import AppEnv


def _app_files() -> dict[str, str]:
    """A little of every kind whose no-op detection has a trap: a Secret given as
    stringData (the server stores data), a Service (clusterIP assigned by the
    server), a Deployment (defaulted pod spec, status), a Job (generated selector
    and template labels)."""
    return {
        "config.yaml": dump(configmap("settings", {"mode": "fast"})),
        "secret.yaml": dump(secret("creds", {"token": "t0ken"})),
        "web.yaml": dump(deployment("web"), service("web")),
        "jobs/once.yaml": dump(job("once")),
        "README.md": "not a manifest\n",
    }


async def test_first_sync_creates_tracked_objects_and_records_status(env: AppEnv) -> None:
    sha = env.repo.commit(_app_files())
    await env.create("first")

    result = await env.sync("first")

    assert result.phase is Phase.SUCCEEDED, result.message
    assert result.revision == sha
    assert actions(result) == {
        "ConfigMap/settings": "created",
        "Secret/creds": "created",
        "Service/web": "created",
        "Deployment/web": "created",
        "Job/once": "created",
    }
    app = await env.healthy("first")
    for ref in [r.ref for r in result.resources]:
        live = await env.get(ref)
        assert live is not None, ref
        assert annotations_of(live)[TRACKING_ANNOTATION] == app.tracking_id(
            ref.group, ref.kind, env.namespace, ref.name
        )
        assert labels_of(live)[INSTANCE_LABEL] == "first"
    status = app.status
    assert status["sync"] == {"status": "Synced", "revision": sha}
    assert status["health"]["status"] == "Healthy"
    assert status["operationState"]["phase"] == "Succeeded"
    assert [(h["id"], h["revision"]) for h in status["history"]] == [(1, sha)]
    assert {r["name"] for r in status["resources"]} == {"settings", "creds", "web", "once"}


class _WriteLog:
    """Every request of one client, so a test can tell a dry-run from a write."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.requests.append((request.method, request.url.path, dict(request.url.params)))

    def writes(self) -> list[tuple[str, str]]:
        """Writes other than to the Applications' own status (which a sync records)."""
        return [
            (method, path)
            for method, path, params in self.requests
            if method in ("POST", "PUT", "DELETE", "PATCH")
            and params.get("dryRun") != "All"
            and "/apis/gitmoor.io/" not in path
        ]


async def test_resync_with_nothing_changed_writes_nothing(env: AppEnv, kubeconfig: Path) -> None:
    env.repo.commit(_app_files())
    await env.create("noop")
    assert (await env.sync("noop")).ok
    # Settled first: the Deployment's status (and resourceVersion) moves as it
    # rolls out, which is kube-controller-manager's write, not gitmoor's.
    await env.healthy("noop")
    before = await env.snapshot()

    # A client of its own, so that only this sync's requests are counted.
    async with KubeClient(load_kubeconfig(kubeconfig)) as kc:
        log = _WriteLog()
        # The one place tests reach into the client: httpx's request hook sees
        # the query string, where dry-run and real applies differ.
        kc._http.event_hooks["request"].append(log)
        engine = Engine(kc, git_cache_dir=env.engine.git_cache_dir, namespace=env.apps_namespace)
        result = await engine.sync(await env.app("noop"), SyncOptions(timeout=60))
        counts: Counter[str] = Counter()
        for (verb, _code), n in kc.requests.items():
            counts[verb] += n

    assert result.ok, result.message
    assert {r.action for r in result.resources} == {Action.UNCHANGED}, actions(result)
    assert log.writes() == []
    assert counts["POST"] == counts["PUT"] == counts["DELETE"] == 0
    assert await env.snapshot() == before
    app = await env.app("noop")
    assert app.status["sync"]["status"] == "Synced"
    assert [h["id"] for h in app.status["history"]] == [1, 2]


async def test_selective_sync_touches_only_the_named_objects(env: AppEnv) -> None:
    env.repo.commit(
        {
            "a.yaml": dump(configmap("a", {"v": "1"})),
            "b.yaml": dump(configmap("b", {"v": "1"})),
            "gone.yaml": dump(configmap("gone")),
        }
    )
    await env.create("pick")
    assert (await env.sync("pick")).ok
    env.repo.commit(
        {"a.yaml": dump(configmap("a", {"v": "2"})), "b.yaml": dump(configmap("b", {"v": "2"}))},
        remove=("gone.yaml",),
    )

    result = await env.sync(
        "pick", SyncOptions(only=frozenset({("", "ConfigMap", "a")}), prune=True, timeout=60)
    )

    assert result.ok, result.message
    assert actions(result) == {"ConfigMap/a": "configured"}
    assert ((await env.get(env.cm("a"))) or {})["data"] == {"v": "2"}
    assert ((await env.get(env.cm("b"))) or {})["data"] == {"v": "1"}
    # A selective sync never prunes, even with prune on.
    assert await env.get(env.cm("gone")) is not None
    _, comparison = await env.refresh("pick")
    assert comparison is not None
    assert comparison.sync.value == "OutOfSync"


async def test_create_namespace_option_creates_the_destination(env: AppEnv) -> None:
    dest = f"{env.namespace}-dest"
    ns_ref = ObjectRef("", "v1", "Namespace", "", dest)
    env.repo.commit({"cm.yaml": dump(configmap("inside"))})
    await env.create("mkns", dest_namespace=dest, sync_options=("CreateNamespace=true",))
    assert await env.get(ns_ref) is None
    try:
        # The default options, as the CLI and controller derive them from the spec.
        result = await env.engine.sync(await env.app("mkns"))
        assert result.ok, result.message
        assert actions(result) == {f"Namespace/{dest}": "created", "ConfigMap/inside": "created"}
        assert await env.get(ns_ref) is not None
        assert await env.get(ObjectRef("", "v1", "ConfigMap", dest, "inside")) is not None
    finally:
        await delete_namespace(env.kube, dest)


async def test_without_create_namespace_a_missing_destination_fails(env: AppEnv) -> None:
    dest = f"{env.namespace}-nope"
    env.repo.commit({"cm.yaml": dump(configmap("inside"))})
    await env.create("nons", dest_namespace=dest)

    result = await env.sync("nons")

    assert result.phase is Phase.FAILED
    assert "inside" in result.message
    assert dest in result.message
    assert await env.get(ObjectRef("", "v1", "Namespace", "", dest)) is None
