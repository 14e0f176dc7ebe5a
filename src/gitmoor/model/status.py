"""The Application's status as typed data: what every reader and the one writer share.

The shape follows Argo CD's ``ApplicationStatus`` (``sync``, ``health``,
``resources``, ``conditions``, ``operationState``, ``history``) so that its users
read it at once, with what gitmoor adds:

- ``operationState.progress``: where a running sync stands (its pinned commit,
  the stage, the hooks it started, the objects a wave waits for), so that a sync
  is a step function that any process can resume (gitops-engine keeps the same
  in its ``syncContext`` and the operation state);
- ``inventory``: pointers to the inventory ConfigMaps that hold per-object detail
  (every resource, the last sync's per-object results) once an app has more than
  ``STATUS_RESOURCE_BOUND`` objects, since an Application of thousands of objects
  would otherwise cross etcd's request limit;
- ``summary``: counts of the app's objects by sync and by health status.

Every ``from_dict`` reads what an older gitmoor, a user's ``kubectl edit`` or a
hostile writer left: a field of the wrong type is read as absent, never raised,
because a status that cannot be parsed must not stop the app from being synced.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from gitmoor.model.refs import JSONDict, ObjectRef

#: at most this many objects are listed in the Application itself (the worst
#: first); beyond it the inventory holds all of them
STATUS_RESOURCE_BOUND = 100


class OpPhase(enum.Enum):
    """Operation phases, with Argo CD's names (``Terminating`` included)."""

    RUNNING = "Running"
    TERMINATING = "Terminating"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ERROR = "Error"

    @property
    def completed(self) -> bool:
        return self in (OpPhase.SUCCEEDED, OpPhase.FAILED, OpPhase.ERROR)


