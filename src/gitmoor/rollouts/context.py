"""What one reconcile of one Rollout works with, shared by the blueGreen and
canary strategies: the ReplicaSets sorted into new / stable / old, the status
being built, Service selectors, analysis runs, pauses, conditions and phase.

Everything a later reconcile needs is in the Rollout's status and on the
ReplicaSets (hash label, revision and scale-down-deadline annotations), so a
restarted controller carries on where the last one stopped (upstream keeps no
other state either).

The status is written in Argo Rollouts' spelling (types.go RolloutStatus):
``currentPodHash``, ``stableRS``, ``currentStepIndex``, ``pauseConditions``,
``controllerPause``, ``abort``/``abortedAt``, ``blueGreen.{activeSelector,
previewSelector, scaleUpPreviewCheckPoint, prePromotionAnalysisRunStatus,
postPromotionAnalysisRunStatus}``, ``canary.{currentStepAnalysisRunStatus,
currentBackgroundAnalysisRunStatus}``, ``phase``/``message``, the replica
counts, ``observedGeneration`` (a string, as upstream), ``conditions``,
``selector`` and ``HPAReplicas``; the phase follows upstream's
CalculateRolloutPhase (utils/rollout/rolloututil.go).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from gitmoor.model import GitmoorError, JSONDict, ObjectRef
from gitmoor.rollouts import analysisrun as ar
from gitmoor.rollouts import replicasets as rsu
from gitmoor.rollouts.spec import RolloutSpecError

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from gitmoor.rollouts.spec import AnalysisRef, Rollout

log = logging.getLogger("gitmoor.rollouts")

PAUSE_BLUE_GREEN = "BlueGreenPause"
PAUSE_CANARY_STEP = "CanaryPauseStep"
PAUSE_INCONCLUSIVE = "InconclusiveAnalysisRun"

#: AnalysisRun labels, as upstream (rollout/analysis.go)
ROLLOUT_TYPE_LABEL = "rollout-type"
#: the Rollout a Service answers to (upstream's v1alpha1.ManagedByRolloutsKey):
#: written with the first selector switch; a Service that names another Rollout
#: is refused (upstream's ServiceReferencingManagedService), so two Rollouts
#: naming one Service do not flip its selector back and forth for ever
MANAGED_BY_ANNOTATION = "argo-rollouts.argoproj.io/managed-by-rollouts"

_FAILED = ("Failed", "Error")


def ts(t: datetime) -> str:
    return rsu.rfc3339(t)


def parse_ts(raw: Any) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class RolloutContext:
    kube: KubeClient
    rollout: Rollout
    now: datetime
    replicasets: list[JSONDict]
    analysis_runs: dict[str, JSONDict]
    status: JSONDict = field(default_factory=dict)
    new_hash: str = ""
    new_rs: JSONDict | None = None
    stable_rs: JSONDict | None = None
    #: earliest moment something is due (a pause, a scale-down deadline, a progress deadline)
    wake_at: datetime | None = None
    #: the update restarted from a clean slate this reconcile (a new pod template)
    new_revision_seen: bool = False
    abort_message: str = ""

    # ------------------------------------------------------------------ setup

    @classmethod
    def build(
        cls,
        kube: KubeClient,
        rollout: Rollout,
        replicasets: list[JSONDict],
        analysis_runs: list[JSONDict],
        now: datetime,
    ) -> RolloutContext:
        ctx = cls(
            kube=kube,
            rollout=rollout,
            now=now,
            replicasets=[rs for rs in replicasets if rsu.owned_by(rs, rollout)],
            analysis_runs={
                str((r.get("metadata") or {}).get("name", "")): r
                for r in analysis_runs
                if rsu.owned_by(r, rollout)
            },
            status=copy.deepcopy(rollout.status),
        )
        # The spec parsed, so an InvalidSpec condition of an earlier spec no longer holds.
        ctx.status["conditions"] = [
            c for c in ctx.status.get("conditions") or [] if c.get("type") != "InvalidSpec"
        ]
        ctx.new_hash = rsu.pod_template_hash(rsu.desired_template(rollout))
        ctx.new_rs = ctx.find(ctx.new_hash)
        ctx.stable_rs = ctx.find(ctx.stable_hash) if ctx.stable_hash else None
        if ctx.status.get("currentPodHash") != ctx.new_hash:
            ctx._start_new_revision()
        elif not ctx.status.get("abort") and ctx.status.get("abortedAt"):
            ctx._retry()
        return ctx

    def _retry(self) -> None:
        """``abort: false`` after an abort (the plugin's retry): the update starts
        over from its first step, with fresh analysis runs (upstream's RolloutRetry)."""
        st = self.status
        log.info("event=rollout_retry rollout=%s/%s", self.rollout.namespace, self.rollout.name)
        st.pop("abortedAt", None)
        st["currentStepIndex"] = 0
        st["controllerPause"] = False
        st.pop("pauseConditions", None)
        for sub, keys in (
            ("blueGreen", ("prePromotionAnalysisRunStatus", "postPromotionAnalysisRunStatus")),
            ("canary", ("currentStepAnalysisRunStatus", "currentBackgroundAnalysisRunStatus")),
        ):
            holder = st.get(sub) or {}
            for k in keys:
                holder.pop(k, None)

    def _start_new_revision(self) -> None:
        """A new pod template (or the first): the progress of the last update no
        longer applies (upstream resets pause, abort and step state here)."""
        st = self.status
        self.new_revision_seen = bool(st.get("currentPodHash"))
        st["currentPodHash"] = self.new_hash
        for k in ("pauseConditions", "abortedAt"):
            st.pop(k, None)
        st["controllerPause"] = False
        st["abort"] = False
        st["promoteFull"] = False
        st["currentStepIndex"] = 0
        bg = st.get("blueGreen") or {}
        bg.pop("scaleUpPreviewCheckPoint", None)
        bg.pop("prePromotionAnalysisRunStatus", None)
        bg.pop("postPromotionAnalysisRunStatus", None)
        st["blueGreen"] = bg
        cs = st.get("canary") or {}
        cs.pop("currentStepAnalysisRunStatus", None)
        cs.pop("currentBackgroundAnalysisRunStatus", None)
        st["canary"] = cs

    def find(self, hash_: str) -> JSONDict | None:
        for rs in self.replicasets:
            if rsu.rs_hash(rs) == hash_:
                return rs
        return None

    @property
    def stable_hash(self) -> str:
        return str(self.status.get("stableRS") or "")

    @property
    def promoted(self) -> bool:
        return self.stable_hash == self.new_hash

    @property
    def aborted(self) -> bool:
        return bool(self.status.get("abort"))

    @property
    def revision(self) -> int:
        return rsu.rs_revision(self.new_rs) if self.new_rs is not None else 0

    def others(self, *keep: JSONDict | None) -> list[JSONDict]:
        names = {rsu.rs_name(k) for k in keep if k is not None}
        return [rs for rs in self.replicasets if rsu.rs_name(rs) not in names]

    def wake(self, at: datetime) -> None:
        if self.wake_at is None or at < self.wake_at:
            self.wake_at = at

    # ------------------------------------------------------------------ ReplicaSets

    async def ensure_new_rs(self, replicas: int) -> JSONDict:
        """The ReplicaSet of the current template, created if missing. A matching
        old ReplicaSet (a rollback to an earlier template) gets the next revision,
        as upstream's syncRevision does."""
        top = max((rsu.rs_revision(rs) for rs in self.replicasets), default=0)
        if self.new_rs is None:
            rs = await rsu.create_replicaset(
                self.kube, self.rollout, self.new_hash, replicas, top + 1
            )
            log.info(
                "event=replicaset_created rollout=%s/%s replicaset=%s revision=%d replicas=%d",
                self.rollout.namespace,
                self.rollout.name,
                rsu.rs_name(rs),
                top + 1,
                replicas,
            )
            self.replicasets.append(rs)
            self.new_rs = rs
        elif rsu.rs_revision(self.new_rs) < top:
            self.new_rs = await rsu.annotate(
                self.kube, self.new_rs, {rsu.REVISION_ANNOTATION: str(top + 1)}
            )
            self._replace(self.new_rs)
        return self.new_rs

    def _replace(self, rs: JSONDict) -> None:
        name = rsu.rs_name(rs)
        self.replicasets = [rs if rsu.rs_name(x) == name else x for x in self.replicasets]
        if self.new_rs is not None and rsu.rs_name(self.new_rs) == name:
            self.new_rs = rs
        if self.stable_rs is not None and rsu.rs_name(self.stable_rs) == name:
            self.stable_rs = rs

    async def scale(self, rs: JSONDict | None, replicas: int) -> None:
        if rs is None or rsu.rs_replicas(rs) == replicas:
            return
        log.info(
            "event=replicaset_scaled rollout=%s/%s replicaset=%s from=%d to=%d",
            self.rollout.namespace,
            self.rollout.name,
            rsu.rs_name(rs),
            rsu.rs_replicas(rs),
            replicas,
        )
        updated = await rsu.scale(self.kube, rs, replicas)
        if replicas > 0 and rsu.rs_deadline(updated) is not None:
            updated = await rsu.annotate(
                self.kube, updated, {rsu.SCALE_DOWN_DEADLINE_ANNOTATION: None}
            )
        self._replace(updated)

    async def scale_down_later(self, rs: JSONDict, delay_seconds: int) -> None:
        """Scale ``rs`` to zero once its ``scale-down-deadline`` passes; the deadline
        is written on the ReplicaSet so that it survives a restart (upstream's
        addScaleDownDelay / scale-down-deadline annotation)."""
        if rsu.rs_replicas(rs) == 0:
            return
        deadline = rsu.rs_deadline(rs)
        if deadline is None:
            if delay_seconds <= 0:
                await self.scale(rs, 0)
                return
            deadline = self.now + timedelta(seconds=delay_seconds)
            rs = await rsu.annotate(
                self.kube, rs, {rsu.SCALE_DOWN_DEADLINE_ANNOTATION: rsu.rfc3339(deadline)}
            )
            self._replace(rs)
        if deadline <= self.now:
            await self.scale(rs, 0)
            await self._clear_deadline(rs)
        else:
            self.wake(deadline)

    async def _clear_deadline(self, rs: JSONDict) -> None:
        current = next((x for x in self.replicasets if rsu.rs_name(x) == rsu.rs_name(rs)), rs)
        if rsu.rs_deadline(current) is not None:
            self._replace(
                await rsu.annotate(self.kube, current, {rsu.SCALE_DOWN_DEADLINE_ANNOTATION: None})
            )

    async def cancel_scale_down(self, rs: JSONDict | None) -> None:
        if rs is not None and rsu.rs_deadline(rs) is not None:
            await self._clear_deadline(rs)

    async def cleanup_history(self, keep: list[JSONDict | None]) -> None:
        """Delete old ReplicaSets beyond revisionHistoryLimit (upstream's cleanupRollouts)."""
        for rs in rsu.history_to_delete(self.others(*keep), self.rollout.revision_history_limit):
            meta = rs.get("metadata") or {}
            await self.kube.delete(
                rsu.rs_ref(self.rollout.namespace, rsu.rs_name(rs)),
                uid=str(meta.get("uid") or "") or None,
            )
            self.replicasets = [x for x in self.replicasets if rsu.rs_name(x) != rsu.rs_name(rs)]

    # ------------------------------------------------------------------ restart

    async def restart_pods(self) -> None:
        """``spec.restartAt`` (``kubectl argo rollouts restart``): pods created before
        it are deleted one at a time, each only once every ReplicaSet is fully
        available again, so capacity never drops by more than one pod (upstream's
        RolloutPodRestarter with maxUnavailable 1); then ``status.restartedAt``
        records it. Their ReplicaSet replaces them from the same template."""
        ro = self.rollout
        at = parse_ts(ro.restart_at)
        if at is None or self.status.get("restartedAt") == ro.restart_at:
            return
        if at > self.now:
            self.wake(at)
            return
        pods_res = await self.kube.resource("", "v1", "Pod")
        hashes = {rsu.rs_hash(rs) for rs in self.replicasets if rsu.rs_replicas(rs) > 0}
        listed = await self.kube.list(pods_res, ro.namespace, label_selector=rsu.HASH_LABEL)
        old = sorted(
            (
                p
                for p in listed.items
                if ((p.get("metadata") or {}).get("labels") or {}).get(rsu.HASH_LABEL) in hashes
                and not (p.get("metadata") or {}).get("deletionTimestamp")
                and (parse_ts((p.get("metadata") or {}).get("creationTimestamp")) or at) < at
            ),
            key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp", "")),
        )
        if not old:
            self.status["restartedAt"] = ro.restart_at
            return
        settled = all(rsu.rs_available(rs) >= rsu.rs_replicas(rs) for rs in self.replicasets)
        if settled:
            meta = old[0].get("metadata") or {}
            log.info(
                "event=rollout_restart_pod rollout=%s/%s pod=%s",
                ro.namespace,
                ro.name,
                meta.get("name"),
            )
            await self.kube.delete(
                ObjectRef("", "v1", "Pod", ro.namespace, str(meta.get("name", ""))),
                uid=str(meta.get("uid") or "") or None,
            )
        self.wake(self.now + timedelta(seconds=1))

    # ------------------------------------------------------------------ Services

    async def point_service(self, name: str, hash_: str) -> bool:
        """Make Service ``name`` select ``hash_``: its selector as it is, plus the
        ``rollouts-pod-template-hash`` key, server-side applied under our own field
        manager (Argo Rollouts patches the same key into the live selector).

        ``spec.selector`` of a Service is an atomic map for server-side apply
        (measured against the API server: tests/integration/rollouts/
        test_bluegreen.py), so the whole selector is written, never the key alone
        (which would drop the Git keys), and an app's forced apply of its Git
        Service replaces it whole: the app keeps the key only by sending the live
        value back, as Argo CD's ``RespectIgnoreDifferences`` does for an ignored
        ``/spec/selector/rollouts-pod-template-hash``. False when the Service does
        not exist."""
        if not name:
            return True
        ref = ObjectRef("", "v1", "Service", self.rollout.namespace, name)
        live = await self.kube.get(ref)
        if live is None:
            return False
        manager = ((live.get("metadata") or {}).get("annotations") or {}).get(MANAGED_BY_ANNOTATION)
        if manager and manager != self.rollout.name:
            raise RolloutSpecError(f'Service "{name}" is managed by another Rollout')
        selector = dict((live.get("spec") or {}).get("selector") or {})
        current = selector.get(rsu.HASH_LABEL)
        if current == hash_ and manager == self.rollout.name:
            return True
        selector[rsu.HASH_LABEL] = hash_
        await self.kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": name,
                    "namespace": self.rollout.namespace,
                    # in every apply: server-side apply drops what its manager stops sending
                    "annotations": {MANAGED_BY_ANNOTATION: self.rollout.name},
                },
                "spec": {"selector": selector},
            },
            field_manager=rsu.FIELD_MANAGER,
            force=True,
            ref=ref,
        )
        log.info(
            "event=service_switched rollout=%s/%s service=%s hash=%s previous=%s",
            self.rollout.namespace,
            self.rollout.name,
            name,
            hash_,
            current or "",
        )
        return True

    # ------------------------------------------------------------------ analysis

    def _args(self, ref: AnalysisRef) -> list[JSONDict]:
        """Args with ``valueFrom.podTemplateHashValue`` (Stable/Latest) resolved here,
        where the hashes are known; ``valueFrom.fieldRef`` is resolved against the
        Rollout (upstream's analysisutil.BuildArgumentsForRolloutAnalysisRun)."""
        out: list[JSONDict] = []
        for arg in ref.args:
            vf = arg.get("valueFrom")
            if not isinstance(vf, dict):
                out.append(dict(arg))
                continue
            if vf.get("podTemplateHashValue"):
                value = (
                    self.stable_hash if vf["podTemplateHashValue"] == "Stable" else self.new_hash
                )
                out.append({"name": arg.get("name"), "value": value})
            elif isinstance(vf.get("fieldRef"), dict):
                value = field_path(self.rollout.obj, str(vf["fieldRef"].get("fieldPath", "")))
                out.append({"name": arg.get("name"), "value": "" if value is None else str(value)})
            else:
                out.append(dict(arg))
        return out

    async def analysis(
        self,
        ref: AnalysisRef,
        base: str,
        rollout_type: str,
        holder: JSONDict,
        key: str,
        *,
        background: bool = False,
    ) -> JSONDict:
        """The AnalysisRun of this step, created if missing, its
        RolloutAnalysisRunStatus recorded at ``holder[key]``. The run the status
        names is the current one; without one, the first of ``base``, ``base.1``,
        ``base.2``... (upstream's names and collision counter) that is not a
        finished failure is reused or created, so a restarted controller finds the
        run it made and a retry after an abort gets a fresh run."""
        known = holder.get(key)
        current = str(known["name"]) if isinstance(known, dict) and known.get("name") else ""
        names = ([current] if current else []) + [base] + [f"{base}.{i}" for i in range(1, 20)]
        name = ""
        for candidate in names:
            run = self.analysis_runs.get(candidate)
            if run is None:
                run = await self.kube.get(
                    ObjectRef(
                        "argoproj.io", "v1alpha1", "AnalysisRun", self.rollout.namespace, candidate
                    )
                )
                if run is not None and rsu.owned_by(run, self.rollout):
                    self.analysis_runs[candidate] = run
                elif run is not None:
                    continue
            if run is None:
                name = candidate
                break
            if candidate == current:
                # The status names it: its outcome, failed or not, is this step's.
                holder[key] = run_status(run)
                return run
            if not failed(run_phase(run)) and not (run.get("spec") or {}).get("terminate"):
                holder[key] = run_status(run)
                return run
        if not name:
            raise RolloutReconcileError(f"no free AnalysisRun name for {base}")
        labels = {rsu.HASH_LABEL: self.new_hash, ROLLOUT_TYPE_LABEL: rollout_type}
        run = await ar.create_analysis_run(
            self.kube,
            namespace=self.rollout.namespace,
            name=name,
            templates=list(ref.templates),
            args=self._args(ref),
            owner=self.rollout.obj,
            labels=labels,
            background=background,
        )
        name = str(run["metadata"]["name"])
        log.info(
            "event=analysis_started rollout=%s/%s analysisrun=%s type=%s",
            self.rollout.namespace,
            self.rollout.name,
            name,
            rollout_type,
        )
        self.analysis_runs[name] = run
        holder[key] = run_status(run)
        return run

    async def terminate(self, name: str) -> None:
        run = self.analysis_runs.get(name)
        if run is None or run_phase(run) not in ("", "Pending", "Running"):
            return
        if bool((run.get("spec") or {}).get("terminate")):
            return
        await ar.terminate_analysis_run(self.kube, self.rollout.namespace, name)

    def run_name(self, suffix: str = "") -> str:
        base = f"{self.rollout.name}-{self.new_hash}-{self.revision}"
        return f"{base}-{suffix}" if suffix else base

    # ------------------------------------------------------------------ pause / abort

    @property
    def pause_conditions(self) -> list[JSONDict]:
        return [c for c in self.status.get("pauseConditions") or [] if isinstance(c, dict)]

    def pause_started(self, reason: str) -> datetime | None:
        for c in self.pause_conditions:
            if c.get("reason") == reason:
                return parse_ts(c.get("startTime")) or self.now
        return None

    def add_pause(self, reason: str) -> None:
        if self.pause_started(reason) is None:
            self.status["pauseConditions"] = [
                *self.pause_conditions,
                {"reason": reason, "startTime": ts(self.now)},
            ]
        self.status["controllerPause"] = True

    def clear_pause(self) -> None:
        self.status.pop("pauseConditions", None)
        self.status["controllerPause"] = False

    @property
    def resumed(self) -> bool:
        """A promote clears pauseConditions and leaves controllerPause set, as the
        kubectl plugin does: that pair means "the user let it go on"."""
        return bool(self.status.get("controllerPause")) and not self.pause_conditions

    def abort(self, message: str) -> None:
        if not self.aborted:
            log.warning(
                "event=rollout_aborted rollout=%s/%s revision=%d message=%s",
                self.rollout.namespace,
                self.rollout.name,
                self.revision,
                message,
            )
        self.status["abort"] = True
        self.abort_message = message
        self.clear_pause()

    def note_abort(self) -> None:
        if not self.status.get("abortedAt"):
            self.status["abortedAt"] = ts(self.now)
        self.clear_pause()


