"""AppProject matching on plain data: the cases of Argo CD's own tests
(``app_project_types`` tests in argo-cd ``pkg/apis/application/v1alpha1``) give
the same answers here, plus gobwas/glob and ``filepath.Match`` corners."""

from __future__ import annotations

import pytest

from gitmoor.model import UserInputError
from gitmoor.model.project import (
    IN_CLUSTER,
    IN_CLUSTER_SERVER,
    AppProject,
    DestinationServiceAccount,
    GroupKind,
    ProjectDestination,
    ServiceAccount,
    default_project,
    glob_match,
    parse_appproject,
    path_match,
)
from gitmoor.source import normalize_repo_url

K8S = IN_CLUSTER_SERVER


def _lenient(url: str) -> str:
    try:
        return normalize_repo_url(url)
    except UserInputError:
        return url


def _source(patterns: list[str], url: str) -> bool:
    return AppProject("p", source_repos=tuple(patterns)).source_allowed(
        normalize_repo_url(url), _lenient
    )


# ---------------------------------------------------------------- globs


@pytest.mark.parametrize(
    ("pattern", "value", "separators", "expected"),
    [
        ("*", "a/b", "", True),
        ("a*", "a/b", "/", False),  # * stays inside a segment
        ("a/**", "a/b/c", "/", True),  # ** crosses segments
        ("a?c", "abc", "", True),
        ("a?c", "a/c", "/", False),
        ("team-[a-c]", "team-b", "", True),
        ("team-[!a-c]", "team-b", "", False),
        ("team-[!a-c]", "team-d", "", True),
        ("team-[xyz]", "team-y", "", True),
        ("team-[a-c0-9]", "team-a", "", False),  # gobwas: one range per class, else no compile
        ("{dev,prod}-*", "prod-eu", "", True),
        ("{dev,prod}-*", "test-eu", "", False),
        ("{a,{b,c}}", "c", "", True),  # nested alternatives
        ("a,b", "a,b", "", True),  # ',' outside braces is text
        ("a}", "a}", "", True),  # so is '}'
        (r"a\*", "a*", "", True),
        (r"a\*", "ab", "", False),
        ("[", "[", "", False),  # does not compile: matches nothing
        ("{a,b", "a", "", False),
        ("", "", "", True),
        ("", "x", "", False),
    ],
)
def test_gobwas_glob(pattern: str, value: str, separators: str, expected: bool) -> None:
    assert glob_match(pattern, value, separators) is expected


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("*", "", True),
        ("*", "Deployment", True),
        ("Deploy*", "Deployment", True),
        ("[^D]*", "Deployment", False),  # Go negates with ^
        ("[A-Z]ole", "Role", True),
        ("?ole", "Role", True),
        ("rbac.authorization.k8s.io", "rbac.authorization.k8s.io", True),
        ("[", "[", False),  # ErrBadPattern
        ("a\\", "a", False),
    ],
)
def test_filepath_match(pattern: str, value: str, expected: bool) -> None:
    assert path_match(pattern, value) is expected


# ---------------------------------------------------------------- sourceRepos


@pytest.mark.parametrize(
    ("patterns", "url", "expected"),
    [
        # TestAppProject_IsSourcePermitted
        (["*"], "https://github.com/argoproj/test.git", True),
        (["https://github.com/argoproj/test.git"], "https://github.com/argoproj/test.git", True),
        (["https://github.com/argoproj/*"], "https://github.com/argoproj/argoproj.git", True),
        (
            ["https://github.com/test1/test.git", "https://github.com/test2/test.git"],
            "https://github.com/test2/test.git",
            True,
        ),
        (["https://github.com/argoproj/test1.git"], "https://github.com/argoproj/test2.git", False),
        (["https://github.com/argoproj/*.git"], "https://github.com/argoproj1/test2.git", False),
        (["https://github.com/argoproj/foo"], "https://github.com/argoproj/foo1", False),
        (["https://gitlab.com/group/*"], "https://gitlab.com/group/repo/owner", False),
        (["https://gitlab.com/group/*/*"], "https://gitlab.com/group/repo/owner", True),
        (["https://gitlab.com/group/**"], "https://gitlab.com/group/sub-group/repo/owner", True),
        # TestAppProject_IsNegatedSourcePermitted
        (["!https://github.com/argoproj/test.git"], "https://github.com/argoproj/test.git", False),
        (["!https://github.com/argoproj/*"], "https://github.com/argoproj/argoproj.git", False),
        (
            ["https://github.com/test1/test.git", "!https://github.com/test2/test.git"],
            "https://github.com/test2/test.git",
            False,
        ),
        (["!https://github.com/argoproj/foo*"], "https://github.com/argoproj/foo1", False),
        (["!https://gitlab.com/group/**"], "https://gitlab.com/group/sub-group/repo/owner", False),
        (
            ["https://github.com/argoproj/test1.git", "*"],
            "https://github.com/argoproj/test2.git",
            True,
        ),
        (
            ["!https://github.com/argoproj/*.git", "*"],
            "https://github.com/argoproj1/test2.git",
            True,
        ),
        # A deny entry that does not match counts as a match (Argo CD's globMatch).
        (["!https://github.com/evil/*"], "https://github.com/good/repo", True),
        # Normalised on both sides: scp-like, .git, host case, trailing slash.
        (["ssh://GitHub.com/org/repo"], "git@github.com:org/repo.git", True),
        (["https://GIT.example.com/org/repo.git/"], "https://git.example.com/org/repo", True),
        ([], "https://github.com/org/repo", False),
    ],
)
def test_source_allowed(patterns: list[str], url: str, expected: bool) -> None:
    assert _source(patterns, url) is expected


