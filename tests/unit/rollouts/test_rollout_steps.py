"""The Rollout controller's arithmetic and decisions on plain data: the basic
canary's replica counts (the examples of upstream's
CalculateReplicaCountsForBasicCanary docstring), the current weight of a step,
maxSurge/maxUnavailable, the pod-template hash, the phase, and spec parsing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gitmoor.rollouts.canary import current_weight
from gitmoor.rollouts.context import compute_phase
from gitmoor.rollouts.replicasets import (
    RSCount,
    basic_canary_counts,
    fenceposts,
    history_to_delete,
    new_replicaset,
    pod_template_hash,
    weighted_counts,
)
from gitmoor.rollouts.spec import (
    BlueGreen,
    Canary,
    CanaryStep,
    RolloutSpecError,
    parse_duration,
    parse_rollout,
)

JSON = dict[str, Any]


@pytest.mark.parametrize(
    ("replicas", "weight", "unavailable", "surge", "expected"),
    [
        (10, 10, 1, 1, (1, 9)),
        (10, 30, 0, 3, (3, 10)),
        (10, 30, 5, 0, (0, 7)),
        (10, 5, 1, 0, (0, 9)),  # upstream's "do not round past maxSurge" case
        (1, 5, 0, 1, (1, 1)),
        (1, 95, 0, 1, (1, 1)),
    ],
)
def test_first_step_of_a_basic_canary_matches_upstream(
    replicas: int, weight: int, unavailable: int, surge: int, expected: tuple[int, int]
) -> None:
    got = basic_canary_counts(
        replicas=replicas,
        weight=weight,
        max_surge=surge,
        max_unavailable=unavailable,
        new=RSCount(0, 0),
        stable=RSCount(replicas, replicas),
    )
    assert got == expected


def test_second_reconcile_of_an_uneven_weight_adds_the_canary() -> None:
    # Upstream's "(part 2)": the stable gave up one pod, now the canary takes it.
    got = basic_canary_counts(
        replicas=10,
        weight=5,
        max_surge=0,
        max_unavailable=1,
        new=RSCount(0, 0),
        stable=RSCount(9, 9),
    )
    assert got == (1, 9)


def _walk(replicas: int, weight: int, surge: int, unavailable: int) -> list[tuple[int, int]]:
    """Reconcile until nothing changes, pods becoming available at once."""
    new, stable = RSCount(0, 0), RSCount(replicas, replicas)
    seen = []
    for _ in range(20):
        n, s = basic_canary_counts(
            replicas=replicas,
            weight=weight,
            max_surge=surge,
            max_unavailable=unavailable,
            new=new,
            stable=stable,
        )
        seen.append((n, s))
        if (n, s) == (new.replicas, stable.replicas):
            return seen
        new, stable = RSCount(n, n), RSCount(s, s)
    raise AssertionError(f"no fixed point: {seen}")


def test_weights_of_the_issues_canary_settle_on_replica_ratios() -> None:
    surge, unavailable = fenceposts(Canary(), 4)  # 25% each of 4
    assert (surge, unavailable) == (1, 1)
    assert _walk(4, 25, surge, unavailable)[-1] == (1, 3)
    assert _walk(4, 50, surge, unavailable)[-1] == (2, 2)
    assert _walk(4, 100, surge, unavailable)[-1] == (4, 0)
    # Never above replicas + maxSurge, never below replicas - maxUnavailable available.
    for n, s in _walk(4, 100, surge, unavailable):
        assert n + s <= 5


def test_abort_weight_zero_returns_replicas_to_stable() -> None:
    n, s = basic_canary_counts(
        replicas=4,
        weight=0,
        max_surge=1,
        max_unavailable=1,
        new=RSCount(2, 2),
        stable=RSCount(2, 2),
    )
    assert s > 2 and n <= 2
    assert weighted_counts(4, 0, 1) == (0, 4)


def test_no_stable_replicaset_means_the_new_one_takes_all() -> None:
    assert basic_canary_counts(
        replicas=3, weight=25, max_surge=1, max_unavailable=0, new=RSCount(0, 0), stable=None
    ) == (3, 0)


def test_weighted_counts_never_round_a_partial_weight_to_zero() -> None:
    assert weighted_counts(3, 10, 0)[0] == 1
    assert weighted_counts(3, 90, 0) == (2, 1)
    assert weighted_counts(3, 50, 0) == (2, 1)  # a tie takes the larger canary


def test_fenceposts_round_surge_up_unavailable_down_and_never_both_zero() -> None:
    assert fenceposts(Canary(max_surge="25%", max_unavailable="25%"), 10) == (3, 2)
    assert fenceposts(Canary(max_surge=0, max_unavailable="10%"), 5) == (0, 1)
    assert fenceposts(Canary(max_surge=2, max_unavailable=0), 5) == (2, 0)


STEPS = (
    CanaryStep(set_weight=25),
    CanaryStep(pause=True, pause_seconds=5.0),
    CanaryStep(set_weight=50),
    CanaryStep(pause=True),
)


def test_current_weight_is_the_last_set_weight_at_or_before_the_step() -> None:
    assert [current_weight(STEPS, i, aborted=False) for i in range(5)] == [25, 25, 50, 50, 100]
    assert current_weight(STEPS, 2, aborted=True) == 0
    assert current_weight((CanaryStep(pause=True),), 0, aborted=False) == 0


def test_pod_template_hash_is_stable_and_follows_the_template() -> None:
    a = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"image": "x:1"}]}}
    b = {"spec": {"containers": [{"image": "x:1"}]}, "metadata": {"labels": {"app": "web"}}}
    assert pod_template_hash(a) == pod_template_hash(b)
    assert pod_template_hash(a) != pod_template_hash(
        {**a, "spec": {"containers": [{"image": "x:2"}]}}
    )
    assert pod_template_hash(a) != pod_template_hash(a, collision_count=1)
    assert set(pod_template_hash(a)) <= set("bcdfghjklmnpqrstvwxz2456789")
    # The value is pinned: a restarted (or upgraded) controller must find its ReplicaSets.
    assert pod_template_hash(a) == pod_template_hash(dict(a))


def rollout_obj(strategy: JSON, **spec: Any) -> JSON:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "generation": 3},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}},
            "strategy": strategy,
            **spec,
        },
    }


def test_parse_blue_green_with_upstream_defaults() -> None:
    ro = parse_rollout(
        rollout_obj(
            {
                "blueGreen": {
                    "activeService": "a",
                    "previewService": "p",
                    "autoPromotionEnabled": False,
                    "prePromotionAnalysis": {
                        "templates": [{"templateName": "success-rate"}],
                        "args": [{"name": "service-name", "value": "p"}],
                    },
                }
            }
        )
    )
    assert isinstance(ro.strategy, BlueGreen)
    assert ro.replicas == 1 and ro.revision_history_limit == 10
    assert ro.progress_deadline_seconds == 600
    assert ro.strategy.scale_down_delay_seconds == 30
    assert ro.strategy.abort_scale_down_delay_seconds == 30
    assert ro.strategy.auto_promotion_enabled is False
    assert ro.strategy.pre_promotion_analysis is not None
    assert ro.strategy.pre_promotion_analysis.templates == ({"templateName": "success-rate"},)


def test_parse_canary_steps_and_durations() -> None:
    ro = parse_rollout(
        rollout_obj(
            {
                "canary": {
                    "steps": [
                        {"setWeight": 25},
                        {"pause": {"duration": "5s"}},
                        {"pause": {"duration": "1m30s"}},
                        {"pause": {}},
                        {"analysis": {"templates": [{"templateName": "t"}]}},
                    ]
                }
            },
            replicas=4,
        )
    )
    assert isinstance(ro.strategy, Canary)
    steps = ro.strategy.steps
    assert steps[0].set_weight == 25
    assert (steps[1].pause, steps[1].pause_seconds) == (True, 5.0)
    assert steps[2].pause_seconds == 90.0
    assert (steps[3].pause, steps[3].pause_seconds) == (True, None)
    assert steps[4].analysis is not None
    assert parse_duration(30) == 30.0 and parse_duration("2h") == 7200.0


@pytest.mark.parametrize(
    ("strategy", "spec", "message"),
    [
        ({}, {}, "strategy"),
        ({"blueGreen": {}}, {}, "activeService"),
        ({"canary": {"trafficRouting": {"nginx": {}}}}, {}, "trafficRouting"),
        ({"canary": {"steps": [{"setWeight": 120}]}}, {}, "setWeight"),
        ({"canary": {}}, {"selector": {}}, "selecting all pods"),
        # beyond Go's duration range: upstream refuses it; taken, the pause deadline
        # overflowed datetime and the reconcile crashed on every retry
        ({"canary": {"steps": [{"pause": {"duration": "1000000000h"}}]}}, {}, "duration"),
        ({"canary": {"steps": [{"pause": {"duration": 10**20}}]}}, {}, "duration"),
        ({"canary": {}}, {"progressDeadlineSeconds": 10**15}, "out of range"),
        ({"blueGreen": {"activeService": "a", "scaleDownDelaySeconds": 2**40}}, {}, "range"),
        # read only when the counts are computed: a crash at each reconcile, not InvalidSpec
        ({"canary": {"maxSurge": "abc%"}}, {}, "int or percentage"),
    ],
)
def test_invalid_specs_are_refused_with_a_reason(strategy: JSON, spec: JSON, message: str) -> None:
    with pytest.raises(RolloutSpecError, match=message):
        parse_rollout(rollout_obj(strategy, **spec))


def test_replicaset_carries_hash_revision_and_controller_reference() -> None:
    ro = parse_rollout(rollout_obj({"canary": {}}, replicas=2))
    rs = new_replicaset(ro, "abc", 0, 4)
    assert rs["metadata"]["name"] == "web-abc"
    assert rs["metadata"]["labels"]["rollouts-pod-template-hash"] == "abc"
    assert rs["spec"]["selector"]["matchLabels"] == {
        "app": "web",
        "rollouts-pod-template-hash": "abc",
    }
    assert rs["spec"]["template"]["metadata"]["labels"]["rollouts-pod-template-hash"] == "abc"
    assert rs["metadata"]["annotations"]["rollout.argoproj.io/revision"] == "4"
    owner = rs["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("Rollout", "u1", True)
    # The Rollout's own template is untouched by the hash label.
    assert "rollouts-pod-template-hash" not in ro.template["metadata"]["labels"]


def test_history_limit_deletes_the_oldest_idle_replicasets_only() -> None:
    def rs(rev: int, replicas: int) -> JSON:
        return {
            "metadata": {
                "name": f"r{rev}",
                "annotations": {"rollout.argoproj.io/revision": str(rev)},
            },
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas},
        }

    old = [rs(1, 0), rs(3, 0), rs(2, 0), rs(4, 1)]
    assert [r["metadata"]["name"] for r in history_to_delete(old, 1)] == ["r1", "r2"]
    assert history_to_delete(old, 10) == []


def test_phase_follows_upstreams_rules() -> None:
    bg = parse_rollout(rollout_obj({"blueGreen": {"activeService": "a"}}, replicas=2))
    healthy = {
        "currentPodHash": "h2",
        "stableRS": "h2",
        "updatedReplicas": 2,
        "availableReplicas": 2,
        "replicas": 2,
        "blueGreen": {"activeSelector": "h2"},
    }
    assert compute_phase(bg, healthy) == ("Healthy", "")
    paused = {**healthy, "pauseConditions": [{"reason": "BlueGreenPause", "startTime": "x"}]}
    assert compute_phase(bg, paused) == ("Paused", "BlueGreenPause")
    cutover = {**healthy, "blueGreen": {"activeSelector": "h1"}}
    assert compute_phase(bg, cutover) == ("Progressing", "active service cutover pending")
    aborted = {
        **healthy,
        "conditions": [
            {
                "type": "Progressing",
                "status": "False",
                "reason": "RolloutAborted",
                "message": 'Rollout aborted update to revision 2: Metric "success-rate" assessed Failed',
            }
        ],
    }
    assert compute_phase(bg, aborted) == (
        "Degraded",
        'RolloutAborted: Rollout aborted update to revision 2: Metric "success-rate" assessed Failed',
    )
    deadline = {
        **healthy,
        "conditions": [
            {"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "m"}
        ],
    }
    assert compute_phase(bg, deadline)[0] == "Degraded"
    canary = parse_rollout(rollout_obj({"canary": {}}, replicas=2))
    assert compute_phase(canary, {**healthy, "stableRS": "h1"}) == (
        "Progressing",
        "waiting for all steps to complete",
    )
    assert compute_phase(canary, {**healthy, "replicas": 3}) == (
        "Progressing",
        "old replicas are pending termination",
    )


def test_a_template_copied_back_from_a_replicaset_hashes_as_the_original() -> None:
    plain = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "web:1",
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
                }
            ]
        },
    }
    stored = {  # as the API server keeps it in a ReplicaSet (kubectl argo rollouts undo copies it)
        "metadata": {
            "creationTimestamp": None,
            "labels": {"app": "web", "rollouts-pod-template-hash": "x"},
        },
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "web:1",
                    "imagePullPolicy": "IfNotPresent",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "readinessProbe": {
                        "httpGet": {"path": "/", "port": 8080, "scheme": "HTTP"},
                        "timeoutSeconds": 1,
                        "periodSeconds": 10,
                        "successThreshold": 1,
                        "failureThreshold": 3,
                    },
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "securityContext": {},
            "schedulerName": "default-scheduler",
        },
    }
    assert pod_template_hash(stored) == pod_template_hash(plain)
    changed = json.loads(json.dumps(stored))
    changed["spec"]["terminationGracePeriodSeconds"] = 5
    assert pod_template_hash(changed) != pod_template_hash(plain)
    latest = {
        "spec": {"containers": [{"name": "m", "image": "web", "imagePullPolicy": "IfNotPresent"}]}
    }
    assert pod_template_hash(latest) != pod_template_hash(
        {"spec": {"containers": [{"name": "m", "image": "web"}]}}
    )