def run_phase(run: JSONDict) -> str:
    return ar.run_phase(run)


def run_message(run: JSONDict) -> str:
    return ar.run_message(run)


def run_status(run: JSONDict) -> JSONDict:
    """A RolloutAnalysisRunStatus: {name, status, message}."""
    out: JSONDict = {
        "name": str((run.get("metadata") or {}).get("name", "")),
        "status": run_phase(run) or "Pending",
    }
    msg = run_message(run)
    if msg:
        out["message"] = msg
    return out


def failed(phase: str) -> bool:
    return phase in _FAILED


def analysis_failure_message(run: JSONDict) -> str:
    """What the abort says about a failed run: the run's own message (which names
    the metric, e.g. ``Metric "success-rate" assessed Failed due to failed (1) >
    failureLimit (0)``) or, without one, upstream's RolloutAnalysisRunFailedMessage."""
    msg = run_message(run)
    if msg:
        return msg
    name = str((run.get("metadata") or {}).get("name", ""))
    return f"AnalysisRun '{name}' failed"


def field_path(obj: JSONDict, path: str) -> Any:
    """A Kubernetes fieldPath (``metadata.name``, ``metadata.labels['app']``,
    ``spec.template.spec.containers[0].image``) into ``obj``."""
    cur: Any = obj
    token = ""
    i = 0
    parts: list[str | int] = []
    while i < len(path):
        ch = path[i]
        if ch == ".":
            if token:
                parts.append(token)
            token = ""
        elif ch == "[":
            if token:
                parts.append(token)
            token = ""
            end = path.index("]", i)
            inner = path[i + 1 : end].strip("'\"")
            parts.append(int(inner) if inner.isdigit() else inner)
            i = end
        else:
            token += ch
        i += 1
    if token:
        parts.append(token)
    for p in parts:
        if isinstance(p, int) and isinstance(cur, list) and p < len(cur):
            cur = cur[p]
        elif isinstance(p, str) and isinstance(cur, dict):
            cur = cur.get(p)
        else:
            return None
    return cur


