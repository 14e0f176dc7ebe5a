"""The Rollout controller: reconciles every ``Rollout`` (blueGreen, basic canary)
as Argo Rollouts' controller does, part of ``gitmoor controller``.

Watches (one :class:`~gitmoor.kube.cache.ClusterCache` each, so that nothing
is polled): Rollouts, the ReplicaSets labelled ``rollouts-pod-template-hash``
and AnalysisRuns; a change to a ReplicaSet or AnalysisRun queues the Rollout
that controls it. A Rollout is also queued at the moment something falls due
(a timed pause, autoPromotionSeconds, a scale-down deadline, the progress
deadline) and every ``resync`` seconds, as client-go informers resync.

Each reconcile reads the Rollout afresh, computes what to do from its status
and its ReplicaSets alone (no state in memory survives a reconcile, so a
restarted controller resumes any rollout where it was), acts, and writes the
status through the ``status`` subresource with the resourceVersion it read:
a promote or abort written meanwhile makes the write fail with 409 and the
Rollout is reconciled again from what the user wrote. Nothing is written when
nothing changed.

GitOps-safety: every write is under the field manager ``gitmoor-rollouts``.
ReplicaSets and AnalysisRuns carry an ownerReference to the Rollout and no
tracking id, so the app neither diffs nor prunes them (Argo CD shows them as
children, as here). Service selectors are the one field shared with Git: a
Service's ``spec.selector`` is an atomic map under server-side apply, so the
app keeps the ``rollouts-pod-template-hash`` key only by ignoring it in its
diff and sending the live value back on apply (Argo CD's ignoreDifferences +
RespectIgnoreDifferences recipe for Argo Rollouts; see ``point_service``), which
the engine does for every app by itself (``gitmoor.engine.normalize.BUILTIN_RULES``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gitmoor.kube import ConflictError, NotFoundError
from gitmoor.kube.cache import ClusterCache, Key
from gitmoor.model import GitmoorError, JSONDict, ObjectRef
from gitmoor.rollouts import replicasets as rsu
from gitmoor.rollouts.analysis_controller import AnalysisController
from gitmoor.rollouts.bluegreen import reconcile_blue_green
from gitmoor.rollouts.canary import reconcile_canary
from gitmoor.rollouts.context import (
    RolloutContext,
    compute_phase,
    finish_status,
    set_condition,
)
from gitmoor.rollouts.crds import FOREIGN_CRDS_MESSAGE, rollout_crds_state
from gitmoor.rollouts.spec import GROUP, VERSION, RolloutSpecError, parse_rollout
from gitmoor.rollouts.workqueue import WorkQueue

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient

log = logging.getLogger("gitmoor.rollouts.controller")

ROLLOUT = ObjectRef(GROUP, VERSION, "Rollout", "", "")
ANALYSIS_RUN = ObjectRef(GROUP, VERSION, "AnalysisRun", "", "")
REPLICA_SET = ObjectRef("apps", "v1", "ReplicaSet", "", "")

#: (namespace, name) of a Rollout
RolloutKey = tuple[str, str]

#: the retry delay after a failed reconcile, doubled for each consecutive failure
#: of the same Rollout up to RETRY_MAX (client-go's per-item exponential rate
#: limiter, which upstream's workqueue uses), so a Rollout that fails the same way
#: every time is retried ever more slowly instead of 20 times a second
RETRY_BASE = 0.05
RETRY_MAX = 60.0


def _rollout_owner(obj: JSONDict) -> str:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "Rollout" and ref.get("controller"):
            return str(ref.get("name") or "")
    return ""


class RolloutController:
    """Run with ``await RolloutController(kube, namespace).run(stop)``; an empty
    ``namespace`` watches every namespace."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str = "",
        *,
        workers: int = 2,
        resync: float = 60.0,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.workers = workers
        self.resync = resync
        self.cache = ClusterCache(
            kube, label_selector="", namespace=namespace, on_change=self._changed
        )
        self.rs_cache = ClusterCache(
            kube, label_selector=rsu.HASH_LABEL, namespace=namespace, on_change=self._changed
        )
        self.queue: WorkQueue[RolloutKey] = WorkQueue()
        #: consecutive failed reconciles of each Rollout (the retry backoff)
        self._failures: dict[RolloutKey, int] = {}
        #: reconciles by outcome (ok, conflict, error, invalid); read by tests
        self.reconciles: dict[str, int] = {}

    # ------------------------------------------------------------------ queue

    def enqueue(self, namespace: str, name: str) -> None:
        self.queue.add((namespace, name))

    def enqueue_at(self, key: RolloutKey, at: datetime) -> None:
        """Reconcile ``key`` at ``at`` (a moment past it), unless a timer of the key
        fires before that anyway (several things may fall due in one reconcile)."""
        delay = max(0.0, (at - datetime.now(UTC)).total_seconds()) + 0.05
        self.queue.add_after(key, delay, keep_earlier=True)

    def retry_later(self, key: RolloutKey, *, at_least: float = 0.0) -> None:
        """Reconcile ``key`` again after the backoff of its consecutive failures."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay = max(at_least, min(RETRY_BASE * 2 ** min(n, 32), RETRY_MAX))
        self.enqueue_at(key, datetime.fromtimestamp(time.time() + delay, UTC))

    def _changed(self, key: Key, obj: JSONDict, deleted: bool) -> None:
        group, kind, namespace, name = key
        if kind == "Rollout" and group == GROUP:
            if not deleted:
                self.enqueue(namespace, name)
            return
        owner = _rollout_owner(obj)
        if owner:
            self.enqueue(namespace, owner)

    # ------------------------------------------------------------------ running

    async def run(self, stop: asyncio.Event) -> None:
        """Watch and reconcile until ``stop`` is set."""
        for ref, cache in (
            (ROLLOUT, self.cache),
            (ANALYSIS_RUN, self.cache),
            (REPLICA_SET, self.rs_cache),
        ):
            if not await cache.ensure(ref, wait=60):
                log.warning("event=rollouts_watch_unavailable kind=%s", ref.kind)
        for obj in self.cache.items(GROUP, "Rollout"):
            meta = obj.get("metadata") or {}
            self.enqueue(str(meta.get("namespace", "")), str(meta.get("name", "")))
        log.info(
            "event=rollout_controller_started namespace=%s rollouts=%d",
            self.namespace or "*",
            len(self.cache.items(GROUP, "Rollout")),
        )
        try:
            await self.queue.run_until(
                stop,
                self._handle,
                workers=self.workers,
                name="rollout",
                also={"rollout resync": self._resync_loop()},
            )
        finally:
            await self.cache.aclose()
            await self.rs_cache.aclose()

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.resync)
            for obj in self.cache.items(GROUP, "Rollout"):
                meta = obj.get("metadata") or {}
                self.enqueue(str(meta.get("namespace", "")), str(meta.get("name", "")))

    async def _handle(self, key: RolloutKey) -> None:
        try:
            await self.reconcile(*key)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("event=rollout_reconcile_crashed rollout=%s/%s", *key)
            self._count("error")
            self.retry_later(key)

    def _count(self, outcome: str) -> None:
        self.reconciles[outcome] = self.reconciles.get(outcome, 0) + 1

    # ------------------------------------------------------------------ one Rollout

    async def reconcile(self, namespace: str, name: str) -> None:
        started = time.monotonic()
        key = (namespace, name)
        obj = await self.kube.get(ObjectRef(GROUP, VERSION, "Rollout", namespace, name))
        if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
            return
        now = datetime.now(UTC).replace(microsecond=0)
        try:
            rollout = parse_rollout(obj, workload_template=await self._workload_template(obj))
        except RolloutSpecError as e:
            await self._invalid(obj, str(e), now)
            self._failures.pop(key, None)
            self._count("invalid")
            return
        ctx = RolloutContext.build(
            self.kube,
            rollout,
            await self._replicasets(namespace),
            [o for o in self.cache.items(GROUP, "AnalysisRun") if _ns(o) == namespace],
            now,
        )
        try:
            if rollout.is_blue_green:
                await reconcile_blue_green(ctx)
            else:
                await reconcile_canary(ctx)
            await ctx.restart_pods()
            finish_status(ctx)
        except (NotFoundError, ConflictError) as e:
            # Something moved under us (a ReplicaSet deleted, a name taken): read again.
            log.info("event=rollout_requeue rollout=%s/%s reason=%s", namespace, name, e)
            self.retry_later(key)
            self._count("conflict")
            return
        except RolloutSpecError as e:
            # found while acting (a Service managed by another Rollout): InvalidSpec
            await self._invalid(obj, str(e), now)
            self._failures.pop(key, None)
            self._count("invalid")
            return
        except GitmoorError as e:
            log.warning("event=rollout_reconcile_failed rollout=%s/%s error=%s", namespace, name, e)
            self._count("error")
            self.retry_later(key, at_least=5.0)
            return
        wrote = await self._write_status(obj, ctx.status)
        if wrote is None:
            self.retry_later(key)
            self._count("conflict")
            return
        self._failures.pop(key, None)
        if ctx.wake_at is not None:
            self.enqueue_at(key, ctx.wake_at)
        self._count("ok")
        log.debug(
            "event=rollout_reconciled rollout=%s/%s phase=%s wrote=%s seconds=%.3f",
            namespace,
            name,
            ctx.status.get("phase"),
            wrote,
            time.monotonic() - started,
        )

    async def _replicasets(self, namespace: str) -> list[JSONDict]:
        if self.rs_cache.watching("apps", "ReplicaSet"):
            return [o for o in self.rs_cache.items("apps", "ReplicaSet") if _ns(o) == namespace]
        ar = await self.kube.resource_for(REPLICA_SET)
        listed = await self.kube.list(ar, namespace, label_selector=rsu.HASH_LABEL)
        return listed.items

    async def _workload_template(self, obj: JSONDict) -> JSONDict | None:
        """The pod template of the Deployment ``spec.workloadRef`` names; upstream
        takes it from there and leaves the Deployment alone (``scaleDown: never``)."""
        wref = (obj.get("spec") or {}).get("workloadRef")
        if not isinstance(wref, dict) or not wref.get("name"):
            return None
        api = str(wref.get("apiVersion") or "apps/v1")
        group, _, version = api.rpartition("/")
        dep = await self.kube.get(
            ObjectRef(
                group, version, str(wref.get("kind") or "Deployment"), _ns(obj), str(wref["name"])
            )
        )
        if dep is None:
            raise RolloutSpecError(
                f"the workloadRef {wref.get('kind', 'Deployment')} {wref['name']} does not exist"
            )
        template = (dep.get("spec") or {}).get("template")
        return copy.deepcopy(template) if isinstance(template, dict) else None

    async def _invalid(self, obj: JSONDict, message: str, now: datetime) -> None:
        """upstream's InvalidSpec condition; the phase is Degraded with its message."""
        status = copy.deepcopy(obj.get("status") or {})
        set_condition(status, "InvalidSpec", "True", "InvalidSpec", message, now)
        status["observedGeneration"] = str((obj.get("metadata") or {}).get("generation") or 0)
        status["phase"] = "Degraded"
        status["message"] = f"InvalidSpec: {message}"
        log.warning(
            "event=rollout_invalid rollout=%s/%s message=%s",
            _ns(obj),
            (obj.get("metadata") or {}).get("name"),
            message,
        )
        await self._write_status(obj, status)

    async def _write_status(self, obj: JSONDict, status: JSONDict) -> bool | None:
        """Write ``status`` if it differs; True written, False unchanged, None conflict."""
        if status == (obj.get("status") or {}):
            return False
        meta = obj.get("metadata") or {}
        ref = ObjectRef(
            GROUP, VERSION, "Rollout", str(meta.get("namespace", "")), str(meta.get("name", ""))
        )
        # managedFields left out: an update without them keeps the server's record.
        meta_out = {k: v for k, v in meta.items() if k != "managedFields"}
        body = {**obj, "metadata": meta_out, "status": status}
        try:
            await self.kube.replace(
                ref, body, subresource="status", field_manager=rsu.FIELD_MANAGER
            )
        except ConflictError:
            return None
        except NotFoundError:
            return False
        old = obj.get("status") or {}
        if old.get("phase") != status.get("phase"):
            log.info(
                "event=rollout_phase rollout=%s/%s phase=%s message=%s",
                ref.namespace,
                ref.name,
                status.get("phase"),
                status.get("message", ""),
            )
        return True


