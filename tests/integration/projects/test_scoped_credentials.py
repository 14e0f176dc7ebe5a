"""Project-scoped repository credentials (Argo CD's project-scoped repositories):
only the project's apps use them, and for those apps they win over unscoped
ones. Against a real git server over HTTP with Basic auth."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitmoor.model.project import AppProject, ProjectDestination
from gitmoor.settings import create_project
from gitmoor.settings.repos import add_repo
from support.apps import cm_ref, configmap, dump
from support.githttp import PASSWORD, USER
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gitmoor.kube import KubeClient
    from support.apps import AppEnv
    from support.githttp import GitHTTPServer


def _codes(server: GitHTTPServer, since: int) -> set[int]:
    return {code for _, _, code in server.requests[since:]}


async def test_scoped_credentials_serve_only_their_project(
    env: AppEnv,
    kube: KubeClient,
    git_server: GitHTTPServer,
    team_namespace: Callable[[], Awaitable[str]],
) -> None:
    served = GitRepo(git_server.root / "shared-config")
    served.commit({"cm.yaml": dump(configmap("from-http"))})
    url = git_server.url("shared-config")
    for team in ("team-a", "team-b"):
        await create_project(
            kube,
            AppProject(
                name=team,
                namespace=env.apps_namespace,
                source_repos=(url,),
                destinations=(ProjectDestination(namespace="team-a-*"),),
            ),
        )
    # Team A's credentials, for every repository of the server.
    await add_repo(
        kube,
        f"http://127.0.0.1:{git_server.port}",
        username=USER,
        password=PASSWORD,
        namespace=env.apps_namespace,
        project="team-a",
    )
    ns_a, ns_b = await team_namespace(), await team_namespace()
    source = {"repoURL": url, "path": ".", "targetRevision": "main"}
    await env.create("ours", dest_namespace=ns_a, spec={"project": "team-a", "source": source})
    await env.create("theirs", dest_namespace=ns_b, spec={"project": "team-b", "source": source})

    assert (await env.sync("ours")).ok
    assert await kube.get(cm_ref(ns_a, "from-http")) is not None

    before = len(git_server.requests)
    app, comparison = await env.refresh("theirs")
    result = await env.sync("theirs")

    assert comparison is None
    assert app.status["conditions"][0]["type"] == "ComparisonError"
    assert result.phase.value == "Failed"
    # Team B's requests went out without team A's password: every one refused.
    assert _codes(git_server, before) == {401}
    assert await kube.get(cm_ref(ns_b, "from-http")) is None
    assert PASSWORD not in str(app.status) and PASSWORD not in result.message


async def test_scoped_credentials_win_over_unscoped_ones(
    env: AppEnv,
    kube: KubeClient,
    git_server: GitHTTPServer,
    team_namespace: Callable[[], Awaitable[str]],
) -> None:
    served = GitRepo(git_server.root / "config")
    served.commit({"cm.yaml": dump(configmap("scoped-wins"))})
    url = git_server.url("config")
    await create_project(
        kube,
        AppProject(
            name="team-a",
            namespace=env.apps_namespace,
            source_repos=(url,),
            destinations=(ProjectDestination(namespace="team-a-*"),),
        ),
    )
    # An unscoped credential for exactly this URL (a longer prefix) that the server
    # refuses, and team A's good one for the whole server.
    await add_repo(
        kube, url, username=USER, password="wrong-password-0", namespace=env.apps_namespace
    )
    await add_repo(
        kube,
        f"http://127.0.0.1:{git_server.port}",
        username=USER,
        password=PASSWORD,
        namespace=env.apps_namespace,
        project="team-a",
    )
    ns = await team_namespace()
    source = {"repoURL": url, "path": ".", "targetRevision": "main"}
    await env.create("web", dest_namespace=ns, spec={"project": "team-a", "source": source})

    result = await env.sync("web")

    assert result.ok, result.message
    assert 401 not in _codes(git_server, 0)
    assert await kube.get(cm_ref(ns, "scoped-wins")) is not None
