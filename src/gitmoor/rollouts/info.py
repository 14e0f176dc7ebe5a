"""What ``gitmoor rollout get`` shows: a typed view of one Rollout and what it owns.

The view is the Argo Rollouts kubectl plugin's (``pkg/kubectl-argo-rollouts/info``):
the Rollout's strategy, its phase and message (``rolloututil.GetRolloutPhase``:
a spec change the controller has not observed yet, or a promote it has not acted
on yet, reads Progressing whatever ``status.phase`` says), its canary steps with
the current one marked, the ReplicaSets it controls (ownerReferences by uid, as
``GetReplicaSetInfo``) with their role (stable, canary, active, preview) and their
pods (the status column ``kubectl get pods`` prints, as ``newPodInfo``), the
AnalysisRuns it owns with each metric's measurements, and, which the plugin leaves
to ``kubectl get svc``, which ReplicaSet each of its Services selects.

:func:`build_info` works on plain objects (unit-tested on data);
:func:`read_info` reads them from the API server. Nothing here writes.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gitmoor.kube import UnknownKindError
from gitmoor.model import JSONDict, ObjectRef, UserInputError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from gitmoor.kube import KubeClient

GROUP = "argoproj.io"
VERSION = "v1alpha1"
#: the label the controller puts on a Rollout's ReplicaSets, pods and Service selectors
POD_TEMPLATE_HASH = "rollouts-pod-template-hash"
#: the revision of a ReplicaSet or AnalysisRun (Argo Rollouts' annotations.RevisionAnnotation)
REVISION_ANNOTATION = "rollout.argoproj.io/revision"
#: when a ReplicaSet that left service is scaled down (DefaultReplicaSetScaleDownDeadlineAnnotationKey)
SCALE_DOWN_DEADLINE_ANNOTATION = "scale-down-deadline"

STRATEGY_CANARY = "Canary"
STRATEGY_BLUEGREEN = "BlueGreen"


class RolloutNotFoundError(UserInputError):
    """No Rollout of that name in that namespace (or no Rollout kind in the cluster)."""


def rollout_ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef(GROUP, VERSION, "Rollout", namespace, name)


# ---------------------------------------------------------------------- the view


@dataclass(frozen=True, slots=True)
class StepInfo:
    """One canary step: done (before ``status.currentStepIndex``), current, or to come."""

    index: int
    text: str
    state: str  # done, current, pending


@dataclass(frozen=True, slots=True)
class PodInfo:
    name: str
    status: str
    ready: str
    restarts: int
    created: str


@dataclass(frozen=True, slots=True)
class ReplicaSetInfo:
    name: str
    hash: str
    revision: int
    status: str
    desired: int
    replicas: int
    ready: int
    available: int
    roles: tuple[str, ...]
    images: tuple[str, ...]
    created: str
    scale_down_deadline: str
    pods: tuple[PodInfo, ...]


@dataclass(frozen=True, slots=True)
class MeasurementInfo:
    phase: str
    value: str
    started_at: str
    finished_at: str
    message: str


@dataclass(frozen=True, slots=True)
class MetricInfo:
    name: str
    phase: str
    successful: int
    failed: int
    inconclusive: int
    error: int
    message: str
    measurements: tuple[MeasurementInfo, ...]


@dataclass(frozen=True, slots=True)
class AnalysisRunInfo:
    name: str
    phase: str
    message: str
    revision: int
    created: str
    metrics: tuple[MetricInfo, ...]


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """A Service the strategy names and the ReplicaSet its selector's hash picks."""

    role: str  # active, preview, canary, stable
    name: str
    hash: str
    replica_set: str
    found: bool


