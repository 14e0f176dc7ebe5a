"""The AnalysisRun controller: takes each measurement when it falls due.

Argo Rollouts runs analysis in a controller of its own, apart from the
Rollout controller, which only creates runs and reads their phase; gitmoor
does the same. This one:

- watches ``argoproj.io/v1alpha1`` AnalysisRuns through a ``ClusterCache``
  (all of them, or one namespace's); while the CRD is not installed it looks
  again every few seconds instead of failing;
- reconciles a run when it changes (created, ``spec.terminate`` set) and
  when its next measurement falls due: a timer per run set to the time
  :func:`analysis.next_due` computes, so a run measured every minute costs
  one reconcile a minute, not a poll a second;
- reads the run fresh from the API server before each step, measures what
  :func:`analysis.plan` says is due (concurrently, with the providers), and
  writes ``status`` with the run's ``resourceVersion`` (with the object, as
  upstream's CRD has no status subresource: ``analysisrun.write_status``).
  Progress lives only in that status: after a restart the next measurement
  is computed from the recorded ``finishedAt``, so a recorded measurement is
  never taken again; a write that lost a race (409) to a spec change is
  written again onto the fresh object, one that lost to another status
  write is dropped and the step redone (``_write``).

A finished run with ``spec.ttlStrategy`` is deleted when its time is up
(upstream's ``maybeGarbageCollectAnalysisRun``).

``secretKeyRef`` args are read from the run's namespace just before a
measurement, as upstream's ``resolveArgs``; their values are masked in the
recorded messages and values and never logged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx

from gitmoor.kube import ConflictError, NotFoundError
from gitmoor.kube.cache import ClusterCache, Key
from gitmoor.model import GitmoorError, JSONDict, ObjectRef, RetryableError
from gitmoor.rollouts import analysis, conditions, providers
from gitmoor.rollouts.analysisrun import GROUP, VERSION, run_phase, run_ref, write_status
from gitmoor.rollouts.workqueue import WorkQueue

if TYPE_CHECKING:
    from collections.abc import Callable

    from gitmoor.kube import KubeClient

log = logging.getLogger("gitmoor.rollouts.analysis")

KIND = "AnalysisRun"
#: how often to look again for the AnalysisRun CRD while it is not installed
CRD_RETRY = 5.0
#: a due time is "after" finishedAt + interval: wake a moment past it
_SLACK = 0.05

RunKey = tuple[str, str]


def _now() -> datetime:
    return datetime.now(UTC)


class AnalysisController:
    def __init__(
        self,
        kube: KubeClient,
        namespace: str | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        workers: int = 4,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.kube = kube
        self.namespace = namespace or ""
        self.http = http
        self._own_http = http is None
        self.workers = workers
        self.clock = clock
        self.cache = ClusterCache(
            kube, label_selector="", namespace=self.namespace, on_change=self._changed
        )
        self.queue: WorkQueue[RunKey] = WorkQueue()
        #: reconciles done, by outcome; read by tests and metrics
        self.reconciles: dict[str, int] = {}

    # ------------------------------------------------------------------ queue

    def enqueue(self, namespace: str, name: str) -> None:
        self.queue.add((namespace, name))

    def _wake_at(self, key: RunKey, at: datetime) -> None:
        """One timer per run, moved to its next due time (replaced, not kept)."""
        self.queue.add_after(key, max(0.0, (at - self.clock()).total_seconds()) + _SLACK)

    def _changed(self, key: Key, obj: JSONDict, deleted: bool) -> None:
        run = (key[2], key[3])
        if deleted:
            self.queue.cancel(run)
            return
        if run_phase(obj) not in analysis.COMPLETED or analysis.ttl_expiry(obj) is not None:
            self.enqueue(*run)

    async def _handle(self, key: RunKey) -> None:
        try:
            await self.reconcile(*key)
        except asyncio.CancelledError:
            raise
        except RetryableError as e:
            log.warning("event=analysis_retry namespace=%s name=%s error=%s", key[0], key[1], e)
            self._wake_at(key, self._later(e.retry_after))
        except GitmoorError as e:
            log.warning("event=analysis_error namespace=%s name=%s error=%s", key[0], key[1], e)
            self._wake_at(key, self._later(analysis.DEFAULT_ERROR_RETRY))
        except Exception:
            log.exception("event=analysis_crashed namespace=%s name=%s", key[0], key[1])
            self._wake_at(key, self._later(analysis.DEFAULT_ERROR_RETRY))

    def _later(self, seconds: float) -> datetime:
        return datetime.fromtimestamp(self.clock().timestamp() + seconds, UTC)

    # ------------------------------------------------------------------ run

    async def run(self, stop: asyncio.Event) -> None:
        """Watch and measure until ``stop`` is set."""
        if self.http is None:
            self.http = httpx.AsyncClient(follow_redirects=True)
        try:
            await self.queue.run_until(
                stop,
                self._handle,
                workers=self.workers,
                name="analysis",
                also={"analysisrun watch": self._watch(stop)},
            )
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop watching and close the HTTP client if this controller made it."""
        await self.cache.aclose()
        if self._own_http and self.http is not None:
            await self.http.aclose()
            self.http = None

    async def _watch(self, stop: asyncio.Event) -> None:
        probe = ObjectRef(GROUP, VERSION, KIND, self.namespace, "")
        while not await self.cache.ensure(probe):
            # No CRD yet (``gitmoor install --rollouts`` not run) or not listable:
            # look again, rediscovering, rather than give up the controller.
            log.info("event=analysisrun_crd_missing retry_in=%.0f", CRD_RETRY)
            self.kube.invalidate_discovery()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=CRD_RETRY)
            if stop.is_set():
                return
        # The first list tells on_change nothing: queue every unfinished run.
        for obj in self.cache.items(GROUP, KIND):
            meta = obj.get("metadata") or {}
            if run_phase(obj) not in analysis.COMPLETED or analysis.ttl_expiry(obj) is not None:
                self.enqueue(str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        log.info("event=analysis_controller_watching namespace=%s", self.namespace or "*")

    # ------------------------------------------------------------------ one step

    async def reconcile(self, namespace: str, name: str) -> None:
        """One step of one run: measure what is due, write status, set the timer."""
        key = (namespace, name)
        ref = run_ref(namespace, name)
        run = await self.kube.get(ref)
        if run is None or run_phase(run) in analysis.COMPLETED:
            self.queue.cancel(key)
            if run is not None:
                await self._expire(run)
            return
        before = copy.deepcopy(run.get("status") or {})
        p = analysis.plan(run, self.clock())
        if not p.error and p.due:
            await self._measure(run, p)
        next_at = analysis.conclude(run, p, self.clock())
        outcome = "unchanged"
        if run.get("status") != before:
            if not await self._write(run, before):
                self.reconciles["conflict"] = self.reconciles.get("conflict", 0) + 1
                self.enqueue(namespace, name)
                return
            outcome = "written"
            status = run.get("status") or {}
            log.info(
                "event=analysisrun_status namespace=%s name=%s phase=%s measured=%d next=%s",
                namespace,
                name,
                status.get("phase"),
                len(p.due),
                analysis.timestamp(next_at) if next_at else "",
            )
        self.reconciles[outcome] = self.reconciles.get(outcome, 0) + 1
        if next_at is not None:
            self._wake_at(key, next_at)

    async def _write(self, run: JSONDict, before: JSONDict) -> bool:
        """Write the new status; False when it must be redone from a fresh read.

        A 409 means the object changed since our GET. When only its spec or
        metadata did (``spec.terminate`` set, a label added), the measurements
        just taken still stand: the status is written onto the fresh object,
        so no request to the metric is repeated. When its status changed
        (another controller measured meanwhile), ours is dropped and the step
        redone, so nothing is recorded twice."""
        status = run.get("status")
        for _ in range(3):
            try:
                await write_status(self.kube, run)
                return True
            except NotFoundError:
                return True
            except ConflictError:
                fresh = await self.kube.get(
                    run_ref(run["metadata"]["namespace"], run["metadata"]["name"])
                )
                if fresh is None:
                    return True
                if (fresh.get("status") or {}) != before:
                    return False
                fresh["status"] = status
                run = fresh
        return False

    async def _expire(self, run: JSONDict) -> None:
        """Delete a finished run whose ``ttlStrategy`` time is up, or wake then."""
        expiry = analysis.ttl_expiry(run)
        meta = run["metadata"]
        if expiry is None or meta.get("deletionTimestamp"):
            return
        if self.clock() <= expiry:
            self._wake_at((meta["namespace"], meta["name"]), expiry)
            return
        # the uid precondition: never a run of the same name created since
        await self.kube.delete(run_ref(meta["namespace"], meta["name"]), uid=meta.get("uid"))
        log.info(
            "event=analysisrun_ttl_deleted namespace=%s name=%s", meta["namespace"], meta["name"]
        )

    async def _secret_args(self, run: JSONDict) -> tuple[dict[str, str], list[str]]:
        """name → value of the ``secretKeyRef`` args, and the values to mask."""
        namespace = run["metadata"]["namespace"]
        values: dict[str, str] = {}
        for arg in (run.get("spec") or {}).get("args") or []:
            ref = (arg.get("valueFrom") or {}).get("secretKeyRef")
            if arg.get("value") is not None or not ref:
                continue
            secret_name, key = str(ref.get("name") or ""), str(ref.get("key") or "")
            secret = await self.kube.get(ObjectRef("", "v1", "Secret", namespace, secret_name))
            if secret is None:
                raise analysis.ArgumentError(f'secrets "{secret_name}" not found')
            data = (secret.get("data") or {}).get(key)
            if data is None:
                raise analysis.ArgumentError(
                    f"key '{key}' does not exist in secret '{secret_name}'"
                )
            values[str(arg.get("name"))] = base64.b64decode(data).decode("utf-8", "replace")
        return values, [v for v in values.values() if v]

    async def _measure(self, run: JSONDict, p: analysis.Plan) -> None:
        try:
            secrets, masked = await self._secret_args(run)
            metrics = {m.name: m for m in analysis.parse_metrics(run, secrets)}
        except analysis.AnalysisSpecError as e:
            p.error = f"Unable to resolve metric arguments: {e.message}"
            return
        due = [metrics[m.name] for m in p.due]
        taken = await asyncio.gather(*(self._take(m, masked) for m in due))
        for m, (measurement, fatal) in zip(due, taken, strict=True):
            dry = m.name in p.dry_run
            if fatal:
                analysis.fail_metric(run, m, measurement, dry_run=dry)
            else:
                analysis.record(run, m, measurement, dry_run=dry)

    async def _take(self, metric: analysis.Metric, masked: list[str]) -> tuple[JSONDict, bool]:
        """(measurement, fatal): ``fatal`` when a condition does not parse; the
        ``masked`` values (secretKeyRef args) never recorded."""
        started = self.clock()
        for which, text in (
            ("successCondition", metric.success_condition),
            ("failureCondition", metric.failure_condition),
        ):
            if not text:
                continue
            try:
                conditions.check(text)
            except conditions.ConditionError as e:
                message = f"{which} {e.message}"
                return analysis.measurement(
                    analysis.ERROR, started=started, finished=started, message=message, mask=masked
                ), True
        if self.http is None:
            # reconcile() called without run(): the client is ours, aclose() ends it
            self.http = httpx.AsyncClient(follow_redirects=True)
        try:
            measured = await providers.measure(metric.spec.get("provider") or {}, self.http)
        except providers.MeasurementError as e:
            return analysis.measurement(
                analysis.ERROR,
                started=started,
                finished=self.clock(),
                message=e.message,
                mask=masked,
            ), False
        except Exception as e:  # httpx.InvalidURL, a port out of range, ...
            # Not an HTTPError, yet the metric's own doing: an Error measurement
            # (upstream records any provider error so), not a crashed reconcile that
            # leaves the run Running for ever.
            return analysis.measurement(
                analysis.ERROR,
                started=started,
                finished=self.clock(),
                message=f"{type(e).__name__}: {e}",
                mask=masked,
            ), False
        phase, message = conditions.evaluate_result(
            measured.result, metric.success_condition, metric.failure_condition
        )
        return analysis.measurement(
            phase,
            started=started,
            finished=self.clock(),
            value=measured.value,
            message=message,
            mask=masked,
        ), False