def _d(value: Any) -> JSONDict:
    return value if isinstance(value, dict) else {}


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _i(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return default


def _opt_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def ref_of(entry: Any) -> ObjectRef | None:
    """The ref a status entry names; None for a malformed entry."""
    if not isinstance(entry, dict):
        return None
    kind, name, version = entry.get("kind"), entry.get("name"), entry.get("version")
    if not (isinstance(kind, str) and kind and isinstance(name, str) and name):
        return None
    if not (isinstance(version, str) and version):
        return None
    return ObjectRef(_s(entry.get("group")), version, kind, _s(entry.get("namespace")), name)


# ---------------------------------------------------------------------- resources


@dataclass(frozen=True, slots=True)
class ResourceEntry:
    """One object of the app and how it compares (Argo CD's ``ResourceStatus``)."""

    ref: ObjectRef
    status: str = "Unknown"
    health: str = ""
    health_message: str = ""
    message: str = ""
    requires_pruning: bool = False
    ignore_extraneous: bool = False

    @classmethod
    def from_dict(cls, d: Any) -> ResourceEntry | None:
        ref = ref_of(d)
        if ref is None:
            return None
        h = _d(d.get("health"))
        return cls(
            ref,
            _s(d.get("status")) or "Unknown",
            _s(h.get("status")),
            _s(h.get("message")),
            _s(d.get("message")),
            d.get("requiresPruning") is True,
            d.get("ignoreExtraneous") is True,
        )

    def to_dict(self) -> JSONDict:
        out: JSONDict = {**self.ref.to_dict(), "status": self.status}
        if self.health:
            out["health"] = {"status": self.health} | (
                {"message": self.health_message} if self.health_message else {}
            )
        if self.requires_pruning:
            out["requiresPruning"] = True
        if self.ignore_extraneous:
            out["ignoreExtraneous"] = True
        if self.message:
            out["message"] = self.message
        return out

    @property
    def rank(self) -> int:
        """Lower is worse: what a bounded list shows first."""
        if self.health == "Degraded":
            return 0
        if self.status != "Synced":
            return 1
        if self.health not in ("", "Healthy"):
            return 2
        return 3


def bounded(
    entries: list[ResourceEntry], bound: int = STATUS_RESOURCE_BOUND
) -> list[ResourceEntry]:
    """All entries when they fit, else the worst ``bound`` of them (in their order)."""
    if len(entries) <= bound:
        return entries
    order = sorted(range(len(entries)), key=lambda i: (entries[i].rank, i))[:bound]
    return [entries[i] for i in sorted(order)]


def summary_of(entries: list[ResourceEntry]) -> JSONDict:
    """``status.summary``: the number of objects, by sync status and by health."""
    sync: dict[str, int] = {}
    health: dict[str, int] = {}
    for e in entries:
        sync[e.status] = sync.get(e.status, 0) + 1
        if e.health:
            health[e.health] = health.get(e.health, 0) + 1
    return {"total": len(entries), "sync": sync, "health": health}


@dataclass(frozen=True, slots=True)
class ResultEntry:
    """What a sync did to one object (Argo CD's ``ResourceResult``)."""

    ref: ObjectRef
    status: str
    message: str = ""
    sync_wave: int = 0
    hook_phase: str = ""
    taken_fields: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_dict(cls, d: Any) -> ResultEntry | None:
        ref = ref_of(d)
        if ref is None:
            return None
        taken = tuple(
            (_s(t.get("field")), _s(t.get("manager")))
            for t in _list(d.get("takenFields"))
            if isinstance(t, dict)
        )
        return cls(
            ref,
            _s(d.get("status")),
            _s(d.get("message")),
            _i(d.get("syncWave")),
            _s(d.get("hookPhase")),
            taken,
        )

    def to_dict(self) -> JSONDict:
        out: JSONDict = {
            **self.ref.to_dict(),
            "status": self.status,
            "message": self.message,
            "syncWave": self.sync_wave,
        }
        if self.hook_phase:
            out["hookPhase"] = self.hook_phase
        if self.taken_fields:
            out["takenFields"] = [{"field": f, "manager": m} for f, m in self.taken_fields]
        return out


# ---------------------------------------------------------------------- inventory


@dataclass(frozen=True, slots=True)
class InventoryRef:
    """Where one inventory document lives (``status.inventory.<doc>``)."""

    doc: str
    generation: int
    chunks: int
    count: int
    digest: str

    @classmethod
    def from_dict(cls, doc: str, d: Any) -> InventoryRef | None:
        d = _d(d)
        if not _s(d.get("digest")):
            return None
        return cls(
            doc,
            _i(d.get("generation")),
            _i(d.get("chunks")),
            _i(d.get("count")),
            _s(d.get("digest")),
        )

    def to_dict(self) -> JSONDict:
        return {
            "generation": self.generation,
            "chunks": self.chunks,
            "count": self.count,
            "digest": self.digest,
        }


# ---------------------------------------------------------------------- operation


@dataclass(frozen=True, slots=True)
class SyncOperation:
    """What was asked: Argo CD's ``operation.sync`` plus who asked."""

    revision: str = ""
    prune: bool | None = None
    dry_run: bool = False
    force_conflicts: bool | None = None
    #: a selective sync: (group, kind, name) of each object
    resources: tuple[tuple[str, str, str], ...] | None = None
    initiated_by: str = ""
    automated: bool = False
    #: a rollback to this history id
    rollback_id: int | None = None
    #: the source to sync (a rollback's recorded one); None: the spec's
    source: JSONDict | None = None
    #: a rollback that pins the app there (``gitmoor app rollback --pin``)
    rollback_pin: bool = False
    #: sync even though ``spec.dependsOn`` names apps not Synced and Healthy
    ignore_dependencies: bool = False
    #: why, when gitmoor started it by itself (``rollback-on-degraded: …``),
    #: recorded in the history entry
    reason: str = ""

    @classmethod
    def from_dict(cls, d: Any) -> SyncOperation:
        d = _d(d)
        sync = _d(d.get("sync"))
        who = _d(d.get("initiatedBy"))
        raw = sync.get("resources")
        resources = None
        if isinstance(raw, list) and raw:
            resources = tuple(
                (_s(r.get("group")), _s(r.get("kind")), _s(r.get("name")))
                for r in raw
                if isinstance(r, dict)
            )
        rollback = d.get("rollback")
        source = sync.get("source")
        return cls(
            revision=_s(sync.get("revision")),
            prune=_opt_bool(sync.get("prune")),
            dry_run=sync.get("dryRun") is True,
            force_conflicts=_opt_bool(sync.get("forceConflicts")),
            resources=resources,
            initiated_by=_s(who.get("username")),
            automated=who.get("automated") is True,
            rollback_id=_i(_d(rollback).get("id"), -1) if isinstance(rollback, dict) else None,
            source=source if isinstance(source, dict) else None,
            rollback_pin=_d(rollback).get("pin") is True,
            ignore_dependencies=sync.get("ignoreDependencies") is True,
            reason=_s(d.get("reason")),
        )

    def to_dict(self) -> JSONDict:
        sync: JSONDict = {"revision": self.revision}
        if self.prune is not None:
            sync["prune"] = self.prune
        if self.dry_run:
            sync["dryRun"] = True
        if self.force_conflicts is not None:
            sync["forceConflicts"] = self.force_conflicts
        if self.resources is not None:
            sync["resources"] = [{"group": g, "kind": k, "name": n} for g, k, n in self.resources]
        if self.source is not None:
            sync["source"] = self.source
        if self.ignore_dependencies:
            sync["ignoreDependencies"] = True
        out: JSONDict = {
            "sync": sync,
            "initiatedBy": {"username": self.initiated_by}
            | ({"automated": True} if self.automated else {}),
        }
        if self.rollback_id is not None:
            out["rollback"] = {"id": self.rollback_id} | (
                {"pin": True} if self.rollback_pin else {}
            )
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True, slots=True)
class Waiting:
    """One object a gate waits for, and why (its health message)."""

    ref: ObjectRef
    message: str

    def to_dict(self) -> JSONDict:
        return {**self.ref.to_dict(), "message": self.message}

    @classmethod
    def from_dict(cls, d: Any) -> Waiting | None:
        ref = ref_of(d)
        return None if ref is None else cls(ref, _s(d.get("message")))


