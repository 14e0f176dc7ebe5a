"""Parsing an ApplicationSet: Argo CD's fields and spellings, and hostile specs
refused with a message naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from gitmoor.model.appset import parse_appset
from gitmoor.model.errors import UserInputError

TEMPLATE = {
    "metadata": {"name": "{{name}}"},
    "spec": {"source": {"repoURL": "r"}, "destination": {"namespace": "n"}},
}


def obj(**spec: Any) -> dict[str, Any]:
    full = {"generators": [{"list": {"elements": []}}], "template": TEMPLATE} | spec
    return {
        "apiVersion": "gitmoor.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": "s", "namespace": "apps", "uid": "u"},
        "spec": full,
    }


def test_defaults() -> None:
    s = parse_appset(obj())
    assert (s.name, s.namespace, s.uid) == ("s", "apps", "u")
    assert s.policy == "create-update"  # never deletes (Argo CD's default is sync)
    assert not s.deletes and s.updates
    assert not s.go_template and s.go_template_options == ()
    assert not s.preserve_resources_on_deletion


@pytest.mark.parametrize(
    ("sync_policy", "policy"),
    [
        ({"applicationsSync": "create-only"}, "create-only"),
        ({"applicationsSync": "create-delete"}, "create-delete"),
        ({"applicationsSync": "sync"}, "sync"),
        ({"policy": "sync"}, "sync"),
        ({"policy": "sync", "applicationsSync": "sync"}, "sync"),
    ],
)
def test_policy_spellings(sync_policy: dict[str, str], policy: str) -> None:
    assert parse_appset(obj(syncPolicy=sync_policy)).policy == policy


@pytest.mark.parametrize(
    ("policy", "updates", "deletes"),
    [
        ("create-only", False, False),
        ("create-update", True, False),
        # Argo CD: create-delete "prevents the controller from modifying
        # applications", deletion allowed; it is not sync (which also updates).
        ("create-delete", False, True),
        ("sync", True, True),
    ],
)
def test_each_policy_says_what_it_may_change(policy: str, updates: bool, deletes: bool) -> None:
    s = parse_appset(obj(syncPolicy={"applicationsSync": policy}))
    assert (s.policy, s.updates, s.deletes) == (policy, updates, deletes)


def test_create_delete_and_sync_are_two_policies() -> None:
    with pytest.raises(UserInputError, match="disagree"):
        parse_appset(obj(syncPolicy={"applicationsSync": "create-delete", "policy": "sync"}))


def test_go_template_options_and_preserve() -> None:
    s = parse_appset(
        obj(
            goTemplate=True,
            goTemplateOptions=["missingkey=error"],
            syncPolicy={"preserveResourcesOnDeletion": True},
        )
    )
    assert s.go_template and s.go_template_options == ("missingkey=error",)
    assert s.preserve_resources_on_deletion


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"generators": []}, "spec.generators must be a non-empty list"),
        (
            {"generators": [{}]},
            r"spec.generators\[0\] must name exactly one generator kind .* none",
        ),
        (
            {"generators": [{"list": {}, "clusters": {}}]},
            r"spec.generators\[0\] must name exactly one .* found list, clusters",
        ),
        ({"generators": [{"lists": {}}]}, r"spec.generators\[0\]: unknown field 'lists'"),
        (
            {"generators": [{"list": {}, "template": {}}]},
            r"spec.generators\[0\]: unknown field 'template'",
        ),
        ({"generators": [{"pullRequest": {}}]}, "pullRequest generator is not supported"),
        (
            {"generators": [{"matrix": {"generators": [{"list": {}}]}}]},
            r"matrix must have exactly two child generators, found 1",
        ),
        (
            {"generators": [{"matrix": {"generators": [{"list": {}}] * 3}}]},
            "found 3",
        ),
        (
            {"generators": [{"merge": {"generators": [{"list": {}}, {"list": {}}]}}]},
            "mergeKeys must be a non-empty list",
        ),
        (
            {
                "generators": [
                    {
                        "matrix": {
                            "generators": [
                                {"list": {"template": {"metadata": {"name": "x"}}}},
                                {"list": {}},
                            ]
                        }
                    }
                ]
            },
            "cannot override the template",
        ),
        ({"template": {"metadata": "x", "spec": {}}}, "spec.template.metadata must be an object"),
        ({"template": {"metadata": {}}}, "spec.template.spec is required"),
        ({"syncPolicy": {"applicationsSync": "delete-all"}}, "applicationsSync must be one of"),
        (
            {"syncPolicy": {"applicationsSync": "sync", "policy": "create-only"}},
            "disagree",
        ),
        ({"goTemplateOptions": ["missingkey=panic"]}, "unknown option 'missingkey=panic'"),
        ({"goTemplate": "yes"}, "goTemplate must be true or false"),
    ],
)
def test_hostile_specs_are_refused_naming_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(UserInputError, match=message) as err:
        parse_appset(obj(**spec))
    assert "ApplicationSet apps/s" in str(err.value)


def test_matrix_nesting_is_limited() -> None:
    inner = {"matrix": {"generators": [{"list": {}}, {"list": {}}]}}
    two = {"matrix": {"generators": [inner, {"list": {}}]}}
    parse_appset(obj(generators=[two]))  # a matrix of a matrix: allowed
    three = {"matrix": {"generators": [two, {"list": {}}]}}
    with pytest.raises(UserInputError, match="nest at most two levels"):
        parse_appset(obj(generators=[three]))


def test_an_empty_child_template_is_accepted() -> None:
    # Argo CD's API fills an unset template with empty metadata and spec; an
    # ApplicationSet read back from Argo CD carries it on matrix children.
    empty = {"metadata": {}, "spec": {"destination": {}}}
    child = {"list": {"elements": [], "template": empty}}
    parse_appset(obj(generators=[{"matrix": {"generators": [child, {"list": {}}]}}]))