@dataclass(frozen=True, slots=True)
class ImageInfo:
    image: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RolloutInfo:
    name: str
    namespace: str
    uid: str
    strategy: str
    status: str
    message: str
    paused: bool
    aborted: bool
    pause_reasons: tuple[str, ...]
    step: str
    steps: tuple[StepInfo, ...]
    set_weight: str
    actual_weight: str
    desired: int
    current: int
    updated: int
    ready: int
    available: int
    current_pod_hash: str
    stable_rs: str
    restarted_at: str
    created: str
    images: tuple[ImageInfo, ...]
    replica_sets: tuple[ReplicaSetInfo, ...]
    analysis_runs: tuple[AnalysisRunInfo, ...]
    services: tuple[ServiceInfo, ...] = field(default=())

    def as_json(self) -> JSONDict:
        """The view with camelCase keys, as Kubernetes and the plugin's JSON spell them."""
        out: JSONDict = _camel(asdict(self))
        return out


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            re.sub(r"_(\w)", lambda m: m.group(1).upper(), k): _camel(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_camel(v) for v in value]
    return value


# ---------------------------------------------------------------------- small readers


def _d(value: Any) -> JSONDict:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return default
    return default


def _meta(obj: JSONDict) -> JSONDict:
    return _d(obj.get("metadata"))


def _owned_by(obj: JSONDict, uids: Iterable[str]) -> str:
    """The uid of the first owner of ``obj`` among ``uids`` ('' when none): the
    plugin's ``ownerRef`` test, by uid, so a namesake from before a re-create is
    not counted."""
    wanted = set(uids)
    for ref in _l(_meta(obj).get("ownerReferences")):
        uid = str(_d(ref).get("uid") or "")
        if uid and uid in wanted:
            return uid
    return ""


def revision_of(obj: JSONDict) -> int:
    return _int(_d(_meta(obj).get("annotations")).get(REVISION_ANNOTATION))


def pod_hash_of(obj: JSONDict) -> str:
    return str(_d(_meta(obj).get("labels")).get(POD_TEMPLATE_HASH) or "")


def _format_duration(value: Any) -> str:
    return str(value) if isinstance(value, str) else f"{_int(value)}s"


def step_text(step: JSONDict) -> str:
    """One step as ``rolloututil.CanaryStepString`` prints it."""
    if "setWeight" in step:
        return f"setWeight: {_int(step['setWeight'])}"
    if "pause" in step:
        duration = _d(step.get("pause")).get("duration")
        return "pause" if duration is None else f"pause: {_format_duration(duration)}"
    if "experiment" in step:
        return "experiment"
    if "analysis" in step:
        return "analysis"
    if "setCanaryScale" in step:
        scale = _d(step.get("setCanaryScale"))
        if "weight" in scale:
            return f"setCanaryScale{{weight: {_int(scale['weight'])}}}"
        if scale.get("matchTrafficWeight"):
            return "setCanaryScale{matchTrafficWeight: true}"
        if "replicas" in scale:
            return f"setCanaryScale{{replicas: {_int(scale['replicas'])}}}"
    return "invalid"


def canary_steps(rollout: JSONDict) -> list[JSONDict]:
    canary = _d(_d(_d(rollout.get("spec")).get("strategy")).get("canary"))
    return [_d(s) for s in _l(canary.get("steps"))]


def current_step_index(rollout: JSONDict) -> int | None:
    """``replicasetutil.GetCurrentCanaryStep``'s index: None without canary steps, 0
    before the controller set ``status.currentStepIndex``."""
    if not canary_steps(rollout):
        return None
    return _int(_d(rollout.get("status")).get("currentStepIndex"), 0)


def strategy_of(rollout: JSONDict) -> str:
    strategy = _d(_d(rollout.get("spec")).get("strategy"))
    if "canary" in strategy:
        return STRATEGY_CANARY
    if "blueGreen" in strategy:
        return STRATEGY_BLUEGREEN
    return ""


def phase_of(rollout: JSONDict) -> tuple[str, str]:
    """``rolloututil.GetRolloutPhase``: the controller's ``status.phase`` and
    ``message``, unless the controller has not caught up with the spec
    (``observedGeneration``, a string in Argo Rollouts' status) or with a promote
    (``controllerPause`` still set with no pause condition left)."""
    meta, status = _meta(rollout), _d(rollout.get("status"))
    observed = status.get("observedGeneration")
    generation = _int(meta.get("generation"))
    try:
        observed_gen = int(observed) if observed is not None else None
    except (TypeError, ValueError):
        observed_gen = None  # a v0.9 hash: counted as observed, as upstream does
    if observed_gen is not None and observed_gen < generation:
        return "Progressing", "waiting for rollout spec update to be observed"
    if status.get("controllerPause") and not _l(status.get("pauseConditions")):
        return "Progressing", "waiting for rollout to unpause"
    phase = str(status.get("phase") or "")
    if phase:
        return phase, str(status.get("message") or "")
    return "Progressing", "waiting for the rollout controller"


