"""The namespaced overlay's RBAC is enough for the controller, and no more.

The RBAC objects of ``deploy/overlays/namespaced`` are applied as rendered (moved
into this test's namespaces), and the controller runs in-process with a client
certificate for ``system:serviceaccount:<apps-ns>:gitmoor-controller``: to RBAC,
that is the controller's ServiceAccount. The client counts every request by
status code, so "never refused" is checked request by request rather than
inferred from the outcome (Events, notifications and Lease renewals fail on
paths that log and carry on).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from deploytools import namespaces_of, render, retarget

from gitmoor.controller import service
from gitmoor.controller.loop import Controller
from gitmoor.controller.shard import LEASE_PREFIX
from gitmoor.engine import store
from gitmoor.kube import ApiError, KubeClient, load_kubeconfig, wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import AppSource, Automated, Destination, application_manifest
from gitmoor.testenv import free_port
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from gitmoor.testenv import ControlPlane

SA = "gitmoor-controller"
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
WEBHOOK_SECRET = "s3cret-for-tests"

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{value: '{value}'}}\n"
DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.27}]}
"""
CLUSTER_ROLE = """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: gitmoor-test-not-allowed}
rules: []
"""


@dataclass
class Install:
    """The namespaced overlay's RBAC, applied: Applications in ``apps_ns``, one
    listed destination ``dest``, and ``other``, a namespace not listed."""

    apps_ns: str
    dest: str
    other: str
    kubeconfig: Path

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.apps_ns}:{SA}"


@pytest.fixture
async def install(
    kube: KubeClient,
    namespace: str,
    control_plane: ControlPlane,
    cluster_scoped: list[ObjectRef],
    extra_namespaces: list[str],
) -> AsyncIterator[Install]:
    # Short: the minted certificate's CN is the user name, at most 64 characters.
    apps_ns, other = f"gm-{secrets.token_hex(4)}", f"{namespace}-other"
    await store.install(kube, apps_ns)
    extra_namespaces.append(apps_ns)
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    extra_namespaces.append(other)

    rendered = render("deploy/overlays/namespaced")
    # Every destination the overlay lists becomes this test's namespace.
    moves = {n: namespace for n in namespaces_of(rendered) - {"gitmoor"}} | {"gitmoor": apps_ns}
    rbac = [o for o in retarget(rendered, moves, apps_ns) if o["kind"] in RBAC_KINDS]
    assert {o["kind"] for o in rbac} == {"ServiceAccount", "Role", "RoleBinding", "ClusterRole"}
    for obj in rbac:
        await kube.apply(obj, force=True)
        if obj["kind"] == "ClusterRole":
            cluster_scoped.append(ObjectRef.of(obj))
    path = control_plane.mint_kubeconfig(
        f"system:serviceaccount:{apps_ns}:{SA}",
        ["system:serviceaccounts", f"system:serviceaccounts:{apps_ns}", "system:authenticated"],
    )
    yield Install(apps_ns, namespace, other, path)
    path.unlink(missing_ok=True)


@pytest.fixture
async def sa_kube(install: Install) -> AsyncIterator[KubeClient]:
    async with KubeClient(load_kubeconfig(install.kubeconfig)) as kc:
        yield kc


def refused(client: KubeClient) -> dict[tuple[str, int], int]:
    return {k: n for k, n in client.requests.items() if k[1] in (401, 403)}


@contextlib.asynccontextmanager
async def _running(run: Callable[[asyncio.Event], Awaitable[None]]) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run(stop))
    try:
        yield
    finally:
        stop.set()
        # Bounded: a controller waiting for its first Lease does not see `stop`.
        await asyncio.wait_for(task, 30)


async def _app(
    kube: KubeClient,
    install: Install,
    name: str,
    repo: GitRepo,
    dest: str,
    path: str = "app",
    sync_options: tuple[str, ...] = (),
) -> None:
    await store.save_app(
        kube,
        application_manifest(
            name,
            install.apps_ns,
            AppSource(repo.url, path, "main"),
            Destination(dest),
            automated=Automated(prune=True, self_heal=True),
            sync_options=sync_options,
        ),
    )


