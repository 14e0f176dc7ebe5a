"""App of apps on plain data: which children a parent may create (and the sentence
when it may not), who a child's parent is, and when the cascade finalizer applies."""

from __future__ import annotations

from typing import Any

import pytest

from gitmoor.engine.children import (
    being_deleted,
    cascade_finalizer,
    check_children,
    deletion_view,
    parent_of,
)
from gitmoor.model import Manifest, Source, UserInputError
from gitmoor.model.application import (
    Application,
    AppSource,
    Destination,
    application_manifest,
    parse_application,
)
from gitmoor.model.project import AppProject, GroupKind, ProjectViolation, default_project

APPS = "gitmoor"
TEAM = AppProject(name="team", namespace=APPS)
MAY_CREATE_PROJECTS = AppProject(
    name="team",
    namespace=APPS,
    namespace_resource_whitelist=(
        GroupKind("*", "*"),
        GroupKind("gitmoor.io", "AppProject"),
    ),
)


def parent(*, dest: str = APPS, cluster: str = "", project: str = "team") -> Application:
    return parse_application(
        application_manifest(
            "platform",
            APPS,
            AppSource("https://git.example.com/platform.git", "apps"),
            Destination(dest, cluster),
            project=project,
        )
    )


def app_manifest(name: str, *, project: str | None = "team", namespace: str = APPS) -> Manifest:
    spec: dict[str, Any] = {
        "source": {"repoURL": "https://git.example.com/platform.git", "path": name},
        "destination": {"namespace": name},
    }
    if project is not None:
        spec["project"] = project
    obj = {
        "apiVersion": "gitmoor.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return Manifest.of(obj, Source(f"{name}.yaml"))


def appset_manifest(project: str) -> Manifest:
    obj = {
        "apiVersion": "gitmoor.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": "envs", "namespace": APPS},
        "spec": {
            "generators": [{"list": {"elements": [{"env": "dev"}]}}],
            "template": {"metadata": {"name": "web-{{env}}"}, "spec": {"project": project}},
        },
    }
    return Manifest.of(obj, Source("envs.yaml"))


def project_manifest(name: str) -> Manifest:
    obj = {
        "apiVersion": "gitmoor.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": name, "namespace": APPS},
        "spec": {},
    }
    return Manifest.of(obj, Source("project.yaml"))


def test_children_in_the_parents_project_and_namespace_pass() -> None:
    check_children(TEAM, parent(), [app_manifest("web"), appset_manifest("team")])


def test_a_child_naming_another_project_is_refused_with_its_name_and_file() -> None:
    with pytest.raises(ProjectViolation) as raised:
        check_children(TEAM, parent(), [app_manifest("web"), app_manifest("db", project="admin")])
    assert str(raised.value) == (
        'project team: Application db (from db.yaml) names project "admin"; a child of '
        'platform may name only its parent\'s project "team" or a project the same render '
        "declares"
    )


def test_a_child_without_a_project_is_in_default_which_a_team_parent_cannot_give() -> None:
    with pytest.raises(ProjectViolation, match='names project "default"'):
        check_children(TEAM, parent(), [app_manifest("web", project=None)])
    # Under the default project itself, the same child is fine.
    check_children(
        default_project(APPS), parent(project="default"), [app_manifest("web", project=None)]
    )


def test_a_project_declared_by_the_same_render_may_be_named() -> None:
    check_children(
        MAY_CREATE_PROJECTS,
        parent(),
        [project_manifest("web-team"), app_manifest("web", project="web-team")],
    )


@pytest.mark.parametrize(
    "whitelist",
    [
        None,  # absent: every namespaced kind, but not this one
        (GroupKind("*", "*"),),
        (GroupKind("gitmoor.io", "*"),),
        (GroupKind("gitmoor.io", "Application"),),
    ],
)
def test_a_new_project_needs_the_kind_listed_outright(
    whitelist: tuple[GroupKind, ...] | None,
) -> None:
    # A child project can grant every repository, destination and kind to the
    # Applications the same render puts in it: implied permission is not enough.
    team = AppProject(name="team", namespace=APPS, namespace_resource_whitelist=whitelist)
    with pytest.raises(ProjectViolation) as raised:
        check_children(team, parent(), [project_manifest("web-team"), app_manifest("web")])
    assert str(raised.value) == (
        "project team: AppProject web-team (from project.yaml) may not be declared by "
        "platform: a child project can grant every repository, destination and kind; to "
        "allow it, list {group: gitmoor.io, kind: AppProject} in project team's "
        'spec.namespaceResourceWhitelist (neither an absent whitelist nor a "*" entry '
        "grants it)"
    )


