"""What the automation of one app does after a refresh: sync now, look again later, or nothing.

``decide`` is a pure function of plain data (the app's spec, a summary of the
comparison just made, what the last sync left, the clock), so every rule of
``syncPolicy.automated`` has a golden case (``tests/unit/engine/test_decide.py``)
and the controller only carries the decision out. The rules, in the order they
are checked, follow Argo CD's ``autoSync`` (``controller/appcontroller.go``):

1. no ``automated`` policy: nothing (Argo CD: the same first guard);
2. ``suspended`` (``gitmoor app suspend``, Flux's ``spec.suspend``): nothing,
   though the status is still refreshed;
3. not OutOfSync (Synced, or Unknown because the comparison could not say):
   nothing (Argo CD: "Only perform auto-sync if we detect OutOfSync status");
4. the only drift is objects to prune and ``prune`` is off: nothing, since a
   sync would change nothing and only fill the history (Argo CD: "need to
   prune extra resources only but automated prune is disabled");
5. the last sync of this very commit ended in ``Error`` (an outage of git or
   the API server cut it off, not the manifests' fault): retried after the
   controller's backoff for the app, at most 60 s, whatever
   ``syncPolicy.retry`` says;
6. the last sync of this very commit ``Failed``: retried only under
   ``syncPolicy.retry`` (``limit`` attempts, ``duration × factor^n`` up to
   ``maxDuration`` apart), never in a loop (Argo CD's ``alreadyAttemptedSync``
   refuses a second automated sync of a failed revision; its operation retry
   strategy is what retries it);
7. drift at the commit last deployed: reverted only with ``selfHeal``, and not
   before ``self_heal_debounce`` seconds after the previous sync (Argo CD:
   "most recent sync already to …" without selfHeal; its ``selfHealTimeout``,
   5 s by default, with it);
8. otherwise Git moved on: the new commit is synced at once.

What issue 15 adds (gitmoor's own; Argo CD has neither app dependencies,
argo-cd#3517, nor a health-gated rollback):

- ``rollbackOnDegraded`` (checked after ``suspended``, whatever the sync
  status): the commit last deployed by an automated sync is Degraded for
  ``after`` seconds, the app is not pinned, a Healthy revision is known and
  this commit was never rolled back from: roll back to that revision (before
  ``after`` has passed: look again when it has). One rollback per failed
  commit: ``status.automation.rolledBackFrom`` remembers it;
- before any automated sync (after rule 4): a ``spec.dependsOn`` cycle refuses
  it (``DependencyError`` condition naming the members), a dependency not
  Synced and Healthy at its target holds it (``SyncWaiting``: "waiting for
  a (Progressing)"; the controller queues the app when a dependency changes),
  and a sync window of the project that forbids automated syncs holds it
  until the window says (``SyncWaiting``; looked at again then).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gitmoor.model.health import HealthStatus, SyncStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from gitmoor.engine.compare import Comparison
    from gitmoor.model.application import Application
    from gitmoor.model.status import AutomationStatus, HistoryEntry

#: an outage's retries wait at most this long: once the API server or the git
#: server is back, the app must follow within a minute, not after a long backoff
ERROR_RETRY_CAP = 60.0

#: operation phases (Argo CD's names) that ``decide`` reads in the last sync
PHASE_ERROR = "Error"
PHASE_FAILED = "Failed"


class Move(enum.Enum):
    NOTHING = "Nothing"
    SYNC = "Sync"
    WAIT = "Wait"
    ROLLBACK = "Rollback"


class Reason(enum.StrEnum):
    """Why: for a sync, the reason the controller records and reports (metrics,
    events, logs); for nothing, the rule that held it back."""

    NEW_COMMIT = "new-commit"
    SELF_HEAL = "self-heal"
    RETRY = "retry"
    RETRY_AFTER_ERROR = "retry-after-error"
    NOT_AUTOMATED = "not-automated"
    SUSPENDED = "suspended"
    SYNCED = "synced"
    PRUNE_ONLY_WITHOUT_PRUNE = "prune-only-drift-without-prune"
    RETRIES_EXHAUSTED = "failed-at-commit-retries-exhausted"
    NO_SELF_HEAL = "no-self-heal"
    ROLLBACK_ON_DEGRADED = "rollback-on-degraded"
    DEGRADED_GRACE = "degraded-within-grace"
    DEPENDENCY_CYCLE = "dependency-cycle"
    WAITING_FOR_DEPENDENCIES = "waiting-for-dependencies"
    SYNC_WINDOW = "sync-window"


@dataclass(frozen=True, slots=True)
class ComparisonSummary:
    """What ``decide`` needs of a comparison: the app's sync status, the commit it
    compared with, and how many objects drift, of which how many only need pruning."""

    sync: SyncStatus
    revision: str
    out_of_sync_count: int = 0
    #: of the OutOfSync objects, those that are live but no longer in Git
    requires_pruning_count: int = 0
    #: the app's health; None where the caller does not say (no rollback rule)
    health: HealthStatus | None = None

    @property
    def prune_only(self) -> bool:
        """Every object that drifts is one to prune (and at least one drifts)."""
        return 0 < self.out_of_sync_count == self.requires_pruning_count

    @classmethod
    def of(cls, comparison: Comparison) -> ComparisonSummary:
        # Every OutOfSync line counts here, IgnoreExtraneous ones included, as it
        # did before ``decide`` existed: such a line alone leaves the app Synced.
        out_of_sync = [r for r in comparison.resources if r.sync is SyncStatus.OUT_OF_SYNC]
        return cls(
            sync=comparison.sync,
            revision=comparison.revision,
            out_of_sync_count=len(out_of_sync),
            requires_pruning_count=sum(1 for r in out_of_sync if r.requires_pruning),
            health=comparison.health.status,
        )


@dataclass(frozen=True, slots=True)
class LastSync:
    """What the previous sync left: the commit it tried and how it ended (from the
    operation state), the commit last deployed (the newest history entry), and
    when this controller last saw a sync end (``time.monotonic()``; 0.0 when it
    has seen none since it started, so no debounce or backoff holds it back)."""

    revision: str = ""
    phase: str = ""
    retry_count: int = 0
    deployed: str = ""
    at: float = 0.0
    #: who deployed ``deployed`` (``automated``, ``automated-rollback``, a user)
    deployed_by: str = ""

    @classmethod
    def from_status(cls, status: Mapping[str, Any], at: float = 0.0) -> LastSync:
        """Read from an Application's ``status``; a field of the wrong type (an old
        writer, a ``kubectl edit``) is read as absent, never raised: a status that
        cannot be read must not stop the app's automation."""
        op_state = _dict(status.get("operationState"))
        history = status.get("history")
        newest = _dict(history[-1]) if isinstance(history, list) and history else {}
        return cls(
            revision=_str(_dict(op_state.get("syncResult")).get("revision")),
            phase=_str(op_state.get("phase")),
            retry_count=_count(op_state.get("retryCount")),
            deployed=_str(newest.get("revision")),
            at=at,
            deployed_by=_str(newest.get("initiatedBy")),
        )