#: the stages of a sync, in order (``Progress.stage``)
STAGES = ("pre-sync", "wave", "prune", "post-sync", "sync-fail", "done")


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a running sync stands: enough for any process to take the next step.

    ``stage`` is one of ``pre-sync``, ``wave``, ``prune``, ``post-sync``,
    ``sync-fail``, ``done``; ``wave`` indexes the plan's waves (the plan of one
    commit is the same in every process); ``part`` says how far the wave is:
    ``""`` not applied yet, ``hooks`` applied (its Sync hooks run), ``gate``
    applied and waiting for health since ``gate_since``. ``hooks`` maps each hook
    started to its state (``Running``, ``Succeeded``, ``Failed``), so a resumed
    sync never runs a hook twice. ``counts`` are the per-action totals so far."""

    commit: str = ""
    tag: str = ""
    stage: str = "pre-sync"
    wave: int = 0
    part: str = ""
    gate_since: str = ""
    hooks: tuple[tuple[str, str], ...] = ()
    waiting: tuple[Waiting, ...] = ()
    counts: tuple[tuple[str, int], ...] = ()
    #: the message a failure ends with (kept while SyncFail hooks run)
    failure: str = ""

    @classmethod
    def from_dict(cls, d: Any) -> Progress | None:
        d = _d(d)
        if not d:
            return None
        hooks = tuple(
            (str(k), v) for k, v in sorted(_d(d.get("hooks")).items()) if isinstance(v, str)
        )
        waiting = tuple(w for w in (Waiting.from_dict(x) for x in _list(d.get("waiting"))) if w)
        counts = tuple((str(k), _i(v)) for k, v in sorted(_d(d.get("counts")).items()))
        # A stage, wave or part this version never writes would skip work (a
        # stage "done", a wave past the last): read as "start over", which is safe
        # since a step re-applies nothing unchanged and skips hooks that succeeded.
        stage = _s(d.get("stage"))
        part = _s(d.get("part"))
        return cls(
            _s(d.get("commit")),
            _s(d.get("tag")),
            stage if stage in STAGES else "pre-sync",
            max(0, _i(d.get("wave"))) if stage in STAGES else 0,
            part if part in ("hooks", "gate") and stage in STAGES else "",
            _s(d.get("gateSince")),
            hooks,
            waiting,
            counts,
            _s(d.get("failure")),
        )

    def to_dict(self) -> JSONDict:
        out: JSONDict = {
            "commit": self.commit,
            "stage": self.stage,
            "wave": self.wave,
            "hooks": dict(self.hooks),
            "waiting": [w.to_dict() for w in self.waiting],
            "counts": dict(self.counts),
        }
        if self.tag:
            out["tag"] = self.tag
        if self.part:
            out["part"] = self.part
        if self.gate_since:
            out["gateSince"] = self.gate_since
        if self.failure:
            out["failure"] = self.failure
        return out


@dataclass(frozen=True, slots=True)
class SyncResultSummary:
    """``operationState.syncResult``: the commit and the per-object results, all of
    them or the first ``STATUS_RESOURCE_BOUND`` (failures first) with ``total``
    saying how many there are (the inventory's ``operation`` document has all)."""

    revision: str = ""
    resources: tuple[ResultEntry, ...] = ()
    total: int = 0
    source: JSONDict | None = None

    @classmethod
    def from_dict(cls, d: Any) -> SyncResultSummary:
        d = _d(d)
        entries = tuple(
            e for e in (ResultEntry.from_dict(r) for r in _list(d.get("resources"))) if e
        )
        source = d.get("source")
        return cls(
            _s(d.get("revision")),
            entries,
            _i(d.get("total"), len(entries)),
            source if isinstance(source, dict) else None,
        )

    def to_dict(self) -> JSONDict:
        out: JSONDict = {
            "revision": self.revision,
            "resources": [r.to_dict() for r in self.resources],
            "total": self.total,
        }
        if self.source is not None:
            out["source"] = self.source
        return out


@dataclass(frozen=True, slots=True)
class OperationState:
    phase: OpPhase
    message: str = ""
    operation: SyncOperation = field(default_factory=SyncOperation)
    started_at: str = ""
    finished_at: str = ""
    heartbeat_at: str = ""
    runner: str = ""
    retry_count: int = 0
    sync_result: SyncResultSummary | None = None
    progress: Progress | None = None

    @classmethod
    def from_dict(cls, d: Any) -> OperationState | None:
        d = _d(d)
        try:
            phase = OpPhase(d.get("phase"))
        except ValueError:
            return None
        result = d.get("syncResult")
        return cls(
            phase,
            _s(d.get("message")),
            SyncOperation.from_dict(d.get("operation")),
            _s(d.get("startedAt")),
            _s(d.get("finishedAt")),
            _s(d.get("heartbeatAt")),
            _s(d.get("runner")),
            _i(d.get("retryCount")),
            SyncResultSummary.from_dict(result) if isinstance(result, dict) else None,
            Progress.from_dict(d.get("progress")),
        )

    def to_dict(self) -> JSONDict:
        """Every key, absent ones as None: written with a merge patch, a key left
        out would keep the last operation's value."""
        return {
            "phase": self.phase.value,
            "message": self.message,
            "operation": self.operation.to_dict(),
            "startedAt": self.started_at or None,
            "finishedAt": self.finished_at or None,
            "heartbeatAt": self.heartbeat_at or None,
            "runner": self.runner or None,
            "retryCount": self.retry_count,
            "syncResult": self.sync_result.to_dict() if self.sync_result else None,
            "progress": self.progress.to_dict() if self.progress else None,
        }


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: int
    revision: str
    deployed_at: str = ""
    deploy_started_at: str = ""
    initiated_by: str = ""
    source: JSONDict | None = None
    #: why gitmoor deployed it by itself (``rollback-on-degraded: …``)
    reason: str = ""

    @classmethod
    def from_dict(cls, d: Any) -> HistoryEntry | None:
        d = _d(d)
        if "id" not in d or not _s(d.get("revision")):
            return None
        source = d.get("source")
        return cls(
            _i(d.get("id")),
            _s(d.get("revision")),
            _s(d.get("deployedAt")),
            _s(d.get("deployStartedAt")),
            _s(d.get("initiatedBy")),
            source if isinstance(source, dict) else None,
            _s(d.get("reason")),
        )

    def to_dict(self) -> JSONDict:
        out: JSONDict = {
            "id": self.id,
            "revision": self.revision,
            "deployedAt": self.deployed_at,
            "deployStartedAt": self.deploy_started_at,
            "initiatedBy": self.initiated_by,
        }
        if self.source is not None:
            out["source"] = self.source
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True, slots=True)
class AutomationStatus:
    """``status.automation``: what the automation remembers between passes for the
    rules that span them (``rollbackOnDegraded``): the last revision seen Synced
    and Healthy (with its history id and source, to roll back to), since when the
    deployed revision is Degraded, and the commits already rolled back from, so
    that a failed commit is rolled back once and never in a loop."""

    last_healthy: str = ""
    last_healthy_id: int = 0
    last_healthy_source: JSONDict | None = None
    degraded_revision: str = ""
    #: RFC 3339, when ``degraded_revision`` was first seen Degraded
    degraded_since: str = ""
    rolled_back_from: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: Any) -> AutomationStatus:
        d = _d(d)
        healthy, degraded = _d(d.get("lastHealthy")), _d(d.get("degraded"))
        source = healthy.get("source")
        return cls(
            _s(healthy.get("revision")),
            _i(healthy.get("historyId")),
            source if isinstance(source, dict) else None,
            _s(degraded.get("revision")),
            _s(degraded.get("since")),
            tuple(r for r in _list(d.get("rolledBackFrom")) if isinstance(r, str)),
        )

    def to_dict(self) -> JSONDict:
        """Every key, absent ones as None (a merge patch keeps what it leaves out)."""
        healthy: JSONDict | None = None
        if self.last_healthy:
            healthy = {"revision": self.last_healthy, "historyId": self.last_healthy_id}
            if self.last_healthy_source is not None:
                healthy["source"] = self.last_healthy_source
        return {
            "lastHealthy": healthy,
            "degraded": {"revision": self.degraded_revision, "since": self.degraded_since}
            if self.degraded_revision
            else None,
            "rolledBackFrom": list(self.rolled_back_from),
        }


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    message: str
    last_transition_time: str = ""

    @classmethod
    def from_dict(cls, d: Any) -> Condition | None:
        d = _d(d)
        if not _s(d.get("type")):
            return None
        return cls(_s(d.get("type")), _s(d.get("message")), _s(d.get("lastTransitionTime")))

    def to_dict(self) -> JSONDict:
        return {
            "type": self.type,
            "message": self.message,
            "lastTransitionTime": self.last_transition_time,
        }