def _current_set_weight(rollout: JSONDict) -> int:
    """``replicasetutil.GetCurrentSetWeight``: 0 once aborted, 100 past the last
    step, else the last ``setWeight`` at or before the current step."""
    if _d(rollout.get("status")).get("abort"):
        return 0
    steps, index = canary_steps(rollout), current_step_index(rollout)
    if index is None or index >= len(steps):
        return 100
    for step in reversed(steps[: index + 1]):
        if "setWeight" in step:
            return _int(step["setWeight"])
    return 0


def replica_set_health(rs: JSONDict) -> str:
    """``getReplicaSetHealth`` of the plugin: Progressing until observed and
    available, ReplicaFailure from its condition, ScaledDown at zero."""
    meta, spec, status = _meta(rs), _d(rs.get("spec")), _d(rs.get("status"))
    desired = spec.get("replicas")
    if _int(meta.get("generation")) > _int(status.get("observedGeneration")):
        return "Progressing"
    for cond in _l(status.get("conditions")):
        c = _d(cond)
        if c.get("type") == "ReplicaFailure" and c.get("status") == "True":
            return "ReplicaFailure"
    if desired is not None and _int(status.get("availableReplicas")) < _int(desired):
        return "Progressing"
    if desired is not None and _int(desired) == 0:
        return "ScaledDown"
    return "Healthy"


def pod_status(pod: JSONDict) -> tuple[str, str, int]:
    """(status, ready, restarts) as ``kubectl get pods`` prints them (the plugin's
    ``newPodInfo``): the phase, overridden by the reason of a waiting or terminated
    container, ``Init:`` while an init container has not finished, Terminating
    once deleted."""
    meta, spec, status = _meta(pod), _d(pod.get("spec")), _d(pod.get("status"))
    reason = str(status.get("reason") or status.get("phase") or "")
    restarts = 0
    init_specs = _l(spec.get("initContainers"))
    initializing = False
    for i, c in enumerate(_l(status.get("initContainerStatuses"))):
        cs = _d(c)
        restarts += _int(cs.get("restartCount"))
        state = _d(cs.get("state"))
        term, wait = _d(state.get("terminated")), _d(state.get("waiting"))
        if state.get("terminated") is not None and _int(term.get("exitCode")) == 0:
            continue
        if state.get("terminated") is not None:
            reason = "Init:" + str(term.get("reason") or f"ExitCode:{_int(term.get('exitCode'))}")
        elif wait.get("reason") and wait.get("reason") != "PodInitializing":
            reason = f"Init:{wait['reason']}"
        elif cs.get("ready") and cs.get("started"):
            continue  # a sidecar (restartPolicy Always) that is up
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break
    ready = 0
    if not initializing:
        restarts = 0
        running = False
        for c in reversed(_l(status.get("containerStatuses"))):
            cs = _d(c)
            restarts += _int(cs.get("restartCount"))
            state = _d(cs.get("state"))
            term, wait = _d(state.get("terminated")), _d(state.get("waiting"))
            if wait.get("reason"):
                reason = str(wait["reason"])
            elif term.get("reason"):
                reason = str(term["reason"])
            elif state.get("terminated") is not None:
                signal = _int(term.get("signal"))
                reason = f"Signal:{signal}" if signal else f"ExitCode:{_int(term.get('exitCode'))}"
            elif cs.get("ready") and state.get("running") is not None:
                running = True
                ready += 1
        if reason == "Completed" and running:
            reason = "Running"
    if meta.get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return reason, f"{ready}/{len(_l(spec.get('containers')))}", restarts


