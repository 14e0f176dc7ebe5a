"""The automation's decisions against golden cases: testdata/decide/cases.yaml.

Each case is what the controller holds after a refresh (the app's syncPolicy and
status, a summary of the comparison, when it last saw a sync end) and the
decision expected; the file's header describes the fields. Add a case by adding
an entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gitmoor.engine.automation import (
    ComparisonSummary,
    Decision,
    Gates,
    LastSync,
    Move,
    Reason,
    RollbackState,
    decide,
)
from gitmoor.engine.compare import Comparison, ResourceStatus
from gitmoor.model import Health, HealthStatus, ObjectRef, SyncStatus
from gitmoor.model.application import parse_application

CASES_FILE = Path(__file__).parent / "testdata" / "decide" / "cases.yaml"
CASES: list[dict[str, Any]] = yaml.safe_load(CASES_FILE.read_text())
#: any clock will do: only differences with the last sync's time count
NOW = 10_000.0


def run_case(case: dict[str, Any]) -> Decision:
    app = parse_application(
        {
            "metadata": {"name": "guestbook", "namespace": "gitmoor"},
            "spec": {
                "source": {"repoURL": "https://git.example/guestbook.git"},
                "destination": {"namespace": "guestbook"},
                "syncPolicy": case["syncPolicy"],
            },
            "status": case["status"],
        }
    )
    cmp = case["comparison"]
    summary = ComparisonSummary(
        sync=SyncStatus(cmp["sync"]),
        revision=cmp["revision"],
        out_of_sync_count=cmp.get("outOfSync", 0),
        requires_pruning_count=cmp.get("requiresPruning", 0),
        health=HealthStatus(cmp["health"]) if "health" in cmp else None,
    )
    gates = case.get("gates") or {}
    rollback = case.get("rollback") or {}
    ago = case.get("lastSyncSecondsAgo")
    last = LastSync.from_status(app.status, at=0.0 if ago is None else NOW - ago)
    return decide(
        app,
        summary,
        last,
        NOW,
        self_heal_debounce=case.get("selfHealDebounce", 5.0),
        error_backoff=case.get("errorBackoff", 2.0),
        gates=Gates(
            cycle=gates.get("cycle", ""),
            dependencies=gates.get("dependencies", ""),
            window=gates.get("window", ""),
            window_wait=gates.get("windowWait"),
        ),
        rollback=RollbackState(
            last_healthy=rollback.get("lastHealthy", ""),
            degraded_for=rollback.get("degradedFor"),
            rolled_back_from=tuple(rollback.get("rolledBackFrom", ())),
        ),
    )


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_golden_decision(case: dict[str, Any]) -> None:
    expect = case["expect"]
    decision = run_case(case)
    assert (decision.action, decision.reason) == (
        Move(expect["action"]),
        Reason(expect["reason"]),
    )
    if decision.action is Move.WAIT:
        assert decision.delay == pytest.approx(expect["delay"])
    else:
        assert decision.delay == 0.0
    if decision.action is Move.SYNC:
        assert decision.retry_count == expect["retryCount"]
    if decision.action is Move.ROLLBACK:
        assert decision.target == expect["target"]


def test_case_names_are_unique() -> None:
    names = [c["case"] for c in CASES]
    assert len(names) == len(set(names))


def test_every_reason_and_action_is_exercised() -> None:
    """A reason added to ``Reason`` without a golden case fails here."""
    seen = {(c["expect"]["action"], c["expect"]["reason"]) for c in CASES}
    assert {Reason(r) for _, r in seen} == set(Reason)
    assert {Move(a) for a, _ in seen} == set(Move)


def _resource(name: str, sync: SyncStatus, *, prune: bool = False) -> ResourceStatus:
    return ResourceStatus(
        ObjectRef("", "v1", "ConfigMap", "guestbook", name),
        sync,
        Health(HealthStatus.HEALTHY),
        requires_pruning=prune,
    )


def test_summary_counts_the_drift_and_what_only_needs_pruning() -> None:
    comparison = Comparison(
        "c2",
        (
            _resource("same", SyncStatus.SYNCED),
            _resource("changed", SyncStatus.OUT_OF_SYNC),
            _resource("extra", SyncStatus.OUT_OF_SYNC, prune=True),
        ),
        live={},
    )
    summary = ComparisonSummary.of(comparison)
    assert summary == ComparisonSummary(
        SyncStatus.OUT_OF_SYNC, "c2", 2, 1, health=comparison.health.status
    )
    assert not summary.prune_only


def test_summary_of_extra_objects_alone_is_prune_only() -> None:
    comparison = Comparison(
        "c1",
        (
            _resource("same", SyncStatus.SYNCED),
            _resource("extra", SyncStatus.OUT_OF_SYNC, prune=True),
        ),
        live={},
    )
    assert ComparisonSummary.of(comparison).prune_only


def test_no_drift_is_not_prune_only() -> None:
    assert not ComparisonSummary(SyncStatus.SYNCED, "c1").prune_only


def test_last_sync_reads_the_operation_state_and_the_newest_history_entry() -> None:
    status = {
        "operationState": {"phase": "Failed", "retryCount": 2, "syncResult": {"revision": "c2"}},
        "history": [{"revision": "c0"}, {"revision": "c1"}],
    }
    assert LastSync.from_status(status, at=12.5) == LastSync("c2", "Failed", 2, "c1", 12.5)


@pytest.mark.parametrize(
    "status",
    [
        {},
        {"operationState": None, "history": None},
        {"operationState": [], "history": "c1"},
        {"operationState": {"phase": 3, "retryCount": True, "syncResult": "c2"}},
        {"operationState": {"retryCount": "many"}, "history": [None]},
    ],
)
def test_last_sync_reads_a_malformed_status_as_absent(status: dict[str, Any]) -> None:
    assert LastSync.from_status(status) == LastSync()