@dataclass(frozen=True, slots=True)
class Gates:
    """What other objects say of an automated sync of the app, worked out by the
    controller (from the Applications and the project it watches): a message
    each, empty when the gate is open."""

    #: ``dependency cycle: a -> b -> a`` (this app is a member)
    cycle: str = ""
    #: ``waiting for a (Progressing)``
    dependencies: str = ""
    #: the sync window's sentence, when it forbids an automated sync now
    window: str = ""
    #: seconds until the window allows it (None: not known, e.g. a deny window
    #: with no end; the controller's interval looks again)
    window_wait: float | None = None
    #: when the window allows it (shown by ``app why``)
    window_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class RollbackState:
    """What ``rollbackOnDegraded`` needs from ``status.automation``: the last
    revision seen Healthy, for how long the deployed revision has been Degraded
    (None: it is not), and the commits already rolled back from."""

    last_healthy: str = ""
    degraded_for: float | None = None
    rolled_back_from: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    action: Move
    reason: Reason
    #: for WAIT: seconds until the app is looked at again
    delay: float = 0.0
    #: for SYNC: the attempt's number under ``syncPolicy.retry`` (0: not a retry)
    retry_count: int = 0
    #: for ROLLBACK: the revision to go back to
    target: str = ""


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _count(value: Any) -> int:
    # A count written as "2" (a hand edit) still counts; anything else is none.
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return 0