def _images(template: JSONDict) -> tuple[str, ...]:
    spec = _d(template.get("spec"))
    return tuple(str(_d(c).get("image") or "") for c in _l(spec.get("containers")))


def _created(obj: JSONDict) -> str:
    return str(_meta(obj).get("creationTimestamp") or "")


# ---------------------------------------------------------------------- building


def _roles(rollout: JSONDict, pod_hash: str) -> tuple[str, ...]:
    """The plugin's tags of a ReplicaSet: for a canary stable, else canary when it
    is the current pod hash; for blue-green stable, and active or preview from
    the selectors the controller recorded."""
    status = _d(rollout.get("status"))
    strategy = strategy_of(rollout)
    roles: list[str] = []
    if strategy == STRATEGY_CANARY:
        if pod_hash and status.get("stableRS") == pod_hash:
            roles.append("stable")
        elif pod_hash and status.get("currentPodHash") == pod_hash:
            roles.append("canary")
    elif strategy == STRATEGY_BLUEGREEN:
        bg = _d(status.get("blueGreen"))
        if pod_hash and status.get("stableRS") == pod_hash:
            roles.append("stable")
        if pod_hash and bg.get("activeSelector") == pod_hash:
            roles.append("active")
        elif pod_hash and bg.get("previewSelector") == pod_hash:
            roles.append("preview")
    return tuple(roles)


def _replica_sets(
    rollout: JSONDict, replica_sets: list[JSONDict], pods: list[JSONDict]
) -> tuple[ReplicaSetInfo, ...]:
    uid = str(_meta(rollout).get("uid") or "")
    owned = [rs for rs in replica_sets if _owned_by(rs, [uid])]
    by_rs: dict[str, list[JSONDict]] = {}
    rs_uids = [str(_meta(rs).get("uid") or "") for rs in owned]
    for pod in pods:
        owner = _owned_by(pod, rs_uids)
        if owner:
            by_rs.setdefault(owner, []).append(pod)
    out: list[ReplicaSetInfo] = []
    for rs in owned:
        meta, spec, status = _meta(rs), _d(rs.get("spec")), _d(rs.get("status"))
        pod_hash = pod_hash_of(rs)
        rs_pods = sorted(
            by_rs.get(str(meta.get("uid") or ""), []),
            key=lambda p: (_created(p), str(_meta(p).get("name"))),
        )
        pod_infos = []
        for pod in rs_pods:
            st, ready, restarts = pod_status(pod)
            pod_infos.append(
                PodInfo(str(_meta(pod).get("name") or ""), st, ready, restarts, _created(pod))
            )
        out.append(
            ReplicaSetInfo(
                name=str(meta.get("name") or ""),
                hash=pod_hash,
                revision=revision_of(rs),
                status=replica_set_health(rs),
                desired=_int(spec.get("replicas"), 1),
                replicas=_int(status.get("replicas")),
                ready=_int(status.get("readyReplicas")),
                available=_int(status.get("availableReplicas")),
                roles=_roles(rollout, pod_hash),
                images=_images(_d(spec.get("template"))),
                created=_created(rs),
                scale_down_deadline=str(
                    _d(meta.get("annotations")).get(SCALE_DOWN_DEADLINE_ANNOTATION) or ""
                ),
                pods=tuple(pod_infos),
            )
        )
    # Newest revision first, then by name (the plugin's order).
    out.sort(key=lambda r: (-r.revision, r.name))
    return tuple(out)


