"""``destinationServiceAccounts``: the sync acts as the project's ServiceAccount,
so Kubernetes RBAC refuses what that account may not do, and the API server's
403 is what the app's status shows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitmoor.model import ObjectRef
from gitmoor.model.project import AppProject, DestinationServiceAccount, ProjectDestination
from gitmoor.settings import create_project
from support.apps import cm_ref, configmap, dump, secret

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gitmoor.kube import KubeClient
    from support.apps import AppEnv

SA = "deployer"


async def _configmaps_only_account(kube: KubeClient, ns: str) -> None:
    """A ServiceAccount that may do everything with ConfigMaps in ``ns``, and nothing else."""
    await kube.create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SA, "namespace": ns}}
    )
    await kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "configmaps-only", "namespace": ns},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}],
        }
    )
    await kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "deployer-configmaps", "namespace": ns},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "configmaps-only",
            },
            "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": ns}],
        }
    )


async def _whoami(client: KubeClient) -> dict[str, Any]:
    review = await client.create(
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "SelfSubjectReview",
            "metadata": {"name": "whoami"},
        }
    )
    user: dict[str, Any] = review["status"]["userInfo"]
    return user


async def test_an_impersonating_client_is_the_service_account_on_the_same_connection(
    kube: KubeClient,
) -> None:
    view = kube.impersonating("system:serviceaccount:team-a-web:deployer")

    user = await _whoami(view)

    assert user["username"] == "system:serviceaccount:team-a-web:deployer"
    # The API server gives the account its groups: none need impersonating.
    assert set(user["groups"]) == {
        "system:serviceaccounts",
        "system:serviceaccounts:team-a-web",
        "system:authenticated",
    }
    assert (await _whoami(kube))["username"] != user["username"]
    # One connection, one set of counters: the view is the client plus headers.
    assert view._http is kube._http and view.requests is kube.requests
    await view.aclose()
    assert not kube._http.is_closed


async def test_a_sync_outside_the_accounts_rbac_fails_with_the_servers_403(
    env: AppEnv, kube: KubeClient, team_namespace: Callable[[], Awaitable[str]]
) -> None:
    ns = await team_namespace()
    await _configmaps_only_account(kube, ns)
    await create_project(
        kube,
        AppProject(
            name="team-a",
            namespace=env.apps_namespace,
            source_repos=(env.repo.url,),
            destinations=(ProjectDestination(namespace="team-a-*"),),
            destination_service_accounts=(DestinationServiceAccount(SA, namespace="team-a-*"),),
        ),
    )
    env.repo.commit(
        {
            "bad/cm.yaml": dump(configmap("settings")),
            "bad/secret.yaml": dump(secret("credentials", {"token": "s3cr3t-value"})),
            "good/cm.yaml": dump(configmap("fine")),
        }
    )
    await env.create("web", path="bad", dest_namespace=ns, spec={"project": "team-a"})
    await env.create("cfg", path="good", dest_namespace=ns, spec={"project": "team-a"})

    result = await env.sync("web")

    assert result.phase.value == "Failed"
    assert "forbidden" in result.message
    assert f'User "system:serviceaccount:{ns}:{SA}" cannot' in result.message
    assert "secrets" in result.message
    app = await env.app("web")
    op = app.status["operationState"]
    assert op["phase"] == "Failed" and f"system:serviceaccount:{ns}:{SA}" in op["message"]
    assert await kube.get(ObjectRef("", "v1", "Secret", ns, "credentials")) is None

    # Within its rights the same account syncs: RBAC, not gitmoor, drew the line.
    fine = await env.sync("cfg")
    assert fine.ok, fine.message
    assert await kube.get(cm_ref(ns, "fine")) is not None