class RolloutReconcileError(GitmoorError):
    """A Rollout could not be moved on this time (a missing Service, an API error)."""


# ---------------------------------------------------------------- status, conditions, phase


def set_condition(
    status: JSONDict,
    type_: str,
    value: str,
    reason: str,
    message: str,
    now: datetime,
    *,
    touch: bool = False,
) -> None:
    """Upsert a RolloutCondition; the times move only when something changed (or
    ``touch``: progress was made), so an unchanged reconcile writes nothing."""
    conds = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    old = next((c for c in conds if c.get("type") == type_), None)
    stamp = ts(now)
    if old is not None and (old.get("status"), old.get("reason"), old.get("message")) == (
        value,
        reason,
        message,
    ):
        if touch:
            old["lastUpdateTime"] = stamp
        status["conditions"] = conds
        return
    new: JSONDict = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp
        if old is None or old.get("status") != value
        else old.get("lastTransitionTime", stamp),
    }
    status["conditions"] = [c for c in conds if c.get("type") != type_] + [new]


def condition(status: JSONDict, type_: str) -> JSONDict | None:
    for c in status.get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == type_:
            return c
    return None


def compute_phase(rollout: Rollout, status: JSONDict) -> tuple[str, str]:
    """Upstream's CalculateRolloutPhase over the status being written."""
    for c in status.get("conditions") or []:
        if c.get("type") == "InvalidSpec":
            return "Degraded", f"InvalidSpec: {c.get('message', '')}"
        if c.get("reason") in ("RolloutAborted", "ProgressDeadlineExceeded"):
            return "Degraded", f"{c.get('reason')}: {c.get('message', '')}"
    if rollout.paused:
        return "Paused", "manually paused"
    for pc in status.get("pauseConditions") or []:
        return "Paused", str(pc.get("reason", ""))
    if rollout.restart_at and status.get("restartedAt") != rollout.restart_at:
        return "Progressing", "rollout is restarting"
    if int(status.get("updatedReplicas") or 0) < rollout.replicas:
        return "Progressing", "more replicas need to be updated"
    if int(status.get("availableReplicas") or 0) < int(status.get("updatedReplicas") or 0):
        return "Progressing", "updated replicas are still becoming available"
    current = status.get("currentPodHash")
    if rollout.is_blue_green:
        if (status.get("blueGreen") or {}).get("activeSelector") != current:
            return "Progressing", "active service cutover pending"
        if status.get("stableRS") != current:
            return "Progressing", "waiting for analysis to complete"
    else:
        if int(status.get("replicas") or 0) > int(status.get("updatedReplicas") or 0):
            return "Progressing", "old replicas are pending termination"
        if status.get("stableRS") != current:
            return "Progressing", "waiting for all steps to complete"
    return "Healthy", ""


