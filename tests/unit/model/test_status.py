"""The typed status: what one writer writes, every reader reads back; what a hostile
or older writer left is read as absent, never raised."""

from __future__ import annotations

from typing import Any

import pytest

from gitmoor.model import ObjectRef
from gitmoor.model.status import (
    STATUS_RESOURCE_BOUND,
    AppStatus,
    OperationState,
    OpPhase,
    Progress,
    ResourceEntry,
    ResultEntry,
    SyncOperation,
    SyncResultSummary,
    Waiting,
    bounded,
    summary_of,
)

REF = ObjectRef("apps", "v1", "Deployment", "shop", "web")


def test_an_operation_state_round_trips() -> None:
    state = OperationState(
        OpPhase.RUNNING,
        "waiting for wave 0: Deployment web: 0 of 1 ready",
        SyncOperation(
            revision="main",
            prune=True,
            force_conflicts=False,
            resources=(("apps", "Deployment", "web"),),
            initiated_by="alice",
            automated=True,
            rollback_id=3,
            source={"repoURL": "https://example.org/r.git", "path": "."},
        ),
        started_at="2026-12-01T00:00:00Z",
        heartbeat_at="2026-12-01T00:00:10Z",
        runner="controller/a",
        retry_count=2,
        sync_result=SyncResultSummary(
            "abc", (ResultEntry(REF, "created", "", 1, "", (("spec.replicas", "kubectl"),)),), 1
        ),
        progress=Progress(
            commit="abc",
            tag="v1.2.0",
            stage="wave",
            wave=1,
            part="gate",
            gate_since="2026-12-01T00:00:05Z",
            hooks=(("PreSync/Job/shop/pre", "Succeeded"),),
            waiting=(Waiting(REF, "0 of 1 ready"),),
            counts=(("created", 4),),
        ),
    )
    assert OperationState.from_dict(state.to_dict()) == state


def test_a_new_operation_state_clears_every_key_of_the_last_one() -> None:
    """A merge patch keeps what it does not name: to_dict names every key."""
    out = OperationState(OpPhase.RUNNING).to_dict()
    assert out["finishedAt"] is None and out["syncResult"] is None and out["progress"] is None


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "Running",
        {"phase": "Bogus"},
        {"phase": 3},
    ],
)
def test_an_unreadable_operation_state_is_absent(raw: Any) -> None:
    assert OperationState.from_dict(raw) is None


def test_hostile_fields_are_read_as_absent() -> None:
    st = AppStatus.from_dict(
        {
            "sync": "Synced",
            "health": {"status": 5},
            "resources": [
                {"kind": "ConfigMap"},
                "x",
                {"kind": "ConfigMap", "name": "a", "version": "v1"},
            ],
            "history": [{"id": "2", "revision": "abc"}, {"revision": "def"}, 7],
            "operationState": {
                "phase": "Succeeded",
                "retryCount": "x",
                "progress": {"hooks": {"a": 1, "b": "Running"}, "waiting": [None]},
                "syncResult": {"resources": [{"name": "n"}], "total": "many"},
            },
            "inventory": {
                "resources": {"digest": ""},
                "operation": {"digest": "sha256:1", "count": 3},
            },
        }
    )
    assert (st.sync_status, st.health_status) == ("Unknown", "")
    assert [e.ref.name for e in st.resources] == ["a"]
    assert [(h.id, h.revision) for h in st.history] == [(2, "abc")]
    op = st.operation_state
    assert op is not None and op.retry_count == 0
    assert op.progress is not None and op.progress.hooks == (("b", "Running"),)
    assert op.progress.waiting == ()
    assert op.sync_result is not None and op.sync_result.resources == ()
    assert st.inventory_ref("resources") is None
    ref = st.inventory_ref("operation")
    assert ref is not None and ref.count == 3


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"stage": "bogus", "wave": 3, "part": "gate"}, ("pre-sync", 0, "")),
        ({"stage": "wave", "wave": -2, "part": "gate"}, ("wave", 0, "gate")),
        ({"stage": "wave", "wave": "x", "part": "later"}, ("wave", 0, "")),
        ({"stage": "prune", "wave": 4}, ("prune", 4, "")),
    ],
)
def test_a_progress_no_version_writes_starts_over(
    raw: dict[str, Any], expected: tuple[str, int, str]
) -> None:
    """A hostile stage must not skip work: read as the start, which re-applies
    nothing unchanged and runs no succeeded hook again."""
    p = Progress.from_dict({"commit": "abc", **raw})
    assert p is not None
    assert (p.stage, p.wave, p.part) == expected


def test_the_bounded_list_keeps_the_worst_in_order() -> None:
    healthy = [
        ResourceEntry(ObjectRef("", "v1", "ConfigMap", "ns", f"cm-{i:03}"), "Synced", "Healthy")
        for i in range(STATUS_RESOURCE_BOUND + 50)
    ]
    bad = ResourceEntry(ObjectRef("", "v1", "ConfigMap", "ns", "late"), "OutOfSync", "Healthy")
    degraded = ResourceEntry(REF, "Synced", "Degraded", "crash loop")
    entries = [*healthy, bad, degraded]
    shown = bounded(entries)
    assert len(shown) == STATUS_RESOURCE_BOUND
    assert shown[-2:] == [bad, degraded], "the worst kept, in their original order"
    assert bounded(healthy[:3]) == healthy[:3]
    assert summary_of(entries) == {
        "total": len(entries),
        "sync": {"Synced": len(healthy) + 1, "OutOfSync": 1},
        "health": {"Healthy": len(healthy) + 1, "Degraded": 1},
    }