# ---------------------------------------------------------------- destinations


def _dest(entries: list[dict[str, str]], cluster: str, server: str, namespace: str) -> bool:
    project = AppProject(
        "p",
        destinations=tuple(
            ProjectDestination(e.get("namespace", ""), e.get("name", ""), e.get("server", ""))
            for e in entries
        ),
    )
    return project.destination_allowed(cluster, namespace, server)


@pytest.mark.parametrize(
    ("entries", "cluster", "server", "namespace", "expected"),
    [
        # TestAppProject_IsDestinationPermitted
        ([{"server": K8S, "namespace": "default"}], "", K8S, "default", True),
        ([{"server": K8S, "namespace": "default"}], "", K8S, "kube-system", False),
        ([{"server": "https://my-cluster", "namespace": "default"}], "", K8S, "default", False),
        ([{"server": K8S, "namespace": "*"}], "", K8S, "kube-system", True),
        ([{"server": "https://*.default.svc", "namespace": "default"}], "", K8S, "default", True),
        (
            [{"server": "https://team1-*", "namespace": "default"}],
            "",
            "https://test2-dev-cluster",
            "default",
            False,
        ),
        ([{"server": K8S, "namespace": "test-*"}], "", K8S, "test-foo", True),
        ([{"server": K8S, "namespace": "test-*"}], "", K8S, "test", False),
        ([{"server": "*", "namespace": "*"}], "", K8S, "test", True),
        ([{"name": "test", "namespace": "*"}], "test", "", "test", True),
        ([{"name": "test2", "namespace": "*"}], "test", "", "test", False),
        # TestAppProject_IsNegatedDestinationPermitted
        ([{"server": "!" + K8S, "namespace": "default"}], "", K8S, "default", False),
        ([{"server": K8S, "namespace": "!default"}], "", K8S, "kube-system", True),
        ([{"server": "!https://my-cluster", "namespace": "default"}], "", K8S, "default", True),
        ([{"server": K8S, "namespace": "!test-*"}], "", K8S, "test-foo", False),
        ([{"name": "!test", "namespace": "*"}], "test", "", "test", False),
        ([{"name": "!test2", "namespace": "*"}], "test", "", "test", True),
        (
            [
                {"server": "*", "namespace": "kube-system"},
                {"server": "*", "namespace": "!kube-system"},
            ],
            "",
            K8S,
            "kube-system",
            False,
        ),
        (
            [{"server": "*", "namespace": "*"}, {"server": "*", "namespace": "!kube-system"}],
            "",
            K8S,
            "kube-system",
            False,
        ),
        (
            [
                {"server": "*", "namespace": "*"},
                {"server": "!" + K8S, "namespace": "kube-system"},
                {"server": "*", "namespace": "!kube-system"},
            ],
            "",
            K8S,
            "default",
            False,
        ),
        # gitmoor: an entry with neither name nor server is the home cluster.
        ([{"namespace": "team-a-*"}], IN_CLUSTER, K8S, "team-a-web", True),
        ([{"namespace": "team-a-*"}], IN_CLUSTER, K8S, "kube-system", False),
        ([{"namespace": "team-a-*"}], "prod", "https://prod:6443", "team-a-web", False),
        ([], IN_CLUSTER, K8S, "default", False),
    ],
)
def test_destination_allowed(
    entries: list[dict[str, str]], cluster: str, server: str, namespace: str, expected: bool
) -> None:
    assert _dest(entries, cluster, server, namespace) is expected


# ---------------------------------------------------------------- kinds


