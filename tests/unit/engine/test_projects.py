"""The engine's project checks and credential choice, on plain data: which
sentence a refusal gives, and which credentials an app of a project gets."""

from __future__ import annotations

import pytest

from gitmoor.engine.projects import (
    check_destination,
    check_resources,
    check_source,
    load_project,
    sync_identity,
)
from gitmoor.model import Manifest, ObjectRef, Source
from gitmoor.model.application import (
    Application,
    AppSource,
    Destination,
    application_manifest,
    parse_application,
)
from gitmoor.model.project import (
    IN_CLUSTER_SERVER,
    AppProject,
    DestinationServiceAccount,
    GroupKind,
    ProjectDestination,
    ProjectViolation,
    ServiceAccount,
)
from gitmoor.settings.repos import credentials_for
from gitmoor.source import RepoCredentials

TEAM_A = AppProject(
    name="team-a",
    source_repos=("https://git.example.com/team-a/*", "git@git.example.com:shared/*"),
    destinations=(ProjectDestination(namespace="team-a-*"),),
    namespace_resource_blacklist=(GroupKind("", "ResourceQuota"),),
    destination_service_accounts=(DestinationServiceAccount("deployer", namespace="team-a-*"),),
)


def app(
    repo: str = "https://git.example.com/team-a/web.git", ns: str = "team-a-web", cluster: str = ""
) -> Application:
    return parse_application(
        application_manifest(
            "web", "gitmoor", AppSource(repo), Destination(ns, cluster), project="team-a"
        )
    )


@pytest.mark.parametrize(
    "repo",
    [
        "https://git.example.com/team-a/web.git",
        "https://GIT.example.com/team-a/web/",
        "ssh://git@git.example.com/shared/base.git",  # matches the scp-like pattern
    ],
)
def test_permitted_sources(repo: str) -> None:
    check_source(TEAM_A, app(repo))


@pytest.mark.parametrize(
    "repo",
    ["https://git.example.com/team-b/web", "https://git.example.com/team-a/sub/web"],
)
def test_refused_sources_name_the_field(repo: str) -> None:
    with pytest.raises(ProjectViolation) as err:
        check_source(TEAM_A, app(repo))
    assert (
        str(err.value) == f"project team-a: repository {repo!r} is not permitted (spec.sourceRepos)"
    )


def test_destinations() -> None:
    check_destination(TEAM_A, app(ns="team-a-web"), IN_CLUSTER_SERVER)
    with pytest.raises(ProjectViolation) as err:
        check_destination(TEAM_A, app(ns="kube-system"), IN_CLUSTER_SERVER)
    assert str(err.value) == (
        'project team-a: destination namespace "kube-system" is not permitted (spec.destinations)'
    )
    with pytest.raises(ProjectViolation, match="of cluster 'prod'"):
        check_destination(TEAM_A, app(cluster="prod"), "https://prod.example.com")


def _manifest(kind: str, name: str, namespace: str = "", group: str = "") -> Manifest:
    return Manifest(ObjectRef(group, "v1", kind, namespace, name), {}, Source(f"{name}.yaml", 1))


def test_resources_name_the_first_refused_object_its_file_and_the_rule() -> None:
    check_resources(TEAM_A, [_manifest("ConfigMap", "cfg", "team-a-web")])
    with pytest.raises(ProjectViolation) as err:
        check_resources(
            TEAM_A,
            [
                _manifest("ConfigMap", "cfg", "team-a-web"),
                _manifest("ClusterRole", "admin", group="rbac.authorization.k8s.io"),
                _manifest("ResourceQuota", "quota", "team-a-web"),
            ],
        )
    assert str(err.value) == (
        "project team-a: ClusterRole.rbac.authorization.k8s.io admin (from admin.yaml:1) is not "
        "permitted: cluster-scoped kinds must be listed in spec.clusterResourceWhitelist "
        "(and 1 more objects)"
    )
    with pytest.raises(
        ProjectViolation, match=r"its kind is listed in spec\.namespaceResourceBlacklist"
    ):
        check_resources(TEAM_A, [_manifest("ResourceQuota", "quota", "team-a-web")])


async def test_a_missing_project_is_refused_but_default_is_argo_cds_default() -> None:
    async def nothing(name: str) -> AppProject | None:
        return None

    with pytest.raises(ProjectViolation, match=r"references project team-a.*\(spec.project\)"):
        await load_project(nothing, app())
    default_app = parse_application(
        application_manifest("x", "gitmoor", AppSource("https://any/repo"), Destination("any"))
    )
    project = await load_project(nothing, default_app)
    assert project.name == "default"
    check_source(project, default_app)
    check_destination(project, default_app, IN_CLUSTER_SERVER)


def test_sync_identity() -> None:
    assert sync_identity(TEAM_A, app(), IN_CLUSTER_SERVER) == ServiceAccount(
        "team-a-web", "deployer"
    )
    assert sync_identity(TEAM_A, app(cluster="prod"), "https://prod") is None


def test_scoped_credentials_win_for_their_project_and_serve_no_other() -> None:
    url = "https://git.example.com/team-a/web"
    everyone = RepoCredentials("https://git.example.com/team-a/web", "bot", "global")
    team_a = RepoCredentials("https://git.example.com", "bot", "scoped-a", project="team-a")
    team_b = RepoCredentials("https://git.example.com/team-a", "bot", "scoped-b", project="team-b")
    creds = [everyone, team_a, team_b]
    # Team A's own wins, though the unscoped one has a longer prefix.
    assert credentials_for(url, creds, "team-a") is team_a
    # Team B's prefix is longer, but it is team B's.
    assert credentials_for(url, creds, "team-c") is everyone
    assert credentials_for(url, [team_a, team_b], "team-c") is None
    assert credentials_for(url, [team_a], "") is None
