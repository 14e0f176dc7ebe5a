"""Rules for the apps/v1 controllers: Deployment, StatefulSet, DaemonSet, ReplicaSet.

They are gitops-engine's (pkg/health/health_{deployment,statefulset,daemonset,
replicaset}.go), which are in turn kubectl's ``rollout status`` viewers
(k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go); messages are kept
word for word so that users who know either recognise them.

All four controllers always write ``status.observedGeneration``, so unlike the
generic rule, a missing one means "not seen yet" (Progressing), not "not used".
"""

from __future__ import annotations

from gitmoor.engine.health._fields import condition, get, get_bool, get_int, get_str
from gitmoor.model import Health, HealthStatus, JSONDict


def _unobserved(obj: JSONDict) -> bool:
    generation = get_int(obj, "metadata", "generation")
    observed = get_int(obj, "status", "observedGeneration")
    if observed is None:
        # A freshly created object: the controller has not written status yet.
        return generation is not None
    return generation is not None and observed < generation


def deployment(obj: JSONDict) -> Health:
    name = get_str(obj, "metadata", "name")
    if get_bool(obj, "spec", "paused"):
        return Health(HealthStatus.SUSPENDED, "Deployment is paused")
    if _unobserved(obj):
        return Health(
            HealthStatus.PROGRESSING,
            "Waiting for rollout to finish: observed deployment generation less than "
            "desired generation",
        )
    progressing = condition(obj, "Progressing")
    if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
        # The controller gave up waiting (spec.progressDeadlineSeconds, default 600 s);
        # it keeps retrying, but a human should look.
        return Health(HealthStatus.DEGRADED, f'Deployment "{name}" exceeded its progress deadline')
    replicas = get_int(obj, "spec", "replicas")
    # Status counts are omitted when zero (omitempty), hence the defaults.
    total = get_int(obj, "status", "replicas") or 0
    updated = get_int(obj, "status", "updatedReplicas") or 0
    available = get_int(obj, "status", "availableReplicas") or 0
    if replicas is not None and updated < replicas:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout to finish: {updated} out of {replicas} new replicas "
            "have been updated...",
        )
    if total > updated:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout to finish: {total - updated} old replicas are pending "
            "termination...",
        )
    if available < updated:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout to finish: {available} of {updated} updated replicas "
            "are available...",
        )
    return Health(HealthStatus.HEALTHY)


def stateful_set(obj: JSONDict) -> Health:
    if _unobserved(obj) or not get_int(obj, "status", "observedGeneration"):
        return Health(
            HealthStatus.PROGRESSING, "Waiting for statefulset spec update to be observed..."
        )
    replicas = get_int(obj, "spec", "replicas")
    ready = get_int(obj, "status", "readyReplicas") or 0
    updated = get_int(obj, "status", "updatedReplicas") or 0
    if replicas is not None and ready < replicas:
        return Health(
            HealthStatus.PROGRESSING, f"Waiting for {replicas - ready} pods to be ready..."
        )
    # The API server defaults updateStrategy to RollingUpdate with partition 0, so
    # real objects take this branch: pods at ordinals >= partition must be updated.
    strategy = get_str(obj, "spec", "updateStrategy", "type") or "RollingUpdate"
    rolling = get(obj, "spec", "updateStrategy", "rollingUpdate")
    if strategy == "RollingUpdate" and isinstance(rolling, dict):
        partition = get_int(obj, "spec", "updateStrategy", "rollingUpdate", "partition")
        if replicas is not None and partition is not None and updated < replicas - partition:
            return Health(
                HealthStatus.PROGRESSING,
                "Waiting for partitioned roll out to finish: "
                f"{updated} out of {replicas - partition} new pods have been updated...",
            )
        return Health(
            HealthStatus.HEALTHY,
            f"partitioned roll out complete: {updated} new pods have been updated...",
        )
    if strategy == "OnDelete":
        # Pods are replaced only when someone deletes them: nothing to wait for.
        return Health(HealthStatus.HEALTHY, f"statefulset has {ready} ready pods")
    update_revision = get_str(obj, "status", "updateRevision")
    current_revision = get_str(obj, "status", "currentRevision")
    if update_revision != current_revision:
        return Health(
            HealthStatus.PROGRESSING,
            f"waiting for statefulset rolling update to complete {updated} pods at "
            f"revision {update_revision}...",
        )
    current = get_int(obj, "status", "currentReplicas") or 0
    return Health(
        HealthStatus.HEALTHY,
        f"statefulset rolling update complete {current} pods at revision {current_revision}...",
    )


def daemon_set(obj: JSONDict) -> Health:
    name = get_str(obj, "metadata", "name")
    if _unobserved(obj):
        return Health(
            HealthStatus.PROGRESSING,
            "Waiting for rollout to finish: observed daemon set generation less than "
            "desired generation",
        )
    desired = get_int(obj, "status", "desiredNumberScheduled") or 0
    updated = get_int(obj, "status", "updatedNumberScheduled") or 0
    available = get_int(obj, "status", "numberAvailable") or 0
    if get_str(obj, "spec", "updateStrategy", "type") == "OnDelete":
        return Health(
            HealthStatus.HEALTHY,
            f"daemon set {updated} out of {desired} new pods have been updated",
        )
    if updated < desired:
        return Health(
            HealthStatus.PROGRESSING,
            f'Waiting for daemon set "{name}" rollout to finish: {updated} out of {desired} '
            "new pods have been updated...",
        )
    if available < desired:
        return Health(
            HealthStatus.PROGRESSING,
            f'Waiting for daemon set "{name}" rollout to finish: {available} of {desired} '
            "updated pods are available...",
        )
    return Health(HealthStatus.HEALTHY)


def replica_set(obj: JSONDict) -> Health:
    if _unobserved(obj):
        return Health(
            HealthStatus.PROGRESSING,
            "Waiting for rollout to finish: observed replica set generation less than "
            "desired generation",
        )
    failure = condition(obj, "ReplicaFailure")
    if failure is not None and failure.is_true:
        # Pods cannot be created at all (quota, admission webhook, missing SA).
        return Health(HealthStatus.DEGRADED, failure.message or failure.reason)
    replicas = get_int(obj, "spec", "replicas")
    available = get_int(obj, "status", "availableReplicas") or 0
    if replicas is not None and available < replicas:
        return Health(
            HealthStatus.PROGRESSING,
            f"Waiting for rollout to finish: {available} out of {replicas} new replicas "
            "are available...",
        )
    return Health(HealthStatus.HEALTHY)
