"""``gitmoor app why`` against golden cases: one app (spec and status as the API
server returns them, plus what the caller worked out of other objects) and the
lines expected, one case per explanation the issue names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gitmoor.engine.automation import Gates
from gitmoor.engine.why import explain
from gitmoor.model.application import parse_application
from gitmoor.model.status import AppStatus

C1, C2 = "1" * 40, "2" * 40
DEPLOY = {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "web", "name": "web"}


def why(
    policy: dict[str, Any],
    status: dict[str, Any],
    gates: Gates | None = None,
    ahead: tuple[str, int | None] | None = None,
) -> list[str]:
    app = parse_application(
        {
            "metadata": {"name": "web", "namespace": "gitmoor"},
            "spec": {
                "source": {"repoURL": "https://git.example/r.git", "targetRevision": "main"},
                "destination": {"namespace": "web"},
                "syncPolicy": policy,
            },
            "status": status,
        }
    )
    return explain(app, AppStatus.from_dict(status), gates, ahead)


HEALTHY = {"sync": {"status": "Synced", "revision": C1}, "health": {"status": "Healthy"}}
OUT = {
    "sync": {"status": "OutOfSync", "revision": C2},
    "health": {"status": "Healthy"},
    "history": [{"id": 1, "revision": C1}],
    "resources": [{**DEPLOY, "status": "OutOfSync", "health": {"status": "Healthy"}}],
}

CASES: list[tuple[str, dict[str, Any], dict[str, Any], Gates | None, Any, list[str]]] = [
    ("all is well", {"automated": {}}, HEALTHY, None, None, [f"Synced and Healthy at {C1[:12]}"]),
    (
        "suspended",
        {"automated": {}, "suspended": True},
        HEALTHY,
        None,
        None,
        ["automation is suspended: no automated sync or self-heal until `gitmoor app resume web`"],
    ),
    (
        "manual app OutOfSync",
        {},
        OUT,
        None,
        None,
        ["automated sync is off: Git's changes wait for `gitmoor app sync web`"],
    ),
    (
        "pinned, the branch 3 commits ahead",
        {"automated": {}, "pin": {"revision": C1, "reason": "rollback to history entry 1"}},
        HEALTHY,
        None,
        (C2, 3),
        [
            f"pinned at {C1[:12]} (rollback to history entry 1); main is at {C2[:12]} "
            "(3 commits ahead); `gitmoor app unpin web` follows the branch again"
        ],
    ),
    (
        "waiting for a dependency",
        {"automated": {}},
        OUT,
        Gates(dependencies="waiting for db (Progressing)"),
        None,
        ["waiting for db (Progressing)"],
    ),
    (
        "a dependency cycle",
        {"automated": {}},
        {
            **HEALTHY,
            "conditions": [{"type": "DependencyError", "message": "dependency cycle among a, web"}],
        },
        None,
        None,
        ["dependency cycle among a, web"],
    ),
    (
        "a deny window",
        {"automated": {}},
        OUT,
        Gates(
            window="deny window 0 22 * * * (1h)", window_until=datetime(2026, 12, 1, 23, tzinfo=UTC)
        ),
        None,
        ["deny window 0 22 * * * (1h) (automated syncs resume at 2026-12-01T23:00:00+00:00)"],
    ),
    (
        "a failed commit not retried",
        {"automated": {}},
        {
            **OUT,
            "operationState": {
                "phase": "Failed",
                "message": "one or more objects failed to apply",
                "syncResult": {"revision": C2},
                "retryCount": 0,
            },
        },
        None,
        None,
        [
            f"the sync of {C2[:12]} failed (one or more objects failed to apply) and is not "
            "retried (syncPolicy.retry limit 0): push a fix or run `gitmoor app sync web`"
        ],
    ),
    (
        "a project refusal",
        {"automated": {}},
        {
            "sync": {"status": "Unknown"},
            "conditions": [
                {"type": "InvalidSpecError", "message": "project p does not permit web"}
            ],
        },
        None,
        None,
        ["refused: project p does not permit web"],
    ),
    (
        "a comparison error",
        {"automated": {}},
        {
            "sync": {"status": "Unknown"},
            "conditions": [{"type": "ComparisonError", "message": "kustomize build failed"}],
        },
        None,
        None,
        ["the comparison with Git failed: kustomize build failed"],
    ),
    (
        "a sync running with its step",
        {"automated": {}},
        {
            **OUT,
            "operationState": {
                "phase": "Running",
                "message": "waiting for wave 1 to be healthy",
                "progress": {
                    "stage": "wave",
                    "wave": 1,
                    "waiting": [{**DEPLOY, "message": "1 of 2 updated"}],
                },
            },
        },
        None,
        None,
        [
            "a sync is running (stage wave, wave 1): waiting for wave 1 to be healthy; "
            "waiting for Deployment/web: 1 of 2 updated"
        ],
    ),
    (
        "drift with self-heal off",
        {"automated": {}},
        {**OUT, "sync": {"status": "OutOfSync", "revision": C1}},
        None,
        None,
        [
            f"drift at the deployed commit {C1[:12]}, not reverted because selfHeal is off: Deployment/web"
        ],
    ),
    (
        "objects not healthy, with their messages",
        {"automated": {}},
        {
            "sync": {"status": "Synced", "revision": C1},
            "health": {"status": "Degraded"},
            "resources": [
                {
                    **DEPLOY,
                    "status": "Synced",
                    "health": {
                        "status": "Degraded",
                        "message": 'Deployment "web" exceeded its progress deadline',
                    },
                },
                {
                    **DEPLOY,
                    "kind": "Service",
                    "version": "v1",
                    "group": "",
                    "status": "Synced",
                    "health": {"status": "Healthy"},
                },
            ],
        },
        None,
        None,
        ['Degraded: Deployment/web Degraded: Deployment "web" exceeded its progress deadline'],
    ),
]


@pytest.mark.parametrize(
    ("policy", "status", "gates", "ahead", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_golden_explanation(
    policy: dict[str, Any],
    status: dict[str, Any],
    gates: Gates | None,
    ahead: Any,
    expected: list[str],
) -> None:
    assert why(policy, status, gates, ahead) == expected


def test_a_pin_whose_branch_did_not_move_says_so() -> None:
    lines = why({"automated": {}, "pin": {"revision": C1}}, HEALTHY, None, (C1, 0))
    assert lines[0].startswith(f"pinned at {C1[:12]}; main is at the same commit")


def test_unknown_commit_count_leaves_the_count_out() -> None:
    lines = why({"automated": {}, "pin": {"revision": C1}}, HEALTHY, None, (C2, None))
    assert f"main is at {C2[:12]};" in lines[0]
