from __future__ import annotations

import base64
import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitmoor.engine.normalize import (
    IgnoreRule,
    compare,
    normalize,
    parse_pointer,
    unified_diff,
)
from gitmoor.model import ObjectRef, UserInputError
from gitmoor.model.redaction import RedactRule
from gitmoor.secrets.redact import Redactor, is_mask

TESTDATA = Path(__file__).parent / "testdata" / "diff"
DEPLOY = ObjectRef("apps", "v1", "Deployment", "shop", "web")


def deployment(replicas: int = 3, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", **meta},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}},
        },
    }


def secret(data: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop"},
        "type": "Opaque",
        **extra,
    }
    if data is not None:
        obj["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return obj


# --- golden cases ----------------------------------------------------------------


def _rules(raw: list[dict[str, Any]] | None) -> list[IgnoreRule]:
    return [
        IgnoreRule(
            group=r["group"],
            kind=r["kind"],
            name=r.get("name"),
            namespace=r.get("namespace"),
            json_pointers=tuple(r.get("jsonPointers", ())),
        )
        for r in raw or []
    ]


@pytest.mark.parametrize("path", sorted(TESTDATA.glob("*.yaml")), ids=lambda p: p.stem)
def test_golden_diff(path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    live, predicted = case["live"], case["predicted"]
    ref = ObjectRef.of(predicted if predicted is not None else live)
    result = compare(ref, live, predicted, _rules(case.get("ignore")))
    assert _named_masks(result.diff) == case["diff"]
    assert result.changed is bool(case["diff"])


def _named_masks(diff: str) -> str:
    """Masks are keyed by a secret of the process: name them A, B, ... in order of
    first appearance, so equal masks stay equal and different ones different."""
    names: dict[str, str] = {}

    def name(m: re.Match[str]) -> str:
        return f"<redacted:{names.setdefault(m.group(0), chr(ord('A') + len(names)))}>"

    return re.sub(r"<redacted:[0-9a-f]{8}>", name, diff)


def test_golden_secret_diff_never_shows_a_value() -> None:
    case = yaml.safe_load((TESTDATA / "secret-value-changed.yaml").read_text())
    diff = compare(ObjectRef.of(case["live"]), case["live"], case["predicted"]).diff
    for side in (case["live"], case["predicted"]):
        for encoded in side["data"].values():
            assert encoded not in diff
            assert base64.b64decode(encoded).decode() not in diff


# --- normalize -------------------------------------------------------------------


def test_normalize_drops_server_fields_and_does_not_mutate() -> None:
    live = deployment(
        uid="u",
        resourceVersion="1",
        generation=2,
        creationTimestamp="2025-11-21T14:03:09Z",
        selfLink="/apis/apps/v1/namespaces/shop/deployments/web",
        managedFields=[{"manager": "gitmoor"}],
        annotations={
            "deployment.kubernetes.io/revision": "2",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
            "team": "shop",
        },
    )
    live["status"] = {"replicas": 3}
    before = copy.deepcopy(live)
    out = normalize(live)
    assert live == before
    assert out["metadata"] == {"name": "web", "namespace": "shop", "annotations": {"team": "shop"}}
    assert "status" not in out
    assert out["spec"] == live["spec"]


def test_annotations_emptied_by_normalisation_disappear() -> None:
    live = deployment(annotations={"deployment.kubernetes.io/revision": "2"})
    assert "annotations" not in normalize(live)["metadata"]
    assert compare(DEPLOY, live, deployment()).changed is False


def test_annotation_map_emptied_by_a_rule_is_no_difference() -> None:
    rule = IgnoreRule("apps", "Deployment", json_pointers=("/metadata/annotations/sync~1time",))
    live = deployment(annotations={"sync/time": "14:00"})
    assert compare(DEPLOY, live, deployment(), [rule]).changed is False


def test_status_is_ignored_for_every_kind() -> None:
    live = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    predicted = copy.deepcopy(live)
    live["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    assert compare(ObjectRef.of(live), live, predicted).changed is False


def test_ignore_rule_on_replicas_removes_only_replica_drift() -> None:
    rule = IgnoreRule(group="apps", kind="Deployment", json_pointers=("/spec/replicas",))
    assert compare(DEPLOY, deployment(7), deployment(3), [rule]).changed is False
    assert compare(DEPLOY, deployment(7), deployment(3)).changed is True
    other = deployment(3)
    other["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    result = compare(DEPLOY, deployment(7), other, [rule])
    assert result.changed is True
    assert "replicas" not in result.diff
    assert "+      - image: nginx:1.28\n" in result.diff


@pytest.mark.parametrize(
    "rule,applies",
    [
        (IgnoreRule("apps", "Deployment"), True),
        (IgnoreRule("apps", "Deployment", name="web", namespace="shop"), True),
        (IgnoreRule("apps", "Deployment", name="api"), False),
        (IgnoreRule("apps", "Deployment", namespace="other"), False),
        (IgnoreRule("", "Deployment"), False),
        (IgnoreRule("apps", "StatefulSet"), False),
        (IgnoreRule("*", "Deployment"), True),
        (IgnoreRule("apps", "*"), True),
    ],
)
def test_ignore_rule_matching(rule: IgnoreRule, applies: bool) -> None:
    assert rule.matches(DEPLOY) is applies


def test_pointers_into_lists_and_missing_paths() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "envoy"})
    rule = IgnoreRule(
        "apps",
        "Deployment",
        json_pointers=(
            "/spec/template/spec/containers/1/image",
            "/spec/template/spec/containers/9/image",  # out of range
            "/spec/template/spec/containers/-",  # past the end: names nothing
            "/spec/template/spec/containers/01",  # leading zero: not an index
            "/spec/nothing/here",
            "/spec/replicas/deeper",  # through a scalar
        ),
    )
    out = normalize(obj, [rule])
    assert out["spec"]["template"]["spec"]["containers"] == [
        {"name": "web", "image": "nginx:1.27"},
        {"name": "sidecar"},
    ]
    assert out["spec"]["replicas"] == 3


def test_pointer_unescaping_order() -> None:
    # "~01" is "~1" (not "/"): ~1 is replaced before ~0.
    assert parse_pointer("/a~1b/c~0d/e~01") == ("a/b", "c~d", "e~1")
    assert parse_pointer("/") == ("",)


@pytest.mark.parametrize("pointer", ["spec/replicas", "", "/a/~2", "/a~"])
def test_invalid_pointers_are_user_errors_at_construction(pointer: str) -> None:
    with pytest.raises(UserInputError, match="JSON pointer"):
        IgnoreRule("apps", "Deployment", json_pointers=(pointer,))


def test_ignore_rule_accepts_a_list_of_pointers() -> None:
    rule = IgnoreRule("apps", "Deployment", json_pointers=["/spec/replicas"])  # type: ignore[arg-type]
    assert rule.json_pointers == ("/spec/replicas",)
    assert rule == IgnoreRule("apps", "Deployment", json_pointers=("/spec/replicas",))
    hash(rule)


# --- secrets ----------------------------------------------------------------------


def test_compare_masks_every_secret_value_of_both_sides() -> None:
    ref = ObjectRef("", "v1", "Secret", "shop", "db")
    result = compare(
        ref,
        secret({"same": "s3cret", "changed": "old", "removed": "gone"}),
        secret({"same": "s3cret", "changed": "new"}, stringData={"added": "fresh"}),
        redactor=Redactor("shop/app/uid"),
    )
    live, predicted = result.live, result.predicted
    assert live is not None and predicted is not None
    assert all(is_mask(v) for side in (live, predicted) for v in side["data"].values())
    assert "stringData" not in predicted, "folded into data, as the server stores it"
    assert live["data"]["same"] == predicted["data"]["same"]
    assert live["data"]["changed"] != predicted["data"]["changed"]
    assert result.changed is True


def test_a_redaction_rule_masks_a_configmap_key_and_keeps_a_change_visible() -> None:
    ref = ObjectRef("", "v1", "ConfigMap", "shop", "cfg")
    redactor = Redactor("shop/app/uid", [RedactRule(kind="ConfigMap", fields=("data.*token*",))])

    def cm(token: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "shop"},
            "data": {"api-token": token, "url": "https://example.com"},
        }

    assert not compare(ref, cm("t0k3n-one"), cm("t0k3n-one"), redactor=redactor).changed
    result = compare(ref, cm("t0k3n-one"), cm("t0k3n-two"), redactor=redactor)
    assert result.changed is True
    assert "t0k3n" not in result.diff
    assert "-  api-token: <redacted:" in result.diff and "+  api-token: <redacted:" in result.diff
    assert "   url: https://example.com\n" in result.diff, "an unnamed key keeps its value"


def test_string_data_equals_the_same_value_in_data() -> None:
    # A manifest with stringData against the live object the server stored.
    result = compare(
        ObjectRef("", "v1", "Secret", "shop", "db"),
        secret({"password": "hunter2"}),
        secret(stringData={"password": "hunter2"}),
    )
    assert result.changed is False


def test_secret_values_never_reach_the_diff() -> None:
    live = secret({"password": "hunter2"})
    live["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": '{"stringData":{"password":"hunter2"}}'
    }
    predicted = secret({"password": "correct horse"}, stringData={"token": "t0k3n"})
    result = compare(ObjectRef("", "v1", "Secret", "shop", "db"), live, predicted)
    assert result.changed is True
    for value in ("hunter2", "correct horse", "t0k3n"):
        assert value not in result.diff
        assert base64.b64encode(value.encode()).decode() not in result.diff
        assert value not in repr(result)
    minus = [line for line in result.diff.splitlines() if line.startswith("-  password: ")]
    plus = [line for line in result.diff.splitlines() if line.startswith("+  password: ")]
    assert len(minus) == len(plus) == 1
    assert is_mask(minus[0].split(": ", 1)[1]) and is_mask(plus[0].split(": ", 1)[1])


def test_secret_masking_without_normalisation_removes_last_applied() -> None:
    live = secret({"password": "hunter2"})
    live["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"password":"aHVudGVyMg=="}}'
    }
    masked = Redactor("a").mask(live)
    assert masked is not None
    assert "aHVudGVyMg==" not in yaml.safe_dump(masked)


def test_secret_being_created_or_pruned_is_masked() -> None:
    ref = ObjectRef("", "v1", "Secret", "shop", "db")
    created = compare(ref, None, secret({"password": "hunter2"}))
    pruned = compare(ref, secret({"password": "hunter2"}), None)
    for result in (created, pruned):
        assert result.changed is True
        assert "aHVudGVyMg==" not in result.diff
        assert "password: <redacted:" in result.diff


# --- unified diff ------------------------------------------------------------------


def test_equal_objects_give_empty_diff_and_unchanged() -> None:
    result = compare(DEPLOY, deployment(), deployment())
    assert result.diff == ""
    assert result.changed is False
    assert unified_diff(DEPLOY, deployment(), deployment()) == ""


def test_diff_headers_name_the_object() -> None:
    diff = unified_diff(DEPLOY, deployment(2), deployment(3))
    assert diff.startswith(
        "--- live/Deployment.apps/shop/web\n+++ desired/Deployment.apps/shop/web\n"
    )
    assert "-  replicas: 2\n+  replicas: 3\n" in diff


def test_key_order_is_not_a_difference() -> None:
    a = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}}
    b = {"data": {"a": "1"}, "metadata": {"name": "x"}, "kind": "ConfigMap", "apiVersion": "v1"}
    assert compare(ObjectRef.of(a), a, b).changed is False


def test_pruned_object_is_all_removals() -> None:
    result = compare(DEPLOY, deployment(), None)
    assert result.changed is True
    assert result.predicted is None
    body = result.diff.splitlines()[3:]
    assert body and all(line.startswith("-") for line in body)


def test_nothing_on_either_side_is_unchanged() -> None:
    assert compare(DEPLOY, None, None).changed is False


@pytest.mark.parametrize(("a", "b"), [(1, 1.0), (1, True), (0.0, -0.0), ("1", 1)])
def test_values_equal_in_python_but_not_in_yaml_are_a_difference(a: object, b: object) -> None:
    # compare() skips the YAML dump when both sides are identical; ``==`` alone
    # would call these equal and hide a change the diff shows.
    live = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "spec": {"v": a}}
    predicted = copy.deepcopy(live)
    predicted["spec"]["v"] = b
    result = compare(ObjectRef.of(live), live, predicted)
    assert result.changed is True
    assert result.diff
