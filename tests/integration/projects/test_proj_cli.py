"""`gitmoor install` (the default project) and `gitmoor proj …`, run as a user
runs them: a separate process against the local control plane."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from support.apps import AppEnv
    from support.cli import Gitmoor


def ok(result: object) -> str:
    assert getattr(result, "returncode", None) == 0, (
        getattr(result, "stdout", ""),
        getattr(result, "stderr", ""),
    )
    return str(getattr(result, "stdout", ""))


def test_install_creates_the_default_project_and_keeps_a_narrowed_one(gitmoor: Gitmoor) -> None:
    assert "project default (created)" in ok(gitmoor("install"))
    spec = json.loads(ok(gitmoor("proj", "get", "default", "-o", "json")))["spec"]
    # What Argo CD's default project allows.
    assert spec["sourceRepos"] == ["*"]
    assert spec["destinations"] == [{"namespace": "*", "name": "*", "server": "*"}]
    assert spec["clusterResourceWhitelist"] == [{"group": "*", "kind": "*"}]

    ok(gitmoor("proj", "deny-cluster-resource", "default", "*", "*"))
    assert "project default (kept as it is)" in ok(gitmoor("install"))
    spec = json.loads(ok(gitmoor("proj", "get", "default", "-o", "json")))["spec"]
    assert "clusterResourceWhitelist" not in spec
    assert spec["clusterResourceBlacklist"] == [{"group": "*", "kind": "*"}]


async def test_proj_commands_edit_a_project(
    gitmoor: Gitmoor, env: AppEnv, kube: KubeClient
) -> None:
    ok(
        gitmoor(
            "proj",
            "create",
            "team-a",
            "--description",
            "Team A",
            "--src",
            "https://git.example.com/team-a/*",
            "--dest",
            "in-cluster,team-a-*",
            "--dest-service-account",
            "in-cluster,team-a-*,deployer",
        )
    )
    refused = gitmoor("proj", "create", "team-a")
    assert refused.returncode == 2 and "already exists" in refused.stderr

    ok(gitmoor("proj", "add-destination", "team-a", "https://prod.example.com:6443", "team-a-*"))
    ok(gitmoor("proj", "add-source", "team-a", "https://git.example.com/shared/base"))
    ok(gitmoor("proj", "allow-cluster-resource", "team-a", "", "Namespace"))
    ok(gitmoor("proj", "allow-cluster-resource", "team-a", "rbac.authorization.k8s.io", "*"))
    ok(gitmoor("proj", "deny-cluster-resource", "team-a", "rbac.authorization.k8s.io", "*"))

    got = yaml.safe_load(ok(gitmoor("proj", "get", "team-a", "-o", "yaml")))
    assert got["spec"] == {
        "description": "Team A",
        "sourceRepos": ["https://git.example.com/team-a/*", "https://git.example.com/shared/base"],
        "destinations": [
            {"namespace": "team-a-*", "name": "in-cluster"},
            {"namespace": "team-a-*", "server": "https://prod.example.com:6443"},
        ],
        "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}],
        "clusterResourceBlacklist": [{"group": "rbac.authorization.k8s.io", "kind": "*"}],
        "destinationServiceAccounts": [
            {"defaultServiceAccount": "deployer", "namespace": "team-a-*", "name": "in-cluster"}
        ],
    }
    listed = json.loads(ok(gitmoor("proj", "list", "-o", "json")))
    assert [p["name"] for p in listed] == ["team-a"]
    table = ok(gitmoor("proj", "get", "team-a"))
    assert "in-cluster,team-a-* -> deployer" in table

    # In use: refused, as Argo CD refuses; free again: deleted.
    await env.create("web", spec={"project": "team-a"})
    in_use = gitmoor("proj", "delete", "team-a")
    assert in_use.returncode == 2 and "used by 1 application(s): web" in in_use.stderr
    await kube.delete(env.app_ref("web"))
    ok(gitmoor("proj", "delete", "team-a"))
    assert gitmoor("proj", "get", "team-a").returncode == 1


def test_repo_add_scoped_to_a_project(gitmoor: Gitmoor) -> None:
    ok(
        gitmoor(
            "repo",
            "add",
            "https://git.example.com/team-a",
            "--username",
            "bot",
            "--password",
            "t0ken-value",
            "--project",
            "team-a",
        )
    )
    ok(gitmoor("repo", "add", "https://git.example.com/team-a", "--password", "other"))
    repos = json.loads(ok(gitmoor("repo", "list", "-o", "json")))
    assert sorted(r.get("project", "") for r in repos) == ["", "team-a"]
    assert "t0ken-value" not in json.dumps(repos)
    ok(gitmoor("repo", "rm", "https://git.example.com/team-a", "--project", "team-a"))
    repos = json.loads(ok(gitmoor("repo", "list", "-o", "json")))
    assert [r.get("project", "") for r in repos] == [""]
