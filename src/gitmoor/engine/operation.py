"""The one writer of an Application's status.

Every status write of gitmoor goes through here, named by what happened: an
operation ``started``, ``progressed`` (a step that waits), ``finished`` (with the
refresh that follows it, in the same write), a ``refreshed`` comparison, an
operation ``interrupted`` or asked to ``terminate``, an ``invalid_spec``. The
shapes are ``gitmoor.model.status``'s; no driver builds a status dict.

A status write is a JSON merge patch of the status subresource: a key the
patch leaves out keeps its old value, so the operation state is always written
whole (``OperationState.to_dict`` names every key).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gitmoor.engine import store
from gitmoor.model.status import (
    AppStatus,
    Condition,
    HistoryEntry,
    OperationState,
    OpPhase,
    ResourceEntry,
    SyncOperation,
)

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from gitmoor.model import JSONDict
    from gitmoor.model.application import Application

log = logging.getLogger("gitmoor.engine.status")


def status_of(app: Application) -> AppStatus:
    """The app's status, typed (what every reader uses)."""
    return AppStatus.from_dict(app.status)


async def _write(kube: KubeClient, app: Application, patch: JSONDict) -> Application:
    return await store.patch_status(kube, app, patch)


async def started(
    kube: KubeClient,
    app: Application,
    operation: SyncOperation,
    runner: str,
    *,
    retry_count: int = 0,
) -> Application:
    now = store.now_iso()
    state = OperationState(
        OpPhase.RUNNING,
        "sync in progress",
        operation,
        started_at=now,
        heartbeat_at=now,
        runner=runner,
        retry_count=retry_count,
    )
    return await _write(kube, app, {"operationState": state.to_dict()})


async def progressed(kube: KubeClient, app: Application, state: OperationState) -> Application:
    """A step that waits: its progress, message and a fresh heartbeat."""
    return await _write(kube, app, {"operationState": state.to_dict()})


async def heartbeat(kube: KubeClient, app: Application) -> Application:
    return await _write(kube, app, {"operationState": {"heartbeatAt": store.now_iso()}})


def history_after(
    app: Application,
    revision: str,
    started_at: str,
    initiated_by: str,
    source: JSONDict,
    reason: str = "",
) -> list[JSONDict]:
    """The app's history with a new entry for a deploy of ``revision``, trimmed to
    ``spec.revisionHistoryLimit`` (Argo CD's rule)."""
    history = list(status_of(app).history)
    next_id = max((h.id for h in history), default=0) + 1
    history.append(
        HistoryEntry(next_id, revision, store.now_iso(), started_at, initiated_by, source, reason)
    )
    return [h.to_dict() for h in history[-app.spec.history_limit :]]


async def finished(
    kube: KubeClient,
    app: Application,
    state: OperationState,
    *,
    history: list[JSONDict] | None,
    refreshed: JSONDict | None,
) -> Application:
    """The operation's end, the history entry of a deploy and the refreshed status
    (sync, health, resources), in one write."""
    patch: JSONDict = {"operationState": state.to_dict()}
    if history is not None:
        patch["history"] = history
    if refreshed:
        patch.update(refreshed)
    return await _write(kube, app, patch)


async def refreshed(kube: KubeClient, app: Application, status: JSONDict) -> Application:
    return await _write(kube, app, status)


async def interrupted(kube: KubeClient, app: Application, message: str) -> Application:
    """An operation that ended before it could start (a malformed request)."""
    return await _write(
        kube,
        app,
        {
            "operationState": {
                "phase": OpPhase.FAILED.value,
                "message": message,
                "finishedAt": store.now_iso(),
            }
        },
    )


async def terminate(kube: KubeClient, app: Application) -> Application:
    """Ask a running operation to stop between steps (Argo CD's ``Terminating``)."""
    return await _write(kube, app, {"operationState": {"phase": OpPhase.TERMINATING.value}})


#: conditions the automation writes (``automation_recorded``), which a comparison
#: keeps: each writer owns its own types, so neither undoes the other's
AUTOMATION_CONDITIONS = ("SyncWaiting", "DependencyError")


def conditions(app: Application, ctype: str | None, message: str) -> list[JSONDict]:
    """The app's conditions after a comparison: at most one error or warning,
    keeping lastTransitionTime when the same condition stands (and the
    automation's own conditions as they are)."""
    current = status_of(app).conditions
    kept = [c.to_dict() for c in current if c.type in AUTOMATION_CONDITIONS]
    if ctype is None:
        return kept
    for c in current:
        if c.type == ctype and c.message == message:
            return [c.to_dict(), *kept]
    return [Condition(ctype, message, store.now_iso()).to_dict(), *kept]


def automation_conditions(app: Application, wanted: list[tuple[str, str]]) -> list[JSONDict]:
    """The app's conditions with the automation's replaced by ``wanted`` (type,
    message), keeping lastTransitionTime of those that stand."""
    current = status_of(app).conditions
    out = [c.to_dict() for c in current if c.type not in AUTOMATION_CONDITIONS]
    for ctype, message in wanted:
        same = next((c for c in current if c.type == ctype and c.message == message), None)
        out.append((same or Condition(ctype, message, store.now_iso())).to_dict())
    return out


async def automation_recorded(kube: KubeClient, app: Application, patch: JSONDict) -> Application:
    """What the automation keeps (``status.automation``, its conditions)."""
    return await _write(kube, app, patch)


async def invalid_spec(
    kube: KubeClient, name: str, namespace: str, status: JSONDict, message: str
) -> JSONDict | None:
    """An ``InvalidSpecError`` condition (Argo CD's name) for an app whose spec cannot
    be parsed, written once; the object written, or None when it stood already."""
    current = [c for c in (Condition.from_dict(x) for x in status.get("conditions") or []) if c]
    if any(c.type == "InvalidSpecError" and c.message == message for c in current):
        return None
    patch: JSONDict = {
        "status": {
            "sync": {"status": "Unknown"},
            "conditions": [Condition("InvalidSpecError", message, store.now_iso()).to_dict()],
            "reconciledAt": store.now_iso(),
        }
    }
    return await kube.merge_patch(store.app_ref(name, namespace), patch, subresource="status")


def resource_entries(raw: list[JSONDict]) -> list[ResourceEntry]:
    return [e for e in (ResourceEntry.from_dict(r) for r in raw) if e]


__all__ = [
    "AUTOMATION_CONDITIONS",
    "automation_conditions",
    "automation_recorded",
    "conditions",
    "finished",
    "heartbeat",
    "history_after",
    "interrupted",
    "invalid_spec",
    "progressed",
    "refreshed",
    "resource_entries",
    "started",
    "status_of",
    "terminate",
]