def finish_status(ctx: RolloutContext) -> None:
    """Counts, conditions and phase of the status about to be written. Available
    replicas are the active ReplicaSet's for blueGreen (the ones taking traffic),
    all of them for a canary, as upstream counts them."""
    ro, st, now = ctx.rollout, ctx.status, ctx.now
    if ro.is_blue_green:
        active = ctx.find(str((st.get("blueGreen") or {}).get("activeSelector") or ""))
        available = rsu.rs_available(active)
    else:
        available = sum(rsu.rs_available(rs) for rs in ctx.replicasets)
    new_name = rsu.rs_name(ctx.new_rs) if ctx.new_rs is not None else ""
    st["replicas"] = sum(rsu.rs_status_replicas(rs) for rs in ctx.replicasets)
    st["updatedReplicas"] = rsu.rs_status_replicas(ctx.new_rs)
    st["readyReplicas"] = sum(rsu.rs_ready(rs) for rs in ctx.replicasets)
    st["availableReplicas"] = available
    st["HPAReplicas"] = st["replicas"]
    st["selector"] = ",".join(
        f"{k}={v}" for k, v in sorted((ro.selector.get("matchLabels") or {}).items())
    )
    st["observedGeneration"] = str(ro.generation)
    set_condition(
        st,
        "Available",
        "True" if available >= ro.replicas else "False",
        "AvailableReason",
        "Rollout has minimum availability"
        if available >= ro.replicas
        else "Rollout does not have minimum availability",
        now,
    )
    paused = ro.paused or bool(st.get("pauseConditions"))
    set_condition(
        st,
        "Paused",
        "True" if paused else "False",
        "RolloutPaused" if paused else "RolloutResumed",
        "Rollout is paused" if paused else "Rollout is resumed",
        now,
    )
    complete = ctx.promoted and available >= ro.replicas and not ctx.aborted
    set_condition(
        st,
        "Completed",
        "True" if complete else "False",
        "RolloutCompleted" if complete else "RolloutNotCompleted",
        f"Rollout completed update to revision {ctx.revision} ({ctx.new_hash}): "
        + ("Initial deploy" if ctx.revision <= 1 else "Rollout is healthy")
        if complete
        else f"Rollout not completed, started update to revision {ctx.revision} ({ctx.new_hash})",
        now,
    )
    prog = condition(st, "Progressing")
    if ctx.aborted:
        msg = f"Rollout aborted update to revision {ctx.revision}"
        if ctx.abort_message:
            msg += f": {ctx.abort_message}"
        elif prog is not None and prog.get("reason") == "RolloutAborted":
            msg = str(prog.get("message", msg))
        set_condition(st, "Progressing", "False", "RolloutAborted", msg, now)
    elif complete:
        set_condition(
            st,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            f'ReplicaSet "{new_name}" has successfully progressed.',
            now,
        )
    elif paused:
        set_condition(st, "Progressing", "Unknown", "RolloutPaused", "Rollout is paused", now)
    else:
        _progress(ctx, prog, new_name)
    healthy = complete and not paused
    set_condition(
        st,
        "Healthy",
        "True" if healthy else "False",
        "RolloutHealthy",
        "Rollout is healthy" if healthy else "Rollout is not healthy",
        now,
    )
    phase, message = compute_phase(ro, st)
    st["phase"] = phase
    st["message"] = message
    for key in ("blueGreen", "canary"):
        if st.get(key) == {}:
            st.pop(key)


