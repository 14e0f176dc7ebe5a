"""What the app resources API shows of one object, on plain data: Secret
masking (no value in any field) and a pod's phase and containers as Argo CD
and ``kubectl get pods`` show them."""

from __future__ import annotations

import base64
import json
from typing import Any

from gitmoor.model.redaction import RedactRule
from gitmoor.secrets.redact import Redactor, is_mask
from gitmoor.server.api.app_resources import masked, pod_view

VALUE = "correct-horse-battery-staple"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _secret() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "creds",
            "annotations": {LAST_APPLIED: json.dumps({"stringData": {"p": VALUE}}), "keep": "me"},
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:data": {"f:p": {}}}}],
        },
        "data": {"p": base64.b64encode(VALUE.encode()).decode()},
        "stringData": {"q": VALUE},
    }


def test_a_secret_keeps_no_value_in_any_field() -> None:
    original = _secret()
    out = masked(Redactor("ns/web/uid"), original)
    assert out is not None
    text = json.dumps(out)
    assert VALUE not in text
    assert base64.b64encode(VALUE.encode()).decode() not in text
    # stringData folded into data as the API server folds it; one value, one mask
    assert set(out["data"]) == {"p", "q"}
    assert is_mask(out["data"]["p"]) and out["data"]["p"] == out["data"]["q"]
    assert "stringData" not in out
    assert out["metadata"]["annotations"] == {"keep": "me"}
    assert "managedFields" not in out["metadata"]
    assert original == _secret(), "the object given is not changed"


def test_other_kinds_and_other_groups_secrets_are_unchanged() -> None:
    redactor = Redactor("ns/web/uid")
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    assert masked(redactor, cm) is cm
    custom = {"apiVersion": "example.com/v1", "kind": "Secret", "metadata": {"name": "s"}}
    assert masked(redactor, custom) is custom
    assert masked(redactor, None) is None


def test_a_redaction_rule_masks_a_configmap_field_and_keeps_the_others() -> None:
    redactor = Redactor("ns/web/uid", (RedactRule(kind="ConfigMap", fields=("data.*token*",)),))
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "annotations": {LAST_APPLIED: json.dumps({"data": VALUE})}},
        "data": {"api-token": VALUE, "color": "blue"},
    }
    out = masked(redactor, cm)
    assert out is not None and out is not cm
    assert is_mask(out["data"]["api-token"]) and out["data"]["color"] == "blue"
    assert VALUE not in json.dumps(out)
    assert cm["data"]["api-token"] == VALUE, "the object given is not changed"


def _pod(phase: str, state: dict[str, Any], ready: bool) -> dict[str, Any]:
    return {
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "main", "image": "nginx:1.27"}],
            "initContainers": [{"name": "init", "image": "busybox"}],
        },
        "status": {
            "phase": phase,
            "containerStatuses": [
                {"name": "main", "ready": ready, "restartCount": 3, "state": state}
            ],
        },
    }


def test_a_crashing_pod_shows_the_reason_not_running() -> None:
    view = pod_view(_pod("Running", {"waiting": {"reason": "CrashLoopBackOff"}}, False))
    assert view.phase == "CrashLoopBackOff"
    (main,) = view.containers
    assert (main.name, main.image, main.ready, main.restarts) == ("main", "nginx:1.27", False, 3)
    assert main.state == "waiting: CrashLoopBackOff"
    assert [c.name for c in view.initContainers] == ["init"]


def test_a_running_pod_and_a_terminating_one() -> None:
    assert pod_view(_pod("Running", {"running": {}}, True)).phase == "Running"
    pod = _pod("Running", {"running": {}}, True)
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert pod_view(pod).phase == "Terminating"
