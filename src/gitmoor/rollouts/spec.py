"""A typed reading of an Argo Rollouts ``Rollout`` (``argoproj.io/v1alpha1``).

Field names, defaults and the duration syntax are Argo Rollouts' own
(pkg/apis/rollouts/v1alpha1/types.go, utils/defaults/defaults.go), so that the
manifests written for Argo Rollouts are read unchanged: replicas default 1,
revisionHistoryLimit 10, progressDeadlineSeconds 600, blueGreen
autoPromotionEnabled true, scaleDownDelaySeconds 30, abortScaleDownDelaySeconds
30, canary maxSurge and maxUnavailable 25%.

Only the spec is parsed here; the status is read and written as the plain
dict the API server holds, because the status is the contract with the other
readers (health rules, ``gitmoor rollout get``, the kubectl plugin) and must
keep every field this controller does not know about.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from gitmoor.model import JSONDict, UserInputError

GROUP = "argoproj.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DEFAULT_REPLICAS = 1
DEFAULT_REVISION_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
DEFAULT_SCALE_DOWN_DELAY_SECONDS = 30
DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS = 30
DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
#: the longest duration Go's time.ParseDuration accepts (int64 nanoseconds,
#: about 292 years): upstream rejects a longer one as invalid, and a longer one
#: here would overflow the datetime arithmetic of the pause deadline
MAX_DURATION_SECONDS = (2**63 - 1) / 1e9
#: upstream's integer spec fields are int32 (types.go)
_INT32 = (-(2**31), 2**31 - 1)


class RolloutSpecError(UserInputError):
    """A Rollout whose spec cannot be run (upstream's InvalidSpec condition)."""


def parse_duration(value: Any) -> float:
    """Seconds from an Argo Rollouts duration: an integer (seconds), ``"30"``,
    ``"30s"``, ``"5m"``, ``"1h"`` or a Go duration such as ``"1m30s"``
    (v1alpha1.DurationString, parsed with time.ParseDuration upstream)."""
    if isinstance(value, bool):
        raise RolloutSpecError(f"invalid duration {value!r}")
    seconds: float | None = None
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        m = _DURATION.match(text)
        parts = _GO_DURATION_PART.findall(text)
        if m:
            seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
        elif parts and "".join(n + u for n, u in parts) == text:
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds is None or not math.isfinite(seconds) or abs(seconds) > MAX_DURATION_SECONDS:
        raise RolloutSpecError(f"invalid duration {value!r}")
    return seconds


def int_or_percent(value: int | str, total: int, *, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: a count, or a percentage of ``total``
    rounded up (maxSurge) or down (maxUnavailable)."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError as e:
            raise RolloutSpecError(f"invalid int or percentage {value!r}") from e
        scaled = pct * total / 100.0
        return math.ceil(scaled) if round_up else math.floor(scaled)
    try:
        return int(text)
    except ValueError as e:
        raise RolloutSpecError(f"invalid int or percentage {value!r}") from e


@dataclass(frozen=True, slots=True)
class AnalysisRef:
    """A ``RolloutAnalysis``: the templates to run and the args to pass."""

    templates: tuple[JSONDict, ...]
    args: tuple[JSONDict, ...] = ()
    starting_step: int | None = None

    @property
    def empty(self) -> bool:
        return not self.templates


@dataclass(frozen=True, slots=True)
class CanaryStep:
    set_weight: int | None = None
    #: a ``pause`` step: True; its duration in seconds, None for ``pause: {}``
    pause: bool = False
    pause_seconds: float | None = None
    analysis: AnalysisRef | None = None

    def describe(self) -> str:
        if self.set_weight is not None:
            return f"setWeight: {self.set_weight}"
        if self.pause:
            return "pause: {}" if self.pause_seconds is None else f"pause: {self.pause_seconds}s"
        if self.analysis is not None:
            return "analysis"
        return "unsupported step"


@dataclass(frozen=True, slots=True)
class BlueGreen:
    active_service: str
    preview_service: str = ""
    auto_promotion_enabled: bool = True
    auto_promotion_seconds: int = 0
    scale_down_delay_seconds: int = DEFAULT_SCALE_DOWN_DELAY_SECONDS
    abort_scale_down_delay_seconds: int = DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS
    preview_replica_count: int | None = None
    pre_promotion_analysis: AnalysisRef | None = None
    post_promotion_analysis: AnalysisRef | None = None


@dataclass(frozen=True, slots=True)
class Canary:
    steps: tuple[CanaryStep, ...] = ()
    canary_service: str = ""
    stable_service: str = ""
    max_surge: int | str = DEFAULT_MAX_SURGE
    max_unavailable: int | str = DEFAULT_MAX_UNAVAILABLE
    abort_scale_down_delay_seconds: int | None = None
    #: background analysis (``spec.strategy.canary.analysis``)
    analysis: AnalysisRef | None = None
    #: steps we cannot run (traffic routing, experiments, …): named in InvalidSpec
    unsupported: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WorkloadRef:
    api_version: str
    kind: str
    name: str
    scale_down: str = "never"


@dataclass(frozen=True, slots=True)
class Rollout:
    """The parts of a Rollout the controller acts on, plus the object it came from."""

    name: str
    namespace: str
    uid: str
    generation: int
    replicas: int
    selector: JSONDict
    template: JSONDict
    strategy: BlueGreen | Canary
    revision_history_limit: int = DEFAULT_REVISION_HISTORY_LIMIT
    min_ready_seconds: int = 0
    progress_deadline_seconds: int = DEFAULT_PROGRESS_DEADLINE_SECONDS
    progress_deadline_abort: bool = False
    paused: bool = False
    restart_at: str = ""
    workload_ref: WorkloadRef | None = None
    obj: JSONDict = field(default_factory=dict, compare=False, repr=False)

    @property
    def status(self) -> JSONDict:
        st = self.obj.get("status")
        return st if isinstance(st, dict) else {}

    @property
    def is_blue_green(self) -> bool:
        return isinstance(self.strategy, BlueGreen)

    def owner_reference(self) -> JSONDict:
        """The controller reference put on every ReplicaSet and AnalysisRun, as upstream."""
        return {
            "apiVersion": API_VERSION,
            "kind": "Rollout",
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def _int(value: Any, default: int, what: str) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise RolloutSpecError(f"{what} must be an integer, not {value!r}")
    if not _INT32[0] <= value <= _INT32[1]:
        # int32 upstream; a larger one would overflow the deadline arithmetic
        raise RolloutSpecError(f"{what} {value} is out of range (int32)")
    return value


def _analysis(raw: Any) -> AnalysisRef | None:
    if not isinstance(raw, dict):
        return None
    templates = tuple(t for t in raw.get("templates") or [] if isinstance(t, dict))
    # Before v1.0 a single ``templateName`` was allowed; Argo Rollouts still reads it.
    if not templates and raw.get("templateName"):
        templates = ({"templateName": raw["templateName"]},)
    args = tuple(a for a in raw.get("args") or [] if isinstance(a, dict))
    start = raw.get("startingStep")
    return AnalysisRef(templates, args, start if isinstance(start, int) else None)


def _step(raw: Any, unsupported: list[str]) -> CanaryStep:
    if not isinstance(raw, dict):
        raise RolloutSpecError(f"a canary step must be an object, not {raw!r}")
    if "setWeight" in raw:
        w = _int(raw["setWeight"], 0, "setWeight")
        if not 0 <= w <= 100:
            raise RolloutSpecError(f"setWeight {w} is outside 0-100")
        return CanaryStep(set_weight=w)
    if "pause" in raw:
        p = raw.get("pause") or {}
        dur = p.get("duration") if isinstance(p, dict) else None
        return CanaryStep(pause=True, pause_seconds=None if dur is None else parse_duration(dur))
    if "analysis" in raw:
        return CanaryStep(analysis=_analysis(raw["analysis"]) or AnalysisRef(()))
    unsupported.extend(sorted(raw))
    return CanaryStep()


def _blue_green(raw: JSONDict) -> BlueGreen:
    active = raw.get("activeService")
    if not active:
        raise RolloutSpecError("Rollout has missing field '.spec.strategy.blueGreen.activeService'")
    preview = raw.get("previewReplicaCount")
    return BlueGreen(
        active_service=str(active),
        preview_service=str(raw.get("previewService") or ""),
        auto_promotion_enabled=bool(raw.get("autoPromotionEnabled", True)),
        auto_promotion_seconds=_int(raw.get("autoPromotionSeconds"), 0, "autoPromotionSeconds"),
        scale_down_delay_seconds=_int(
            raw.get("scaleDownDelaySeconds"),
            DEFAULT_SCALE_DOWN_DELAY_SECONDS,
            "scaleDownDelaySeconds",
        ),
        abort_scale_down_delay_seconds=_int(
            raw.get("abortScaleDownDelaySeconds"),
            DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
            "abortScaleDownDelaySeconds",
        ),
        preview_replica_count=None if preview is None else _int(preview, 0, "previewReplicaCount"),
        pre_promotion_analysis=_analysis(raw.get("prePromotionAnalysis")),
        post_promotion_analysis=_analysis(raw.get("postPromotionAnalysis")),
    )


def _canary(raw: JSONDict) -> Canary:
    unsupported: list[str] = []
    steps = tuple(_step(s, unsupported) for s in raw.get("steps") or [])
    # Traffic routers are outside this controller: the canary is the basic one.
    unsupported.extend(k for k in ("trafficRouting",) if raw.get(k))
    if unsupported:
        raise RolloutSpecError(
            "gitmoor runs the basic canary (setWeight, pause, analysis steps); "
            f"unsupported: {', '.join(sorted(set(unsupported)))}"
        )
    abort_delay = raw.get("abortScaleDownDelaySeconds")
    for what in ("maxSurge", "maxUnavailable"):
        # read when the counts are computed: an unreadable one is InvalidSpec now,
        # not a crash at every reconcile
        if raw.get(what) is not None:
            int_or_percent(raw[what], 100, round_up=True)
    return Canary(
        steps=steps,
        canary_service=str(raw.get("canaryService") or ""),
        stable_service=str(raw.get("stableService") or ""),
        max_surge=raw.get("maxSurge", DEFAULT_MAX_SURGE),
        max_unavailable=raw.get("maxUnavailable", DEFAULT_MAX_UNAVAILABLE),
        abort_scale_down_delay_seconds=None
        if abort_delay is None
        else _int(abort_delay, 0, "abortScaleDownDelaySeconds"),
        analysis=_analysis(raw.get("analysis")),
        unsupported=tuple(unsupported),
    )


def parse_rollout(obj: JSONDict, *, workload_template: JSONDict | None = None) -> Rollout:
    """The Rollout ``obj`` as typed data; ``workload_template`` is the pod template
    of the Deployment a ``workloadRef`` names (read by the caller)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        raise RolloutSpecError("spec must be an object")
    strategy_raw = spec.get("strategy") or {}
    strategy: BlueGreen | Canary
    if isinstance(strategy_raw.get("blueGreen"), dict):
        strategy = _blue_green(strategy_raw["blueGreen"])
    elif isinstance(strategy_raw.get("canary"), dict):
        strategy = _canary(strategy_raw["canary"])
    else:
        # Upstream's InvalidSpec message for a Rollout with neither strategy.
        raise RolloutSpecError(
            "Rollout has missing field '.spec.strategy.canary or .spec.strategy.blueGreen'"
        )
    wref = spec.get("workloadRef")
    workload = None
    if isinstance(wref, dict) and wref.get("name"):
        workload = WorkloadRef(
            api_version=str(wref.get("apiVersion") or "apps/v1"),
            kind=str(wref.get("kind") or "Deployment"),
            name=str(wref["name"]),
            scale_down=str(wref.get("scaleDown") or "never"),
        )
    template = workload_template if workload is not None else spec.get("template")
    if not isinstance(template, dict):
        raise RolloutSpecError(
            "Rollout has missing field '.spec.template'"
            if workload is None
            else f"the workloadRef Deployment {workload.name} has no pod template"
        )
    selector = spec.get("selector")
    if workload is not None and not isinstance(selector, dict):
        selector = {"matchLabels": dict((template.get("metadata") or {}).get("labels") or {})}
    if not isinstance(selector, dict) or not (
        selector.get("matchLabels") or selector.get("matchExpressions")
    ):
        raise RolloutSpecError(
            "This rollout is selecting all pods. A non-empty selector is required."
        )
    return Rollout(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 0),
        replicas=_int(spec.get("replicas"), DEFAULT_REPLICAS, "replicas"),
        selector=selector,
        template=template,
        strategy=strategy,
        revision_history_limit=_int(
            spec.get("revisionHistoryLimit"),
            DEFAULT_REVISION_HISTORY_LIMIT,
            "revisionHistoryLimit",
        ),
        min_ready_seconds=_int(spec.get("minReadySeconds"), 0, "minReadySeconds"),
        progress_deadline_seconds=_int(
            spec.get("progressDeadlineSeconds"),
            DEFAULT_PROGRESS_DEADLINE_SECONDS,
            "progressDeadlineSeconds",
        ),
        progress_deadline_abort=bool(spec.get("progressDeadlineAbort", False)),
        paused=bool(spec.get("paused", False)),
        restart_at=str(spec.get("restartAt") or ""),
        workload_ref=workload,
        obj=obj,
    )
