"""The pure half of the ApplicationSet reconcile: ownership, the plan under each
policy, "would an apply change anything", duplicates, status and conditions."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gitmoor.engine.appset.reconcile import (
    FIELD_MANAGER,
    AppSetError,
    Generated,
    appset_for_deletion,
    appset_owns,
    appset_resources,
    check_duplicates,
    conditions_for,
    generator_label,
    needs_update,
    owned_manifest,
    plan,
    status_changed,
    with_times,
)
from gitmoor.model.appset import APPSET_LABEL, ApplicationSet

JSON = dict[str, Any]
UID = "1111-2222"


def appset(policy: str = "create-update", generators: tuple[JSON, ...] = ()) -> ApplicationSet:
    return ApplicationSet(
        name="guestbook",
        namespace="gitmoor",
        uid=UID,
        generators=generators or ({"git": {"repoURL": "x", "directories": []}},),
        template={},
        go_template=False,
        go_template_options=(),
        policy=policy,
        preserve_resources_on_deletion=False,
        raw={},
    )


def rendered(name: str, path: str = "apps/a", **meta: Any) -> JSON:
    return {
        "metadata": {"name": name, **meta},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example/r.git", "path": path},
            "destination": {"namespace": name},
        },
    }


def gen(name: str, path: str = "apps/a", i: int = 0, **meta: Any) -> Generated:
    return Generated(name, owned_manifest(appset(), rendered(name, path, **meta)), f"element {i}")


def live_of(g: Generated, *, status: JSON | None = None, owner: str = UID) -> JSON:
    """The Application as the API server would hold it after applying ``g``."""
    obj: JSON = copy.deepcopy(g.manifest)
    obj["metadata"].update(resourceVersion="7", uid="app-uid")
    obj["metadata"]["ownerReferences"] = [{**obj["metadata"]["ownerReferences"][0], "uid": owner}]
    if status is not None:
        obj["status"] = status
    return obj


def test_the_written_app_is_labelled_owned_and_in_the_appset_namespace() -> None:
    m = owned_manifest(appset(), {**rendered("a"), "metadata": {"name": "a", "namespace": "x"}})
    assert m["metadata"]["namespace"] == "gitmoor"
    assert m["metadata"]["labels"][APPSET_LABEL] == "guestbook"
    ref = m["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == (
        "ApplicationSet",
        UID,
        True,
        True,
    )
    assert appset_owns(appset(), m)


def test_ownership_is_the_owner_uid_not_the_label() -> None:
    other = live_of(gen("a"), owner="someone-else")
    assert other["metadata"]["labels"][APPSET_LABEL] == "guestbook"
    assert not appset_owns(appset(), other)


def test_plan_creates_missing_and_leaves_unchanged_alone() -> None:
    a, b = gen("a"), gen("b", "apps/b")
    p = plan(appset(), [a, b], [live_of(a, status={"sync": {"status": "Synced"}})])
    assert [g.name for g in p.create] == ["b"]
    assert p.unchanged == ("a",)
    assert not p.update and not p.delete


def test_an_app_of_the_same_name_not_owned_is_never_touched() -> None:
    a = gen("a")
    p = plan(appset("sync"), [a], [live_of(gen("a", "elsewhere"), owner="other")])
    assert p.foreign == ("a",)
    assert not p.create and not p.update and not p.delete


@pytest.mark.parametrize(
    ("policy", "updates", "deletes"),
    [
        ("create-only", False, False),
        ("create-update", True, False),
        ("create-delete", False, True),
        ("sync", True, True),
    ],
)
def test_policy_decides_update_and_delete(policy: str, updates: bool, deletes: bool) -> None:
    a_now, b_gone = gen("a", "apps/a-new"), gen("b", "apps/b")
    live = [live_of(gen("a", "apps/a-old")), live_of(b_gone)]
    p = plan(appset(policy), [a_now], live)
    assert bool(p.update) is updates
    assert p.drifted == (() if updates else ("a",))
    assert [o["metadata"]["name"] for o in p.delete] == (["b"] if deletes else [])
    assert p.kept == (() if deletes else ("b",))


def test_an_app_being_deleted_is_not_deleted_again() -> None:
    b = live_of(gen("b"))
    b["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert plan(appset("sync"), [], [b]).delete == ()


def test_fields_the_template_does_not_set_are_no_difference() -> None:
    a = gen("a")
    live = live_of(a, status={"health": {"status": "Healthy"}})
    live["metadata"]["annotations"] = {"someone/else": "x"}
    live["spec"]["syncPolicy"] = {"pin": {"revision": "abc"}}
    live["operation"] = {"sync": {"revision": "main"}}
    assert not needs_update(a.manifest, live)


def test_a_changed_templated_field_is_a_difference() -> None:
    a = gen("a")
    live = live_of(a)
    live["spec"]["source"]["path"] = "hand-edited"
    assert needs_update(a.manifest, live)
    labelled = gen("a", labels={"team": "blue"})
    assert needs_update(labelled.manifest, live_of(gen("a", labels={"team": "red"})))


def test_a_field_the_template_stopped_setting_is_a_difference() -> None:
    """Server-side apply removes what this manager applied and no longer applies."""
    a = gen("a")
    live = live_of(a)
    live["spec"]["source"]["targetRevision"] = "v1"
    live["metadata"]["managedFields"] = [
        {
            "manager": FIELD_MANAGER,
            "operation": "Apply",
            "fieldsV1": {"f:spec": {"f:source": {"f:targetRevision": {}, "f:path": {}}}},
        }
    ]
    assert needs_update(a.manifest, live)
    # The same field owned by someone else is theirs to keep.
    live["metadata"]["managedFields"][0]["manager"] = "kubectl"
    assert not needs_update(a.manifest, live)


def test_duplicate_names_refuse_the_pass_naming_both_elements() -> None:
    with pytest.raises(AppSetError) as e:
        check_duplicates([gen("a", i=0), gen("b", i=1), gen("a", "apps/other", i=2)])
    assert "duplicate name: a" in str(e.value)
    assert "element 0" in str(e.value) and "element 2" in str(e.value)


def test_resources_list_owned_apps_with_sync_and_health() -> None:
    a = live_of(
        gen("a"),
        status={"sync": {"status": "Synced"}, "health": {"status": "Healthy"}},
    )
    b = live_of(
        gen("b"),
        status={
            "sync": {"status": "OutOfSync"},
            "health": {"status": "Degraded", "message": "crash"},
        },
    )
    foreign = live_of(gen("c"), owner="other")
    res = appset_resources(appset(), [b, foreign, a])
    assert [(r["name"], r["status"], r["health"]) for r in res] == [
        ("a", "Synced", {"status": "Healthy"}),
        ("b", "OutOfSync", {"status": "Degraded", "message": "crash"}),
    ]
    assert res[0]["kind"] == "Application" and res[0]["namespace"] == "gitmoor"


def test_conditions_use_argo_cd_types_and_keep_their_transition_time() -> None:
    ok = with_times(conditions_for(), [], "t1")
    assert {c["type"]: c["status"] for c in ok} == {
        "ErrorOccurred": "False",
        "ParametersGenerated": "True",
        "ResourcesUpToDate": "True",
    }
    again = with_times(conditions_for(), ok, "t2")
    assert {c["lastTransitionTime"] for c in again} == {"t1"}
    assert not status_changed({"conditions": ok}, {"conditions": again})
    failed = with_times(conditions_for("git: no such repo", "X", parameters_ok=False), ok, "t3")
    by_type = {c["type"]: c for c in failed}
    assert by_type["ErrorOccurred"]["status"] == "True"
    assert by_type["ErrorOccurred"]["message"] == "git: no such repo"
    assert by_type["ErrorOccurred"]["lastTransitionTime"] == "t3"
    assert by_type["ParametersGenerated"]["status"] == "False"


def test_generator_label_names_the_single_generator() -> None:
    assert generator_label(appset()) == "git"
    two = appset(generators=({"list": {"elements": []}}, {"clusters": {}}))
    assert generator_label(two) == "generators"


def test_an_appset_whose_spec_no_longer_parses_can_still_be_deleted() -> None:
    broken = {
        "metadata": {"name": "b", "namespace": "gitmoor", "uid": UID},
        "spec": {"generators": "not a list", "syncPolicy": {"preserveResourcesOnDeletion": True}},
    }
    a = appset_for_deletion(broken)
    assert (a.name, a.uid, a.preserve_resources_on_deletion) == ("b", UID, True)
