"""Argo CD's RBAC semantics on plain policy text (no server)."""

from __future__ import annotations

import pytest

from gitmoor.model import UserInputError
from gitmoor.server.rbac import Policy, Rbac, parse_policy, policy_from_configmap

TEAMS = """
p, role:team-a-dev, applications, get, team-a/*, allow
p, role:team-a-dev, applications, sync, team-a/*, allow
p, role:team-a-dev, applications, sync, team-a/frozen, deny
g, alice, role:team-a-dev
g, platform-oncall, role:admin
"""


def test_a_role_reaches_its_projects_apps_only() -> None:
    rbac = Rbac(Policy(TEAMS))
    assert rbac.enforce(("alice",), "applications", "sync", "team-a/web")
    assert not rbac.enforce(("alice",), "applications", "sync", "team-b/web")
    assert not rbac.enforce(("alice",), "applications", "delete", "team-a/web")
    assert not rbac.enforce(("alice",), "projects", "get", "team-a")


def test_deny_wins_over_allow_for_the_same_subject() -> None:
    rbac = Rbac(Policy(TEAMS))
    assert rbac.enforce(("alice",), "applications", "get", "team-a/frozen")
    assert not rbac.enforce(("alice",), "applications", "sync", "team-a/frozen")


def test_groups_are_subjects_too() -> None:
    rbac = Rbac(Policy(TEAMS))
    assert not rbac.enforce(("bob",), "clusters", "delete", "prod")
    assert rbac.enforce(("bob", "platform-oncall"), "clusters", "delete", "prod")


def test_builtin_roles_and_admin() -> None:
    rbac = Rbac()
    assert rbac.enforce(("admin",), "applications", "delete", "any/app")
    assert rbac.enforce(("admin",), "accounts", "update", "someone")
    assert not rbac.enforce(("alice",), "applications", "get", "any/app")


def test_empty_default_denies_and_a_default_role_applies_to_everyone() -> None:
    assert not Rbac(Policy("", "")).enforce(("x",), "applications", "get", "p/a")
    ro = Rbac(Policy("", "role:readonly"))
    assert ro.enforce(("x",), "applications", "get", "p/a")
    assert ro.enforce(("x",), "logs", "get", "p/a")
    assert not ro.enforce(("x",), "applications", "sync", "p/a")
    assert ro.roles_of(("x",)) == ["role:readonly"]


def test_star_crosses_the_slash_as_argo_cd_glob_does() -> None:
    rbac = Rbac(Policy("p, role:all, applications, get, *, allow\ng, carol, role:all"))
    assert rbac.enforce(("carol",), "applications", "get", "team-a/web")


def test_roles_of_follows_role_chains() -> None:
    rbac = Rbac(Policy(TEAMS))
    assert rbac.roles_of(("bob", "platform-oncall")) == ["role:admin", "role:readonly"]


@pytest.mark.parametrize(
    "line",
    [
        "p, role:x, applications, get",
        "p, role:x, applications, get, */*, maybe",
        "g, alice",
        "x, alice, role:y",
    ],
)
def test_a_malformed_line_is_refused_with_its_number(line: str) -> None:
    with pytest.raises(UserInputError, match="line 2"):
        parse_policy(f"g, alice, role:a\n{line}")


def test_a_bad_policy_leaves_the_last_good_one_in_force() -> None:
    rbac = Rbac(Policy(TEAMS))
    with pytest.raises(UserInputError):
        rbac.load(Policy("p, broken"))
    assert rbac.enforce(("alice",), "applications", "sync", "team-a/web")


def test_comments_blank_lines_and_four_field_p_lines() -> None:
    policies, groups = parse_policy("# team a\n\np, role:a, applications, get, a/*\ng, u, role:a\n")
    assert policies == [["role:a", "applications", "get", "a/*", "allow"]]
    assert groups == [["u", "role:a"]]


def test_policy_from_configmap() -> None:
    cm = {"data": {"policy.csv": "g, a, role:admin", "policy.default": " role:readonly "}}
    assert policy_from_configmap(cm) == Policy("g, a, role:admin", "role:readonly")
    assert policy_from_configmap(None) == Policy()


def test_a_new_policy_replaces_remembered_answers() -> None:
    rbac = Rbac(Policy(TEAMS))
    assert rbac.enforce(("alice",), "applications", "sync", "team-a/web")
    assert rbac.enforce(("alice",), "applications", "sync", "team-a/web")  # remembered
    rbac.load(Policy("g, alice, role:readonly"))
    assert not rbac.enforce(("alice",), "applications", "sync", "team-a/web")
    assert rbac.enforce(("alice",), "applications", "get", "team-a/web")
