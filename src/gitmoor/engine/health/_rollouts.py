"""Rules for Argo Rollouts' kinds: Rollout and AnalysisRun (``argoproj.io``).

They are Argo CD's bundled checks (resource_customizations/argoproj.io/Rollout/
health.lua and AnalysisRun/health.lua), messages kept word for word, so that an
app holding a Rollout reads the same in gitmoor as in Argo CD, whichever
controller runs the Rollout (gitmoor's or Argo Rollouts' own).

**Rollout.** Since v1.0 the Rollout controller computes the phase itself
(Argo Rollouts' ``CalculateRolloutPhase``) and writes ``status.phase`` and
``status.message``; Argo CD surfaces them, with ``Paused`` shown as Suspended.
Before that, once the generation is observed:

1. a spec not yet observed (``status.observedGeneration``, a string since v0.10,
   below ``metadata.generation``; a non-numeric one is a v0.9 hash and counts as
   observed), or a ``workloadRef``'s Deployment generation not yet observed →
   Progressing;
2. ``status.phase`` → that health and ``status.message``;
3. otherwise (a controller older than v1.0) from the rest of the status: an
   ``InvalidSpec`` condition, or ``Progressing`` with reason ``RolloutAborted`` or
   ``ProgressDeadlineExceeded`` → Degraded with its message; ``spec.paused`` or any
   ``status.pauseConditions`` → Suspended; then the replica counts, the blue-green
   active selector and the canary's stable ReplicaSet → Progressing until done.

One addition from Argo Rollouts' own client-side ``GetRolloutPhase`` (what
``kubectl argo rollouts get`` shows): ``status.controllerPause`` with no pause
condition left means a promote cleared the pause and the controller has not yet
acted on it: Progressing "waiting for rollout to unpause", not still Suspended.

**AnalysisRun.** ``status.phase``: Pending and Running → Progressing, Successful →
Healthy, Failed and Error → Degraded, Inconclusive → Unknown (a human decides), each
with ``status.message`` when set; no status yet → Progressing.
"""

from __future__ import annotations

from gitmoor.engine.health._fields import conditions, get, get_bool, get_int, get_list, get_str
from gitmoor.model import Health, HealthStatus, JSONDict

WORKLOAD_GENERATION_ANNOTATION = "rollout.argoproj.io/workload-generation"

# Rollout.status.phase (v1alpha1.RolloutPhase); Argo CD shows Paused as Suspended.
_ROLLOUT_PHASES = {
    "Healthy": HealthStatus.HEALTHY,
    "Progressing": HealthStatus.PROGRESSING,
    "Degraded": HealthStatus.DEGRADED,
    "Paused": HealthStatus.SUSPENDED,
}