def _analysis_runs(rollout: JSONDict, runs: list[JSONDict]) -> tuple[AnalysisRunInfo, ...]:
    uid = str(_meta(rollout).get("uid") or "")
    out: list[AnalysisRunInfo] = []
    for run in runs:
        if not _owned_by(run, [uid]):
            continue
        status = _d(run.get("status"))
        metrics: list[MetricInfo] = []
        for result in _l(status.get("metricResults")):
            r = _d(result)
            measurements = tuple(
                MeasurementInfo(
                    phase=str(_d(m).get("phase") or ""),
                    value=str(_d(m).get("value") or ""),
                    started_at=str(_d(m).get("startedAt") or ""),
                    finished_at=str(_d(m).get("finishedAt") or ""),
                    message=str(_d(m).get("message") or ""),
                )
                for m in _l(r.get("measurements"))
            )
            metrics.append(
                MetricInfo(
                    name=str(r.get("name") or ""),
                    phase=str(r.get("phase") or ""),
                    successful=_int(r.get("successful")),
                    failed=_int(r.get("failed")),
                    inconclusive=_int(r.get("inconclusive")),
                    error=_int(r.get("error")),
                    message=str(r.get("message") or ""),
                    measurements=measurements,
                )
            )
        out.append(
            AnalysisRunInfo(
                name=str(_meta(run).get("name") or ""),
                phase=str(status.get("phase") or "Pending"),
                message=str(status.get("message") or ""),
                revision=revision_of(run),
                created=_created(run),
                metrics=tuple(metrics),
            )
        )
    out.sort(key=lambda a: (-a.revision, a.created, a.name))
    return tuple(out)


def service_names(rollout: JSONDict) -> list[tuple[str, str]]:
    """(role, Service name) of the Services the strategy names."""
    strategy = _d(_d(rollout.get("spec")).get("strategy"))
    bg, canary = _d(strategy.get("blueGreen")), _d(strategy.get("canary"))
    named = [
        ("active", bg.get("activeService")),
        ("preview", bg.get("previewService")),
        ("canary", canary.get("canaryService")),
        ("stable", canary.get("stableService")),
    ]
    return [(role, str(name)) for role, name in named if isinstance(name, str) and name]


def _services(
    rollout: JSONDict, services: dict[str, JSONDict | None], rss: tuple[ReplicaSetInfo, ...]
) -> tuple[ServiceInfo, ...]:
    by_hash = {rs.hash: rs.name for rs in rss if rs.hash}
    out = []
    for role, name in service_names(rollout):
        svc = services.get(name)
        selector = _d(_d((svc or {}).get("spec")).get("selector"))
        h = str(selector.get(POD_TEMPLATE_HASH) or "")
        out.append(ServiceInfo(role, name, h, by_hash.get(h, ""), svc is not None))
    return tuple(out)


def _image_tags(rss: tuple[ReplicaSetInfo, ...]) -> tuple[ImageInfo, ...]:
    """The plugin's ``Images``: each image of a ReplicaSet with pods, tagged with
    the roles of every such ReplicaSet that runs it."""
    tags: dict[str, set[str]] = {}
    for rs in rss:
        if rs.replicas <= 0:
            continue
        for image in rs.images:
            tags.setdefault(image, set()).update(rs.roles)
    return tuple(ImageInfo(i, tuple(sorted(t))) for i, t in sorted(tags.items()))