def _progress(ctx: RolloutContext, prog: JSONDict | None, new_name: str) -> None:
    """Progressing while something moves; ProgressDeadlineExceeded once nothing
    moved for progressDeadlineSeconds (upstream's RolloutTimedOut: the clock is
    the Progressing condition's lastUpdateTime, reset by every bit of progress)."""
    st, now, ro = ctx.status, ctx.now, ctx.rollout
    old = ro.status
    moved = (
        ctx.new_revision_seen
        or prog is None
        or prog.get("reason") in ("RolloutPaused", "NewReplicaSetAvailable", "RolloutAborted")
        or any(
            old.get(k) != st.get(k)
            for k in ("updatedReplicas", "availableReplicas", "readyReplicas", "currentStepIndex")
        )
        or (old.get("blueGreen") or {}).get("activeSelector")
        != (st.get("blueGreen") or {}).get("activeSelector")
    )
    if prog is not None and prog.get("reason") == "ProgressDeadlineExceeded" and not moved:
        return
    if moved:
        set_condition(
            st,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            f'ReplicaSet "{new_name}" is progressing.',
            now,
            touch=True,
        )
        ctx.wake(now + timedelta(seconds=ro.progress_deadline_seconds))
        return
    since = parse_ts((prog or {}).get("lastUpdateTime")) or now
    deadline = since + timedelta(seconds=ro.progress_deadline_seconds)
    if deadline <= now:
        set_condition(
            st,
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{new_name}" has timed out progressing.',
            now,
        )
        log.warning(
            "event=progress_deadline_exceeded rollout=%s/%s replicaset=%s",
            ro.namespace,
            ro.name,
            new_name,
        )
    else:
        ctx.wake(deadline)
