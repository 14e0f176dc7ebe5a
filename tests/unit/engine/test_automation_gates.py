"""The pure parts of issue 15's automation: dependency gates and cycles, what a
refresh records for ``rollbackOnDegraded``, the conditions a decision shows, and
the spec fields (dependsOn, pin, rollbackOnDegraded) as parsed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gitmoor.engine.automation import (
    ComparisonSummary,
    Decision,
    Gates,
    Move,
    Reason,
    automation_conditions,
    dependency_cycle,
    dependency_gates,
    dependency_state,
    observe_health,
    rollback_state,
)
from gitmoor.model import HealthStatus, SyncStatus, UserInputError
from gitmoor.model.application import Pin, parse_application
from gitmoor.model.status import AutomationStatus, HistoryEntry, SyncOperation

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def app(
    name: str,
    deps: tuple[str, ...] = (),
    sync: str = "Synced",
    health: str = "Healthy",
    **status: Any,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"dependsOn": [{"name": d} for d in deps]},
        "status": {"sync": {"status": sync}, "health": {"status": health}, **status},
    }


def test_a_ready_dependency_opens_the_gate() -> None:
    apps = {"web": app("web", ("db",)), "db": app("db")}
    assert dependency_gates("web", apps) == Gates()


def test_each_dependency_not_ready_is_named_with_its_state() -> None:
    apps = {
        "web": app(
            "web",
            (
                "db",
                "cache",
                "queue",
                "gone",
            ),
        ),
        "db": app("db", health="Progressing"),
        "cache": app("cache", sync="OutOfSync"),
        "queue": app("queue", operationState={"phase": "Running"}),
    }
    assert dependency_gates("web", apps).dependencies == (
        "waiting for db (Progressing), cache (OutOfSync), queue (syncing), gone (gone does not exist)"
    )


def test_a_cycle_names_its_members_and_not_the_apps_outside_it() -> None:
    apps = {
        "a": app("a", ("b",)),
        "b": app("b", ("c",)),
        "c": app("c", ("a",)),
        "d": app("d", ("a",)),
    }
    assert dependency_cycle("a", apps) == ("a", "b", "c")
    assert dependency_cycle("d", apps) == ()
    gates = dependency_gates("b", apps)
    assert "a, b, c" in gates.cycle and not gates.dependencies
    assert dependency_gates("d", apps).cycle == ""


def test_an_app_that_depends_on_itself_is_a_cycle() -> None:
    assert dependency_cycle("a", {"a": app("a", ("a",))}) == ("a",)


def test_a_malformed_dependency_list_of_another_app_is_read_as_none() -> None:
    apps = {"a": app("a", ("b",)), "b": {"metadata": {"name": "b"}, "spec": {"dependsOn": "x"}}}
    assert dependency_state(apps["b"]) == "Unknown"
    assert dependency_cycle("a", apps) == ()


def summary(sync: SyncStatus, health: HealthStatus, revision: str = "c2") -> ComparisonSummary:
    return ComparisonSummary(sync, revision, health=health)


def test_a_healthy_deployed_revision_becomes_the_last_healthy_one() -> None:
    newest = HistoryEntry(4, "c2", source={"repoURL": "r", "path": "p"})
    out = observe_health(
        AutomationStatus(), summary(SyncStatus.SYNCED, HealthStatus.HEALTHY), newest, NOW
    )
    assert (out.last_healthy, out.last_healthy_id, out.last_healthy_source) == (
        "c2",
        4,
        newest.source,
    )


def test_a_revision_not_yet_deployed_is_not_recorded_healthy() -> None:
    out = observe_health(
        AutomationStatus(),
        summary(SyncStatus.SYNCED, HealthStatus.HEALTHY),
        HistoryEntry(1, "c1"),
        NOW,
    )
    assert out == AutomationStatus()


def test_degraded_since_is_kept_while_it_stays_degraded_and_cleared_after() -> None:
    newest = HistoryEntry(2, "c2")
    degraded = summary(SyncStatus.SYNCED, HealthStatus.DEGRADED)
    first = observe_health(AutomationStatus(last_healthy="c1"), degraded, newest, NOW)
    assert (first.degraded_revision, first.degraded_since) == (
        "c2",
        NOW.isoformat(timespec="seconds"),
    )
    later = observe_health(first, degraded, newest, NOW + timedelta(minutes=3))
    assert later == first
    assert rollback_state(later, NOW + timedelta(minutes=3)).degraded_for == 180
    healed = observe_health(
        later, summary(SyncStatus.SYNCED, HealthStatus.PROGRESSING), newest, NOW
    )
    assert healed.degraded_revision == "" and rollback_state(healed, NOW).degraded_for is None


def test_status_automation_round_trips() -> None:
    st = AutomationStatus("c1", 3, {"repoURL": "r"}, "c2", "2026-12-01T12:00:00+00:00", ("c0",))
    assert AutomationStatus.from_dict(st.to_dict()) == st
    assert (
        AutomationStatus.from_dict({"rolledBackFrom": "c2", "lastHealthy": []})
        == AutomationStatus()
    )


@pytest.mark.parametrize(
    ("reason", "gates", "expected"),
    [
        (
            Reason.WAITING_FOR_DEPENDENCIES,
            Gates(dependencies="waiting for db (Progressing)"),
            [("SyncWaiting", "waiting for db (Progressing)")],
        ),
        (
            Reason.SYNC_WINDOW,
            Gates(window="deny window until 23:00"),
            [("SyncWaiting", "deny window until 23:00")],
        ),
        (
            Reason.SYNCED,
            Gates(cycle="dependency cycle among a, b"),
            [("DependencyError", "dependency cycle among a, b")],
        ),
        (Reason.SYNCED, Gates(dependencies="waiting for db (Progressing)"), []),
        (Reason.NEW_COMMIT, Gates(), []),
    ],
)
def test_conditions_of_a_decision(
    reason: Reason, gates: Gates, expected: list[tuple[str, str]]
) -> None:
    assert automation_conditions(Decision(Move.NOTHING, reason), gates) == expected


def base_spec(**extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "gitmoor"},
        "spec": {
            "source": {"repoURL": "https://git.example/r.git"},
            "destination": {"namespace": "web"},
            **extra,
        },
    }


def test_spec_fields_parse() -> None:
    a = parse_application(
        base_spec(
            dependsOn=[{"name": "db"}],
            syncPolicy={
                "automated": {"rollbackOnDegraded": {"after": "90s"}},
                "pin": {
                    "revision": "c1",
                    "historyId": 3,
                    "reason": "rollback",
                    "source": {"repoURL": "r"},
                },
            },
        )
    )
    assert [d.name for d in a.spec.depends_on] == ["db"]
    assert a.spec.sync_policy.automated is not None
    assert a.spec.sync_policy.automated.rollback_on_degraded_after == 90
    assert a.spec.sync_policy.pin == Pin("c1", 3, {"repoURL": "r"}, "rollback")
    default = parse_application(base_spec(syncPolicy={"automated": {"rollbackOnDegraded": {}}}))
    assert default.spec.sync_policy.automated is not None
    assert default.spec.sync_policy.automated.rollback_on_degraded_after == 300


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"dependsOn": [{"app": "db"}]}, "spec.dependsOn[0].name"),
        ({"dependsOn": "db"}, "spec.dependsOn"),
        ({"syncPolicy": {"pin": {"historyId": 1}}}, "spec.syncPolicy.pin"),
        (
            {"syncPolicy": {"automated": {"rollbackOnDegraded": {"after": "soon"}}}},
            "rollbackOnDegraded.after",
        ),
    ],
)
def test_malformed_spec_fields_are_refused_naming_the_field(
    extra: dict[str, Any], field: str
) -> None:
    with pytest.raises(UserInputError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_application(base_spec(**extra))


def test_operation_fields_round_trip() -> None:
    op = SyncOperation(
        revision="c1", rollback_id=2, rollback_pin=True, ignore_dependencies=True, reason="why"
    )
    assert SyncOperation.from_dict(op.to_dict()) == op
    entry = HistoryEntry(
        1, "c1", initiated_by="automated-rollback", reason="rollback-on-degraded: x"
    )
    assert HistoryEntry.from_dict(entry.to_dict()) == entry