def _nothing(reason: Reason) -> Decision:
    return Decision(Move.NOTHING, reason)


def _sync_or_wait(reason: Reason, wait: float, retry_count: int = 0) -> Decision:
    if wait > 0:
        return Decision(Move.WAIT, reason, delay=wait)
    return Decision(Move.SYNC, reason, retry_count=retry_count)


def decide(
    app: Application,
    comparison: ComparisonSummary,
    last_sync: LastSync,
    now: float,
    *,
    self_heal_debounce: float,
    error_backoff: float,
    gates: Gates | None = None,
    rollback: RollbackState | None = None,
) -> Decision:
    """The automation's next move for ``app`` (the rules are in the module's docstring).

    ``now`` is on the clock of ``last_sync.at`` (``time.monotonic()``);
    ``error_backoff`` is the controller's current backoff for the app, of which at
    most ``ERROR_RETRY_CAP`` is waited after an Error.
    """
    policy = app.spec.sync_policy
    auto = policy.automated
    if auto is None:
        return _nothing(Reason.NOT_AUTOMATED)
    if policy.suspended:
        return _nothing(Reason.SUSPENDED)
    gates = gates or Gates()
    back = _rollback_on_degraded(app, comparison, last_sync, rollback or RollbackState())
    if back is not None:
        if back.action is Move.ROLLBACK and gates.window:
            return _window(gates)
        return back
    if comparison.sync is not SyncStatus.OUT_OF_SYNC:
        return _nothing(Reason.SYNCED)
    if not auto.prune and comparison.prune_only:
        return _nothing(Reason.PRUNE_ONLY_WITHOUT_PRUNE)
    if gates.cycle:
        return _nothing(Reason.DEPENDENCY_CYCLE)
    if gates.dependencies:
        return _nothing(Reason.WAITING_FOR_DEPENDENCIES)
    if gates.window:
        return _window(gates)

    commit = comparison.revision
    since = now - last_sync.at
    if last_sync.revision == commit and last_sync.phase == PHASE_ERROR:
        wait = min(error_backoff, ERROR_RETRY_CAP) - since
        return _sync_or_wait(Reason.RETRY_AFTER_ERROR, wait)
    if last_sync.revision == commit and last_sync.phase == PHASE_FAILED:
        attempts = last_sync.retry_count
        if attempts >= policy.retry.limit:
            return _nothing(Reason.RETRIES_EXHAUSTED)
        wait = policy.retry.delay(attempts) - since
        return _sync_or_wait(Reason.RETRY, wait, retry_count=attempts + 1)
    if commit == last_sync.deployed:
        if not auto.self_heal:
            return _nothing(Reason.NO_SELF_HEAL)
        return _sync_or_wait(Reason.SELF_HEAL, self_heal_debounce - since)
    return Decision(Move.SYNC, Reason.NEW_COMMIT)


def _window(gates: Gates) -> Decision:
    if gates.window_wait is None:
        return _nothing(Reason.SYNC_WINDOW)
    # At least a second: a window that opens "now" is not looked at in a hot loop.
    return Decision(Move.WAIT, Reason.SYNC_WINDOW, delay=max(gates.window_wait, 1.0))


def _rollback_on_degraded(
    app: Application, comparison: ComparisonSummary, last: LastSync, state: RollbackState
) -> Decision | None:
    """The ``rollbackOnDegraded`` rule; None when it does not apply."""
    auto = app.spec.sync_policy.automated
    after = auto.rollback_on_degraded_after if auto is not None else None
    commit = comparison.revision
    if (
        after is None
        or app.spec.sync_policy.pin is not None
        or comparison.health is not HealthStatus.DEGRADED
        or state.degraded_for is None
        # Only a commit the automation brought: a user's sync is the user's call.
        or last.deployed != commit
        or last.deployed_by != "automated"
        or not state.last_healthy
        or state.last_healthy == commit
        or commit in state.rolled_back_from
    ):
        return None
    if state.degraded_for < after:
        return Decision(Move.WAIT, Reason.DEGRADED_GRACE, delay=after - state.degraded_for)
    return Decision(Move.ROLLBACK, Reason.ROLLBACK_ON_DEGRADED, target=state.last_healthy)