async def _status(kube: KubeClient, install: Install, name: str) -> dict[str, Any]:
    return (await store.get_app(kube, name, install.apps_ns)).status


async def _synced_and_healthy(kube: KubeClient, install: Install, name: str) -> Any:
    st = await _status(kube, install, name)
    sync, health = st.get("sync") or {}, st.get("health") or {}
    return st if sync.get("status") == "Synced" and health.get("status") == "Healthy" else None


def _push(repo: GitRepo, commit: str) -> bytes:
    return json.dumps(
        {
            "ref": "refs/heads/main",
            "after": commit,
            "repository": {"clone_url": repo.url, "default_branch": "main"},
        }
    ).encode()


def _signed(body: bytes, secret: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": f"sha256={digest}",
        "Content-Type": "application/json",
    }


async def test_the_grant_is_namespaced(install: Install, sa_kube: KubeClient) -> None:
    """The ServiceAccount reads its own namespace and the listed one, nothing else."""
    await sa_kube.list(await sa_kube.resource("", "v1", "Secret"), install.apps_ns)
    configmaps = await sa_kube.resource("", "v1", "ConfigMap")
    await sa_kube.list(configmaps, install.dest)
    for ns in (install.other, ""):  # a namespace not listed; all namespaces
        with pytest.raises(ApiError, match="forbidden"):
            await sa_kube.list(configmaps, ns)
    # In its own namespace, ConfigMaps: its settings and the apps' inventories.
    assert await sa_kube.get(ObjectRef("", "v1", "ConfigMap", install.apps_ns, "absent")) is None
    with pytest.raises(ApiError, match="forbidden"):
        await sa_kube.get(ObjectRef("", "v1", "Namespace", "", install.other))


async def test_the_controller_syncs_under_the_namespaced_rbac_and_is_never_refused(
    kube: KubeClient,
    install: Install,
    sa_kube: KubeClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The whole controller process (serve_controller: Events, notifications,
    # Leases, the webhook server), as `gitmoor controller --replica-id r1` runs it.
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"app/cm.yaml": CM.format(name="settings", value="v1"), "app/web.yaml": DEPLOY})
    await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": service.WEBHOOK_SECRET, "namespace": install.apps_ns},
            "stringData": {"webhook.github.secret": WEBHOOK_SECRET},
        }
    )
    # CreateNamespace=true, as the demo's apps have it: the namespace exists,
    # and the RoleBinding in it lets the controller GET it (nothing to create).
    await _app(kube, install, "web", repo, install.dest, sync_options=("CreateNamespace=true",))
    port = free_port()
    lease = ObjectRef("coordination.k8s.io", "v1", "Lease", install.apps_ns, LEASE_PREFIX + "r1")
    serve = functools.partial(
        service.serve_controller,
        sa_kube,
        install.apps_ns,
        interval=600,
        workers=2,
        listen=f"127.0.0.1:{port}",
        replica_id="r1",
        self_heal_debounce=1.0,
        # as the namespaced overlay runs it (--rollouts=false): a Rollout controller
        # needs cluster-wide rights that overlay does not grant
        rollouts=False,
    )
    async with _running(lambda stop: serve(stop=stop)):
        st = await wait_for(
            lambda: _synced_and_healthy(kube, install, "web"), within=60, what="Synced, Healthy"
        )
        assert st["history"][-1]["initiatedBy"] == "automated"
        assert await kube.get(ObjectRef("apps", "v1", "Deployment", install.dest, "web"))
        assert await kube.get(ObjectRef("", "v1", "ConfigMap", install.dest, "settings"))
        assert await kube.get(lease) is not None

        async def recorded() -> set[str] | None:
            # Events on the Application, written by the ServiceAccount.
            events = await kube.list(await kube.resource("", "v1", "Event"), install.apps_ns)
            reasons = {
                e.get("reason", "")
                for e in events.items
                if (e.get("involvedObject") or {}).get("name") == "web"
            }
            return reasons if "OperationCompleted" in reasons else None

        await wait_for(recorded, within=30, what="Events on the Application")

        # Webhooks: the secret is read (a wrong signature is refused), and a
        # pushed commit that removes a file is synced and pruned at once.
        second = repo.commit({}, remove=("app/cm.yaml",))
        body = _push(repo, second)
        url = f"http://127.0.0.1:{port}/api/webhook"
        async with httpx.AsyncClient(timeout=10) as http:
            wrong = await http.post(url, content=body, headers=_signed(body, "wrong"))
            assert wrong.status_code == 401, wrong.text
            right = await http.post(url, content=body, headers=_signed(body, WEBHOOK_SECRET))
            assert right.status_code == 200, right.text
            assert right.json() == {"refreshed": 1}

        async def pruned() -> bool:
            st = await _status(kube, install, "web")
            gone = await kube.get(ObjectRef("", "v1", "ConfigMap", install.dest, "settings"))
            return gone is None and (st.get("sync") or {}).get("revision") == second

        await wait_for(pruned, within=60, what="the removed ConfigMap pruned")

        # A requested operation (`app sync --async`): run, recorded, cleared.
        app = await store.get_app(kube, "web", install.apps_ns)
        await store.set_operation(
            kube, app, {"sync": {"revision": second}, "initiatedBy": {"username": "alice"}}
        )

        async def operation_done() -> bool:
            fresh = await store.get_app(kube, "web", install.apps_ns)
            history = fresh.status.get("history") or []
            return not fresh.operation and history[-1].get("initiatedBy") == "alice"

        await wait_for(operation_done, within=60, what="the requested sync run and cleared")
    assert await kube.get(lease) is None, "the Lease is released at shutdown"
    # The only refusals: the watch cache's one cluster-wide list per managed kind
    # (ConfigMap, Deployment), after which it reads those kinds with GETs.
    assert refused(sa_kube) == {("GET", 403): 2}, f"requests refused by RBAC: {refused(sa_kube)}"