def test_kinds_as_argo_cd_is_group_kind_permitted() -> None:
    p1 = AppProject(
        "p",
        namespace_resource_whitelist=(),
        namespace_resource_blacklist=(GroupKind("apps", "Deployment"),),
    )
    assert not p1.resource_allowed("apps", "ReplicaSet", True)  # an empty whitelist allows none
    assert p1.resource_denial("apps", "ReplicaSet", True) == "spec.namespaceResourceWhitelist"

    p2 = AppProject(
        "p",
        namespace_resource_whitelist=(GroupKind("apps", "ReplicaSet"),),
        namespace_resource_blacklist=(GroupKind("apps", "Deployment"),),
    )
    assert p2.resource_allowed("apps", "ReplicaSet", True)
    assert not p2.resource_allowed("apps", "Action", True)

    p3 = AppProject("p", cluster_resource_blacklist=(GroupKind("", "Namespace"),))
    assert p3.resource_denial("", "Namespace", False) == "spec.clusterResourceWhitelist"

    p4 = AppProject(
        "p",
        cluster_resource_whitelist=(GroupKind("*", "*"),),
        cluster_resource_blacklist=(GroupKind("*", "*"),),
    )
    assert p4.resource_denial("", "Namespace", False) == "spec.clusterResourceBlacklist"
    assert p4.resource_allowed("apps", "Action", True)

    p6 = AppProject("p")  # nothing set: no cluster kind, every namespaced kind
    assert not p6.resource_allowed("", "Namespace", False)
    assert p6.resource_allowed("apps", "Action", True)

    p7 = AppProject(
        "p", namespace_resource_blacklist=(GroupKind("rbac.authorization.k8s.io", "*"),)
    )
    assert p7.resource_denial("rbac.authorization.k8s.io", "Role", True) == (
        "spec.namespaceResourceBlacklist"
    )
    assert p7.resource_allowed("", "ConfigMap", True)


def test_the_default_project_allows_everything() -> None:
    d = default_project("gitmoor")
    assert d.source_allowed("https://github.com/any/repo")
    assert d.destination_allowed(IN_CLUSTER, "kube-system", K8S)
    assert d.destination_allowed("prod", "anything", "https://prod.example:6443")
    assert d.resource_allowed("rbac.authorization.k8s.io", "ClusterRoleBinding", False)
    assert d.resource_allowed("", "ConfigMap", True)
    assert d.service_account_for(IN_CLUSTER, "x", K8S) is None


# ---------------------------------------------------------------- service accounts


def _accounts(*items: DestinationServiceAccount) -> AppProject:
    return AppProject("team-a", destination_service_accounts=items)


def test_service_account_in_the_destination_namespace_or_named() -> None:
    p = _accounts(
        DestinationServiceAccount("deployer", namespace="team-a-*", server=K8S),
        DestinationServiceAccount("ops:admin", namespace="*", server="*"),
    )
    sa = p.service_account_for(IN_CLUSTER, "team-a-web", K8S)
    assert sa == ServiceAccount("team-a-web", "deployer")
    assert sa.username == "system:serviceaccount:team-a-web:deployer"
    assert sa.groups == (
        "system:serviceaccounts",
        "system:serviceaccounts:team-a-web",
        "system:authenticated",
    )
    # The first match wins; the second entry catches the rest.
    assert p.service_account_for(IN_CLUSTER, "other", K8S) == ServiceAccount("ops", "admin")


def test_service_account_by_cluster_name_and_no_match() -> None:
    p = _accounts(DestinationServiceAccount("deployer", namespace="*", name="prod"))
    assert p.service_account_for("prod", "web", "https://p:6443") == ServiceAccount(
        "web", "deployer"
    )
    assert p.service_account_for(IN_CLUSTER, "web", K8S) is None


@pytest.mark.parametrize("bad", ["", "  ", "a*", "ns/name", "!x"])
def test_service_account_with_forbidden_characters_is_refused(bad: str) -> None:
    p = _accounts(DestinationServiceAccount(bad, namespace="*", server="*"))
    with pytest.raises(UserInputError, match="destinationServiceAccounts\\[0\\]"):
        p.service_account_for(IN_CLUSTER, "web", K8S)


# ---------------------------------------------------------------- parsing


def test_parse_and_serialise_round_trip() -> None:
    obj = {
        "apiVersion": "gitmoor.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": "team-a", "namespace": "gitmoor", "resourceVersion": "7"},
        "spec": {
            "description": "Team A",
            "sourceRepos": ["https://git.example.com/team-a/*"],
            "destinations": [{"namespace": "team-a-*", "name": "in-cluster"}],
            "namespaceResourceBlacklist": [{"group": "", "kind": "ResourceQuota"}],
            "namespaceResourceWhitelist": [],
            "destinationServiceAccounts": [
                {"server": K8S, "namespace": "team-a-*", "defaultServiceAccount": "deployer"}
            ],
        },
    }
    p = parse_appproject(obj)
    assert p.name == "team-a" and p.namespace == "gitmoor" and p.resource_version == "7"
    assert p.namespace_resource_whitelist == ()
    assert p.cluster_resource_whitelist == ()
    assert p.to_manifest()["spec"] == obj["spec"]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"sourceRepos": "https://x"}, "spec.sourceRepos"),
        ({"sourceRepos": [1]}, "spec.sourceRepos[0]"),
        ({"destinations": [{"namespace": 3}]}, "spec.destinations[0].namespace"),
        ({"clusterResourceWhitelist": [{"group": "*"}]}, "spec.clusterResourceWhitelist[0].kind"),
        ({"destinations": ["x"]}, "spec.destinations[0]"),
    ],
)
def test_malformed_fields_are_named(spec: dict[str, object], field: str) -> None:
    obj = {"metadata": {"name": "p", "namespace": "gitmoor"}, "spec": spec}
    with pytest.raises(UserInputError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_appproject(obj)
