"""Sync semantics on plain data: reading an apply conflict's fields and managers,
RespectIgnoreDifferences' live values, and the version annotations that never
count as drift. The same behaviour against a real API server is in
tests/integration/engine/test_sync_semantics.py."""

from __future__ import annotations

import copy
from typing import Any

from gitmoor.engine.normalize import IgnoreRule, compare
from gitmoor.engine.sync import TakenField, _conflicts, _refusal, _stamped
from gitmoor.kube import ConflictError
from gitmoor.model import ObjectRef
from gitmoor.model.application import REVISION_ANNOTATION, VERSION_ANNOTATION

DEPLOY = ObjectRef("apps", "v1", "Deployment", "shop", "web")


def deployment(replicas: int = 1, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": "shop"}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}},
        },
    }


def conflict(message: str, causes: list[dict[str, str]]) -> ConflictError:
    """A 409 as kube-apiserver answers an apply that meets another field manager."""
    return ConflictError(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": "Conflict",
            "details": {"causes": causes},
            "code": 409,
        }
    )


def test_conflict_causes_give_field_and_manager() -> None:
    e = conflict(
        'Apply failed with 2 conflicts: conflicts with "kubectl" with subresource "scale" '
        "using apps/v1:\n- .spec.replicas",
        [
            {
                "reason": "FieldManagerConflict",
                "message": 'conflict with "kubectl" with subresource "scale" using apps/v1',
                "field": ".spec.replicas",
            },
            {
                "reason": "FieldManagerConflict",
                "message": 'conflict with "kubectl-edit" using apps/v1',
                "field": '.spec.template.spec.containers[name="web"].image',
            },
        ],
    )
    assert _conflicts(e) == (
        TakenField("spec.replicas", "kubectl"),
        TakenField('spec.template.spec.containers[name="web"].image', "kubectl-edit"),
    )


def test_conflict_without_causes_is_read_from_the_message() -> None:
    one = conflict('Apply failed with 1 conflict: conflict with "helm" using v1: .data.key', [])
    assert _conflicts(one) == (TakenField("data.key", "helm"),)
    several = conflict(
        'Apply failed with 2 conflicts: conflicts with "kubectl" using apps/v1:\n'
        "- .spec.replicas\n- .spec.paused",
        [],
    )
    assert _conflicts(several) == (
        TakenField("spec.replicas", "kubectl"),
        TakenField("spec.paused", "kubectl"),
    )


def test_a_conflict_that_is_not_about_fields_names_none() -> None:
    e = conflict('Operation cannot be fulfilled on deployments.apps "web"', [])
    assert _conflicts(e) == ()


def test_refusal_names_each_field_its_manager_and_how_to_take_it() -> None:
    msg = _refusal([TakenField("spec.replicas", "kubectl"), TakenField("data.a", "helm")])
    assert 'spec.replicas is managed by "kubectl"' in msg
    assert 'data.a is managed by "helm"' in msg
    assert "ForceConflicts=false" in msg


def test_stamped_sets_or_drops_the_version_annotations_without_touching_the_input() -> None:
    obj = deployment(**{"gitmoor.io/tracking-id": "x"})
    before = copy.deepcopy(obj)
    stamped = _stamped(obj, "abc123", "v1.2.0")
    assert stamped["metadata"]["annotations"] == {
        "gitmoor.io/tracking-id": "x",
        REVISION_ANNOTATION: "abc123",
        VERSION_ANNOTATION: "v1.2.0",
    }
    # A branch target has no tag: the version annotation is left out, so server-side
    # apply removes the one an earlier tag sync wrote.
    assert VERSION_ANNOTATION not in _stamped(stamped, "def456", None)["metadata"]["annotations"]
    assert "annotations" not in _stamped(deployment(), "", None)["metadata"]
    assert obj == before


def test_version_annotations_alone_are_no_drift() -> None:
    live = deployment(**{REVISION_ANNOTATION: "old", VERSION_ANNOTATION: "v1.0.0"})
    predicted = deployment()
    assert not compare(DEPLOY, live, predicted).changed
    assert not compare(DEPLOY, live, deployment(**{REVISION_ANNOTATION: "new"})).changed
    # ... while a real change still shows, without them in the diff.
    diff = compare(DEPLOY, live, deployment(replicas=2))
    assert diff.changed
    assert "gitmoor.io/revision" not in diff.diff


def test_keep_live_copies_live_values_at_ignored_paths() -> None:
    rule = IgnoreRule(
        "apps",
        "Deployment",
        json_pointers=("/spec/replicas", "/spec/template/spec/containers/0/image", "/spec/paused"),
    )
    desired = deployment(replicas=1)
    desired["spec"]["paused"] = True  # Git says paused, the live object has no such field
    live = deployment(replicas=5)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"

    rule.keep_live(desired, live)

    assert desired["spec"]["replicas"] == 5
    assert desired["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    assert "paused" not in desired["spec"]
    live["spec"]["replicas"] = 7
    assert desired["spec"]["replicas"] == 5  # a copy, not the live object's own value


def test_keep_live_makes_maps_but_never_list_elements() -> None:
    rule = IgnoreRule(
        "",
        "ConfigMap",
        json_pointers=("/metadata/annotations/owner", "/spec/items/0/name"),
    )
    desired: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    live = copy.deepcopy(desired)
    live["metadata"]["annotations"] = {"owner": "team-b"}
    live["spec"] = {"items": [{"name": "x"}]}

    rule.keep_live(desired, live)

    assert desired["metadata"]["annotations"] == {"owner": "team-b"}
    assert "spec" not in desired
