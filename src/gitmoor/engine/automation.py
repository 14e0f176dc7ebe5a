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
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gitmoor.model.health import SyncStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gitmoor.engine.compare import Comparison
    from gitmoor.model.application import Application

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


@dataclass(frozen=True, slots=True)
class ComparisonSummary:
    """What ``decide`` needs of a comparison: the app's sync status, the commit it
    compared with, and how many objects drift, of which how many only need pruning."""

    sync: SyncStatus
    revision: str
    out_of_sync_count: int = 0
    #: of the OutOfSync objects, those that are live but no longer in Git
    requires_pruning_count: int = 0

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
        )


@dataclass(frozen=True, slots=True)
class Decision:
    action: Move
    reason: Reason
    #: for WAIT: seconds until the app is looked at again
    delay: float = 0.0
    #: for SYNC: the attempt's number under ``syncPolicy.retry`` (0: not a retry)
    retry_count: int = 0


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
    if comparison.sync is not SyncStatus.OUT_OF_SYNC:
        return _nothing(Reason.SYNCED)
    if not auto.prune and comparison.prune_only:
        return _nothing(Reason.PRUNE_ONLY_WITHOUT_PRUNE)

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


__all__ = [
    "ERROR_RETRY_CAP",
    "ComparisonSummary",
    "Decision",
    "LastSync",
    "Move",
    "Reason",
    "decide",
]