async def test_what_the_grant_refuses_shows_in_the_app_status(
    kube: KubeClient, install: Install, sa_kube: KubeClient, tmp_path: Path
) -> None:
    """An app aimed at a namespace not listed, or declaring a cluster-scoped
    object, is refused by the API server: the app's status says so, with the
    server's message, and nothing is created."""
    repo = GitRepo(tmp_path / "repo")
    repo.commit(
        {"app/cm.yaml": CM.format(name="settings", value="v1"), "cluster/role.yaml": CLUSTER_ROLE}
    )
    await _app(kube, install, "outside", repo, install.other)
    await _app(kube, install, "clusterwide", repo, install.dest, path="cluster")
    ctrl = Controller(sa_kube, install.apps_ns, interval=600, workers=2, watch_cache=False)
    async with _running(ctrl.run):
        for name in ("outside", "clusterwide"):

            async def comparison_error(name: str = name) -> str | None:
                st = await _status(kube, install, name)
                return {c["type"]: c["message"] for c in st.get("conditions") or []}.get(
                    "ComparisonError"
                )

            message = await wait_for(comparison_error, within=30, what=f"{name}: ComparisonError")
            assert "forbidden" in message and install.user in message, message
    assert await kube.get(ObjectRef("", "v1", "ConfigMap", install.other, "settings")) is None
    role = ObjectRef(
        "rbac.authorization.k8s.io", "v1", "ClusterRole", "", "gitmoor-test-not-allowed"
    )
    assert await kube.get(role) is None


async def test_the_default_controller_syncs_as_fast_under_namespaced_rbac(
    kube: KubeClient, install: Install, sa_kube: KubeClient, tmp_path: Path
) -> None:
    """`gitmoor controller` as it runs by default (watch cache on): a kind whose
    cluster-wide list is refused (403) is read with GETs at once, so the app is
    Synced and Healthy in seconds, not after a cache that never fills."""
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"app/cm.yaml": CM.format(name="settings", value="v1"), "app/web.yaml": DEPLOY})
    await _app(kube, install, "web", repo, install.dest)
    ctrl = Controller(sa_kube, install.apps_ns, interval=600, workers=2)
    async with _running(ctrl.run):
        await wait_for(
            lambda: _synced_and_healthy(kube, install, "web"), within=20, what="Synced, Healthy"
        )
