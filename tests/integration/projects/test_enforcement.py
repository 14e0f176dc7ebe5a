"""Projects on the real control plane: a ``team-a`` project confines its apps to
``team-a-*`` namespaces and its own repository; what it refuses is refused
before anything is fetched or applied, with an ``InvalidSpecError`` condition
naming the rule, and the cluster is left unchanged."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from gitmoor.model import ObjectRef
from gitmoor.model.project import AppProject, ProjectDestination
from gitmoor.settings import create_project
from support.apps import cm_ref, configmap, dump

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gitmoor.kube import KubeClient
    from support.apps import AppEnv
    from support.githttp import GitHTTPServer

TEAM_A = "team-a"


def team_a(env: AppEnv, *sources: str) -> AppProject:
    """Team A: its repository, ``team-a-*`` namespaces of this cluster, no cluster kinds."""
    return AppProject(
        name=TEAM_A,
        namespace=env.apps_namespace,
        description="Team A's apps",
        source_repos=sources or (env.repo.url,),
        destinations=(ProjectDestination(namespace="team-a-*"),),
    )


def _git_calls(env: AppEnv) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []
    env.engine.on_git = lambda repo, request, _s, _f: calls.append((repo, request))
    return calls


def _condition(status: dict[str, Any]) -> dict[str, Any]:
    conditions = status.get("conditions") or []
    assert len(conditions) == 1, conditions
    condition: dict[str, Any] = conditions[0]
    return condition


async def test_team_a_apps_sync_inside_their_namespaces(
    env: AppEnv, kube: KubeClient, team_namespace: Callable[[], Awaitable[str]]
) -> None:
    ns = await team_namespace()
    await create_project(kube, team_a(env))
    env.repo.commit({"cm.yaml": dump(configmap("settings"))})
    await env.create("web", dest_namespace=ns, spec={"project": TEAM_A})

    result = await env.sync("web")

    assert result.ok, result.message
    assert await kube.get(cm_ref(ns, "settings")) is not None
    app = await env.app("web")
    assert app.status["sync"]["status"] == "Synced"
    assert not app.status.get("conditions")


async def test_a_destination_outside_the_project_is_refused_before_git(
    env: AppEnv, kube: KubeClient
) -> None:
    await create_project(kube, team_a(env))
    name = f"gitmoor-test-{secrets.token_hex(4)}"
    env.repo.commit({"cm.yaml": dump(configmap(name))})
    await env.create("sneaky", dest_namespace="kube-system", spec={"project": TEAM_A})
    calls = _git_calls(env)

    app, comparison = await env.refresh("sneaky")

    expected = (
        'project team-a: destination namespace "kube-system" is not permitted (spec.destinations)'
    )
    assert comparison is None
    condition = _condition(app.status)
    assert condition["type"] == "InvalidSpecError"
    assert condition["message"] == expected
    result = await env.sync("sneaky")
    assert result.phase.value == "Failed"
    assert result.message == expected
    after = await env.app("sneaky")
    assert after.status["operationState"]["phase"] == "Failed"
    assert after.status["operationState"]["message"] == expected
    assert not after.status.get("history")
    assert calls == []  # nothing fetched
    assert await kube.get(cm_ref("kube-system", name)) is None


async def test_an_object_naming_another_namespace_is_refused(
    env: AppEnv, kube: KubeClient, team_namespace: Callable[[], Awaitable[str]]
) -> None:
    ns = await team_namespace()
    await create_project(kube, team_a(env))
    name = f"gitmoor-test-{secrets.token_hex(4)}"
    env.repo.commit(
        {
            "a.yaml": dump(configmap("fine")),
            "b.yaml": dump(configmap(name, namespace="kube-system")),
        }
    )
    await env.create("reach", dest_namespace=ns, spec={"project": TEAM_A})

    result = await env.sync("reach")

    assert result.phase.value == "Failed"
    assert 'names namespace "kube-system"' in result.message
    assert "project team-a" in result.message and "spec.destinations" in result.message
    assert _condition((await env.app("reach")).status)["type"] == "InvalidSpecError"
    assert await kube.get(cm_ref("kube-system", name)) is None
    assert await kube.get(cm_ref(ns, "fine")) is None  # nothing of the render applied


async def test_a_cluster_role_binding_in_the_render_is_refused(
    env: AppEnv, kube: KubeClient, team_namespace: Callable[[], Awaitable[str]]
) -> None:
    ns = await team_namespace()
    await create_project(kube, team_a(env))
    binding = f"gitmoor-test-{secrets.token_hex(4)}"
    env.repo.commit(
        {
            "cm.yaml": dump(configmap("innocent")),
            "rbac.yaml": dump(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": binding},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "cluster-admin",
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}],
                }
            ),
        }
    )
    await env.create("escalate", dest_namespace=ns, spec={"project": TEAM_A})

    result = await env.sync("escalate")

    assert result.phase.value == "Failed"
    for part in (
        "project team-a",
        f"ClusterRoleBinding.rbac.authorization.k8s.io {binding} (from rbac.yaml:1) is not permitted",
        "cluster-scoped kinds must be listed in spec.clusterResourceWhitelist",
    ):
        assert part in result.message, (part, result.message)
    condition = _condition((await env.app("escalate")).status)
    assert condition["type"] == "InvalidSpecError"
    assert "spec.clusterResourceWhitelist" in condition["message"]
    ref = ObjectRef("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "", binding)
    assert await kube.get(ref) is None
    assert await kube.get(cm_ref(ns, "innocent")) is None


async def test_another_projects_repository_is_refused_before_any_git_request(
    env: AppEnv,
    kube: KubeClient,
    git_server: GitHTTPServer,
    team_namespace: Callable[[], Awaitable[str]],
) -> None:
    from support.gitrepo import GitRepo

    ns = await team_namespace()
    theirs = GitRepo(git_server.root / "team-b-config")
    theirs.commit({"cm.yaml": dump(configmap("team-b-settings"))})
    await create_project(kube, team_a(env))
    await create_project(
        kube,
        AppProject(
            name="team-b",
            namespace=env.apps_namespace,
            source_repos=(git_server.url("team-b-config"),),
            destinations=(ProjectDestination(namespace="team-b-*"),),
        ),
    )
    await env.create(
        "borrow",
        dest_namespace=ns,
        spec={
            "project": TEAM_A,
            "source": {
                "repoURL": git_server.url("team-b-config"),
                "path": ".",
                "targetRevision": "main",
            },
        },
    )

    app, comparison = await env.refresh("borrow")
    result = await env.sync("borrow")

    assert comparison is None
    condition = _condition(app.status)
    assert condition["type"] == "InvalidSpecError"
    assert condition["message"] == (
        f"project team-a: repository {git_server.url('team-b-config')!r} is not permitted "
        "(spec.sourceRepos)"
    )
    assert result.phase.value == "Failed" and "spec.sourceRepos" in result.message
    assert git_server.requests == []  # not even an ls-remote
    assert await kube.get(cm_ref(ns, "team-b-settings")) is None


async def test_a_missing_project_is_refused(
    env: AppEnv, kube: KubeClient, team_namespace: Callable[[], Awaitable[str]]
) -> None:
    ns = await team_namespace()
    env.repo.commit({"cm.yaml": dump(configmap("settings"))})
    await env.create("orphan", dest_namespace=ns, spec={"project": "no-such-team"})
    calls = _git_calls(env)

    app, _ = await env.refresh("orphan")

    condition = _condition(app.status)
    assert condition["type"] == "InvalidSpecError"
    assert "project no-such-team" in condition["message"]
    assert "spec.project" in condition["message"]
    assert calls == []
    assert await kube.get(cm_ref(ns, "settings")) is None


async def test_a_narrowed_project_stops_an_app_that_was_permitted(
    env: AppEnv, kube: KubeClient, team_namespace: Callable[[], Awaitable[str]]
) -> None:
    from gitmoor.settings import patch_project

    ns = await team_namespace()
    await create_project(kube, team_a(env))
    env.repo.commit({"cm.yaml": dump(configmap("settings"))})
    await env.create("web", dest_namespace=ns, spec={"project": TEAM_A})
    assert (await env.sync("web")).ok

    # The admin blacklists ConfigMaps: the next sync applies and prunes nothing.
    await patch_project(
        kube,
        TEAM_A,
        env.apps_namespace,
        {"namespaceResourceBlacklist": [{"group": "", "kind": "ConfigMap"}]},
    )
    env.repo.commit({"cm.yaml": dump(configmap("settings", {"key": "changed"}))})
    result = await env.sync("web")

    assert result.phase.value == "Failed"
    assert "spec.namespaceResourceBlacklist" in result.message
    live = await kube.get(cm_ref(ns, "settings"))
    assert live is not None and live["data"] == {"key": "value"}


async def test_a_rollback_goes_through_the_same_check(
    env: AppEnv, kube: KubeClient, team_namespace: Callable[[], Awaitable[str]]
) -> None:
    from gitmoor.settings import patch_project

    ns = await team_namespace()
    await create_project(kube, team_a(env))
    env.repo.commit({"cm.yaml": dump(configmap("settings"))})
    await env.create("web", dest_namespace=ns, spec={"project": TEAM_A})
    assert (await env.sync("web")).ok
    env.repo.commit({"cm.yaml": dump(configmap("settings", {"key": "two"}))})
    assert (await env.sync("web")).ok
    await patch_project(kube, TEAM_A, env.apps_namespace, {"sourceRepos": ["https://elsewhere/*"]})
    calls = _git_calls(env)

    result = await env.engine.rollback(await env.app("web"), 1, initiated_by="tests")

    assert result.phase.value == "Failed"
    assert "spec.sourceRepos" in result.message
    assert calls == []
    live = await kube.get(cm_ref(ns, "settings"))
    assert live is not None and live["data"] == {"key": "two"}
