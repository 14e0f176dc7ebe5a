"""Rules for networking, storage, autoscaling and API-registration kinds.

Service, Ingress, PersistentVolumeClaim, HorizontalPodAutoscaler and APIService
follow gitops-engine (pkg/health/health_*.go); CustomResourceDefinition follows
kstatus for "not established yet" and gitops-engine for the failure conditions;
Namespace is read from its phase; cert-manager's Certificate follows Argo CD's
bundled Lua check, because its Ready=False during issuance is the most common
"looks failed but is not" case among widely installed operators.
"""

from __future__ import annotations

from gitmoor.engine.health._fields import condition, conditions, get_list, get_str, labelled
from gitmoor.engine.health._generic import standard_conditions
from gitmoor.model import Health, HealthStatus, JSONDict


def service(obj: JSONDict) -> Health:
    if get_str(obj, "spec", "type") == "LoadBalancer" and not get_list(
        obj, "status", "loadBalancer", "ingress"
    ):
        # Without a cloud controller (or MetalLB) this never changes: Argo CD
        # shows such Services as Progressing forever, and so do we.
        return Health(HealthStatus.PROGRESSING, "Waiting for the load balancer to get an address")
    return Health(HealthStatus.HEALTHY)


def ingress(obj: JSONDict) -> Health:
    # As Argo CD: an Ingress is healthy once a controller has published its
    # address. A cluster without an ingress controller keeps it Progressing.
    if get_list(obj, "status", "loadBalancer", "ingress"):
        return Health(HealthStatus.HEALTHY)
    return Health(
        HealthStatus.PROGRESSING, "Waiting for the ingress controller to publish an address"
    )


def persistent_volume_claim(obj: JSONDict) -> Health:
    phase = get_str(obj, "status", "phase")
    if phase == "Bound":
        return Health(HealthStatus.HEALTHY)
    if phase == "Pending":
        # Also the steady state of a WaitForFirstConsumer claim until a pod uses it.
        return Health(HealthStatus.PROGRESSING, "Waiting for the claim to be bound")
    if phase == "Lost":
        return Health(HealthStatus.DEGRADED, "The claim lost its underlying volume")
    return Health(HealthStatus.UNKNOWN, f"Unknown phase {phase!r}" if phase else "")


def horizontal_pod_autoscaler(obj: JSONDict) -> Health:
    conds = conditions(obj)
    for cond in conds:
        # autoscaling/v2: the controller cannot read or set the target's scale, or
        # cannot compute a metric (FailedGetResourceMetric and friends, no
        # metrics-server). gitops-engine lists four such reasons; every Failed* of
        # these two condition types means the same, so they are matched by prefix.
        if (
            cond.type in ("AbleToScale", "ScalingActive")
            and cond.is_false
            and (cond.reason.startswith("Failed") or cond.reason.startswith("Invalid"))
        ):
            return Health(HealthStatus.DEGRADED, cond.message or cond.reason)
    if not conds:
        # gitops-engine's "Waiting to Autoscale": the HPA controller has not
        # evaluated the object yet.
        return Health(HealthStatus.PROGRESSING, "Waiting to autoscale")
    return Health(HealthStatus.HEALTHY)


def custom_resource_definition(obj: JSONDict) -> Health:
    if not conditions(obj):
        return Health(HealthStatus.PROGRESSING, "Status conditions not found")
    terminating = condition(obj, "Terminating")
    if terminating is not None and terminating.is_true:
        return Health(
            HealthStatus.PROGRESSING, labelled("CRD is being terminated", terminating.message)
        )
    names = condition(obj, "NamesAccepted")
    if names is not None and names.is_false:
        # Another CRD already claims the plural/kind: this will not fix itself.
        return Health(
            HealthStatus.DEGRADED, labelled("CRD names have not been accepted", names.message)
        )
    established = condition(obj, "Established")
    if established is None or not established.is_true:
        # The apiextensions controller establishes a new CRD within a second or
        # so; kstatus calls that InProgress (gitops-engine says Degraded).
        msg = established.message if established is not None else ""
        return Health(HealthStatus.PROGRESSING, labelled("CRD is not established yet", msg))
    violations = condition(obj, "NonStructuralSchema")
    if violations is not None and violations.is_true:
        return Health(
            HealthStatus.DEGRADED, labelled("Schema violations found", violations.message)
        )
    return Health(HealthStatus.HEALTHY)


def api_service(obj: JSONDict) -> Health:
    available = condition(obj, "Available")
    if available is None:
        return Health(HealthStatus.PROGRESSING, "Waiting to be processed")
    if available.is_true:
        return Health(HealthStatus.HEALTHY, available.describe())
    # gitops-engine: Progressing, since the usual cause (MissingEndpoints,
    # FailedDiscoveryCheck) is a backing Service whose pods are still starting.
    return Health(HealthStatus.PROGRESSING, available.describe())


def namespace(obj: JSONDict) -> Health:
    if get_str(obj, "status", "phase") == "Terminating":
        return Health(HealthStatus.PROGRESSING, "Namespace is terminating")
    # Active, or no status yet (the API server sets Active on create).
    return Health(HealthStatus.HEALTHY)


def cert_manager_certificate(obj: JSONDict) -> Health:
    # Argo CD's resource_customizations/cert-manager.io/Certificate/health.lua:
    # during an issuance cert-manager sets Ready=False (reason DoesNotExist,
    # Expired, ...) and Issuing=True; that is work in progress, not a failure.
    issuing = condition(obj, "Issuing")
    if issuing is not None and issuing.is_true:
        return Health(HealthStatus.PROGRESSING, issuing.describe())
    return standard_conditions(obj)