def observe_health(
    recorded: AutomationStatus,
    comparison: ComparisonSummary,
    newest: HistoryEntry | None,
    now: datetime,
) -> AutomationStatus:
    """``status.automation`` after a refresh: the deployed revision seen Synced and
    Healthy becomes the last Healthy one (with its history id and source, what a
    rollback syncs); seen Degraded, since when (kept while it stays so)."""
    out = recorded
    deployed = newest.revision if newest is not None else ""
    at_deployed = bool(deployed) and comparison.revision == deployed
    if (
        at_deployed
        and newest is not None
        and comparison.sync is SyncStatus.SYNCED
        and comparison.health is HealthStatus.HEALTHY
    ):
        out = replace(
            out,
            last_healthy=deployed,
            last_healthy_id=newest.id,
            last_healthy_source=newest.source,
        )
    if at_deployed and comparison.health is HealthStatus.DEGRADED:
        if out.degraded_revision != deployed:
            out = replace(
                out, degraded_revision=deployed, degraded_since=now.isoformat(timespec="seconds")
            )
    elif out.degraded_revision:
        out = replace(out, degraded_revision="", degraded_since="")
    return out


def rollback_state(recorded: AutomationStatus, now: datetime) -> RollbackState:
    """What ``decide`` reads of ``status.automation``."""
    degraded_for = None
    if recorded.degraded_revision:
        try:
            since = datetime.fromisoformat(recorded.degraded_since.replace("Z", "+00:00"))
            degraded_for = max(0.0, (now - since).total_seconds())
        except ValueError:
            degraded_for = 0.0  # unreadable: counted from now on, never a rollback at once
    return RollbackState(recorded.last_healthy, degraded_for, recorded.rolled_back_from)


# ---------------------------------------------------------------- dependencies


def depends_on(obj: Mapping[str, Any]) -> tuple[str, ...]:
    """The names an Application's raw ``spec.dependsOn`` lists (read leniently:
    another app's spec may be invalid, and must not stop this one's check)."""
    deps = _dict(obj.get("spec")).get("dependsOn")
    if not isinstance(deps, list):
        return ()
    return tuple(n for n in (_str(_dict(d).get("name")) for d in deps) if n)


def _deps_reader(apps: Mapping[str, Mapping[str, Any]]) -> Callable[[str], tuple[str, ...]]:
    """``depends_on`` of the app named, read once and only when asked: a gate looks
    at the apps its own ``dependsOn`` reaches, not at every app of the namespace
    (the controller asks for each app at each refresh)."""
    memo: dict[str, tuple[str, ...]] = {}

    def deps(n: str) -> tuple[str, ...]:
        if n not in memo:
            obj = apps.get(n)
            memo[n] = depends_on(obj) if obj is not None else ()
        return memo[n]

    return deps


