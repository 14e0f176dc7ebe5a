"""``deploy/overlays/impersonation``: a controller that can only read and
impersonate ServiceAccounts still syncs a project's apps, as the project's
ServiceAccount, and cannot write anything as itself.

The overlay's RBAC is applied as rendered (moved into this test's namespaces)
and the engine runs with a client certificate for
``system:serviceaccount:<apps-ns>:gitmoor-controller``: to RBAC, that is the
controller's ServiceAccount.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from deploytools import render, retarget

from gitmoor.engine import store
from gitmoor.engine.app import Engine
from gitmoor.kube import KubeClient, load_kubeconfig
from gitmoor.model import ObjectRef
from gitmoor.model.application import AppSource, Destination, application_manifest
from gitmoor.model.project import AppProject, DestinationServiceAccount, ProjectDestination
from gitmoor.settings import create_project
from support.apps import configmap, dump
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.testenv import ControlPlane

RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")


async def test_a_read_only_controller_syncs_as_the_projects_service_account(
    kube: KubeClient,
    namespace: str,
    control_plane: ControlPlane,
    cluster_scoped: list[ObjectRef],
    extra_namespaces: list[str],
    tmp_path: Path,
) -> None:
    apps_ns = f"gm-{secrets.token_hex(4)}"  # short: the certificate's CN is the user name
    await store.install(kube, apps_ns)
    extra_namespaces.append(apps_ns)
    rbac = [
        o
        for o in retarget(render("deploy/overlays/impersonation"), {"gitmoor": apps_ns}, apps_ns)
        if o["kind"] in RBAC_KINDS
    ]
    for obj in rbac:
        await kube.apply(obj, force=True)
        if obj["kind"].startswith("Cluster"):
            cluster_scoped.append(ObjectRef.of(obj))
    # The team's side: a ServiceAccount with the built-in `admin` role in its namespace.
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "deployer", "namespace": namespace},
        }
    )
    await kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "deployer-admin", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": namespace}],
        }
    )
    repo = GitRepo(tmp_path / "repo")
    repo.commit(
        {"app/cm.yaml": dump(configmap("settings")), "plain/cm.yaml": dump(configmap("other"))}
    )
    await create_project(
        kube,
        AppProject(
            name="team",
            namespace=apps_ns,
            source_repos=(repo.url,),
            destinations=(ProjectDestination(namespace=namespace),),
            destination_service_accounts=(
                DestinationServiceAccount("deployer", namespace=namespace),
            ),
        ),
    )
    for name, project, at in (("web", "team", "app"), ("plain", "default", "plain")):
        manifest = application_manifest(
            name, apps_ns, AppSource(repo.url, at, "main"), Destination(namespace)
        )
        manifest["spec"]["project"] = project
        await store.save_app(kube, manifest)
    user = f"system:serviceaccount:{apps_ns}:gitmoor-controller"
    path = control_plane.mint_kubeconfig(
        user, ["system:serviceaccounts", f"system:serviceaccounts:{apps_ns}"]
    )
    try:
        async with KubeClient(load_kubeconfig(path)) as sa_kube:
            engine = Engine(sa_kube, git_cache_dir=tmp_path / "cache", namespace=apps_ns)

            synced = await engine.sync(await store.get_app(sa_kube, "web", apps_ns))
            refused_as_itself = await engine.sync(await store.get_app(sa_kube, "plain", apps_ns))

            web = await store.get_app(sa_kube, "web", apps_ns)
    finally:
        path.unlink(missing_ok=True)

    assert synced.ok, synced.message
    live = await kube.get(ObjectRef("", "v1", "ConfigMap", namespace, "settings"))
    assert live is not None
    # The refresh after the sync dry-ran as the team's account too: Synced.
    assert web.status["sync"]["status"] == "Synced", web.status
    # The default project names no ServiceAccount: the sync runs as the controller,
    # which may not write, and the API server's refusal is the app's message.
    assert refused_as_itself.phase.value == "Failed"
    assert f'User "{user}" cannot' in refused_as_itself.message
    assert await kube.get(ObjectRef("", "v1", "ConfigMap", namespace, "other")) is None
