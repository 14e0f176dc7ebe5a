"""`gitmoor rollout get`'s view and the plugin's promote patches, on plain objects.

The cases are the Argo Rollouts kubectl plugin's: which ReplicaSet is stable,
canary, active or preview (``GetReplicaSetInfo``), the phase while the controller
has not caught up (``GetRolloutPhase``), the canary step and weights, each
metric's measurements, which ReplicaSet a Service selects, and what ``promote``
writes in each state (``getPatches``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gitmoor.cli.rollout_cmd import render
from gitmoor.rollouts.actions import pick_revision, promote_patches
from gitmoor.rollouts.info import age, build_info, pod_status, step_text

JSON = dict[str, Any]
UID = "ro-uid"


def _rollout(strategy: JSON, status: JSON, *, generation: int = 1, paused: bool = False) -> JSON:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "ns", "uid": UID, "generation": generation},
        "spec": {
            "replicas": 2,
            "paused": paused,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "main", "image": "web:2"}]}},
            "strategy": strategy,
        },
        "status": status,
    }


def _rs(name: str, h: str, revision: int, image: str, *, replicas: int = 2) -> JSON:
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "generation": 1,
            "labels": {"app": "web", "rollouts-pod-template-hash": h},
            "annotations": {"rollout.argoproj.io/revision": str(revision)},
            "ownerReferences": [{"uid": UID, "kind": "Rollout", "controller": True}],
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "main", "image": image}]}},
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        },
    }


def _pod(name: str, rs: str, *, ready: bool = True, waiting: str = "") -> JSON:
    state: JSON = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {
        "metadata": {
            "name": name,
            "ownerReferences": [{"uid": f"uid-{rs}"}],
            "creationTimestamp": "2026-01-01T00:00:01Z",
        },
        "spec": {"containers": [{"name": "main"}]},
        "status": {
            "phase": "Running" if not waiting else "Pending",
            "containerStatuses": [{"ready": ready, "restartCount": 2, "state": state}],
        },
    }


BLUE_GREEN = {"blueGreen": {"activeService": "web-active", "previewService": "web-preview"}}
CANARY = {
    "canary": {
        "steps": [
            {"setWeight": 25},
            {"pause": {"duration": "5s"}},
            {"setWeight": 50},
            {"pause": {}},
        ]
    }
}


def _svc(h: str) -> JSON:
    return {"spec": {"selector": {"app": "web", "rollouts-pod-template-hash": h}}}


def test_blue_green_roles_pods_services_and_analysis() -> None:
    ro = _rollout(
        BLUE_GREEN,
        {
            "phase": "Paused",
            "message": "BlueGreenPause",
            "pauseConditions": [{"reason": "BlueGreenPause"}],
            "currentPodHash": "bbb",
            "stableRS": "aaa",
            "blueGreen": {"activeSelector": "aaa", "previewSelector": "bbb"},
            "observedGeneration": "1",
        },
    )
    foreign = _rs("other", "zzz", 9, "x:1")
    foreign["metadata"]["ownerReferences"] = [{"uid": "someone-else"}]
    run = {
        "metadata": {
            "name": "web-bbb-2-pre",
            "annotations": {"rollout.argoproj.io/revision": "2"},
            "ownerReferences": [{"uid": UID}],
        },
        "status": {
            "phase": "Successful",
            "metricResults": [
                {
                    "name": "success-rate",
                    "phase": "Successful",
                    "successful": 1,
                    "measurements": [
                        {
                            "phase": "Successful",
                            "value": "[0.98]",
                            "startedAt": "2026-01-01T00:00:02Z",
                            "finishedAt": "2026-01-01T00:00:03Z",
                        }
                    ],
                }
            ],
        },
    }
    info = build_info(
        ro,
        [_rs("web-aaa", "aaa", 1, "web:1"), _rs("web-bbb", "bbb", 2, "web:2"), foreign],
        [_pod("web-bbb-1", "web-bbb"), _pod("web-aaa-1", "web-aaa", waiting="CrashLoopBackOff")],
        [run],
        {"web-active": _svc("aaa"), "web-preview": _svc("bbb")},
    )
    assert (info.strategy, info.status, info.message) == ("BlueGreen", "Paused", "BlueGreenPause")
    assert info.paused and info.pause_reasons == ("BlueGreenPause",)
    # newest revision first; the ReplicaSet another object owns is not shown
    assert [(r.name, r.revision, r.roles) for r in info.replica_sets] == [
        ("web-bbb", 2, ("preview",)),
        ("web-aaa", 1, ("stable", "active")),
    ]
    new, old = info.replica_sets
    assert [(p.name, p.status, p.ready, p.restarts) for p in new.pods] == [
        ("web-bbb-1", "Running", "1/1", 2)
    ]
    assert old.pods[0].status == "CrashLoopBackOff" and old.pods[0].ready == "0/1"
    assert [(s.role, s.name, s.hash, s.replica_set) for s in info.services] == [
        ("active", "web-active", "aaa", "web-aaa"),
        ("preview", "web-preview", "bbb", "web-bbb"),
    ]
    [ar] = info.analysis_runs
    assert (ar.name, ar.phase, ar.revision) == ("web-bbb-2-pre", "Successful", 2)
    [metric] = ar.metrics
    assert (metric.name, metric.successful) == ("success-rate", 1)
    assert [(m.phase, m.value) for m in metric.measurements] == [("Successful", "[0.98]")]
    assert [(i.image, i.tags) for i in info.images] == [
        ("web:1", ("active", "stable")),
        ("web:2", ("preview",)),
    ]
    j = info.as_json()
    assert j["replicaSets"][0]["roles"] == ["preview"]
    assert j["analysisRuns"][0]["metrics"][0]["measurements"][0]["finishedAt"]
    text = render(info)
    assert "BlueGreenPause" in text and "# revision:2" in text
    assert "web-active  → aaa (web-aaa)" in text and "success-rate" in text


def test_canary_step_weights_and_roles() -> None:
    ro = _rollout(
        CANARY,
        {
            "phase": "Paused",
            "currentStepIndex": 1,
            "currentPodHash": "bbb",
            "stableRS": "aaa",
            "availableReplicas": 4,
            "pauseConditions": [{"reason": "CanaryPauseStep"}],
        },
    )
    info = build_info(
        ro,
        [
            _rs("web-aaa", "aaa", 1, "web:1", replicas=3),
            _rs("web-bbb", "bbb", 2, "web:2", replicas=1),
        ],
        [],
        [],
        {},
    )
    assert info.step == "1/4"
    assert [(s.text, s.state) for s in info.steps] == [
        ("setWeight: 25", "done"),
        ("pause: 5s", "current"),
        ("setWeight: 50", "pending"),
        ("pause", "pending"),
    ]
    assert (info.set_weight, info.actual_weight) == ("25", "25")
    assert {r.name: r.roles for r in info.replica_sets} == {
        "web-aaa": ("stable",),
        "web-bbb": ("canary",),
    }
    assert "→ 1: pause: 5s" in render(info)


def test_phase_waits_for_the_controller() -> None:
    stale = _rollout(BLUE_GREEN, {"phase": "Healthy", "observedGeneration": "1"}, generation=2)
    assert build_info(stale, [], [], [], {}).status == "Progressing"
    unpausing = _rollout(BLUE_GREEN, {"phase": "Paused", "controllerPause": True})
    info = build_info(unpausing, [], [], [], {})
    assert (info.status, info.message) == ("Progressing", "waiting for rollout to unpause")


def test_promote_patches_follow_the_plugin() -> None:
    paused_bg = _rollout(
        BLUE_GREEN,
        {"pauseConditions": [{"reason": "BlueGreenPause"}], "currentPodHash": "b", "stableRS": "a"},
        paused=True,
    )
    assert promote_patches(paused_bg) == ({"paused": False}, {"pauseConditions": None})
    assert promote_patches(paused_bg, full=True) == ({"paused": False}, {"promoteFull": True})
    # nothing to skip once the current pods are the stable ones
    done = _rollout(BLUE_GREEN, {"currentPodHash": "a", "stableRS": "a"})
    assert promote_patches(done, full=True) == (None, None)
    # a canary paused at a step: clear the conditions, the controller moves on
    at_pause = _rollout(CANARY, {"currentStepIndex": 3, "pauseConditions": [{"reason": "x"}]})
    assert promote_patches(at_pause) == (None, {"pauseConditions": None})
    # a canary in an analysis step, no pause condition: the plugin skips the step
    running = _rollout(CANARY, {"currentStepIndex": 2})
    assert promote_patches(running) == (None, {"pauseConditions": None, "currentStepIndex": 3})
    # Inconclusive step analysis paused by the controller: all three
    stuck = _rollout(
        CANARY,
        {
            "currentStepIndex": 1,
            "controllerPause": True,
            "pauseConditions": [{"reason": "InconclusiveAnalysisRun"}],
            "canary": {"currentStepAnalysisRunStatus": {"status": "Inconclusive"}},
        },
    )
    assert promote_patches(stuck) == (
        None,
        {"pauseConditions": None, "controllerPause": False, "currentStepIndex": 2},
    )


def test_undo_picks_the_previous_or_named_revision() -> None:
    rss = [_rs("a", "a", 1, "x:1"), _rs("c", "c", 3, "x:3"), _rs("b", "b", 2, "x:2")]
    assert pick_revision(rss, 0)["metadata"]["name"] == "b"
    assert pick_revision(rss, 1)["metadata"]["name"] == "a"


def test_small_readers() -> None:
    assert step_text({"pause": {"duration": 30}}) == "pause: 30s"
    assert step_text({"setCanaryScale": {"replicas": 2}}) == "setCanaryScale{replicas: 2}"
    deleted = _pod("p", "rs")
    deleted["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert pod_status(deleted)[0] == "Terminating"
    now = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert age("2026-01-01T00:00:00Z", now) == "5m"
