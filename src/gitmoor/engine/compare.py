"""Compare an app's desired objects with the cluster: sync status and health.

Each desired object is dry-run applied (server-side, field manager gitmoor)
and the server's answer compared with the live object after normalisation, so
defaulting, admission and other field managers never show up as drift (the
approach of Argo CD's server-side diff and Flux's ssa.Diff). Objects of the
inventory that the render no longer declares and that carry this app's
tracking id "require pruning" and make the app OutOfSync.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gitmoor.engine.health import health_of
from gitmoor.engine.live import read_live
from gitmoor.engine.normalize import BUILTIN_RULES, IgnoreRule, ResourceDiff, compare
from gitmoor.engine.plan import Role, directives
from gitmoor.engine.prepare import owned_by
from gitmoor.engine.redaction import redactor_for
from gitmoor.kube import ApiError
from gitmoor.model import (
    GitmoorError,
    Health,
    HealthStatus,
    JSONDict,
    Manifest,
    ObjectRef,
    SyncStatus,
    UserInputError,
)
from gitmoor.model.application import HOOK_ANNOTATION
from gitmoor.model.status import ResourceEntry

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from gitmoor.kube import KubeClient
    from gitmoor.kube.cache import ClusterCache
    from gitmoor.model.application import Application
    from gitmoor.secrets.redact import Redactor


@dataclass(frozen=True, slots=True)
class ResourceStatus:
    ref: ObjectRef
    sync: SyncStatus
    health: Health
    diff: ResourceDiff | None = None
    requires_pruning: bool = False
    message: str = ""
    #: requires pruning but, by Argo CD's compare option IgnoreExtraneous, leaves
    #: the app's sync status alone
    ignore_extraneous: bool = False

    def to_dict(self) -> JSONDict:
        """The status entry (``status.resources``, the inventory)."""
        return ResourceEntry(
            self.ref,
            self.sync.value,
            self.health.status.value,
            self.health.message,
            self.message,
            self.requires_pruning,
            self.ignore_extraneous,
        ).to_dict()


@dataclass(frozen=True, slots=True)
class Comparison:
    revision: str
    resources: tuple[ResourceStatus, ...]
    #: the live objects as read, NOT masked (Secret values included): for the
    #: engine's bookkeeping (verdicts, the next comparison), never to be shown;
    #: ``resources[i].diff`` holds the masked sides
    live: dict[ObjectRef, JSONDict] = field(hash=False)

    @property
    def sync(self) -> SyncStatus:
        """The app's sync status; an object kept by IgnoreExtraneous shows OutOfSync
        on its own line but does not count here (Argo CD's ``needsPruning`` rule)."""
        counted = [r for r in self.resources if not r.ignore_extraneous]
        if any(r.sync is SyncStatus.UNKNOWN for r in counted):
            return SyncStatus.UNKNOWN
        if any(r.sync is SyncStatus.OUT_OF_SYNC for r in counted):
            return SyncStatus.OUT_OF_SYNC
        return SyncStatus.SYNCED

    @property
    def health(self) -> Health:
        """The worst health of the declared objects (pruning candidates do not count)."""
        worst = Health.worst(r.health for r in self.resources if not r.requires_pruning)
        if worst.status is not HealthStatus.HEALTHY:
            # Named: "Service web: Waiting for the load balancer to get an address"
            # says what to look at; the bare reason does not.
            bad = [
                r
                for r in self.resources
                if r.health.status is worst.status and not r.requires_pruning
            ]
            if bad:
                why = bad[0].health.message or worst.status.value
                more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
                return Health(worst.status, f"{bad[0].ref.kind} {bad[0].ref.name}: {why}{more}")
        return worst


def is_hook(m: Manifest) -> bool:
    """Not one of the app's resources: a hook (run at its phase) or an object the
    sync skips (``Skip``, a Helm test hook). Both are left out of sync status, as in
    Argo CD (``controller/state.go``: hooks and skipped objects get no sync status).
    Argo CD's and Helm's hook annotations count (``plan.directives``)."""
    try:
        return directives(m.obj).role is not Role.RESOURCE
    except UserInputError:
        # A malformed gitmoor annotation: the plan refuses it with the reason;
        # here only the old rule (any gitmoor hook annotation) decides.
        return bool(m.annotations.get(HOOK_ANNOTATION, "").strip())


def prune_disabled(obj: JSONDict) -> bool:
    """``Prune=false`` in the live object's sync options (gitmoor's or Argo CD's)."""
    try:
        return not directives(obj).options.prune
    except GitmoorError:
        return False


def ignores_extraneous(obj: JSONDict) -> bool:
    """``argocd.argoproj.io/compare-options: IgnoreExtraneous`` on the live object."""
    try:
        return directives(obj).ignore_extraneous
    except GitmoorError:
        return False


_VALUE = re.compile(r'(Value:|Invalid value: |value: )("(?:[^"\\]|\\.)*"|\S+)')


def safe_message(ref: ObjectRef, message: str, redactor: Redactor | None = None) -> str:
    """The server's message, with the values it quotes masked for a Secret, and
    every value ``redactor`` learned (the app's Secret values and redacted fields)
    replaced by its mask.

    The API server quotes a rejected field's value ("expected string, got
    …{Value:987654321}"): for a Secret that is the secret itself, and the message
    goes to status, Events, notifications and logs. A value it quotes in another
    form than the manifest's (a number re-printed, a value cut short) is not one
    the Redactor knows, hence the pattern for Secrets as well.
    """
    if redactor is not None:
        message = redactor.scrub(message)
    if ref.kind != "Secret" or ref.group != "":
        return message
    return _VALUE.sub(r"\1<masked>", message)


def verdict_salt(rules: Sequence[IgnoreRule], redactor: Redactor | None) -> str:
    """What else than the object shapes a kept verdict (``DryRunCache.key``): the
    app's ignoreDifferences, and its redactions (a diff kept from before a rule
    was added would still show the field). Without redactions the salt is what it
    was before they existed, so the verdicts already kept still match."""
    salt = repr(tuple(rules))
    if redactor is not None and redactor.rules:
        salt += f"|redactions={redactor.rules!r}"
    return salt


def ignore_rules(app: Application) -> tuple[IgnoreRule, ...]:
    """The engine's built-in rules (``normalize.BUILTIN_RULES``: what a known
    controller writes into a declared object), then the app's ``ignoreDifferences``."""
    return BUILTIN_RULES + tuple(
        IgnoreRule(
            group=i.group,
            kind=i.kind,
            name=i.name or None,
            namespace=i.namespace or None,
            json_pointers=i.json_pointers,
        )
        for i in app.spec.ignore_differences
    )


def same_object(a: ObjectRef, b: ObjectRef) -> bool:
    """Equal but for the version: one object is served under every version of its group."""
    return a.key == b.key


def unversioned(ref: ObjectRef) -> tuple[str, str, str, str]:
    return ref.key


def prune_candidates(
    app: Application,
    desired: Sequence[Manifest],
    inventory: Iterable[ObjectRef],
    live: dict[ObjectRef, JSONDict],
) -> list[ObjectRef]:
    """Inventory objects no longer declared that exist and that this app owns.

    An object without this app's tracking id is never a candidate, whatever the
    inventory says: gitmoor deletes only what it can prove it created.
    """
    declared = {unversioned(m.ref) for m in desired}
    out = []
    for ref in inventory:
        if unversioned(ref) in declared:
            continue
        obj = live.get(ref)
        if obj is None or not owned_by(app, obj):
            continue
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            continue  # on its way out already (a prune's foreground deletion)
        out.append(ref)
    return out


async def dry_run(kube: KubeClient, m: Manifest) -> JSONDict:
    return await kube.apply(m.obj, ref=m.ref, dry_run=True, force=True)


async def judge(
    writer: KubeClient,
    m: Manifest,
    live: JSONDict,
    rules: Sequence[IgnoreRule],
    dry_runs: DryRunCache | None,
    *,
    body: JSONDict | None = None,
    redactor: Redactor | None = None,
) -> ResourceDiff:
    """Would applying ``m`` change ``live``? The one dry-run + diff of refresh, diff
    and sync: a server-side dry-run of ``body`` (default ``m.obj``; the sync sends
    the object with the version annotations it would write) compared with the live
    object after normalisation, remembered in ``dry_runs`` by (object, live
    resourceVersion, content), so a verdict that still holds costs no request.

    The dry-run takes every field (force): it writes nothing and only asks "would
    applying change the object?". Unforced, a field another manager holds would
    fail it before that is asked. ApiError (a rejected object) is raised.

    Both sides are masked by ``redactor`` (the app's); the object is learned by it
    first, so a verdict from the cache still leaves its values known to ``scrub``."""
    if redactor is not None:
        redactor.learn(m.obj)
    key = DryRunCache.key(m, live, verdict_salt(rules, redactor)) if dry_runs is not None else None
    if dry_runs is not None and key is not None:
        cached = dry_runs.get(key)
        if cached is not None:
            return cached
    predicted = await writer.apply(body or m.obj, ref=m.ref, dry_run=True, force=True)
    diff = compare(m.ref, live, predicted, rules, redactor)
    if dry_runs is not None and key is not None:
        dry_runs.put(key, diff)
    return diff


class DryRunCache:
    """Comparisons remembered by (object, live resourceVersion, desired content).

    When neither the rendered object nor the live one changed, the server's
    dry-run answer cannot have changed either (barring a webhook or a CRD
    default that changed meanwhile, which the periodic full refresh catches when
    the cache is cleared), so an unchanged app is compared without a request.
    Only the verdict and the diff text are kept, not the objects.
    """

    def __init__(self, maxsize: int = 100_000) -> None:
        self._entries: OrderedDict[tuple[str, str, str, str, str, str], ResourceDiff] = (
            OrderedDict()
        )
        self.maxsize = maxsize
        self.hits = 0

    @staticmethod
    def key(m: Manifest, live: JSONDict, salt: str = "") -> tuple[str, str, str, str, str, str]:
        """``salt`` carries what else shapes the verdict (the app's ignoreDifferences)."""
        rv = str((live.get("metadata") or {}).get("resourceVersion", ""))
        digest = hashlib.sha256(
            json.dumps(m.obj, sort_keys=True, separators=(",", ":")).encode() + salt.encode()
        ).hexdigest()
        return (m.ref.group, m.ref.kind, m.ref.namespace, m.ref.name, rv, digest)

    def get(self, key: tuple[str, str, str, str, str, str]) -> ResourceDiff | None:
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return hit

    def put(self, key: tuple[str, str, str, str, str, str], diff: ResourceDiff) -> None:
        self._entries[key] = ResourceDiff(diff.ref, None, None, diff.diff, diff.changed)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


async def compare_app(
    app: Application,
    revision: str,
    desired: Sequence[Manifest],
    kube: KubeClient,
    inventory: Iterable[ObjectRef] = (),
    *,
    cache: ClusterCache | None = None,
    dry_runs: DryRunCache | None = None,
    dry_run_as: KubeClient | None = None,
    known: dict[ObjectRef, JSONDict] | None = None,
    redactor: Redactor | None = None,
) -> Comparison:
    """Compare the app's desired objects with the live ones.

    Live objects are read with ``kube`` (or from ``cache``), but for those in
    ``known``: what a sync that just ran read and wrote (the apply's answer is
    the object as it is now), so the comparison after a sync lists nothing
    again. Dry-runs go out on
    ``dry_run_as`` when given: the identity the sync would write with (a
    project's ServiceAccount), since a server-side dry-run is a PATCH that RBAC
    judges like the write itself.

    Every diff and message is masked by ``redactor`` (the app's, from
    ``redactor_for``; by default the app's own rules without its project's).
    """
    redactor = redactor or redactor_for(app)
    inventory = list(inventory)
    writer = dry_run_as or kube
    resources = [m for m in desired if not is_hook(m)]
    wanted = [m.ref for m in resources] + inventory
    known = known or {}
    live = {r: known[r] for r in wanted if r in known}
    live.update(await read_live(kube, [r for r in wanted if r not in known], cache))
    rules = ignore_rules(app)
    for obj in live.values():
        # The values live now (an old Secret value) may be quoted by an error too.
        redactor.learn(obj)

    def health(obj: JSONDict) -> Health:
        # A controller's status message may quote a redacted field of its object.
        h = health_of(obj)
        return Health(h.status, redactor.scrub(h.message)) if h.message else h

    async def one(m: Manifest) -> ResourceStatus:
        current = live.get(m.ref)
        if current is None:
            # Shown as wholly added; the desired object stands in for the dry-run,
            # which may fail before its namespace or CRD exists.
            return ResourceStatus(
                m.ref,
                SyncStatus.OUT_OF_SYNC,
                Health(HealthStatus.MISSING),
                compare(m.ref, None, m.obj, rules, redactor),
            )
        try:
            diff = await judge(writer, m, current, rules, dry_runs, redactor=redactor)
        except ApiError as e:
            return ResourceStatus(
                m.ref,
                SyncStatus.OUT_OF_SYNC,
                health(current),
                message=f"dry-run failed: {safe_message(m.ref, e.message, redactor)}",
            )
        sync = SyncStatus.OUT_OF_SYNC if diff.changed else SyncStatus.SYNCED
        return ResourceStatus(m.ref, sync, health(current), diff)

    statuses = list(await asyncio.gather(*(one(m) for m in resources)))
    # Declared means in Git, hooks and skipped objects included: a Skip object the
    # app applied before is left alone, not pruned (Argo CD has a target for it).
    for ref in prune_candidates(app, desired, inventory, live):
        obj = live[ref]
        extraneous_ok = ignores_extraneous(obj)
        statuses.append(
            ResourceStatus(
                ref,
                SyncStatus.OUT_OF_SYNC,
                health(obj),
                compare(ref, obj, None, rules, redactor),
                requires_pruning=True,
                message="no longer in Git"
                + (" (Prune=false: kept)" if prune_disabled(obj) else "")
                + (" (IgnoreExtraneous: the app stays Synced)" if extraneous_ok else ""),
                ignore_extraneous=extraneous_ok,
            )
        )
    return Comparison(revision, tuple(statuses), live)