def _reach(start: Iterable[str], edges: Callable[[str], Iterable[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(edges(n))
    return seen


def dependency_cycle(name: str, apps: Mapping[str, Mapping[str, Any]]) -> tuple[str, ...]:
    """The members of the ``dependsOn`` cycle ``name`` is part of (sorted), or ()
    when it is in none: the apps reachable from it that also reach it back."""
    deps = _deps_reader(apps)
    forward = _reach(deps(name), deps)
    if name not in forward:
        return ()
    # Every path from an app of ``forward`` stays inside ``forward`` (what it
    # reaches, ``name`` reaches too), so the apps that reach ``name`` back are
    # found on the reversed edges among ``forward`` alone.
    reverse: dict[str, list[str]] = {}
    for n in forward:
        for d in deps(n):
            reverse.setdefault(d, []).append(n)
    back = _reach(reverse.get(name, ()), lambda n: reverse.get(n, ()))
    return tuple(sorted(forward & (back | {name})))


def cycle_path(name: str, apps: Mapping[str, Mapping[str, Any]]) -> tuple[str, ...]:
    """A shortest ``dependsOn`` path from ``name`` back to itself (``a, c, b, a``),
    or () when there is none: edges that exist, so the user knows which one to cut
    (the sorted members alone would name edges that are not there)."""
    deps = _deps_reader(apps)
    parent: dict[str, str] = {}
    todo = deque([name])
    while todo:
        n = todo.popleft()
        for d in deps(n):
            if d == name:
                path = [n]
                while path[-1] != name:
                    path.append(parent[path[-1]])
                return (*reversed(path), name)
            if d not in parent:
                parent[d] = n
                todo.append(d)
    return ()


#: at most this many apps are named in a cycle's message (a status condition)
CYCLE_NAMES_SHOWN = 10


def _names(names: Sequence[str], sep: str) -> str:
    more = len(names) - CYCLE_NAMES_SHOWN
    if more <= 0:
        return sep.join(names)
    return sep.join(names[:CYCLE_NAMES_SHOWN]) + f"{sep}... ({more} more)"


def dependency_state(obj: Mapping[str, Any] | None) -> str:
    """Why a dependency is not ready (``Progressing``, ``OutOfSync``, ``syncing``,
    ``does not exist``), or "" when it is Synced and Healthy at its target with no
    sync running."""
    if obj is None:
        return "does not exist"
    status = _dict(obj.get("status"))
    op_state = _dict(status.get("operationState"))
    if op_state.get("phase") in ("Running", "Terminating"):
        return "syncing"
    sync = _str(_dict(status.get("sync")).get("status")) or "Unknown"
    if sync != SyncStatus.SYNCED.value:
        return sync
    health = _str(_dict(status.get("health")).get("status")) or "Unknown"
    return "" if health == HealthStatus.HEALTHY.value else health


def dependency_gates(name: str, apps: Mapping[str, Mapping[str, Any]]) -> Gates:
    """The dependency part of ``Gates`` for app ``name`` among ``apps`` (the
    Applications of its namespace, raw, by name)."""
    obj = apps.get(name)
    deps = depends_on(obj) if obj is not None else ()
    if not deps:
        return Gates()
    cycle = dependency_cycle(name, apps)
    if cycle:
        path = cycle_path(name, apps)
        return Gates(
            cycle=f"dependency cycle among {_names(cycle, ', ')} ({_names(path, ' -> ')}): "
            "no automated sync until spec.dependsOn breaks it"
        )
    waiting = []
    for dep in deps:
        state = dependency_state(apps.get(dep))
        if state == "does not exist":
            waiting.append(f"{dep} ({dep} does not exist)")
        elif state:
            waiting.append(f"{dep} ({state})")
    return Gates(dependencies="waiting for " + ", ".join(waiting) if waiting else "")


#: the condition types the automation writes (``gitmoor.engine.operation`` keeps
#: them through a comparison)
WAITING_CONDITION = "SyncWaiting"
CYCLE_CONDITION = "DependencyError"


def automation_conditions(decision: Decision, gates: Gates) -> list[tuple[str, str]]:
    """The conditions (type, message) the app's status shows for this decision: a
    cycle always, a wait only while it holds a sync back."""
    out: list[tuple[str, str]] = []
    if gates.cycle:
        out.append((CYCLE_CONDITION, gates.cycle))
    if decision.reason is Reason.WAITING_FOR_DEPENDENCIES:
        out.append((WAITING_CONDITION, gates.dependencies))
    elif decision.reason is Reason.SYNC_WINDOW:
        out.append((WAITING_CONDITION, gates.window))
    return out


__all__ = [
    "CYCLE_CONDITION",
    "ERROR_RETRY_CAP",
    "WAITING_CONDITION",
    "ComparisonSummary",
    "Decision",
    "Gates",
    "LastSync",
    "Move",
    "Reason",
    "RollbackState",
    "automation_conditions",
    "cycle_path",
    "decide",
    "dependency_cycle",
    "dependency_gates",
    "dependency_state",
    "depends_on",
    "observe_health",
    "rollback_state",
]