def _ns(obj: JSONDict) -> str:
    return str((obj.get("metadata") or {}).get("namespace", ""))


__all__ = ["RolloutController", "compute_phase"]


async def run_rollouts(
    kube: KubeClient,
    stop: asyncio.Event,
    *,
    namespace: str = "",
    takeover: bool = False,
    recheck: float = 60.0,
) -> None:
    """The Rollout controller and the AnalysisRun controller, as ``gitmoor
    controller`` runs them, once the CRDs allow it:

    - ``absent`` (no Rollout CRD): idle, with a log line, and look again every
      ``recheck`` seconds, so a later ``gitmoor install --rollouts`` starts them;
    - ``foreign`` (Argo Rollouts' own CRDs): refuse, with the reason, and leave the
      rest of the controller running; ``takeover`` runs anyway;
    - ``gitmoor``: run until ``stop``.
    """
    said = ""
    while not stop.is_set():
        try:
            state = await rollout_crds_state(kube)
        except GitmoorError as e:
            log.warning("event=rollout_crds_unreadable error=%s", e)
            state = "absent"
        if state == "foreign" and not takeover:
            log.error("event=rollout_controller_refused reason=%s", FOREIGN_CRDS_MESSAGE)
            await stop.wait()
            return
        if state == "foreign":
            log.warning("event=rollout_controller_takeover crd=rollouts.argoproj.io")
        if state != "absent":
            break
        if said != state:
            log.info(
                "event=rollout_controller_idle reason=%s",
                "the Rollout CRD is not installed (gitmoor install --rollouts installs it)",
            )
            said = state
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=recheck)
    if stop.is_set():
        return
    kube.invalidate_discovery()
    await asyncio.gather(
        RolloutController(kube, namespace).run(stop),
        AnalysisController(kube, namespace).run(stop),
    )