def test_the_parents_own_project_unchanged_needs_no_grant() -> None:
    # A self-managed install carries its own project (gitmoor bootstrap's app
    # and the default project): declared as it stands, it widens nothing.
    default = default_project(APPS)
    own = Manifest.of(default.to_manifest(), Source("gitmoor-project.yaml"))
    check_children(default, parent(project="default"), [own])
    wider = Manifest.of(TEAM.to_manifest() | {"spec": {"sourceRepos": ["*"]}}, Source("p.yaml"))
    with pytest.raises(ProjectViolation, match=r"AppProject team .* may not be declared"):
        check_children(TEAM, parent(), [wider])


def test_an_applicationset_templates_project_is_judged_and_must_be_literal() -> None:
    with pytest.raises(ProjectViolation, match=r"ApplicationSet envs .* names project"):
        check_children(TEAM, parent(), [appset_manifest("admin")])
    # Which projects a template's parameter would give is not known before its
    # generators run: refused, since any of them could be wider than the parent's.
    with pytest.raises(ProjectViolation, match=r'names project "\{\{project\}\}"'):
        check_children(TEAM, parent(), [appset_manifest("{{project}}")])


def test_an_applicationset_generators_template_override_cannot_name_a_wider_project() -> None:
    # render_application merges generators[i].<kind>.template over spec.template,
    # so the override's project is the one the generated Applications get.
    m = appset_manifest("team")
    m.obj["spec"]["generators"][0]["list"]["template"] = {"spec": {"project": "admin"}}
    with pytest.raises(ProjectViolation, match=r'ApplicationSet envs .* names project "admin"'):
        check_children(TEAM, parent(), [m])


def test_children_outside_the_apps_namespace_are_refused() -> None:
    with pytest.raises(ProjectViolation) as raised:
        check_children(TEAM, parent(), [app_manifest("web", namespace="web")])
    assert 'names namespace "web"' in str(raised.value)
    assert 'created in the apps namespace "gitmoor"' in str(raised.value)


def test_children_on_another_cluster_are_refused() -> None:
    with pytest.raises(ProjectViolation, match="would be created on cluster 'edge'"):
        check_children(TEAM, parent(cluster="edge"), [app_manifest("web")])


def test_a_render_without_children_is_not_judged_here() -> None:
    cm = Manifest.of({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    check_children(TEAM, parent(cluster="edge"), [cm])


def test_the_parent_is_read_from_the_childs_tracking_id() -> None:
    def obj(tracking: str) -> dict[str, Any]:
        return {"metadata": {"annotations": {"gitmoor.io/tracking-id": tracking}}}

    assert parent_of(obj("gitmoor_platform:gitmoor.io/Application:gitmoor/web"), APPS) == (
        "platform"
    )
    # Another namespace's parent is another controller's; a ConfigMap is not a child.
    assert parent_of(obj("other_platform:gitmoor.io/Application:other/web"), APPS) == ""
    assert parent_of(obj("gitmoor_platform:/ConfigMap:web/x"), APPS) == ""
    assert parent_of({"metadata": {}}, APPS) == ""


@pytest.mark.parametrize(
    ("finalizers", "cascades"),
    [
        (["resources-finalizer.gitmoor.io"], True),
        (["resources-finalizer.argocd.argoproj.io"], True),
        (["example.com/other"], False),
        ([], False),
    ],
)
def test_the_cascade_finalizer_is_gitmoors_or_argo_cds(
    finalizers: list[str], cascades: bool
) -> None:
    obj = {"metadata": {"finalizers": finalizers, "deletionTimestamp": "2026-12-01T12:00:00Z"}}
    assert cascade_finalizer(obj) is cascades
    assert being_deleted(obj)
    assert not being_deleted({"metadata": {"finalizers": finalizers}})


def test_an_app_whose_spec_does_not_parse_can_still_be_finalized() -> None:
    # The cascade needs the inventory (status), the destination cluster and
    # Delete=false: read from the object even when its spec no longer parses.
    obj: dict[str, Any] = {
        "metadata": {"name": "web", "namespace": APPS, "deletionTimestamp": "2026-12-01T12:00:00Z"},
        "spec": {
            "destination": {"namespace": "web", "name": "edge"},
            "syncPolicy": {
                "retry": {"backoff": {"duration": "soon"}},
                "syncOptions": ["Delete=false"],
            },
        },
        "status": {"resources": [{"kind": "ConfigMap", "namespace": "web", "name": "x"}]},
    }
    with pytest.raises(UserInputError):
        parse_application(obj)
    view = deletion_view(obj)
    assert (view.name, view.namespace, view.spec.destination.name) == ("web", APPS, "edge")
    assert view.spec.sync_policy.sync_options == ("Delete=false",)
    assert view.status is obj["status"]
    # Without a readable destination the cluster is unknown: nothing is deleted on a guess.
    obj["spec"]["destination"] = "edge"
    with pytest.raises(UserInputError, match=r"spec\.destination cannot be read"):
        deletion_view(obj)