def _as_int(value: object) -> int | None:
    """Lua's ``tonumber`` on a field that Argo Rollouts writes as a string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _generation_observed(obj: JSONDict) -> bool:
    observed = _as_int(get(obj, "status", "observedGeneration"))
    generation = get_int(obj, "metadata", "generation")
    if observed is None or generation is None or observed > generation:
        # A v0.9 Rollout: observedGeneration was a hash of the spec, which may even
        # be all digits; upstream counts it as observed.
        return True
    return observed == generation


def _workload_generation_observed(obj: JSONDict) -> bool:
    annotations = get(obj, "metadata", "annotations")
    if get(obj, "spec", "workloadRef") is None or not isinstance(annotations, dict):
        return True
    wanted = _as_int(annotations.get(WORKLOAD_GENERATION_ANNOTATION))
    observed = _as_int(get(obj, "status", "workloadObservedGeneration"))
    return wanted == observed


def rollout(obj: JSONDict) -> Health:
    status = get(obj, "status")
    if not isinstance(status, dict) or not _generation_observed(obj):
        return Health(HealthStatus.PROGRESSING, "Waiting for rollout spec update to be observed")
    if not _workload_generation_observed(obj):
        return Health(HealthStatus.PROGRESSING, "Waiting for rollout spec update to be observed")
    if get_bool(obj, "status", "controllerPause") and not get_list(
        obj, "status", "pauseConditions"
    ):
        return Health(HealthStatus.PROGRESSING, "waiting for rollout to unpause")

    phase = get_str(obj, "status", "phase")
    if phase:
        health = _ROLLOUT_PHASES.get(phase)
        if health is None:
            return Health(HealthStatus.UNKNOWN, f"unknown Rollout phase {phase!r}")
        return Health(health, get_str(obj, "status", "message"))
    return _rollout_before_v1(obj)


def _rollout_before_v1(obj: JSONDict) -> Health:
    """Argo CD's checks for a Rollout whose controller writes no ``status.phase``."""
    for cond in conditions(obj):
        if cond.type == "InvalidSpec":
            return Health(HealthStatus.DEGRADED, cond.message)
        if cond.type == "Progressing" and cond.reason in (
            "RolloutAborted",
            "ProgressDeadlineExceeded",
        ):
            return Health(HealthStatus.DEGRADED, cond.message)
    if get_bool(obj, "status", "abort"):
        # Aborted without the condition that says why (Argo Rollouts writes both).
        return Health(HealthStatus.DEGRADED, "Rollout is aborted")
    if get_list(obj, "status", "pauseConditions") or get_bool(obj, "spec", "paused"):
        return Health(HealthStatus.SUSPENDED, "Rollout is paused")
    current_hash = get(obj, "status", "currentPodHash")
    if current_hash is None:
        return Health(
            HealthStatus.PROGRESSING,
            "Waiting for rollout to finish: status has not been reconciled.",
        )

    desired = get_int(obj, "spec", "replicas")
    desired = 1 if desired is None else desired
    # Status counts are omitted when zero (omitempty).
    total = get_int(obj, "status", "replicas") or 0
    updated = get_int(obj, "status", "updatedReplicas") or 0
    available = get_int(obj, "status", "availableReplicas") or 0
    if updated < desired:
        return Health(
            HealthStatus.PROGRESSING,
            "Waiting for roll out to finish: More replicas need to be updated",
        )
    if available < updated:
        return Health(
            HealthStatus.PROGRESSING,
            "Waiting for roll out to finish: updated replicas are still becoming available",
        )

    # v0.8 moved status.canary.stableRS to status.stableRS; either may be found.
    stable = get_str(obj, "status", "stableRS") or get_str(obj, "status", "canary", "stableRS")
    if get(obj, "spec", "strategy", "blueGreen") is not None:
        if get(obj, "status", "blueGreen", "activeSelector") != current_hash:
            return Health(HealthStatus.PROGRESSING, "active service cutover pending")
        if stable and stable != current_hash:
            return Health(HealthStatus.PROGRESSING, "waiting for analysis to complete")
    elif get(obj, "spec", "strategy", "canary") is not None:
        # Only the canary waits for old pods: blue-green keeps them for its
        # scaleDownDelaySeconds, which may be long, and is healthy meanwhile.
        if total > updated:
            return Health(
                HealthStatus.PROGRESSING,
                "Waiting for roll out to finish: old replicas are pending termination",
            )
        if not stable or stable != current_hash:
            return Health(HealthStatus.PROGRESSING, "Waiting for rollout to finish steps")
    return Health(HealthStatus.HEALTHY, "")


# AnalysisRun.status.phase (v1alpha1.AnalysisPhase): health and default message.
_RUN_PHASES = {
    "Pending": (HealthStatus.PROGRESSING, "Analysis run is running"),
    "Running": (HealthStatus.PROGRESSING, "Analysis run is running"),
    "Successful": (HealthStatus.HEALTHY, "Analysis run completed successfully"),
    "Failed": (HealthStatus.DEGRADED, "Analysis run failed"),
    "Error": (HealthStatus.DEGRADED, "Analysis run had an error"),
    "Inconclusive": (HealthStatus.UNKNOWN, "Analysis run was inconclusive"),
}


def analysis_run(obj: JSONDict) -> Health:
    phase = get_str(obj, "status", "phase")
    if not phase:
        # No status yet (upstream's check is for status itself; an empty phase says
        # the same: the controller has not picked the run up).
        return Health(
            HealthStatus.PROGRESSING,
            "Waiting for analysis run to finish: status has not been reconciled.",
        )
    if phase not in _RUN_PHASES:
        # Upstream returns no verdict for an unknown phase, which Argo CD shows as Unknown.
        return Health(HealthStatus.UNKNOWN, f"unknown AnalysisRun phase {phase!r}")
    health, default = _RUN_PHASES[phase]
    if phase in ("Pending", "Running"):
        # Upstream ignores status.message while the run is going.
        return Health(health, default)
    return Health(health, get_str(obj, "status", "message") or default)