def build_info(
    rollout: JSONDict,
    replica_sets: list[JSONDict],
    pods: list[JSONDict],
    analysis_runs: list[JSONDict],
    services: dict[str, JSONDict | None],
) -> RolloutInfo:
    """The view of ``rollout`` from the objects of its namespace (plain dicts as the
    API server serves them); what it does not own is left out."""
    meta, spec, status = _meta(rollout), _d(rollout.get("spec")), _d(rollout.get("status"))
    phase, message = phase_of(rollout)
    strategy = strategy_of(rollout)
    rss = _replica_sets(rollout, replica_sets, pods)
    steps: tuple[StepInfo, ...] = ()
    step = set_weight = actual_weight = ""
    if strategy == STRATEGY_CANARY:
        raw_steps, index = canary_steps(rollout), current_step_index(rollout)
        if index is not None:
            step = f"{index}/{len(raw_steps)}"
            steps = tuple(
                StepInfo(
                    i,
                    step_text(s),
                    "done" if i < index else "current" if i == index else "pending",
                )
                for i, s in enumerate(raw_steps)
            )
        set_weight = str(_current_set_weight(rollout))
        # Without a traffic router the weight is the canary's share of the
        # available pods (the plugin's ActualWeight); past the last step, 100.
        available = _int(status.get("availableReplicas"))
        if index is None or index >= len(raw_steps):
            actual_weight = "100"
        elif available > 0:
            canary = sum(rs.available for rs in rss if "canary" in rs.roles)
            actual_weight = str(canary * 100 // available)
        else:
            actual_weight = "0"
    pause_reasons = tuple(str(_d(c).get("reason") or "") for c in _l(status.get("pauseConditions")))
    return RolloutInfo(
        name=str(meta.get("name") or ""),
        namespace=str(meta.get("namespace") or ""),
        uid=str(meta.get("uid") or ""),
        strategy=strategy,
        status=phase,
        message=message,
        paused=bool(spec.get("paused")) or bool(pause_reasons),
        aborted=bool(status.get("abort")),
        pause_reasons=pause_reasons,
        step=step,
        steps=steps,
        set_weight=set_weight,
        actual_weight=actual_weight,
        desired=_int(spec.get("replicas"), 1),
        current=_int(status.get("replicas")),
        updated=_int(status.get("updatedReplicas")),
        ready=_int(status.get("readyReplicas")),
        available=_int(status.get("availableReplicas")),
        current_pod_hash=str(status.get("currentPodHash") or ""),
        stable_rs=str(status.get("stableRS") or ""),
        restarted_at=str(status.get("restartedAt") or ""),
        created=_created(rollout),
        images=_image_tags(rss),
        replica_sets=rss,
        analysis_runs=_analysis_runs(rollout, analysis_runs),
        services=_services(rollout, services, rss),
    )


# ---------------------------------------------------------------------- reading


def selector_string(rollout: JSONDict) -> str:
    """``spec.selector.matchLabels`` as a label selector (what the plugin lists
    ReplicaSets by before it checks ownership)."""
    labels = _d(_d(_d(rollout.get("spec")).get("selector")).get("matchLabels"))
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


async def get_rollout(kube: KubeClient, namespace: str, name: str) -> JSONDict:
    try:
        obj = await kube.get(rollout_ref(namespace, name))
    except UnknownKindError as e:
        raise RolloutNotFoundError(
            "the cluster serves no Rollout kind (gitmoor install --rollouts installs it)",
            concerns=f"rollout {namespace}/{name}",
        ) from e
    if obj is None:
        raise RolloutNotFoundError("no such Rollout", concerns=f"rollout {namespace}/{name}")
    return obj


async def read_info(kube: KubeClient, namespace: str, name: str) -> RolloutInfo:
    """The view of one Rollout as the API server has it now: one LIST each of
    ReplicaSets and Pods by the Rollout's selector, AnalysisRuns of the namespace,
    and a GET of each Service the strategy names."""
    rollout = await get_rollout(kube, namespace, name)
    return await info_of(kube, rollout)


async def info_of(kube: KubeClient, rollout: JSONDict) -> RolloutInfo:
    namespace = str(_meta(rollout).get("namespace") or "")
    selector = selector_string(rollout) or None

    async def items(group: str, version: str, kind: str, sel: str | None) -> list[JSONDict]:
        try:
            ar = await kube.resource(group, version, kind)
        except UnknownKindError:
            return []  # no AnalysisRun CRD: no analysis runs
        return (await kube.list(ar, namespace, label_selector=sel)).items

    async def service(name: str) -> tuple[str, JSONDict | None]:
        return name, await kube.get(ObjectRef("", "v1", "Service", namespace, name))

    rss, pods, runs = await asyncio.gather(
        items("apps", "v1", "ReplicaSet", selector),
        items("", "v1", "Pod", selector),
        items(GROUP, VERSION, "AnalysisRun", None),
    )
    svcs = await asyncio.gather(*(service(n) for _, n in service_names(rollout)))
    return build_info(rollout, rss, pods, runs, dict(svcs))


def age(timestamp: str, now: datetime | None = None) -> str:
    """``2m``, ``3h`` … since an RFC 3339 time, as kubectl's ``HumanDuration`` prints."""
    if not timestamp:
        return ""
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return ""
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600 * 3:
        return f"{seconds // 60}m"
    if seconds < 86400 * 2:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