@dataclass(frozen=True, slots=True)
class AppStatus:
    """The whole status subresource, typed."""

    sync_status: str = "Unknown"
    sync_revision: str = ""
    health_status: str = ""
    health_message: str = ""
    #: all of them, or the worst ``STATUS_RESOURCE_BOUND`` (the rest in the inventory)
    resources: tuple[ResourceEntry, ...] = ()
    total: int = 0
    conditions: tuple[Condition, ...] = ()
    reconciled_at: str = ""
    operation_state: OperationState | None = None
    history: tuple[HistoryEntry, ...] = ()
    inventory: tuple[InventoryRef, ...] = ()
    automation: AutomationStatus = field(default_factory=AutomationStatus)

    @classmethod
    def from_dict(cls, d: Any) -> AppStatus:
        d = _d(d)
        sync, health = _d(d.get("sync")), _d(d.get("health"))
        inv = _d(d.get("inventory"))
        resources = tuple(
            e for e in (ResourceEntry.from_dict(r) for r in _list(d.get("resources"))) if e
        )
        return cls(
            _s(sync.get("status")) or "Unknown",
            _s(sync.get("revision")),
            _s(health.get("status")),
            _s(health.get("message")),
            resources,
            _i(_d(d.get("summary")).get("total"), len(resources)),
            tuple(c for c in (Condition.from_dict(x) for x in _list(d.get("conditions"))) if c),
            _s(d.get("reconciledAt")),
            OperationState.from_dict(d.get("operationState")),
            tuple(h for h in (HistoryEntry.from_dict(x) for x in _list(d.get("history"))) if h),
            tuple(
                r for r in (InventoryRef.from_dict(str(k), v) for k, v in sorted(inv.items())) if r
            ),
            AutomationStatus.from_dict(d.get("automation")),
        )

    def inventory_ref(self, doc: str) -> InventoryRef | None:
        return next((r for r in self.inventory if r.doc == doc), None)

    @property
    def deployed_revision(self) -> str:
        """The revision of the last full sync that succeeded."""
        return self.history[-1].revision if self.history else ""


__all__ = [
    "STATUS_RESOURCE_BOUND",
    "AppStatus",
    "AutomationStatus",
    "Condition",
    "HistoryEntry",
    "InventoryRef",
    "OpPhase",
    "OperationState",
    "Progress",
    "ResourceEntry",
    "ResultEntry",
    "SyncOperation",
    "SyncResultSummary",
    "Waiting",
    "bounded",
    "ref_of",
    "summary_of",
]
